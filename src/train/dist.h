// Multi-process data-parallel training on torch.distributed (c10d).
//
// A job is W processes ("ranks"), one per device (GPU) or per CPU share, each running the same
// `shiftlab train` command. The environment says who is who (DistEnv): torchrun and
// `shiftlab launch` set RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT; inside an `srun` step Slurm's SLURM_PROCID, SLURM_STEP_NUM_TASKS (or
// SLURM_NTASKS), SLURM_LOCALID stand in for them. Rank 0 serves a c10d::TCPStore at
// MASTER_ADDR:MASTER_PORT; every rank joins it and builds two process groups over it (Gloo on
// CPU, NCCL on CUDA): one for gradient buckets, one for everything else (SyncBatchNorm
// statistics, loss terms, evaluation counts, broadcasts), so a small synchronous collective never
// queues behind a large gradient all-reduce.
//
// Data parallelism, as torch's DistributedDataParallel:
//   * parameters and buffers (model and DA-method modules) are broadcast from rank 0 at start;
//   * every rank takes a strided shard of the same epoch order (data::shard_order), so batch k of
//     the W ranks with per-rank batch b is batch k of one process with batch W·b;
//   * GradReducer all-reduces the gradients of every trainable parameter (backbone, head, domain
//     discriminator, ...) in buckets of dist.bucket_mb MiB: a per-parameter autograd hook copies
//     the gradient into its bucket (pre-scaled by 1/W) and the hook that completes a bucket
//     launches its asynchronous all-reduce, so communication overlaps the rest of the backward
//     pass; buckets launch strictly in index order on every rank (the collectives must match),
//     and finish() waits for them and writes the averaged gradients back;
//   * each rank's loss is the mean over its own batch and gradients are averaged, so the update
//     equals one process on the W-times larger batch exactly when the loss is a mean of
//     per-sample terms (cross-entropy, DANN's and CDAN's domain BCE, entropy) and no layer mixes
//     samples of a batch — BatchNorm does, hence dist.sync_bn; losses that are not per-sample
//     means (MMD/JMMD's pairwise kernels, CORAL's covariances, MCC, BSP) are computed within each
//     rank's batch and averaged over ranks, an estimate from W smaller batches;
//   * SyncBatchNorm (dist.sync_bn): every BatchNorm layer called through models::batch_norm (all
//     ResNet BNs, the bottleneck head, the domain discriminators) normalises with the mean and
//     variance over the batches of all ranks (one all-reduce of per-channel sums in forward, one
//     of the gradient sums in backward), so DANN's domain statistics are those of the global batch.
//
// Failure: every collective has the dist.timeout deadline; a peer that dies closes its
// connections and the others fail at once (Gloo) or at the deadline, with an error that names the
// operation and step. NCCL: the watchdog (NCCL_ASYNC_ERROR_HANDLING) ends the process at the
// deadline.
//
// Compiled only when the c10d headers of the backend are found (SHIFTLAB_WITH_GLOO,
// SHIFTLAB_WITH_NCCL, see CMakeLists.txt); otherwise a distributed environment is an error that
// says so. All c10d code is in dist.cpp (the c10d C++ API differs between libtorch 1.13 and 2.x).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/options.h"

namespace shiftlab::train {

/// Where this process sits in a distributed job.
struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string source = "none";  ///< "env" (torchrun / shiftlab launch), "slurm" or "none"
  bool active() const { return world_size > 1; }
  std::string describe() const;
};

/// Returns the value of an environment variable or nullptr (getenv by default; tests pass a map).
using EnvLookup = std::function<const char*(const char*)>;

/// Reads DistEnv from the environment. `mode`: "auto" (RANK/WORLD_SIZE when set, else Slurm's
/// variables inside an srun step), "env", "slurm" or "none" (single process whatever is set).
/// UsageError naming the variable when a value is malformed or inconsistent.
DistEnv dist_env_from(const std::string& mode, const EnvLookup& lookup = nullptr);

