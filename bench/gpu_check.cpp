// The C++ half of the prepared GPU check (scripts/gpu_check.sh): each mode prints its figures for
// $OUT/gpu_check.json as one JSON object on stdout (`agree` prints the object so far after each
// part, so the last line is the most complete); progress and errors go to stderr. Exit 0 when the
// mode ran (the figures say whether they are within tolerance), 1 on a failure, 2 on bad usage.
//
//   gpu_check agree  [--device=cuda] [--batch=8] [--size=224] [--seed=0]
//       ResNet-50 (models::make_backbone, train-mode BatchNorm) forward and backward on the same
//       seeded weights and batch: the device's fp32 (TF32 as libtorch defaults, and TF32 off) and
//       bf16 autocast against a CPU float64 reference, plus CPU fp32 against it (the baseline of
//       fp32 rounding); then the DANN and MK-MMD (DAN) losses (losses::make_method) and their
//       gradients (features, discriminator) the same way. On a machine without CUDA only the CPU
//       rows run; the others read "skipped: no CUDA".
//   gpu_check step   [--device=cuda] [--batch=64] [--size=224] [--steps=60] [--warmup=15]
//                    [--amp=bf16] [--channels_last=1] [--classes=31] [--backbone=resnet50]
//       training-step throughput of trainer.cpp's step (backbone + bottleneck head + DANN, source
//       and target batches through the backbone together, SGD 0.9 / wd 5e-4) on batches made once
//       on the device (no loader): images/s (source + target rows), step ms, peak memory.
//   gpu_check dist   [--device=cuda] [--backend=nccl]
//       a 1-rank process group (train::Communicator over a loopback TCPStore): all-reduce,
//       broadcast, all-gather, barrier and the bucketed gradient reducer (train::GradReducer).
#include <ATen/Context.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/runtime.h"
#include "losses/methods.h"
#include "models/backbones.h"
#include "models/classifier.h"
#include "shiftlab/config.h"
#include "train/autocast.h"
#include "train/dist.h"

#if SHIFTLAB_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

using namespace shiftlab;
using nlohmann::json;

namespace {

struct Args {
  std::map<std::string, std::string> kv;
  std::string get(const std::string& k, const std::string& def) const {
    auto it = kv.find(k);
    return it == kv.end() ? def : it->second;
  }
  int64_t num(const std::string& k, int64_t def) const {
    auto it = kv.find(k);
    if (it == kv.end()) return def;
    try {
      size_t used = 0;
      int64_t v = std::stoll(it->second, &used);
      if (used == it->second.size()) return v;
    } catch (const std::exception&) {
    }
    throw core::UsageError("option --" + k + ": '" + it->second + "' is not an integer");
  }
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void sync(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
}

// Differences of `a` against the reference `ref` (both moved to CPU float64).
json diff(const torch::Tensor& a, const torch::Tensor& ref) {
  auto A = a.detach().to(torch::kCPU).to(torch::kDouble);
  auto R = ref.detach().to(torch::kCPU).to(torch::kDouble);
  TORCH_CHECK(A.sizes() == R.sizes(), "shape mismatch ", A.sizes(), " vs ", R.sizes());
  const double max_abs = (A - R).abs().max().item<double>();
  const double ref_max = R.abs().max().item<double>();
  const double ref_norm = R.norm().item<double>();
  json j;
  j["max_abs"] = max_abs;
  j["max_rel"] = ref_max > 0 ? max_abs / ref_max : max_abs;  // relative to the largest reference value
  j["rel_l2"] = ref_norm > 0 ? (A - R).norm().item<double>() / ref_norm : (A - R).norm().item<double>();
  j["finite"] = A.isfinite().all().item<bool>();
  return j;
}

// The same over a list of tensors (e.g. every parameter's gradient), as one flat vector.
json diff_all(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& ref) {
  std::vector<torch::Tensor> fa, fr;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].defined() || !ref[i].defined()) continue;
    fa.push_back(a[i].detach().to(torch::kCPU).to(torch::kDouble).reshape({-1}));
    fr.push_back(ref[i].detach().to(torch::kCPU).to(torch::kDouble).reshape({-1}));
  }
  TORCH_CHECK(!fa.empty(), "no gradients to compare");
  auto j = diff(torch::cat(fa), torch::cat(fr));
  j["tensors"] = fa.size();
  return j;
}

