// c10d glue for train/dist.h. The only file that includes torch/csrc/distributed: the c10d C++
// API moved between libtorch 1.13 (process groups derive from c10d::ProcessGroup) and 2.x (from
// c10d::Backend), hence the PgBase alias; everything else used here (TCPStore, PrefixStore,
// ProcessGroupGloo / ProcessGroupNCCL constructors and options, Work) is the same in both.
#include "train/dist.h"

#include <torch/version.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <mutex>

#include "core/error.h"
#include "core/log.h"
#include "models/backbones.h"

#if defined(SHIFTLAB_WITH_GLOO) || defined(SHIFTLAB_WITH_NCCL)
#define SHIFTLAB_WITH_DIST 1
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#ifdef SHIFTLAB_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef SHIFTLAB_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

namespace shiftlab::train {

using core::str;

// ---------------------------------------------------------------- environment

std::string DistEnv::describe() const {
  return str("rank ", rank, " of ", world_size, " (local ", local_rank, " of ", local_world_size, ", ", master_addr,
             ":", master_port, ", from ", source, ")");
}

static int env_int(const EnvLookup& get, const char* name, int lo, int hi, int fallback, bool* found = nullptr) {
  const char* v = get(name);
  if (found) *found = v && *v;
  if (!v || !*v) return fallback;
  // Slurm writes counts such as "2(x3)": the leading integer is the value
  char* end = nullptr;
  errno = 0;
  long x = std::strtol(v, &end, 10);
  bool slurm_list = end && *end == '(';
  if (errno || end == v || (*end && !slurm_list) || x < lo || x > hi)
    throw core::UsageError(str("environment variable ", name, "='", v, "' is not an integer in [", lo, ", ", hi, "]"));
  return static_cast<int>(x);
}

DistEnv dist_env_from(const std::string& mode, const EnvLookup& lookup) {
  EnvLookup get = lookup ? lookup : EnvLookup([](const char* n) -> const char* { return std::getenv(n); });
  core::check_usage(mode == "auto" || mode == "env" || mode == "slurm" || mode == "none", "option 'dist.env': '",
                    mode, "' is not one of auto, env, slurm, none");
  DistEnv e;
  if (mode == "none") return e;
  auto has = [&](const char* n) {
    const char* v = get(n);
    return v && *v;
  };
  const bool torchrun = has("RANK") || has("WORLD_SIZE");
  const bool slurm = has("SLURM_PROCID") && (has("SLURM_STEP_NUM_TASKS") || (mode == "slurm" && has("SLURM_NTASKS")));
  constexpr int kMax = 1 << 20;
  if ((mode == "auto" && torchrun) || mode == "env") {
    if (!torchrun) return e;
    core::check_usage(has("RANK") && has("WORLD_SIZE"), "distributed environment: ",
                      has("RANK") ? "RANK" : "WORLD_SIZE",
                      " is set but ", has("RANK") ? "WORLD_SIZE" : "RANK", " is not (set both, or neither)");
    e.source = "env";
    e.world_size = env_int(get, "WORLD_SIZE", 1, kMax, 1);
    e.rank = env_int(get, "RANK", 0, kMax, 0);
    e.local_rank = env_int(get, "LOCAL_RANK", 0, kMax, e.rank);
    e.local_world_size = env_int(get, "LOCAL_WORLD_SIZE", 1, kMax, e.world_size);
  } else if ((mode == "auto" || mode == "slurm") && slurm) {
    e.source = "slurm";
    e.world_size = has("SLURM_STEP_NUM_TASKS") ? env_int(get, "SLURM_STEP_NUM_TASKS", 1, kMax, 1)
                                               : env_int(get, "SLURM_NTASKS", 1, kMax, 1);
    e.rank = env_int(get, "SLURM_PROCID", 0, kMax, 0);
    e.local_rank = env_int(get, "SLURM_LOCALID", 0, kMax, 0);
    e.local_world_size = has("SLURM_STEP_TASKS_PER_NODE") ? env_int(get, "SLURM_STEP_TASKS_PER_NODE", 1, kMax, 1)
                         : has("SLURM_NTASKS_PER_NODE")   ? env_int(get, "SLURM_NTASKS_PER_NODE", 1, kMax, 1)
                                                          : 1;
    // the master: MASTER_ADDR when the job script exports it, else the node srun ran on
    if (!has("MASTER_ADDR") && has("SLURM_LAUNCH_NODE_IPADDR")) e.master_addr = get("SLURM_LAUNCH_NODE_IPADDR");
    // a port per job, so two jobs sharing a node do not collide
    if (!has("MASTER_PORT") && has("SLURM_JOB_ID"))
      e.master_port = 20000 + env_int(get, "SLURM_JOB_ID", 0, 2147483647, 0) % 20000;
  } else {
    return e;
  }
  if (has("MASTER_ADDR")) e.master_addr = get("MASTER_ADDR");
  e.master_port = env_int(get, "MASTER_PORT", 1, 65535, e.master_port);
  core::check_usage(e.rank < e.world_size, "distributed environment (", e.source, "): rank ", e.rank,
                    " is not below the world size ", e.world_size);
  core::check_usage(e.local_rank < std::max(e.local_world_size, 1) || e.source == "slurm", "distributed environment: ",
                    "LOCAL_RANK ", e.local_rank, " is not below LOCAL_WORLD_SIZE ", e.local_world_size);
  e.local_world_size = std::max(e.local_world_size, e.local_rank + 1);
  return e;
}

// ---------------------------------------------------------------- options

const core::OptionTable<DistOptions>& dist_option_table() {
  static const auto table = [] {
    using O = DistOptions;
    core::OptionTable<O> t("train::DistOptions");
    t.field("dist.env", &O::env,
            "distributed environment: auto (RANK/WORLD_SIZE as torchrun and `shiftlab launch` set them, else "
            "Slurm's SLURM_PROCID/SLURM_STEP_NUM_TASKS/SLURM_LOCALID inside srun), env, slurm, or none (one "
            "process whatever is set)")
        .choices({"auto", "env", "slurm", "none"});
    t.field("dist.backend", &O::backend, "collective backend: auto (nccl on CUDA, gloo on CPU), gloo or nccl")
        .choices({"auto", "gloo", "nccl"});
    t.field("dist.timeout", &O::timeout_s,
            "seconds the rendezvous and every collective may wait; a rank whose peer died or hangs fails with an "
            "error by then")
        .range(1, 1e7);
    t.field("dist.bucket_mb", &O::bucket_mb, "gradient all-reduce bucket size in MiB").range(0.001, 1e5);
    t.field("dist.overlap", &O::overlap,
            "launch each gradient bucket's all-reduce from autograd hooks as soon as it is filled, overlapping "
            "the rest of the backward pass (false: all buckets after backward)");
    t.field("dist.sync_bn", &O::sync_bn,
            "SyncBatchNorm: BatchNorm layers (backbone, bottleneck head, domain discriminators) normalise training "
            "batches with the statistics of all ranks' batches together");
    return t;
  }();
  return table;
}

std::string dist_backends_compiled() {
  std::string s;
#ifdef SHIFTLAB_WITH_GLOO
  s += "gloo";
#endif
#ifdef SHIFTLAB_WITH_NCCL
  s += s.empty() ? "nccl" : ", nccl";
#endif
  return s;
}

// ---------------------------------------------------------------- communicator

#ifdef SHIFTLAB_WITH_DIST

#if TORCH_VERSION_MAJOR >= 2
using PgBase = c10d::Backend;  // 2.x: ProcessGroupGloo / ProcessGroupNCCL are Backends
#else
using PgBase = c10d::ProcessGroup;  // 1.13
#endif
using WorkPtr = c10::intrusive_ptr<c10d::Work>;

struct Communicator::Impl {
  DistEnv env;
  DistOptions o;
  torch::Device device{torch::kCPU};
  std::string backend;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<PgBase> ctl, grad;  // small synchronous collectives / gradient buckets
  int64_t shares = 0;
  bool abandoned = false;
  bool sync_bn = false;

