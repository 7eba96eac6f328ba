#include "models/convnext.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <set>

#include "models/adapter_hook.h"

namespace shiftlab::models {

LayerNorm2dImpl::LayerNorm2dImpl(int64_t channels, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
}

torch::Tensor LayerNorm2dImpl::forward(torch::Tensor x) {
  x = x.permute({0, 2, 3, 1});
  x = torch::layer_norm(x, {weight.size(0)}, weight, bias, eps_);
  return x.permute({0, 3, 1, 2});
}

// torchvision initialises convs and linears with trunc_normal(std 0.02), biases 0
template <typename M>
static M trunc_init(M m) {
  torch::NoGradGuard ng;
  m->weight.normal_(0, 0.02).clamp_(-0.04, 0.04);
  if (m->bias.defined()) m->bias.zero_();
  return m;
}

CNBlockImpl::CNBlockImpl(int64_t dim, double drop_path) : drop_path_(drop_path) {
  layer_scale_ = register_parameter("layer_scale", torch::full({dim, 1, 1}, 1e-6));
  block_ = register_module("block", std::make_shared<torch::nn::Module>());
  block_->register_module("0", trunc_init(torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, dim, 7).padding(3).groups(dim))));
  norm_ = block_->register_module("2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6)));
  block_->register_module("3", trunc_init(torch::nn::Linear(dim, 4 * dim)));
  block_->register_module("5", trunc_init(torch::nn::Linear(4 * dim, dim)));
}

torch::Tensor CNBlockImpl::forward(torch::Tensor x) {
  auto y = norm_->forward(call_child(*block_, "0", x).permute({0, 2, 3, 1}));
  y = call_child(*block_, "5", torch::gelu(call_child(*block_, "3", y)));
  y = layer_scale_ * y.permute({0, 3, 1, 2});
  if (is_training() && drop_path_ > 0) {
    double keep = 1.0 - drop_path_;
    y = y * (torch::empty({y.size(0), 1, 1, 1}, y.options()).bernoulli_(keep) / keep);
  }
  return y + x;
}

ConvNeXtImpl::ConvNeXtImpl(const BackboneOptions& o, std::vector<int64_t> depths, std::vector<int64_t> dims)
    : dims_(dims) {
  const double drop_path = resolve_drop_path(o, 0.1);  // torchvision's convnext_tiny default
  features_ = register_module("features", std::make_shared<torch::nn::Module>());
  stem_norm_ = LayerNorm2d(dims[0]);
  features_->register_module(
      "0", torch::nn::Sequential(trunc_init(torch::nn::Conv2d(torch::nn::Conv2dOptions(o.in_channels, dims[0], 4).stride(4))),
                                 stem_norm_));
  int64_t total = 0, id = 0;
  for (auto d : depths) total += d;
  for (size_t s = 0; s < depths.size(); ++s) {
    if (s > 0)
      features_->register_module(
          std::to_string(2 * s),
          torch::nn::Sequential(LayerNorm2d(dims[s - 1]),
                                trunc_init(torch::nn::Conv2d(torch::nn::Conv2dOptions(dims[s - 1], dims[s], 2).stride(2)))));
    torch::nn::Sequential stage;
    for (int64_t b = 0; b < depths[s]; ++b, ++id)
      stage->push_back(CNBlock(dims[s], drop_path * static_cast<double>(id) / std::max<double>(1.0, total - 1.0)));
    stages_.push_back(features_->register_module(std::to_string(2 * s + 1), stage));
  }
  auto cls = register_module("classifier", std::make_shared<torch::nn::Module>());
  norm_ = cls->register_module("0", LayerNorm2d(dims.back()));
}

std::vector<LayerGroup> ConvNeXtImpl::layer_groups() const {
  return {{"stem", {"features.0."}},
          {"stage1", {"features.1."}},
          {"stage2", {"features.2.", "features.3."}},
          {"stage3", {"features.4.", "features.5."}},
          {"stage4", {"features.6.", "features.7."}},
          {"norm", {"classifier.0."}}};
}

std::vector<AdapterSite> ConvNeXtImpl::adapter_sites() const {
  std::vector<AdapterSite> v;
  for (size_t s = 0; s < dims_.size(); ++s) v.push_back({"features." + std::to_string(2 * s + 1), dims_[s], true, ""});
  return v;
}

std::map<std::string, torch::Tensor> ConvNeXtImpl::forward_features(torch::Tensor x,
                                                                    const std::vector<std::string>& taps) {
  core::check_usage(x.dim() == 4, "convnext expects N×C×H×W inputs (got ", shape_str(x), ")");
  core::check_usage(x.size(1) == in_channels(), "convnext: input has ", x.size(1), " channels but features.0.0 takes ",
                    in_channels());
  auto names = tap_names();
  std::set<std::string> want(taps.begin(), taps.end());
  for (auto& t : want)
    core::check_usage(std::find(names.begin(), names.end(), t) != names.end(), "convnext has no tap '", t,
                      "' (taps: stem, stage1..stage4, pooled)");
  std::map<std::string, torch::Tensor> out;
  // the stem: the input conv by name (an adapter may replace it), then its LayerNorm2d
  x = stem_norm_->forward(call_child(*features_, "0.0", x));
  if (want.count("stem")) out["stem"] = x;
  for (size_t s = 0; s < dims_.size() && out.size() < want.size(); ++s) {
    if (s > 0) x = call_child(*features_, std::to_string(2 * s), x);
    x = call_child(*features_, std::to_string(2 * s + 1), x);
    x = run_post_adapter(*stages_[s], x);  // "features.K.adapter", if any
    std::string n = "stage" + std::to_string(s + 1);
    if (want.count(n)) out[n] = x;
  }
  if (want.count("pooled")) out["pooled"] = norm_->forward(torch::adaptive_avg_pool2d(x, {1, 1})).flatten(1);
  return out;
}

torch::Tensor ConvNeXtImpl::forward(torch::Tensor x) { return forward_features(x, {"pooled"})["pooled"]; }

static BackbonePtr make_convnext_tiny(const BackboneOptions& o) {
  return std::make_shared<ConvNeXtImpl>(o, std::vector<int64_t>{3, 3, 9, 3}, std::vector<int64_t>{96, 192, 384, 768});
}

SHIFTLAB_REGISTER(backbone_registry(), "convnext_tiny", "ConvNeXt-Tiny (torchvision names), 768-d", make_convnext_tiny);
SHIFTLAB_BACKBONE_INFO("convnext_tiny", {224, 236, 0, "bilinear", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                         "ConvNeXt_Tiny_Weights.IMAGENET1K_V1"});

}  // namespace shiftlab::models
