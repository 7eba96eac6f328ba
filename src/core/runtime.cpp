#include "core/runtime.h"

#include <ATen/Context.h>
#include <ATen/Version.h>
#include <torch/cuda.h>
#include <torch/utils.h>
#include <torch/version.h>
#include <dlfcn.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "shiftlab/config.h"

#ifndef SHIFTLAB_GIT_COMMIT
#define SHIFTLAB_GIT_COMMIT ""
#endif

namespace shiftlab::core {

const OptionTable<RuntimeOptions>& runtime_option_table() {
  static const auto table = [] {
    using O = RuntimeOptions;
    OptionTable<O> t("core::RuntimeOptions");
    t.field("run.device", &O::device, "device: auto (CUDA when available), cpu, cuda or cuda:N")
        .check([](std::string& v, const std::string&) { resolve_device(v); });  // a usage error now, not a crash later
    t.field("run.threads", &O::threads, "intra-op CPU threads; 0 = all cores").range(0, 1024);
    t.field("run.seed", &O::seed, "random seed for torch, loaders and C++ RNGs").range(0, 9.0e18);
    t.field("run.log_level", &O::log_level, "console log level").choices({"debug", "info", "warn", "error", "quiet"});
    t.field("run.deterministic", &O::deterministic,
            "deterministic kernels only (GPU: reproducible bit for bit, slower; CPU is deterministic anyway)");
    return t;
  }();
  return table;
}

bool cuda_available() { return torch::cuda::is_available(); }

torch::Device resolve_device(const std::string& spec) {
  if (spec == "auto") return cuda_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    if (!cuda_available())
      throw UsageError(str("option 'run.device' = '", spec, "': CUDA is not available (",
                           "libtorch ", torch_version(), " built ", "without CUDA or no GPU visible)"));
    int idx = 0;
    if (spec.size() > 5) {
      try {
        size_t used = 0;
        idx = std::stoi(spec.substr(5), &used);
        if (used != spec.size() - 5) throw std::invalid_argument("x");
      } catch (const std::exception&) {
        throw UsageError(str("option 'run.device': bad device '", spec, "' (expected cuda:N)"));
      }
    }
    int n = static_cast<int>(torch::cuda::device_count());
    if (idx < 0 || idx >= n)
      throw UsageError(str("option 'run.device' = '", spec, "': only ", n, " CUDA device(s) visible"));
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(idx));
  }
  throw UsageError(str("option 'run.device': unknown device '", spec, "' (expected auto, cpu, cuda or cuda:N)"));
}

void seed_everything(uint64_t seed) {
  torch::manual_seed(seed);
  if (cuda_available()) torch::cuda::manual_seed_all(seed);
}

void set_deterministic(bool on) {
  // cuBLAS reads this when its handle is created: set it before the first CUDA op
  if (on) ::setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
  auto& ctx = at::globalContext();
#if TORCH_VERSION_MAJOR == 1 && TORCH_VERSION_MINOR < 11
  ctx.setDeterministicAlgorithms(on);  // libtorch <= 1.10: no warn_only flag
#else
  ctx.setDeterministicAlgorithms(on, /*warn_only=*/false);  // 1.11 ... 2.x
#endif
  ctx.setDeterministicCuDNN(on);
  if (on) ctx.setBenchmarkCuDNN(false);
}

// The BLAS behind libtorch's CPU matrix products (OpenBLAS here) keeps its own thread pool, sized
// to all cores by default: with --run.threads=1 on a machine busy with other jobs its idle threads
// spin in sched_yield (measured: a 4.7 s linear probe took 250 s). Match it to run.threads (the
// probe's gemms), or to 1 where libtorch's own pool does the parallel work (RuntimeOptions::
// blas_threads), unless OPENBLAS_NUM_THREADS / GOTO_NUM_THREADS say otherwise. Looked up at run
// time, so builds against another BLAS (MKL in pip's libtorch) are unaffected.
static void set_blas_threads(int threads) {
  if (std::getenv("OPENBLAS_NUM_THREADS") || std::getenv("GOTO_NUM_THREADS")) return;
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(threads);
}

