#include "models/efficientnet.h"

#include <torch/nn/init.h>

#include <cmath>

#include "models/adapter_hook.h"

namespace shiftlab::models {

// ---------------------------------------------------------------- building blocks

torch::Tensor activate_(torch::Tensor x, Act a) {
  switch (a) {
    case Act::kReLU:
      return torch::relu_(x);
    case Act::kSiLU:
      return torch::silu_(x);
    case Act::kHardSwish:
      return torch::hardswish_(x);
    case Act::kNone:
      break;
  }
  return x;
}

int64_t make_divisible(double v, int64_t divisor) {
  int64_t r = std::max<int64_t>(divisor, static_cast<int64_t>(v + static_cast<double>(divisor) / 2) / divisor * divisor);
  if (static_cast<double>(r) < 0.9 * v) r += divisor;
  return r;
}

torch::Tensor stochastic_depth(const torch::Tensor& x, double p, bool training) {
  if (!training || p == 0.0) return x;
  const double survival = 1.0 - p;
  std::vector<int64_t> size(static_cast<size_t>(x.dim()), 1);
  size[0] = x.size(0);
  auto noise = torch::empty(size, x.options()).bernoulli_(survival);
  if (survival > 0.0) noise.div_(survival);
  return x * noise;
}

// torchvision's initialisation for EfficientNet / MobileNetV3: kaiming-normal (fan_out) convs, zero biases
static torch::nn::Conv2d init_conv(torch::nn::Conv2d c) {
  torch::nn::init::kaiming_normal_(c->weight, 0, torch::kFanOut, torch::kReLU);
  if (c->bias.defined()) torch::nn::init::zeros_(c->bias);
  return c;
}

ConvBnActImpl::ConvBnActImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, Act act,
                             const BatchNormSpec& bn, int64_t dilation)
    : act_(act) {
  register_module("0", init_conv(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                                       .stride(stride)
                                                       .padding((kernel - 1) / 2 * dilation)
                                                       .dilation(dilation)
                                                       .groups(groups)
                                                       .bias(false))));
  bn_ = register_module("1", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).eps(bn.eps).momentum(bn.momentum)));
}

torch::Tensor ConvBnActImpl::forward(torch::Tensor x) {
  // the conv by name (adapters may wrap it); the activation in place on the fresh BatchNorm output
  return activate_(bn_->forward(call_child(*this, "0", x)), act_);
}

SqueezeExcitationImpl::SqueezeExcitationImpl(int64_t channels, int64_t squeeze, bool hard) : hard_(hard) {
  register_module("fc1", init_conv(torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, squeeze, 1))));
  register_module("fc2", init_conv(torch::nn::Conv2d(torch::nn::Conv2dOptions(squeeze, channels, 1))));
}

torch::Tensor SqueezeExcitationImpl::forward(torch::Tensor x) {
  auto s = call_child(*this, "fc1", torch::adaptive_avg_pool2d(x, {1, 1}));
  s = call_child(*this, "fc2", hard_ ? torch::relu(s) : torch::silu(s));
  return (hard_ ? torch::hardsigmoid(s) : torch::sigmoid(s)) * x;
}

// ---------------------------------------------------------------- MBConv

MBConvImpl::MBConvImpl(int64_t in, int64_t out, int64_t expand_ratio, int64_t kernel, int64_t stride, double drop_path)
    : residual_(stride == 1 && in == out), drop_path_(drop_path) {
  const BatchNormSpec bn;
  const int64_t expanded = make_divisible(static_cast<double>(in * expand_ratio));
  torch::nn::Sequential block;
  if (expanded != in) block->push_back(ConvBnAct(in, expanded, 1, 1, 1, Act::kSiLU, bn));
  block->push_back(ConvBnAct(expanded, expanded, kernel, stride, expanded, Act::kSiLU, bn));
  block->push_back(SqueezeExcitation(expanded, std::max<int64_t>(1, in / 4), false));
  block->push_back(ConvBnAct(expanded, out, 1, 1, 1, Act::kNone, bn));
  block_ = register_module("block", block);
}

torch::Tensor MBConvImpl::forward(torch::Tensor x) {
  auto y = block_->forward(x);
  if (!residual_) return y;
  return stochastic_depth(y, drop_path_, is_training()).add_(x);  // a fresh tensor: add in place, as torchvision
}

// ---------------------------------------------------------------- EfficientNet

namespace {
struct StageConfig {
  int64_t expand, kernel, stride, in, out, layers;
};
// Table 1 of the EfficientNet paper, as torchvision's _efficientnet_conf("efficientnet_b*")
const StageConfig kStages[7] = {{1, 3, 1, 32, 16, 1},  {6, 3, 2, 16, 24, 2},   {6, 5, 2, 24, 40, 2},
                                {6, 3, 2, 40, 80, 3},  {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4},
                                {6, 3, 1, 192, 320, 1}};
}  // namespace