  // Waits for `w`; a failed or timed-out collective becomes one core::Error naming it.
  void wait(const WorkPtr& w, const std::string& what) {
    try {
      w->wait();
    } catch (const std::exception& ex) {
      abandoned = true;
      std::string msg = ex.what();
      if (auto* ce = dynamic_cast<const c10::Error*>(&ex)) msg = ce->what_without_backtrace();
      auto nl = msg.find('\n');
      if (nl != std::string::npos) msg = msg.substr(0, nl);
      throw core::Error(str("distributed ", what, " failed on rank ", env.rank, " of ", env.world_size,
                            ": another rank died, failed or did not answer within dist.timeout = ", o.timeout_s,
                            " s (see its error); cause: ", msg));
    }
  }

  c10::intrusive_ptr<PgBase> make_group(const std::string& prefix) {
    auto ps = c10::make_intrusive<c10d::PrefixStore>(prefix, store);
    auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
#ifdef SHIFTLAB_WITH_NCCL
    if (backend == "nccl") {
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      return c10::make_intrusive<c10d::ProcessGroupNCCL>(ps, env.rank, env.world_size, opts);
    }
#endif
#ifdef SHIFTLAB_WITH_GLOO
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (env.master_addr.rfind("127.", 0) == 0 || env.master_addr == "localhost")
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 2;
    return c10::make_intrusive<c10d::ProcessGroupGloo>(ps, env.rank, env.world_size, opts);
#else
    throw core::UsageError("dist.backend = gloo: this shiftlab was built without Gloo (no gloo headers)");
#endif
  }
};

Communicator::Communicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

std::unique_ptr<Communicator> Communicator::connect(const DistEnv& env, const DistOptions& o,
                                                    const torch::Device& device) {
  auto im = std::make_unique<Impl>();
  im->env = env;
  im->o = o;
  im->backend = o.backend == "auto" ? (device.is_cuda() ? "nccl" : "gloo") : o.backend;
  const auto compiled = dist_backends_compiled();
  core::check_usage(compiled.find(im->backend) != std::string::npos, "dist.backend = ", im->backend,
                    ": this shiftlab was built with ", compiled.empty() ? std::string("no") : compiled,
                    " distributed backend(s)", im->backend == "nccl" ? " (NCCL needs a CUDA libtorch)" : "");
  core::check_usage(im->backend != "nccl" || device.is_cuda(), "dist.backend = nccl needs run.device = cuda");
  im->device = im->backend == "nccl" ? device : torch::Device(torch::kCPU);
  if (im->backend == "nccl") {
    // a collective that outlives dist.timeout ends the process (instead of hanging the GPU stream)
    ::setenv("NCCL_ASYNC_ERROR_HANDLING", "1", 0);
    ::setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1", 0);
  }
  // a peer that died leaves sockets whose writes raise SIGPIPE (Gloo writes without
  // MSG_NOSIGNAL): ignore it, as Python does, so the write fails and becomes an error message
  ::signal(SIGPIPE, SIG_IGN);
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
  const std::string where = str(env.master_addr, ":", env.master_port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(env.master_port);
    so.isServer = env.rank == 0;
    so.numWorkers = static_cast<size_t>(env.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    im->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
    im->ctl = im->make_group("shiftlab/ctl/");
    im->grad = im->make_group("shiftlab/grad/");
  } catch (const core::Error&) {
    throw;
  } catch (const std::exception& ex) {
    std::string msg = ex.what();
    if (auto* ce = dynamic_cast<const c10::Error*>(&ex)) msg = ce->what_without_backtrace();
    auto nl = msg.find('\n');
    if (nl != std::string::npos) msg = msg.substr(0, nl);
    // this process never joined: nothing to shut down in order
    im->store.release();
    im->ctl.release();
    im->grad.release();
    throw core::Error(str("distributed rendezvous at ", where, " failed for rank ", env.rank, " of ", env.world_size,
                          " (", im->backend, ", dist.timeout = ", o.timeout_s, " s): ", msg,
                          env.rank == 0 ? "" : " — is rank 0 running, and MASTER_ADDR/MASTER_PORT right?"));
  }
  core::log_info("distributed: ", env.describe(), ", backend ", im->backend);
  return std::unique_ptr<Communicator>(new Communicator(std::move(im)));
}

Communicator::~Communicator() {
  if (impl_->sync_bn) models::set_batch_norm_sync(nullptr);
  if (impl_->abandoned || std::uncaught_exceptions() > 0) {
    // peers may be gone: the process groups' destructors would wait for them; let the OS close
    // the sockets at exit instead (the others then fail fast)
    impl_->grad.release();
    impl_->ctl.release();
    impl_->store.release();
  }
}

int Communicator::rank() const { return impl_->env.rank; }
int Communicator::world_size() const { return impl_->env.world_size; }
const std::string& Communicator::backend() const { return impl_->backend; }
const DistOptions& Communicator::options() const { return impl_->o; }
const DistEnv& Communicator::env() const { return impl_->env; }
const torch::Device& Communicator::device() const { return impl_->device; }
void Communicator::abandon() { impl_->abandoned = true; }

void Communicator::allreduce_sum(torch::Tensor& t, const std::string& what) {
  torch::NoGradGuard ng;
  const bool moved = t.device() != impl_->device || !t.is_contiguous();
  std::vector<torch::Tensor> v{moved ? t.to(impl_->device).contiguous() : t};
  impl_->wait(impl_->ctl->allreduce(v), what);
  if (moved) t.copy_(v[0]);
}

void Communicator::broadcast(const std::vector<torch::Tensor>& tensors, const std::string& what) {
  torch::NoGradGuard ng;
  // one flat buffer per (dtype, device): few collectives whatever the number of tensors
  std::map<std::pair<int, std::string>, std::vector<torch::Tensor>> groups;
  for (auto& t : tensors)
    if (t.defined() && t.numel() > 0) groups[{static_cast<int>(t.scalar_type()), t.device().str()}].push_back(t);
  for (auto& [key, ts] : groups) {
    std::vector<torch::Tensor> flat_parts;
    for (auto& t : ts) flat_parts.push_back(t.reshape({-1}).to(impl_->device));
    std::vector<torch::Tensor> v{torch::cat(flat_parts)};
    impl_->wait(impl_->ctl->broadcast(v), what);
    int64_t off = 0;
    for (auto& t : ts) {
      t.copy_(v[0].narrow(0, off, t.numel()).view(t.sizes()));
      off += t.numel();
    }
  }
}

torch::Tensor Communicator::allgather(const torch::Tensor& t, const std::string& what) {
  auto in = t.contiguous().to(impl_->device);
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int r = 0; r < world_size(); ++r) out[0].push_back(torch::empty_like(in));
  std::vector<torch::Tensor> inputs{in};
  impl_->wait(impl_->ctl->allgather(out, inputs), what);
  return torch::stack(out[0]).to(t.device());
}

std::string Communicator::share(const std::string& value, const std::string& what) {
  const std::string key = str("shiftlab/share/", impl_->shares++);
  try {
    if (is_main()) impl_->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
    auto v = impl_->store->get(key);
    return std::string(v.begin(), v.end());
  } catch (const std::exception& ex) {
    impl_->abandoned = true;
    throw core::Error(str("distributed ", what, " failed on rank ", rank(), ": ", ex.what()));
  }
}

void Communicator::barrier(const std::string& what) { impl_->wait(impl_->ctl->barrier(), what); }

void Communicator::check_same(const std::string& value, const std::string& what) {
  // a 64-bit FNV-1a digest of `value` from every rank
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : value) h = (h ^ c) * 1099511628211ULL;
  auto all = allgather(torch::tensor({static_cast<int64_t>(h)}, torch::kInt64), what);
  auto cpu = all.to(torch::kCPU);
  auto acc = cpu.accessor<int64_t, 2>();
  for (int r = 1; r < world_size(); ++r)
    if (acc[r][0] != acc[0][0])
      throw core::UsageError(str("rank ", r, " has another ", what, " than rank 0; start every rank with the same "
                                 "command and files"));
}