json with_tolerance(json j, double tol) {
  j["tolerance_rel_l2"] = tol;
  j["within_tolerance"] = j["finite"].get<bool>() && j["rel_l2"].get<double>() <= tol;
  return j;
}

// Copies every parameter and buffer of `from` into `to` (same architecture), converting dtype/device.
void copy_state(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard ng;
  auto src_p = from.named_parameters(true);
  for (auto& kv : to.named_parameters(true)) kv.value().copy_(src_p[kv.key()]);
  auto src_b = from.named_buffers(true);
  for (auto& kv : to.named_buffers(true)) kv.value().copy_(src_b[kv.key()]);
}

std::vector<torch::Tensor> grads_of(torch::nn::Module& m) {
  std::vector<torch::Tensor> g;
  for (auto& p : m.parameters(true)) g.push_back(p.grad());
  return g;
}

void set_tf32(bool on) {
  at::globalContext().setAllowTF32CuDNN(on);
  at::globalContext().setAllowTF32CuBLAS(on);
}

// ---------------------------------------------------------------- agree

struct NetResult {
  torch::Tensor train_features;  // train-mode BatchNorm (batch statistics), forward only
  torch::Tensor features;        // eval-mode BatchNorm
  std::vector<torch::Tensor> grads;  // of sum(features * w), eval mode
};

// ResNet-50 on `dev` in `dt` (under autocast `amp`) with the weights of `proto`. Gradients are taken
// in eval mode: with train-mode BatchNorm at random initialisation some channels are nearly constant
// and their 1/sigma amplifies rounding (CPU float32 against float64: ~2 % in the gradients), which
// would hide what the device adds.
NetResult run_net(const models::BackbonePtr& proto, const torch::Tensor& x, const torch::Tensor& w,
                  const torch::Device& dev, torch::Dtype dt, const std::string& amp) {
  models::BackboneOptions o;
  o.name = "resnet50";
  auto net = models::make_backbone(o);
  net->to(dev, dt);
  copy_state(*proto, *net);
  NetResult r;
  const auto xd = x.to(dev, dt);
  {
    torch::NoGradGuard ng;
    net->train(true);
    train::AutocastGuard ag(dev, amp);
    r.train_features = net->forward(xd).to(torch::kCPU, torch::kDouble);
  }
  copy_state(*proto, *net);  // the running statistics the train-mode pass moved
  net->train(false);
  torch::Tensor f;
  {
    train::AutocastGuard ag(dev, amp);
    f = net->forward(xd);
  }
  (f.to(dt) * w.to(dev, dt)).sum().backward();
  sync(dev);
  r.features = f.detach().to(torch::kCPU, torch::kDouble);
  r.grads = grads_of(*net);
  return r;
}

struct LossResult {
  torch::Tensor loss;
  std::vector<torch::Tensor> grads;  // f_s, f_t, then the method's parameters
};

LossResult run_loss(const std::string& spec, const losses::MethodPtr& proto, const torch::Tensor& fs,
                    const torch::Tensor& ft, const torch::Tensor& ys, int64_t classes, const torch::Device& dev,
                    torch::Dtype dt) {
  losses::MethodOptions mo;
  mo.spec = spec;
  auto m = losses::make_method(mo, fs.size(1), classes);
  m->to(dev, dt);
  copy_state(*proto, *m);
  m->train(true);
  losses::StepOutputs out;
  out.f_s = fs.to(dev, dt).set_requires_grad(true);
  out.f_t = ft.to(dev, dt).set_requires_grad(true);
  out.logits_s = torch::zeros({fs.size(0), classes}, out.f_s.options().requires_grad(false));
  out.logits_t = torch::zeros({ft.size(0), classes}, out.f_s.options().requires_grad(false));
  out.labels_s = ys.to(dev);
  out.progress = 0.5;
  out.step = 100;
  auto r = m->loss(out);
  TORCH_CHECK(r.total.defined(), "method '", spec, "' returned no loss");
  r.total.backward();
  sync(dev);
  LossResult res{r.total.detach().to(torch::kCPU), {out.f_s.grad(), out.f_t.grad()}};
  for (auto& g : grads_of(*m)) res.grads.push_back(g);
  return res;
}

