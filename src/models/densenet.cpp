#include "models/densenet.h"

#include <torch/nn/init.h>

#include <regex>

#include "models/adapter_hook.h"

namespace shiftlab::models {

using torch::nn::BatchNorm2d;
using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;

// torchvision's DenseNet initialisation: kaiming-normal (fan_in) convs, BatchNorm weight 1 / bias 0
static Conv2d densenet_conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  Conv2d c(Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
  torch::nn::init::kaiming_normal_(c->weight, 0, torch::kFanIn, torch::kReLU);
  return c;
}

DenseLayerImpl::DenseLayerImpl(int64_t in, int64_t growth, int64_t bn_size) {
  norm1_ = register_module("norm1", BatchNorm2d(in));
  register_module("conv1", densenet_conv(in, bn_size * growth, 1, 1, 0));
  norm2_ = register_module("norm2", BatchNorm2d(bn_size * growth));
  register_module("conv2", densenet_conv(bn_size * growth, growth, 3, 1, 1));
}

torch::Tensor DenseLayerImpl::forward(const std::vector<torch::Tensor>& previous) {
  // ReLUs in place on the fresh BatchNorm outputs, as torchvision's ReLU(inplace=True)
  auto h = call_child(*this, "conv1", norm1_->forward(torch::cat(previous, 1)).relu_());
  return call_child(*this, "conv2", norm2_->forward(h).relu_());
}

DenseNetImpl::DenseNetImpl(const BackboneOptions& o, int64_t growth, std::vector<int64_t> blocks, int64_t init_features) {
  const int64_t bn_size = 4;
  features_ = register_module("features", std::make_shared<torch::nn::Module>());
  features_->register_module("conv0", densenet_conv(o.in_channels, init_features, 7, 2, 3));
  norm0_ = features_->register_module("norm0", BatchNorm2d(init_features));
  int64_t c = init_features;
  for (size_t k = 0; k < blocks.size(); ++k) {
    auto block = features_->register_module("denseblock" + std::to_string(k + 1), std::make_shared<torch::nn::Module>());
    std::vector<DenseLayer> layers;
    for (int64_t i = 0; i < blocks[k]; ++i)
      layers.push_back(block->register_module("denselayer" + std::to_string(i + 1), DenseLayer(c + i * growth, growth, bn_size)));
    blocks_.push_back(layers);
    block_modules_.push_back(block);
    c += blocks[k] * growth;
    block_channels_.push_back(c);
    if (k + 1 < blocks.size()) {
      auto t = features_->register_module("transition" + std::to_string(k + 1), std::make_shared<torch::nn::Module>());
      transition_norms_.push_back(t->register_module("norm", BatchNorm2d(c)));
      t->register_module("conv", densenet_conv(c, c / 2, 1, 1, 0));
      transitions_.push_back(t);
      c /= 2;
    }
  }
  norm5_ = features_->register_module("norm5", BatchNorm2d(c));
  feature_dim_ = c;
}

std::vector<LayerGroup> DenseNetImpl::layer_groups() const {
  std::vector<LayerGroup> g{{"stem", {"features.conv0.", "features.norm0."}}};
  for (size_t k = 1; k <= blocks_.size(); ++k) {
    const std::string n = std::to_string(k);
    g.push_back({"denseblock" + n, {"features.denseblock" + n + ".",
                                    k < blocks_.size() ? "features.transition" + n + "." : std::string("features.norm5.")}});
  }
  return g;
}

std::vector<AdapterSite> DenseNetImpl::adapter_sites() const {
  std::vector<AdapterSite> v;
  for (size_t k = 0; k < blocks_.size(); ++k)
    v.push_back({"features.denseblock" + std::to_string(k + 1), block_channels_[k], true, ""});
  return v;
}

std::vector<std::string> DenseNetImpl::adapter_blocks() const {
  std::vector<std::string> v;
  for (size_t k = 0; k < blocks_.size(); ++k) {
    const std::string block = "features.denseblock" + std::to_string(k + 1);
    v.push_back(block);
    for (size_t i = 0; i < blocks_[k].size(); ++i) v.push_back(block + ".denselayer" + std::to_string(i + 1));
  }
  return v;
}

std::map<std::string, torch::Tensor> DenseNetImpl::forward_features(torch::Tensor x,
                                                                    const std::vector<std::string>& taps) {
  auto want = check_features_request(*this, "densenet", x, taps);
  std::map<std::string, torch::Tensor> out;
  x = torch::max_pool2d(norm0_->forward(call_child(*features_, "conv0", x)).relu_(), 3, 2, 1);
  if (want.count("stem")) out["stem"] = x;
  for (size_t k = 0; k < blocks_.size() && out.size() < want.size(); ++k) {
    std::vector<torch::Tensor> feats{x};
    feats.reserve(blocks_[k].size() + 1);
    for (auto& layer : blocks_[k]) feats.push_back(layer->forward(feats));
    x = run_post_adapter(*block_modules_[k], torch::cat(feats, 1));  // "denseblockK.adapter", if any
    std::string n = "denseblock" + std::to_string(k + 1);
    if (want.count(n)) out[n] = x;
    if (k < transitions_.size()) {
      auto h = call_child(*transitions_[k], "conv", transition_norms_[k]->forward(x).relu_());
      x = torch::avg_pool2d(h, 2, 2);
    }
  }
  if (want.count("norm5") || want.count("pooled")) {
    x = norm5_->forward(x).relu_();
    if (want.count("norm5")) out["norm5"] = x;
    if (want.count("pooled")) out["pooled"] = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
  }
  return out;
}

torch::Tensor DenseNetImpl::forward(torch::Tensor x) { return forward_features(x, {"pooled"})["pooled"]; }

void DenseNetImpl::upgrade_state_dict(std::map<std::string, torch::Tensor>& weights) const {
  // torchvision.models.densenet._load_state_dict's pattern
  static const std::regex legacy(R"(^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$)");
  std::vector<std::pair<std::string, std::string>> renames;
  for (auto& kv : weights) {
    std::smatch m;
    if (std::regex_match(kv.first, m, legacy)) renames.emplace_back(kv.first, m[1].str() + m[2].str());
  }
  for (auto& [from, to] : renames) {
    auto t = weights.at(from);
    weights.erase(from);
    weights[to] = t;
  }
  BackboneImpl::upgrade_state_dict(weights);  // then the missing num_batches_tracked
}

static BackbonePtr make_densenet121(const BackboneOptions& o) {
  return std::make_shared<DenseNetImpl>(o, 32, std::vector<int64_t>{6, 12, 24, 16}, 64);
}

SHIFTLAB_REGISTER(backbone_registry(), "densenet121", "DenseNet-121 (torchvision names), 1024-d, 224 px",
                  make_densenet121);
SHIFTLAB_BACKBONE_INFO("densenet121", {224, 256, 0, "bilinear", {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225},
                                       "DenseNet121_Weights.IMAGENET1K_V1"});

}  // namespace shiftlab::models