static std::string g_malloc_mode = "default";

std::string tune_malloc() {
  const char* tun = std::getenv("GLIBC_TUNABLES");
  const char* mode = std::getenv("SHIFTLAB_MALLOC");
  if ((tun && std::strstr(tun, "glibc.malloc.")) || (mode && std::string(mode) == "default")) {
    g_malloc_mode = "default";
    return g_malloc_mode;
  }
  bool ok = ::mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;
  ok = ::mallopt(M_TRIM_THRESHOLD, 512 << 20) == 1 && ok;
  ok = ::mallopt(M_TOP_PAD, 64 << 20) == 1 && ok;
  g_malloc_mode = ok ? "tuned" : "default";
  return g_malloc_mode;
}

const std::string& malloc_mode() { return g_malloc_mode; }

torch::Device setup_runtime(const RuntimeOptions& o) {
  set_log_level(parse_log_level(o.log_level));
  set_deterministic(o.deterministic);
  // cuDNN autotuning: training batches have fixed shapes, so each convolution is timed once and the
  // fastest algorithm kept (PyTorch users set torch.backends.cudnn.benchmark = True for the same);
  // off under run.deterministic (autotuning may pick a different algorithm in each run)
  if (!o.deterministic) at::globalContext().setBenchmarkCuDNN(true);
  int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  set_blas_threads(o.blas_threads >= 0 ? std::max(1, o.blas_threads) : threads);
  seed_everything(o.seed);
  return resolve_device(o.device);
}

std::string shiftlab_version() { return SHIFTLAB_VERSION; }
std::string torch_version() { return TORCH_VERSION; }

double resident_mib() {
  std::ifstream f("/proc/self/statm");
  long long size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

double peak_resident_mib() {
  struct rusage u {};
  if (::getrusage(RUSAGE_SELF, &u) != 0) return 0;
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: KiB
}

std::string blas_provider() {
  // libtorch built with MKL (PyPI's wheels) does its matrix products in MKL; a "generic" build
  // (Debian's) calls the libblas.so.3 the system provides
  const std::string config = at::show_config();
  for (const char* name : {"mkl", "openblas", "blis", "accelerate"})
    if (config.find(std::string("BLAS_INFO=") + name) != std::string::npos) return std::string(name) + " (in libtorch)";
  std::error_code ec;
  for (const char* link : {"/etc/alternatives/libblas.so.3-x86_64-linux-gnu",
                           "/etc/alternatives/libblas.so.3-aarch64-linux-gnu"}) {
    auto target = std::filesystem::read_symlink(link, ec);
    if (!ec) {
      auto s = target.string();
      for (const char* name : {"openblas-pthread", "openblas-openmp", "openblas-serial", "blis", "atlas", "mkl"})
        if (s.find(name) != std::string::npos) return name;
      if (s.find("/blas/") != std::string::npos) return "reference";
      return s;
    }
  }
  return "unknown";
}

nlohmann::json environment_info(const torch::Device& device) {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  nlohmann::json j;
  j["shiftlab_version"] = shiftlab_version();
  j["git_commit"] = std::string(SHIFTLAB_GIT_COMMIT);
  j["libtorch_version"] = torch_version();
  j["cuda_available"] = cuda_available();
  j["device"] = device.str();
  j["intra_op_threads"] = torch::get_num_threads();
  j["deterministic"] = at::globalContext().deterministicAlgorithms();
  j["hardware_threads"] = std::thread::hardware_concurrency();
  j["blas"] = blas_provider();
  using GetThreads = int (*)();
  if (auto f = reinterpret_cast<GetThreads>(::dlsym(RTLD_DEFAULT, "openblas_get_num_threads"))) j["blas_threads"] = f();
  j["malloc"] = malloc_mode();
  j["host"] = host;
  return j;
}

}  // namespace shiftlab::core