json mode_agree(const Args& a) {
  const auto dev = core::resolve_device(a.get("device", "auto"));
  const int64_t batch = a.num("batch", 8), size = a.num("size", 224), seed = a.num("seed", 0);
  const bool cuda = dev.is_cuda();
  json out;
  out["mode"] = "agree";
  out["device"] = dev.str();
  out["batch"] = batch;
  out["size"] = size;
  out["libtorch"] = core::torch_version();
  out["reference"] = "CPU float64, same weights and batch";
  const json no_cuda = "skipped: no CUDA";

  // Each finished part prints the whole object so far (one line): when the caller's time limit
  // ends the run, the last line still holds what was measured. The cheap losses go first.
  auto emit = [&] { std::cout << out.dump() << std::endl; };
  const bool tf32_cudnn = at::globalContext().allowTF32CuDNN();
  const bool tf32_cublas = at::globalContext().allowTF32CuBLAS();
  auto restore_tf32 = [&] {
    at::globalContext().setAllowTF32CuDNN(tf32_cudnn);
    at::globalContext().setAllowTF32CuBLAS(tf32_cublas);
  };

  // DANN and MK-MMD (DAN) losses and gradients: 64 + 64 rows of 256-d features, 31 classes
  for (const std::string spec : {"dann", "dan"}) {
    auto t1 = std::chrono::steady_clock::now();
    const int64_t n = 64, d = 256, k = 31;
    torch::manual_seed(static_cast<uint64_t>(seed) + 1);
    auto fs = torch::randn({n, d}) + 0.3, ft = torch::randn({n, d}) - 0.3;
    auto ys = torch::randint(0, k, {n}, torch::kLong);
    losses::MethodOptions mo;
    mo.spec = spec;
    auto proto_m = losses::make_method(mo, d, k);
    auto lref = run_loss(spec, proto_m, fs, ft, ys, k, torch::kCPU, torch::kDouble);
    json lj;
    lj["describe"] = proto_m->describe();
    lj["reference_loss"] = lref.loss.item<double>();
    auto lrow = [&](const LossResult& r) {
      json j;
      j["loss"] = with_tolerance(diff(r.loss, lref.loss), 1e-4);
      j["grad"] = with_tolerance(diff_all(r.grads, lref.grads), 1e-3);
      return j;
    };
    lj["cpu_fp32"] = lrow(run_loss(spec, proto_m, fs, ft, ys, k, torch::kCPU, torch::kFloat));
    if (cuda) {
      // float32 on the GPU; the trainer computes the method's loss outside autocast
      set_tf32(false);
      lj["cuda_fp32_no_tf32"] = lrow(run_loss(spec, proto_m, fs, ft, ys, k, dev, torch::kFloat));
      lj["cuda_fp64"] = lrow(run_loss(spec, proto_m, fs, ft, ys, k, dev, torch::kDouble));
      restore_tf32();
    } else {
      lj["cuda_fp32_no_tf32"] = lj["cuda_fp64"] = no_cuda;
    }
    lj["seconds"] = seconds_since(t1);
    out[spec == "dann" ? "dann_loss" : "mkmmd_loss"] = lj;
    emit();
  }

  // ResNet-50
  auto t0 = std::chrono::steady_clock::now();
  torch::manual_seed(static_cast<uint64_t>(seed));
  models::BackboneOptions bo;
  bo.name = "resnet50";
  auto proto = models::make_backbone(bo);
  auto x = torch::randn({batch, 3, size, size});
  auto w = torch::randn({batch, proto->feature_dim()});
  auto ref = run_net(proto, x, w, torch::kCPU, torch::kDouble, "none");
  json net;
  net["reference_seconds"] = seconds_since(t0);
  // Tolerances on rel_l2: fixed ones, widened to `factor` times CPU float32's own error against the
  // reference (the rounding any float32 run has) where that is larger.
  json base;
  auto row = [&](const NetResult& r, double ftol, double gtol, double factor) {
    json j;
    j["forward_train_bn"] = diff(r.train_features, ref.train_features);
    j["forward"] = diff(r.features, ref.features);
    j["grad"] = diff_all(r.grads, ref.grads);
    for (const char* k : {"forward_train_bn", "forward", "grad"}) {
      double t = std::string(k) == "grad" ? gtol : ftol;
      if (!base.is_null()) t = std::max(t, factor * base[k]["rel_l2"].get<double>());
      j[k] = with_tolerance(j[k], t);
    }
    return j;
  };
  net["cpu_fp32"] = row(run_net(proto, x, w, torch::kCPU, torch::kFloat, "none"), 1e-4, 1e-3, 1);
  base = net["cpu_fp32"];
  if (cuda) {
    net["cuda_fp32_tf32_default"] = row(run_net(proto, x, w, dev, torch::kFloat, "none"), 1e-2, 3e-2, 100);
    net["cuda_fp32_tf32_default"]["tf32_cudnn"] = tf32_cudnn;
    net["cuda_fp32_tf32_default"]["tf32_cublas"] = tf32_cublas;
    set_tf32(false);
    net["cuda_fp32_no_tf32"] = row(run_net(proto, x, w, dev, torch::kFloat, "none"), 1e-4, 1e-3, 10);
    restore_tf32();
    net["cuda_bf16_autocast"] = row(run_net(proto, x, w, dev, torch::kFloat, "bf16"), 5e-2, 1e-1, 300);
  } else {
    net["cuda_fp32_tf32_default"] = net["cuda_fp32_no_tf32"] = net["cuda_bf16_autocast"] = no_cuda;
  }
  net["seconds"] = seconds_since(t0);
  out["resnet50"] = net;
  emit();

  // every row that ran within its tolerance
  bool all = true;
  std::function<void(const json&)> walk = [&](const json& j) {
    if (!j.is_object()) return;
    if (j.contains("within_tolerance")) all = all && j["within_tolerance"].get<bool>();
    for (auto& [k, v] : j.items()) walk(v);
  };
  walk(out);
  out["all_within_tolerance"] = all;
  return out;
}

