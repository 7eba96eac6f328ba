#include "models/backbones.h"

#include "core/format.h"

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <mutex>

#include "models/vit.h"

namespace shiftlab::models {

core::Registry<BackboneFactory>& backbone_registry() {
  static core::Registry<BackboneFactory> r("backbones", "feature extractors (torchvision / timm / TLlib names)");
  return r;
}

double resolve_drop_path(const BackboneOptions& o, double family_default) {
  core::check_usage(o.drop_path < 1, "model.drop_path must be < 1 (got ", o.drop_path, ")");
  return o.drop_path < 0 ? family_default : o.drop_path;
}

// ---------------------------------------------------------------- BackboneInfo

static std::map<std::string, BackboneInfo>& infos() {
  static std::map<std::string, BackboneInfo> m;
  return m;
}

bool add_backbone_info(const std::string& name, const BackboneInfo& info) {
  if (!infos().emplace(name, info).second) throw core::Error(core::str("duplicate backbone info for '", name, "'"));
  return true;
}

const BackboneInfo* backbone_info(const std::string& name) {
  auto it = infos().find(name);
  return it == infos().end() ? nullptr : &it->second;
}

static std::string num_list(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + core::str(v[i]);
  return s + "]";
}

static std::string normalize_spec(const BackboneInfo& b) {
  const BackboneInfo imagenet;
  if (b.mean == imagenet.mean && b.std == imagenet.std) return "normalize(imagenet)";
  return "normalize(mean=" + num_list(b.mean) + ", std=" + num_list(b.std) + ")";
}

std::string BackboneInfo::eval_transform() const {
  return core::str("resize(", resize_size, "), center_crop(", eval_crop(), "), ", normalize_spec(*this));
}

std::string BackboneInfo::train_transform() const {
  return core::str("random_resized_crop(", eval_crop(), "), hflip, ", normalize_spec(*this));
}

std::string BackboneInfo::summary() const {
  std::string s = core::str(image_size, " px");
  if (crop_size > 0 && crop_size != image_size) s += core::str(" (weights evaluated at ", crop_size, ")");
  s += core::str("; eval: resize ", resize_size, " ", interpolation, ", crop ", eval_crop(), "; ",
                 normalize_spec(*this).substr(10));
  s.pop_back();  // "normalize(imagenet)" -> "imagenet"
  if (!weights.empty()) s += "; " + weights;
  return s;
}

BackbonePtr make_backbone(const BackboneOptions& o) {
  core::check_usage(o.in_channels >= 1, "model.in_channels must be >= 1 (got ", o.in_channels, ")");
  return backbone_registry().get(o.name)(o);
}

// ---------------------------------------------------------------- BatchNorm sync hook

namespace {
std::mutex g_bn_mu;
std::shared_ptr<const BatchNormSync> g_bn_sync;  // replaced, never mutated

std::shared_ptr<const BatchNormSync> bn_sync() {
  std::lock_guard<std::mutex> lk(g_bn_mu);
  return g_bn_sync;
}

template <typename BN>
torch::Tensor batch_norm_impl(BN& bn, const torch::Tensor& x) {
  if (!bn.is_training() || !bn.options.track_running_stats() || !torch::GradMode::is_enabled()) return bn.forward(x);
  auto hook = bn_sync();
  if (!hook) return bn.forward(x);
  // the bookkeeping of BatchNormImplBase::forward, then the synchronised normalisation
  BatchNormCall c;
  c.momentum = bn.options.momentum().value_or(0.0);
  if (bn.num_batches_tracked.defined()) {
    torch::NoGradGuard ng;
    bn.num_batches_tracked += 1;
    if (!bn.options.momentum()) c.momentum = 1.0 / bn.num_batches_tracked.template item<double>();
  }
  c.x = x;
  c.weight = bn.weight;
  c.bias = bn.bias;
  c.running_mean = bn.running_mean;
  c.running_var = bn.running_var;
  c.eps = bn.options.eps();
  return (*hook)(c);
}
}  // namespace

void set_batch_norm_sync(BatchNormSync fn) {
  std::lock_guard<std::mutex> lk(g_bn_mu);
  g_bn_sync = fn ? std::make_shared<const BatchNormSync>(std::move(fn)) : nullptr;
}

bool batch_norm_sync_installed() { return bn_sync() != nullptr; }

torch::Tensor batch_norm(torch::nn::BatchNorm1dImpl& bn, const torch::Tensor& x) { return batch_norm_impl(bn, x); }
torch::Tensor batch_norm(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) { return batch_norm_impl(bn, x); }

torch::Tensor run_sequential(torch::nn::SequentialImpl& seq, torch::Tensor x) {
  for (auto& m : seq) {
    auto* p = m.ptr().get();
    if (auto* b1 = dynamic_cast<torch::nn::BatchNorm1dImpl*>(p)) x = batch_norm(*b1, x);
    else if (auto* b2 = dynamic_cast<torch::nn::BatchNorm2dImpl*>(p)) x = batch_norm(*b2, x);
    else x = m.forward(x);
  }
  return x;
}

torch::Tensor pool_tap(const BackboneImpl& bb, const torch::Tensor& t) {
  if (t.dim() == 4) return t.mean({2, 3});
  if (t.dim() == 2) return t;
  if (t.dim() == 3) {
    if (auto* vit = dynamic_cast<const VisionTransformerImpl*>(&bb)) return vit->pool_tokens(t);
    return t.mean(1);
  }
  throw core::Error(core::str("pool_tap: cannot pool a tensor of ", t.dim(), " dimensions"));
}

torch::Tensor call_child(torch::nn::Module& parent, const std::string& path, torch::Tensor x) {
  torch::nn::Module* m = &parent;
  std::shared_ptr<torch::nn::Module> holder;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string seg = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    auto kids = m->named_children();
    auto* found = kids.find(seg);
    if (!found) throw core::Error(core::str("module '", parent.name(), "' has no submodule '", path, "'"));
    holder = *found;
    m = holder.get();
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (auto* c = dynamic_cast<torch::nn::Conv2dImpl*>(m)) return c->forward(x);
  if (auto* s = dynamic_cast<torch::nn::SequentialImpl*>(m)) return run_sequential(*s, x);
  if (auto* u = dynamic_cast<UnaryModuleImpl*>(m)) return u->forward(x);
  if (auto* l = dynamic_cast<torch::nn::LinearImpl*>(m)) return l->forward(x);
  throw core::Error(core::str("submodule '", path, "' (", m->name(),
                              ") is not a Conv2d, Linear, Sequential or UnaryModuleImpl"));
}

int64_t input_channels_at(const torch::nn::Module& parent, const std::string& path) {
  auto params = parent.named_parameters(true);
  if (auto* w = params.find(path + ".weight")) return w->size(1);
  for (auto& kv : params)
    if (kv.key().compare(0, path.size() + 1, path + ".") == 0 && kv.value().dim() == 4) return kv.value().size(1);
  throw core::Error(core::str("no 4-d weight under '", path, "' to read the input channels from"));
}

void BackboneImpl::upgrade_state_dict(std::map<std::string, torch::Tensor>& weights) const {
  const std::string tail = "num_batches_tracked";
  for (auto& kv : named_buffers(true)) {
    const auto& name = kv.key();
    if (name.size() < tail.size() || name.compare(name.size() - tail.size(), tail.size(), tail) != 0) continue;
    const std::string prefix = name.substr(0, name.size() - tail.size());
    if (!weights.count(name) && weights.count(prefix + "running_mean")) weights[name] = torch::zeros({}, torch::kLong);
  }
}

std::set<std::string> check_features_request(const BackboneImpl& bb, const std::string& family, const torch::Tensor& x,
                                             const std::vector<std::string>& taps) {
  core::check_usage(x.dim() == 4, family, " expects N×C×H×W inputs (got ", shape_str(x), ")");
  const int64_t c = bb.in_channels();
  core::check_usage(x.size(1) == c, family, ": input has ", x.size(1), " channels but ", bb.in_conv_name(), " takes ", c);
  auto names = bb.tap_names();
  std::set<std::string> want(taps.begin(), taps.end());
  for (auto& t : want) {
    if (std::find(names.begin(), names.end(), t) != names.end()) continue;
    std::string known;
    for (auto& n : names) known += (known.empty() ? "" : ", ") + n;
    throw core::UsageError(core::str(family, " has no tap '", t, "' (taps: ", known, ")"));
  }
  return want;
}

bool in_group(const std::string& name, const LayerGroup& g) {
  for (auto& p : g.prefixes)
    if (name.compare(0, p.size(), p) == 0) return true;
  return false;
}

}  // namespace shiftlab::models