EfficientNetImpl::EfficientNetImpl(const BackboneOptions& o, double width_mult, double depth_mult) {
  const double drop_path = resolve_drop_path(o, 0.2);  // torchvision's stochastic_depth_prob
  const BatchNormSpec bn;
  auto ch = [&](int64_t c) { return make_divisible(static_cast<double>(c) * width_mult); };
  auto depth = [&](int64_t n) { return static_cast<int64_t>(std::ceil(static_cast<double>(n) * depth_mult)); };
  auto features = register_module("features", std::make_shared<torch::nn::Module>());
  stem_ = features->register_module("0", ConvBnAct(o.in_channels, ch(kStages[0].in), 3, 2, 1, Act::kSiLU, bn));
  int64_t total = 0, id = 0;
  for (auto& s : kStages) total += depth(s.layers);
  for (int k = 0; k < 7; ++k) {
    const auto& s = kStages[k];
    torch::nn::Sequential stage;
    for (int64_t i = 0; i < depth(s.layers); ++i, ++id) {
      const double p = drop_path * static_cast<double>(id) / static_cast<double>(total);
      stage->push_back(MBConv(i == 0 ? ch(s.in) : ch(s.out), ch(s.out), s.expand, s.kernel, i == 0 ? s.stride : 1, p));
    }
    stages_.push_back(features->register_module(std::to_string(k + 1), stage));
    stage_channels_.push_back(ch(s.out));
  }
  feature_dim_ = 4 * ch(kStages[6].out);
  last_ = features->register_module("8", ConvBnAct(ch(kStages[6].out), feature_dim_, 1, 1, 1, Act::kSiLU, bn));
}

std::vector<std::string> EfficientNetImpl::tap_names() const {
  std::vector<std::string> t{"stem"};
  for (int k = 1; k <= 7; ++k) t.push_back("stage" + std::to_string(k));
  t.push_back("last_conv");
  t.push_back("pooled");
  return t;
}

std::vector<LayerGroup> EfficientNetImpl::layer_groups() const {
  std::vector<LayerGroup> g{{"stem", {"features.0."}}};
  for (int k = 1; k <= 7; ++k) g.push_back({"stage" + std::to_string(k), {"features." + std::to_string(k) + "."}});
  g.push_back({"last_conv", {"features.8."}});
  return g;
}

std::vector<AdapterSite> EfficientNetImpl::adapter_sites() const {
  std::vector<AdapterSite> v;
  for (size_t k = 0; k < stages_.size(); ++k) v.push_back({"features." + std::to_string(k + 1), stage_channels_[k], true, ""});
  return v;
}

std::vector<std::string> EfficientNetImpl::adapter_blocks() const {
  std::vector<std::string> v;
  for (size_t k = 0; k < stages_.size(); ++k) {
    const std::string stage = "features." + std::to_string(k + 1);
    v.push_back(stage);
    for (size_t i = 0; i < stages_[k]->size(); ++i) v.push_back(stage + "." + std::to_string(i));
  }
  return v;
}

std::map<std::string, torch::Tensor> EfficientNetImpl::forward_features(torch::Tensor x,
                                                                        const std::vector<std::string>& taps) {
  auto want = check_features_request(*this, "efficientnet", x, taps);
  std::map<std::string, torch::Tensor> out;
  x = stem_->forward(x);
  if (want.count("stem")) out["stem"] = x;
  for (size_t k = 0; k < stages_.size() && out.size() < want.size(); ++k) {
    x = run_post_adapter(*stages_[k], stages_[k]->forward(x));  // "features.K.adapter", if any
    std::string n = "stage" + std::to_string(k + 1);
    if (want.count(n)) out[n] = x;
  }
  if (want.count("last_conv") || want.count("pooled")) {
    x = last_->forward(x);
    if (want.count("last_conv")) out["last_conv"] = x;
    if (want.count("pooled")) out["pooled"] = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  }
  return out;
}

torch::Tensor EfficientNetImpl::forward(torch::Tensor x) { return forward_features(x, {"pooled"})["pooled"]; }

template <int W10, int D10>
static BackbonePtr make_efficientnet(const BackboneOptions& o) {
  return std::make_shared<EfficientNetImpl>(o, W10 / 10.0, D10 / 10.0);
}

// native sizes: the paper's; eval transforms: torchvision's DEFAULT weights (B2's were evaluated at 288 px)
SHIFTLAB_REGISTER(backbone_registry(), "efficientnet_b0", "EfficientNet-B0 (torchvision names), 1280-d, 224 px",
                  (make_efficientnet<10, 10>));
SHIFTLAB_BACKBONE_INFO("efficientnet_b0", {224, 256, 0, "bicubic", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                           "EfficientNet_B0_Weights.IMAGENET1K_V1"});
SHIFTLAB_REGISTER(backbone_registry(), "efficientnet_b1", "EfficientNet-B1 (torchvision names), 1280-d, 240 px",
                  (make_efficientnet<10, 11>));
SHIFTLAB_BACKBONE_INFO("efficientnet_b1", {240, 255, 0, "bilinear", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                           "EfficientNet_B1_Weights.IMAGENET1K_V2"});
SHIFTLAB_REGISTER(backbone_registry(), "efficientnet_b2", "EfficientNet-B2 (torchvision names), 1408-d, 260 px",
                  (make_efficientnet<11, 12>));
SHIFTLAB_BACKBONE_INFO("efficientnet_b2", {260, 288, 288, "bicubic", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                           "EfficientNet_B2_Weights.IMAGENET1K_V1"});
SHIFTLAB_REGISTER(backbone_registry(), "efficientnet_b3", "EfficientNet-B3 (torchvision names), 1536-d, 300 px",
                  (make_efficientnet<12, 14>));
SHIFTLAB_BACKBONE_INFO("efficientnet_b3", {300, 320, 0, "bicubic", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                           "EfficientNet_B3_Weights.IMAGENET1K_V1"});
SHIFTLAB_REGISTER(backbone_registry(), "efficientnet_b4", "EfficientNet-B4 (torchvision names), 1792-d, 380 px",
                  (make_efficientnet<14, 18>));
SHIFTLAB_BACKBONE_INFO("efficientnet_b4", {380, 384, 0, "bicubic", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                           "EfficientNet_B4_Weights.IMAGENET1K_V1"});

}  // namespace shiftlab::models
