// Process-wide runtime set-up: device choice, intra-op threads, seeds, version/environment info.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/options.h"

namespace shiftlab::core {

struct RuntimeOptions {
  std::string device = "auto";  ///< auto | cpu | cuda | cuda:N
  int threads = 0;              ///< intra-op threads; 0 = all cores (libtorch starts with 1 here)
  uint64_t seed = 0;            ///< seeds torch, the loaders and the C++ RNGs
  std::string log_level = "info";
  /// Deterministic kernels only (see set_deterministic): bit-identical reruns on GPU too, slower.
  bool deterministic = false;
  /// Threads of OpenBLAS's own pool (not an option; set by the command): -1 = `threads`. Training
  /// and extraction use 1: their parallelism is libtorch's intra-op pool, and a second pool of
  /// spinning OpenBLAS threads beside it halves the step rate on a small CPU (measured: digits
  /// DANN at 2 threads, 1,092 vs 2,457 images/s). Ignored when OPENBLAS_NUM_THREADS is set.
  int blas_threads = -1;
};

/// run.device, run.threads, run.seed, run.log_level, run.deterministic (reading checks the device).
const OptionTable<RuntimeOptions>& runtime_option_table();
inline void declare_runtime_options(Schema& s) { runtime_option_table().declare(s); }
inline RuntimeOptions runtime_options_from(const Config& c) { return runtime_option_table().read(c); }

/// glibc malloc for a training loop (called first thing by the binary): the default thresholds return
/// the freed heap top to the kernel and re-map large blocks at every step, so each step's tensors
/// page-fault in again (10 % of a digits DANN step's CPU time in the kernel, perf; Python's process
/// did not pay it). Keeps freed memory for reuse: mmap threshold 32 MiB, trim threshold 512 MiB,
/// top pad 64 MiB (measured: digits DANN 2,133–2,471 -> 2,576–3,091 images/s, peak memory +20 MiB).
/// Skipped when GLIBC_TUNABLES sets malloc parameters or SHIFTLAB_MALLOC=default. Returns what it did.
std::string tune_malloc();
/// "tuned" or "default": tune_malloc()'s last result, for env.json.
const std::string& malloc_mode();

/// Resolves "auto|cpu|cuda|cuda:N" (UsageError when CUDA is asked for but missing).
torch::Device resolve_device(const std::string& spec);
/// Applies threads, seeds and log level; returns the resolved device.
torch::Device setup_runtime(const RuntimeOptions& o);
/// Seeds torch (CPU and CUDA) from `seed`.
void seed_everything(uint64_t seed);
/// on: torch's deterministic algorithms only (an op without one throws, naming it), cuDNN
/// deterministic with benchmark (autotuning) off, and CUBLAS_WORKSPACE_CONFIG=:4096:8 when unset
/// (cuBLAS needs it for reproducible results). On CPU every shiftlab op is deterministic anyway.
void set_deterministic(bool on);

std::string shiftlab_version();
std::string torch_version();
bool cuda_available();
/// The shared library that provides libblas.so.3 here (e.g. "openblas-pthread"), or "unknown".
std::string blas_provider();
/// Resident memory of this process now (MiB, /proc/self/statm; 0 where unavailable).
double resident_mib();
/// Peak resident memory of this process so far (MiB, getrusage's ru_maxrss).
double peak_resident_mib();
/// shiftlab + libtorch versions, device, threads, BLAS, git commit, host.
nlohmann::json environment_info(const torch::Device& device);

}  // namespace shiftlab::core