struct DistOptions {
  std::string env = "auto";        ///< see dist_env_from
  std::string backend = "auto";    ///< auto (nccl on CUDA, gloo on CPU) | gloo | nccl
  double timeout_s = 1800;         ///< deadline of the rendezvous and of every collective
  double bucket_mb = 25;           ///< gradient bucket size (MiB)
  bool overlap = true;             ///< launch bucket all-reduces from gradient hooks during backward
  bool sync_bn = false;            ///< synchronise BatchNorm statistics across ranks
};

/// dist.env, dist.backend, dist.timeout, dist.bucket_mb, dist.overlap, dist.sync_bn.
const core::OptionTable<DistOptions>& dist_option_table();
inline void declare_dist_options(core::Schema& s) { dist_option_table().declare(s); }
inline DistOptions dist_options_from(const core::Config& c) { return dist_option_table().read(c); }

/// The backends this build supports, e.g. "gloo, nccl", or "" when built without c10d.
std::string dist_backends_compiled();

/// One rank's membership in the job: the store and the process groups. Not copyable.
class Communicator {
 public:
  /// Rendezvous at env.master_addr:master_port (rank 0 serves the store) and builds the process
  /// groups for `device` (Gloo: CPU tensors; NCCL: CUDA tensors). core::Error with the address,
  /// rank and cause on failure or after the timeout; UsageError when the backend is unavailable.
  static std::unique_ptr<Communicator> connect(const DistEnv& env, const DistOptions& o, const torch::Device& device);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const;
  int world_size() const;
  bool is_main() const { return rank() == 0; }
  const std::string& backend() const;
  const DistOptions& options() const;
  const DistEnv& env() const;
  /// The device collectives run on (CPU for Gloo, the rank's GPU for NCCL).
  const torch::Device& device() const;

  // Collectives: every rank must call them in the same order. `what` names the operation in
  // errors ("gradient all-reduce at step 12"). They throw core::Error when a peer failed.
  /// In-place sum over ranks.
  void allreduce_sum(torch::Tensor& t, const std::string& what);
  /// Overwrites `tensors` on every rank with rank 0's values (coalesced per dtype; no autograd).
  void broadcast(const std::vector<torch::Tensor>& tensors, const std::string& what);
  /// Stacks every rank's `t` (same shape and dtype everywhere): W×t.shape, on `t`'s device.
  torch::Tensor allgather(const torch::Tensor& t, const std::string& what);
  /// Rank 0's `value` on every rank (through the store).
  std::string share(const std::string& value, const std::string& what);
  void barrier(const std::string& what);
  /// Throws core::Error naming the first rank whose `value` differs from rank 0's.
  void check_same(const std::string& value, const std::string& what);

  /// Routes training-mode BatchNorm layers (models::batch_norm) through SyncBatchNorm over this
  /// job until the Communicator is destroyed.
  void enable_sync_batch_norm();

  /// Marks the job as failed: the destructor then drops the process groups without the orderly
  /// shutdown (which would wait for peers that may be gone), so the process exits at once.
  void abandon();

  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  explicit Communicator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Bucketed gradient averaging for a fixed list of parameters (see the file comment). Hooks are
/// registered at construction (when overlapping) and removed at destruction. Per step: backward(),
/// then finish() before clipping and the optimizer step.
class GradReducer {
 public:
  GradReducer(Communicator& comm, const std::vector<torch::Tensor>& params, double bucket_mb, bool overlap);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;
  /// Launches the buckets not launched yet (parameters without a gradient this step contribute
  /// zeros), waits for all, and sets every parameter's .grad to the average over ranks (a
  /// parameter no rank produced a gradient for keeps an undefined .grad). Then re-arms.
  void finish(const std::string& what);
  size_t bucket_count() const;

  struct State;

 private:
  std::shared_ptr<State> s_;
  std::vector<std::pair<torch::Tensor, unsigned>> hooks_;
};

}  // namespace shiftlab::train
