#include "adapters/lora.h"

#include <torch/nn/functional/conv.h>
#include <torch/nn/init.h>

#include <cmath>

#include "models/dropout.h"
#include "models/vit.h"

namespace shiftlab::adapters {

namespace F = torch::nn::functional;
using core::str;

static torch::Tensor lora_dropout(const torch::Tensor& x, double p, bool training) {
  return p > 0 ? models::dropout(x, p, training) : x;
}

// ---------------------------------------------------------------- Linear

LoraLinearImpl::LoraLinearImpl(std::shared_ptr<torch::nn::LinearImpl> base, const LoraOptions& o)
    : base_(std::move(base)) {
  weight_ = register_parameter("weight", base_->weight, base_->weight.requires_grad());
  if (base_->bias.defined()) bias_ = register_parameter("bias", base_->bias, base_->bias.requires_grad());
  init(o);
}

LoraLinearImpl::LoraLinearImpl(torch::Tensor weight, torch::Tensor bias, const LoraOptions& o)
    : weight_(std::move(weight)), bias_(std::move(bias)) {
  init(o);
}

void LoraLinearImpl::init(const LoraOptions& o) {
  core::check(weight_.dim() == 2, "lora: expected a 2-d weight, got ", models::shape_str(weight_));
  const int64_t out = weight_.size(0), in = weight_.size(1);
  core::check_usage(o.r >= 1, "lora: r must be >= 1");
  scale_ = o.alpha / static_cast<double>(o.r);
  dropout_ = o.dropout;
  auto opts = weight_.options().requires_grad(false);
  lora_A = register_parameter("lora_A", torch::empty({o.r, in}, opts));
  lora_B = register_parameter("lora_B", torch::zeros({out, o.r}, opts));
  torch::NoGradGuard ng;
  torch::nn::init::kaiming_uniform_(lora_A, std::sqrt(5.0));
}

torch::Tensor LoraLinearImpl::forward(torch::Tensor x) {
  auto y = base_ ? base_->forward(x) : torch::linear(x, weight_, bias_);
  auto h = torch::linear(torch::linear(lora_dropout(x, dropout_, is_training()), lora_A), lora_B);
  return y + h * scale_;
}

std::vector<std::string> LoraLinearImpl::base_parameter_names() const {
  if (!base_) return {};
  return bias_.defined() ? std::vector<std::string>{"weight", "bias"} : std::vector<std::string>{"weight"};
}

void LoraLinearImpl::merge() {
  torch::NoGradGuard ng;
  weight_.add_(torch::mm(lora_B, lora_A), scale_);
  lora_B.zero_();
}

// ---------------------------------------------------------------- Conv2d

LoraConv2dImpl::LoraConv2dImpl(std::shared_ptr<torch::nn::Conv2dImpl> base, const LoraOptions& o)
    : base_(std::move(base)) {
  const auto& co = base_->options;
  core::check_usage(co.groups() == 1, "lora: grouped convolutions are not supported (groups ", co.groups(), ")");
  core::check_usage(torch::enumtype::get_enum_name(co.padding_mode()) == "kZeros",
                    "lora: only zero-padded convolutions are supported");
  register_parameter("weight", base_->weight, base_->weight.requires_grad());
  if (base_->bias.defined()) register_parameter("bias", base_->bias, base_->bias.requires_grad());
  core::check_usage(o.r >= 1, "lora: r must be >= 1");
  scale_ = o.alpha / static_cast<double>(o.r);
  dropout_ = o.dropout;
  const auto& w = base_->weight;  // out × in × kh × kw
  auto opts = w.options().requires_grad(false);
  lora_A = register_parameter("lora_A", torch::empty({o.r, w.size(1), w.size(2), w.size(3)}, opts));
  lora_B = register_parameter("lora_B", torch::zeros({w.size(0), o.r}, opts));
  torch::NoGradGuard ng;
  torch::nn::init::kaiming_uniform_(lora_A, std::sqrt(5.0));
}

torch::Tensor LoraConv2dImpl::forward(torch::Tensor x) {
  auto y = base_->forward(x);
  const auto& co = base_->options;
  auto h = F::conv2d(lora_dropout(x, dropout_, is_training()), lora_A,
                     F::Conv2dFuncOptions().stride(co.stride()).padding(co.padding()).dilation(co.dilation()));
  h = F::conv2d(h, lora_B.view({lora_B.size(0), lora_B.size(1), 1, 1}));
  return y + h * scale_;
}

std::vector<std::string> LoraConv2dImpl::base_parameter_names() const {
  return base_->bias.defined() ? std::vector<std::string>{"weight", "bias"} : std::vector<std::string>{"weight"};
}

void LoraConv2dImpl::merge() {
  torch::NoGradGuard ng;
  auto& w = base_->weight;
  w.add_(torch::mm(lora_B, lora_A.flatten(1)).view_as(w), scale_);
  lora_B.zero_();
}

// ---------------------------------------------------------------- spec, apply, merge

LoraOptions lora_options_from(const AdapterSpec& spec) {
  LoraOptions o;
  o.r = spec.get_int("r", 8, 1);
  o.alpha = spec.get_float("alpha", static_cast<double>(o.r), 0, 1e6);
  o.dropout = spec.get_float("dropout", 0, 0, 0.99);
  return o;
}

// torchvision ViT attention (packed in_proj_weight parameter): candidate "<attention>.in_proj"
static bool is_packed_attention(const torch::nn::Module& m) {
  return dynamic_cast<const models::ViTAttentionImpl*>(&m) && m.named_parameters(false).find("in_proj_weight");
}

static AdapterResult apply_lora(models::BackboneImpl& bb, const AdapterSpec& spec) {
  core::check_usage(bb.supports_adapters(),
                    "model.adapters: ", spec.str(), ": LoRA needs a backbone whose forward honours inserted modules "
                    "(ResNet, ViT, EfficientNet, MobileNetV3, DenseNet); this backbone is a ",
                    bb.name());
  const auto o = lora_options_from(spec);
  std::vector<AdapterTarget> cands;
  for (auto& t : plain_modules(bb)) {
    auto* conv = dynamic_cast<torch::nn::Conv2dImpl*>(t.module.get());
    if (dynamic_cast<torch::nn::LinearImpl*>(t.module.get()) || (conv && conv->options.groups() == 1))
      cands.push_back(t);  // grouped (depthwise) convolutions are not candidates
    else if (is_packed_attention(*t.module) && !models::has_child(*t.module, "in_proj"))
      cands.push_back({t.name + ".in_proj", t.module});
  }
  AdapterResult r;
  for (auto& t : resolve_targets(spec, cands)) {
    std::shared_ptr<torch::nn::Module> m;
    if (auto lin = std::dynamic_pointer_cast<torch::nn::LinearImpl>(t.module)) {
      m = std::make_shared<LoraLinearImpl>(lin, o);
      replace_module_at(bb, t.name, m);
    } else if (auto conv = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(t.module)) {
      try {
        m = std::make_shared<LoraConv2dImpl>(conv, o);
      } catch (const core::UsageError& e) {
        throw core::UsageError(str("model.adapters: ", spec.str(), ": '", t.name, "': ", e.what()));
      }
      replace_module_at(bb, t.name, m);
    } else {  // packed torchvision in_proj
      auto params = t.module->named_parameters(false);
      auto* b = params.find("in_proj_bias");
      m = t.module->register_module("in_proj", std::make_shared<LoraLinearImpl>(params["in_proj_weight"],
                                                                                b ? *b : torch::Tensor(), o));
    }
    r.modules.push_back(t.name);
    r.params += adapter_numel(*m);
  }
  return r;
}

int64_t merge_lora(torch::nn::Module& root) {
  std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> found;
  for (auto& kv : root.named_modules("", /*include_self=*/false))
    if (dynamic_cast<LoraLinearImpl*>(kv.value().get()) || dynamic_cast<LoraConv2dImpl*>(kv.value().get()))
      found.emplace_back(kv.key(), kv.value());
  for (auto& [name, m] : found) {
    if (auto* l = dynamic_cast<LoraLinearImpl*>(m.get())) {
      l->merge();
      if (l->base()) {
        replace_module_at(root, name, l->base());
      } else {
        auto dot = name.rfind('.');
        auto parent = dot == std::string::npos ? nullptr : module_at(root, name.substr(0, dot));
        (parent ? *parent : root).unregister_module(dot == std::string::npos ? name : name.substr(dot + 1));
      }
    } else {
      auto* c = dynamic_cast<LoraConv2dImpl*>(m.get());
      c->merge();
      replace_module_at(root, name, c->base());
    }
  }
  return static_cast<int64_t>(found.size());
}

SHIFTLAB_REGISTER(adapter_registry(), "lora",
                  "LoRA (Hu et al. 2021): W + (alpha/r)·B·A on Linear / Conv2d modules; r=8, alpha=r, dropout=0",
                  (AdapterKind{{"r", "alpha", "dropout"}, apply_lora}));

}  // namespace shiftlab::adapters