// ---------------------------------------------------------------- step

json mode_step(const Args& a) {
  const auto dev = core::resolve_device(a.get("device", "auto"));
  const int64_t batch = a.num("batch", 64), size = a.num("size", 224), steps = a.num("steps", 60),
                warmup = a.num("warmup", 15), classes = a.num("classes", 31);
  const std::string amp = a.get("amp", "bf16"), backbone = a.get("backbone", "resnet50");
  const bool cl = a.num("channels_last", 1) != 0 && dev.is_cuda();
  core::check_usage(amp == "none" || amp == "bf16" || amp == "fp16", "option --amp: '", amp, "' (none, bf16, fp16)");
  core::check_usage(steps > 0 && warmup >= 0 && batch > 0, "--steps, --batch must be > 0, --warmup >= 0");
  if (dev.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);  // fixed shapes
  json out;
  out["mode"] = "step";
  out["device"] = dev.str();
  out["backbone"] = backbone;
  out["batch_source"] = batch;
  out["batch_target"] = batch;
  out["size"] = size;
  out["amp"] = dev.is_cuda() ? amp : std::string("none (autocast is CUDA-only)");
  out["channels_last"] = cl;
  out["cudnn_benchmark"] = dev.is_cuda();
  out["method"] = "dann (hidden 1024, depth 2, BN)";
  out["head"] = "bottleneck 256";
  out["optimizer"] = "sgd momentum 0.9 weight_decay 5e-4 lr 0.01";

  torch::manual_seed(0);
  models::BackboneOptions bo;
  bo.name = backbone;
  models::HeadOptions ho;
  ho.type = "bottleneck";
  models::Classifier model(models::make_backbone(bo), ho, classes);
  model->to(dev);
  losses::MethodOptions mo;
  mo.spec = "dann";
  auto method = losses::make_method(mo, model->feature_dim(), classes);
  method->to(dev);
  if (cl) {
    torch::NoGradGuard ng;
    for (auto& p : model->parameters())
      if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
  }
  std::vector<torch::Tensor> params;
  for (auto& p : model->parameters())
    if (p.requires_grad()) params.push_back(p);
  for (auto& p : method->parameters()) params.push_back(p);
  torch::optim::SGD opt(params, torch::optim::SGDOptions(0.01).momentum(0.9).weight_decay(5e-4));
  model->train(true);
  method->train(true);

  auto x = torch::randn({2 * batch, 3, size, size}, torch::TensorOptions().device(dev));
  if (cl) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  auto ys = torch::randint(0, classes, {batch}, torch::TensorOptions().dtype(torch::kLong).device(dev));
  torch::Tensor last_loss;
  auto step = [&](int64_t i, int64_t total) {
    losses::StepOutputs o;
    o.labels_s = ys;
    o.progress = static_cast<double>(i) / static_cast<double>(total);
    o.step = i;
    {
      train::AutocastGuard ag(dev, amp);
      auto r = model->forward(x);
      o.f_s = r.features.narrow(0, 0, batch);
      o.f_t = r.features.narrow(0, batch, batch);
      o.logits_s = r.logits.narrow(0, 0, batch);
      o.logits_t = r.logits.narrow(0, batch, batch);
    }
    if (amp != "none") {
      o.f_s = o.f_s.to(torch::kFloat);
      o.f_t = o.f_t.to(torch::kFloat);
      o.logits_s = o.logits_s.to(torch::kFloat);
      o.logits_t = o.logits_t.to(torch::kFloat);
    }
    auto ce = torch::nn::functional::cross_entropy(o.logits_s, ys);
    auto terms = method->loss(o);
    auto loss = ce + terms.total;
    opt.zero_grad();
    loss.backward();
    opt.step();
    last_loss = loss.detach();
  };
  const int64_t total = warmup + steps;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < warmup; ++i) step(i, total);
  sync(dev);
  out["warmup_seconds"] = seconds_since(t0);
