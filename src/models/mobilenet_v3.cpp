#include "models/mobilenet_v3.h"

#include <torch/nn/init.h>

#include "models/adapter_hook.h"

namespace shiftlab::models {

static const BatchNormSpec kBn{1e-3, 0.01};  // torchvision: partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)

InvertedResidualImpl::InvertedResidualImpl(int64_t in, int64_t kernel, int64_t expanded, int64_t out, bool se, Act act,
                                           int64_t stride)
    : residual_(stride == 1 && in == out) {
  torch::nn::Sequential block;
  if (expanded != in) block->push_back(ConvBnAct(in, expanded, 1, 1, 1, act, kBn));
  block->push_back(ConvBnAct(expanded, expanded, kernel, stride, expanded, act, kBn));
  if (se) block->push_back(SqueezeExcitation(expanded, make_divisible(static_cast<double>(expanded / 4)), true));
  block->push_back(ConvBnAct(expanded, out, 1, 1, 1, Act::kNone, kBn));
  block_ = register_module("block", block);
}

torch::Tensor InvertedResidualImpl::forward(torch::Tensor x) {
  auto y = block_->forward(x);
  return residual_ ? y.add_(x) : y;  // y is fresh: add in place, as torchvision
}

namespace {
struct BlockConfig {
  int64_t in, kernel, expanded, out;
  bool se;
  bool hard_swish;
  int64_t stride;
};
// torchvision's _mobilenet_v3_conf (width 1.0, no reduced tail, no dilation)
const std::vector<BlockConfig> kLarge = {
    {16, 3, 16, 16, false, false, 1},   {16, 3, 64, 24, false, false, 2},  {24, 3, 72, 24, false, false, 1},
    {24, 5, 72, 40, true, false, 2},    {40, 5, 120, 40, true, false, 1},  {40, 5, 120, 40, true, false, 1},
    {40, 3, 240, 80, false, true, 2},   {80, 3, 200, 80, false, true, 1},  {80, 3, 184, 80, false, true, 1},
    {80, 3, 184, 80, false, true, 1},   {80, 3, 480, 112, true, true, 1},  {112, 3, 672, 112, true, true, 1},
    {112, 5, 672, 160, true, true, 2},  {160, 5, 960, 160, true, true, 1}, {160, 5, 960, 160, true, true, 1}};
const std::vector<BlockConfig> kSmall = {
    {16, 3, 16, 16, true, false, 2},  {16, 3, 72, 24, false, false, 2}, {24, 3, 88, 24, false, false, 1},
    {24, 5, 96, 40, true, true, 2},   {40, 5, 240, 40, true, true, 1},  {40, 5, 240, 40, true, true, 1},
    {40, 5, 120, 48, true, true, 1},  {48, 5, 144, 48, true, true, 1},  {48, 5, 288, 96, true, true, 2},
    {96, 5, 576, 96, true, true, 1},  {96, 5, 576, 96, true, true, 1}};
}  // namespace

MobileNetV3Impl::MobileNetV3Impl(const BackboneOptions& o, bool large) {
  const auto& cfg = large ? kLarge : kSmall;
  auto features = register_module("features", std::make_shared<torch::nn::Module>());
  stem_ = features->register_module("0", ConvBnAct(o.in_channels, cfg[0].in, 3, 2, 1, Act::kHardSwish, kBn));
  stage_start_.push_back(0);
  for (size_t i = 0; i < cfg.size(); ++i) {
    const auto& c = cfg[i];
    if (c.stride == 2) stage_start_.push_back(i + 1);
    block_channels_.push_back(c.out);
    blocks_.push_back(features->register_module(
        std::to_string(i + 1),
        InvertedResidual(c.in, c.kernel, c.expanded, c.out, c.se, c.hard_swish ? Act::kHardSwish : Act::kReLU, c.stride)));
  }
  core::check(stage_start_.size() == 5, "mobilenet_v3: expected 4 stride-2 blocks");
  const int64_t last_in = cfg.back().out, last_out = 6 * last_in;
  stage_start_.push_back(cfg.size() + 1);
  last_ = features->register_module(std::to_string(cfg.size() + 1),
                                    ConvBnAct(last_in, last_out, 1, 1, 1, Act::kHardSwish, kBn));
  feature_dim_ = large ? 1280 : 1024;
  classifier_ = register_module("classifier", std::make_shared<torch::nn::Module>());
  auto fc = classifier_->register_module("0", torch::nn::Linear(last_out, feature_dim_));
  torch::nn::init::normal_(fc->weight, 0, 0.01);  // torchvision's Linear initialisation
  torch::nn::init::zeros_(fc->bias);
}

std::vector<LayerGroup> MobileNetV3Impl::layer_groups() const {
  static const char* names[] = {"stem", "stage1", "stage2", "stage3", "stage4"};
  std::vector<LayerGroup> g;
  for (size_t k = 0; k + 1 < stage_start_.size(); ++k) {
    LayerGroup lg{names[k], {}};
    for (size_t i = stage_start_[k]; i < stage_start_[k + 1]; ++i) lg.prefixes.push_back("features." + std::to_string(i) + ".");
    g.push_back(lg);
  }
  g.push_back({"last_conv", {"features." + std::to_string(stage_start_.back()) + ".", "classifier.0."}});
  return g;
}

std::vector<AdapterSite> MobileNetV3Impl::adapter_sites() const {
  std::vector<AdapterSite> v;
  for (size_t i = 0; i < blocks_.size(); ++i) v.push_back({"features." + std::to_string(i + 1), block_channels_[i], true, ""});
  return v;
}

std::vector<std::string> MobileNetV3Impl::adapter_blocks() const {
  std::vector<std::string> v;
  for (size_t i = 0; i < blocks_.size(); ++i) v.push_back("features." + std::to_string(i + 1));
  return v;
}

std::map<std::string, torch::Tensor> MobileNetV3Impl::forward_features(torch::Tensor x,
                                                                       const std::vector<std::string>& taps) {
  auto want = check_features_request(*this, "mobilenet_v3", x, taps);
  std::map<std::string, torch::Tensor> out;
  // features index i: 0 = stem conv, 1..B = blocks_[i-1]
  // (a block's child "adapter", if any, runs on its output)
  auto run = [&](size_t i, torch::Tensor t) {
    return i == 0 ? stem_->forward(t) : run_post_adapter(*blocks_[i - 1], blocks_[i - 1]->forward(t));
  };
  static const char* names[] = {"stem", "stage1", "stage2", "stage3", "stage4"};
  for (size_t k = 0; k + 1 < stage_start_.size() && out.size() < want.size(); ++k) {
    for (size_t i = stage_start_[k]; i < stage_start_[k + 1]; ++i) x = run(i, x);
    if (want.count(names[k])) out[names[k]] = x;
  }
  if (want.count("last_conv") || want.count("pooled")) {
    x = last_->forward(x);
    if (want.count("last_conv")) out["last_conv"] = x;
    if (want.count("pooled"))
      out["pooled"] = torch::hardswish(call_child(*classifier_, "0", torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1)));
  }
  return out;
}

torch::Tensor MobileNetV3Impl::forward(torch::Tensor x) { return forward_features(x, {"pooled"})["pooled"]; }

static BackbonePtr make_small(const BackboneOptions& o) { return std::make_shared<MobileNetV3Impl>(o, false); }
static BackbonePtr make_large(const BackboneOptions& o) { return std::make_shared<MobileNetV3Impl>(o, true); }

SHIFTLAB_REGISTER(backbone_registry(), "mobilenet_v3_small",
                  "MobileNetV3-Small (torchvision names), 1024-d (classifier.0 + hard-swish), 224 px", make_small);
SHIFTLAB_BACKBONE_INFO("mobilenet_v3_small", {224, 256, 0, "bilinear", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                              "MobileNet_V3_Small_Weights.IMAGENET1K_V1"});
SHIFTLAB_REGISTER(backbone_registry(), "mobilenet_v3_large",
                  "MobileNetV3-Large (torchvision names), 1280-d (classifier.0 + hard-swish), 224 px", make_large);
SHIFTLAB_BACKBONE_INFO("mobilenet_v3_large", {224, 232, 0, "bilinear", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                              "MobileNet_V3_Large_Weights.IMAGENET1K_V2"});

}  // namespace shiftlab::models