// ---------------------------------------------------------------- SyncBatchNorm

namespace {

// y = (x - mean) / sqrt(var + eps) * w + b with mean and (biased) var over the batches of all
// ranks. Backward (as torch.nn.SyncBatchNorm): dweight, dbias from the local batch (the gradient
// all-reduce averages them), dx with the globally reduced sums of dy and dy·x̂.
struct SyncBatchNormFn : public torch::autograd::Function<SyncBatchNormFn> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, torch::Tensor weight,
                               torch::Tensor bias, const models::BatchNormCall* call, Communicator* comm) {
    const int64_t C = x.size(1);
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
    std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
    shape[1] = C;
    // per rank: count n_r, mean m_r and M2_r = sum (x - m_r)^2 (shifted: accurate even for a
    // near-constant channel); summed over ranks as [n_r m_r, M2_r + n_r m_r^2, n_r] in double
    auto xf = x.to(torch::kFloat);
    const double nr = static_cast<double>(x.numel() / std::max<int64_t>(C, 1));
    auto mr = xf.mean(dims);
    auto m2 = (xf - mr.view(shape)).pow(2).sum(dims, false, torch::kDouble);
    auto mrd = mr.to(torch::kDouble);
    auto stats = torch::cat({mrd * nr, m2 + mrd * mrd * nr, torch::full({1}, nr, mrd.options())});
    comm->allreduce_sum(stats, "SyncBatchNorm statistics");
    // no host synchronisation: the count stays a (1-element) tensor on the device
    auto n = stats.narrow(0, 2 * C, 1);
    auto mean = stats.narrow(0, 0, C) / n;
    auto var = (stats.narrow(0, C, C) / n - mean * mean).clamp_min(0);
    {
      torch::NoGradGuard ng;
      const double m = call->momentum;
      if (call->running_mean.defined())
        call->running_mean.mul_(1 - m).add_(mean.to(call->running_mean.scalar_type()), m);
      if (call->running_var.defined())  // unbiased, as BatchNorm's running variance
        call->running_var.mul_(1 - m).add_((var * n / (n - 1).clamp_min(1)).to(call->running_var.scalar_type()), m);
    }
    auto meanf = mean.to(torch::kFloat), invstd = (var + call->eps).rsqrt().to(torch::kFloat);
    auto xhat = (xf - meanf.view(shape)) * invstd.view(shape);
    auto y = xhat;
    if (weight.defined()) y = y * weight.to(torch::kFloat).view(shape);
    if (bias.defined()) y = y + bias.to(torch::kFloat).view(shape);
    ctx->save_for_backward({xhat, weight, invstd, n.to(torch::kFloat)});
    ctx->saved_data["comm"] = reinterpret_cast<int64_t>(comm);
    return y.to(x.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto xhat = saved[0], weight = saved[1], invstd = saved[2], n = saved[3];
    auto* comm = reinterpret_cast<Communicator*>(ctx->saved_data["comm"].toInt());
    auto dy = grads[0].to(torch::kFloat);
    const int64_t C = xhat.size(1);
    std::vector<int64_t> dims{0};
    for (int64_t d = 2; d < xhat.dim(); ++d) dims.push_back(d);
    std::vector<int64_t> shape(static_cast<size_t>(xhat.dim()), 1);
    shape[1] = C;
    auto sum_dy = dy.sum(dims), sum_dy_xhat = (dy * xhat).sum(dims);
    auto global = torch::cat({sum_dy, sum_dy_xhat}).to(torch::kDouble);
    comm->allreduce_sum(global, "SyncBatchNorm gradient");
    global = global.to(torch::kFloat);
    auto scale = weight.defined() ? invstd * weight.to(torch::kFloat) : invstd;
    auto dx = scale.view(shape) * (dy - (global.narrow(0, 0, C) / n).view(shape) -
                                   xhat * (global.narrow(0, C, C) / n).view(shape));
    torch::Tensor dw, db;
    if (weight.defined()) dw = sum_dy_xhat.to(weight.scalar_type());
    if (weight.defined()) db = sum_dy.to(weight.scalar_type());
    return {dx.to(grads[0].scalar_type()), dw, db, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

void Communicator::enable_sync_batch_norm() {
  impl_->sync_bn = true;
  models::set_batch_norm_sync([this](const models::BatchNormCall& c) {
    auto w = c.weight, b = c.bias;
    return SyncBatchNormFn::apply(c.x, w, b, &c, this);
  });
}

// ---------------------------------------------------------------- gradient buckets

struct GradReducer::State {
  struct Bucket {
    torch::Tensor flat;               // averaged gradients of its parameters, back to back
    std::vector<size_t> params;       // indices into State::params
    std::vector<int64_t> offsets;     // element offset of each
    size_t pending = 0;               // parameters whose gradient has not arrived this step
    WorkPtr work;
  };
  Communicator::Impl* comm = nullptr;
  std::vector<torch::Tensor> params;
  std::vector<size_t> bucket_of;
  std::vector<int64_t> offset_of;
  std::vector<char> arrived;
  std::vector<Bucket> buckets;
  size_t next_launch = 0;
  double scale = 1;
  std::mutex mu;

  void reset() {
    for (auto& b : buckets) {
      b.pending = b.params.size();
      b.work.reset();
    }
    std::fill(arrived.begin(), arrived.end(), 0);
    next_launch = 0;
  }

  torch::Tensor slot(size_t i) {
    auto& b = buckets[bucket_of[i]];
    return b.flat.narrow(0, offset_of[i], params[i].numel()).view(params[i].sizes());
  }

  // Buckets launch in index order only, so every rank issues the same sequence of collectives.
  void launch_ready() {
    while (next_launch < buckets.size() && buckets[next_launch].pending == 0) {
      auto& b = buckets[next_launch++];
      b.flat.mul_(scale);
      std::vector<torch::Tensor> v{b.flat};
      b.work = comm->grad->allreduce(v);
    }
  }

  // The gradient of parameter i arrived (autograd hook, or after backward without overlap).
  void arrive(size_t i, const torch::Tensor& g) {
    std::lock_guard<std::mutex> lk(mu);
    if (arrived[i]) {  // a second gradient for the same parameter in one step: accumulate
      TORCH_CHECK(bucket_of[i] >= next_launch, "gradient bucket launched before all gradients arrived");
      slot(i).add_(g);
      return;
    }
    arrived[i] = 1;
    slot(i).copy_(g);
    --buckets[bucket_of[i]].pending;
    launch_ready();
  }
};

GradReducer::GradReducer(Communicator& comm, const std::vector<torch::Tensor>& params, double bucket_mb, bool overlap)
    : s_(std::make_shared<State>()) {
  auto& s = *s_;
  s.comm = &comm.impl();
  s.params = params;
  s.scale = 1.0 / comm.world_size();
  const size_t n = params.size();
  s.bucket_of.assign(n, 0);
  s.offset_of.assign(n, 0);
  s.arrived.assign(n, 0);
  // reverse registration order approximates the order gradients become ready in backward
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(bucket_mb * 1024 * 1024));
  int64_t bytes = 0;
  for (size_t k = n; k-- > 0;) {
    const auto& p = params[k];
    bool fresh = s.buckets.empty() || bytes >= cap ||
                 s.params[s.buckets.back().params.front()].scalar_type() != p.scalar_type() ||
                 s.params[s.buckets.back().params.front()].device() != p.device();
    if (fresh) {
      s.buckets.emplace_back();
      bytes = 0;
    }
    auto& b = s.buckets.back();
    int64_t off = b.params.empty() ? 0 : b.offsets.back() + s.params[b.params.back()].numel();
    b.params.push_back(k);
    b.offsets.push_back(off);
    s.bucket_of[k] = s.buckets.size() - 1;
    s.offset_of[k] = off;
    bytes += p.numel() * static_cast<int64_t>(p.element_size());
  }
  for (auto& b : s.buckets) {
    int64_t total = b.offsets.back() + s.params[b.params.back()].numel();
    b.flat = torch::zeros({total}, s.params[b.params.front()].options().requires_grad(false));
  }
  s.reset();
  if (overlap) {
    std::weak_ptr<State> weak = s_;
    for (size_t i = 0; i < n; ++i) {
      auto p = params[i];
      unsigned h = p.register_hook([weak, i](torch::Tensor g) {
        if (auto st = weak.lock()) st->arrive(i, g);
      });
      hooks_.emplace_back(p, h);
    }
  }
  core::log_info("distributed: ", n, " trainable tensors in ", s.buckets.size(), " gradient bucket(s) of up to ",
                 bucket_mb, " MiB", overlap ? ", all-reduced during backward" : ", all-reduced after backward");
}

GradReducer::~GradReducer() {
  for (auto& [p, h] : hooks_) {
    try {
      p.remove_hook(h);
    } catch (...) {
    }
  }
}

size_t GradReducer::bucket_count() const { return s_->buckets.size(); }

void GradReducer::finish(const std::string& what) {
  auto& s = *s_;
  torch::NoGradGuard ng;
  std::vector<char> local(s.params.size(), 0);
  {
    std::lock_guard<std::mutex> lk(s.mu);
    local = s.arrived;
  }
  // without overlap (or for parameters autograd did not reach): gradients arrive now, in order
  for (size_t i = 0; i < s.params.size(); ++i) {
    if (local[i]) continue;
    const auto& g = s.params[i].grad();
    if (g.defined()) {
      s.arrive(i, g);
      local[i] = 1;
    } else {
      s.arrive(i, torch::zeros_like(s.params[i]));
    }
  }
  for (auto& b : s.buckets) s.comm->wait(b.work, what);
  for (size_t i = 0; i < s.params.size(); ++i) {
    auto& p = s.params[i];
    auto avg = s.slot(i);
    // no gradient here: keep it undefined unless another rank had one (a nonzero average)
    if (!local[i] && !p.grad().defined() && avg.abs().max().item<double>() == 0) continue;
    if (p.grad().defined())
      p.mutable_grad().copy_(avg);
    else
      p.mutable_grad() = avg.clone();
  }
  s.reset();
}

#else  // built without c10d -------------------------------------------------------------

struct Communicator::Impl {};
struct GradReducer::State {};

Communicator::Communicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Communicator::~Communicator() = default;

std::unique_ptr<Communicator> Communicator::connect(const DistEnv& env, const DistOptions&, const torch::Device&) {
  throw core::UsageError(str("a distributed environment is set (", env.describe(),
                             ") but this shiftlab was built without distributed support: the c10d Gloo/NCCL "
                             "headers were not found at build time (Debian: apt install libgloo-dev, then rebuild); "
                             "run one process, or pass --dist.env=none"));
}
static const std::string kNone;
static const DistOptions kNoOptions;
static const torch::Device kCpu(torch::kCPU);
int Communicator::rank() const { return 0; }
int Communicator::world_size() const { return 1; }
const std::string& Communicator::backend() const { return kNone; }
const DistOptions& Communicator::options() const { return kNoOptions; }
static const DistEnv kNoEnv;
const DistEnv& Communicator::env() const { return kNoEnv; }
const torch::Device& Communicator::device() const { return kCpu; }
void Communicator::abandon() {}
void Communicator::allreduce_sum(torch::Tensor&, const std::string&) {}
void Communicator::broadcast(const std::vector<torch::Tensor>&, const std::string&) {}
torch::Tensor Communicator::allgather(const torch::Tensor& t, const std::string&) { return t.unsqueeze(0); }
std::string Communicator::share(const std::string& v, const std::string&) { return v; }
void Communicator::barrier(const std::string&) {}
void Communicator::check_same(const std::string&, const std::string&) {}
void Communicator::enable_sync_batch_norm() {}
GradReducer::GradReducer(Communicator&, const std::vector<torch::Tensor>&, double, bool) {}
GradReducer::~GradReducer() = default;
void GradReducer::finish(const std::string&) {}
size_t GradReducer::bucket_count() const { return 0; }

#endif

}  // namespace shiftlab::train