#if SHIFTLAB_WITH_CUDA
  if (dev.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(dev.index());
#endif
  auto t1 = std::chrono::steady_clock::now();
  for (int64_t i = warmup; i < total; ++i) step(i, total);
  sync(dev);
  const double el = seconds_since(t1);
  out["steps"] = steps;
  out["warmup"] = warmup;
  out["seconds"] = el;
  out["step_ms"] = 1000.0 * el / static_cast<double>(steps);
  out["images_per_s"] = static_cast<double>(2 * batch * steps) / el;
  out["final_loss"] = last_loss.item<double>();
  out["loss_finite"] = std::isfinite(out["final_loss"].get<double>());
#if SHIFTLAB_WITH_CUDA
  if (dev.is_cuda()) {
    auto st = c10::cuda::CUDACachingAllocator::getDeviceStats(dev.index());
    out["peak_allocated_mib"] = static_cast<double>(st.allocated_bytes[0].peak) / (1 << 20);
    out["peak_reserved_mib"] = static_cast<double>(st.reserved_bytes[0].peak) / (1 << 20);
  }
#endif
  if (!out.contains("peak_allocated_mib")) out["peak_allocated_mib"] = nullptr;
  return out;
}

// ---------------------------------------------------------------- dist

int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw core::Error("socket() failed");
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    ::close(fd);
    throw core::Error("cannot find a free TCP port");
  }
  ::close(fd);
  return ntohs(sa.sin_port);
}

// Prints its JSON itself, before the process groups shut down, so a hanging shutdown (then ended by
// the caller's time limit) still leaves the figures; the shutdown time goes to stderr.
json mode_dist(const Args& a) {
  const auto dev = core::resolve_device(a.get("device", "auto"));
  train::DistOptions o;
  o.backend = a.get("backend", dev.is_cuda() ? "nccl" : "gloo");
  o.timeout_s = 60;
  o.bucket_mb = 0.01;  // several buckets for the small model below
  train::DistEnv env;
  env.source = "gpu_check";
  env.master_port = free_tcp_port();
  json out;
  out["mode"] = "dist";
  out["device"] = dev.str();
  out["backend"] = o.backend;
  out["compiled_backends"] = train::dist_backends_compiled();
  auto t0 = std::chrono::steady_clock::now();
  auto comm = train::Communicator::connect(env, o, dev);
  out["init_seconds"] = seconds_since(t0);
  out["world_size"] = comm->world_size();
  auto opts = torch::TensorOptions().device(dev);
  // all-reduce (sum over one rank = the tensor itself)
  auto t = torch::arange(1000, opts.dtype(torch::kFloat));
  auto want = t.clone();
  comm->allreduce_sum(t, "gpu_check all-reduce");
  out["allreduce_ok"] = torch::equal(t.cpu(), want.cpu());
  auto t_cpu = torch::arange(10, torch::kDouble);  // a CPU tensor through the device group
  comm->allreduce_sum(t_cpu, "gpu_check all-reduce of a CPU tensor");
  out["allreduce_cpu_tensor_ok"] = torch::equal(t_cpu, torch::arange(10, torch::kDouble));
  std::vector<torch::Tensor> bc{torch::ones({3, 4}, opts), torch::full({5}, 7, opts.dtype(torch::kLong))};
  comm->broadcast(bc, "gpu_check broadcast");
  out["broadcast_ok"] = bc[0].sum().item<double>() == 12 && bc[1].sum().item<int64_t>() == 35;
  auto g = comm->allgather(torch::full({2}, 3.0, opts), "gpu_check all-gather");
  out["allgather_ok"] = g.sizes() == torch::IntArrayRef({1, 2}) && g.sum().item<double>() == 6;
  comm->barrier("gpu_check barrier");
  // gradient buckets on a small MLP: world 1, so the averaged gradients equal the local ones
  torch::manual_seed(0);
  torch::nn::Sequential mlp(torch::nn::Linear(64, 128), torch::nn::ReLU(), torch::nn::Linear(128, 10));
  mlp->to(dev);
  std::vector<torch::Tensor> params = mlp->parameters();
  auto xin = torch::randn({32, 64}, opts);
  mlp->forward(xin).pow(2).sum().backward();
  std::vector<torch::Tensor> local;
  for (auto& p : params) local.push_back(p.grad().clone()), p.mutable_grad() = torch::Tensor();
  {
    train::GradReducer red(*comm, params, o.bucket_mb, /*overlap=*/true);
    out["buckets"] = red.bucket_count();
    mlp->forward(xin).pow(2).sum().backward();
    red.finish("gpu_check gradient all-reduce");
  }
  bool same = true;
  for (size_t i = 0; i < params.size(); ++i) same = same && torch::allclose(params[i].grad(), local[i], 1e-6, 1e-6);
  out["grad_reducer_ok"] = same;
  sync(dev);
  out["seconds"] = seconds_since(t0);
  out["all_ok"] = out["allreduce_ok"].get<bool>() && out["allreduce_cpu_tensor_ok"].get<bool>() &&
                  out["broadcast_ok"].get<bool>() && out["allgather_ok"].get<bool>() && same;
  out["cuda_available"] = core::cuda_available();
  std::cout << out.dump() << std::endl;
  auto t2 = std::chrono::steady_clock::now();
  comm.reset();
  std::cerr << "gpu_check: process groups shut down in " << seconds_since(t2) << " s\n";
  return json();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: gpu_check agree|step|dist [--key=value ...] (see bench/gpu_check.cpp)\n";
    return 2;
  }
  const std::string mode = argv[1];
  Args a;
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    auto eq = s.find('=');
    if (s.rfind("--", 0) != 0 || eq == std::string::npos) {
      std::cerr << "gpu_check: bad argument '" << s << "' (expected --key=value)\n";
      return 2;
    }
    a.kv[s.substr(2, eq - 2)] = s.substr(eq + 1);
  }
  try {
    if (a.num("threads", 0) > 0) torch::set_num_threads(static_cast<int>(a.num("threads", 0)));
    json out;
    if (mode == "agree") out = mode_agree(a);
    else if (mode == "step") out = mode_step(a);
    else if (mode == "dist") out = mode_dist(a);
    else throw core::UsageError("unknown mode '" + mode + "' (agree, step, dist)");
    if (!out.is_null()) {  // (dist printed its own)
      out["cuda_available"] = core::cuda_available();
      std::cout << out.dump() << std::endl;
    }
    return 0;
  } catch (const core::UsageError& e) {
    std::cerr << "gpu_check: error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "gpu_check: error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "gpu_check: error: " << e.what() << "\n";
    return 1;
  }
}
