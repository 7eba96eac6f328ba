// torchvision's DenseNet-121 (DenseNet-BC: growth k = 32, blocks 6/12/24/16, 64 initial features,
// bottleneck 4k) with torchvision 0.14's parameter and buffer names (features.conv0, features.norm0,
// features.denseblockK.denselayerI.{norm1,conv1,norm2,conv2}, features.transitionK.{norm,conv},
// features.norm5). Every conv is run by name (adapters may wrap it).
//   stem          conv0 7×7/2 (C_in→64) → norm0 → ReLU → max-pool 3×3/2       tap "stem"  N×64×H/4
//   denseblock K  layer i: x_i = conv2(relu(norm2(conv1(relu(norm1(cat(x_0 … x_{i−1})))))))
//                 (conv1 1×1 → 128, conv2 3×3 → 32); out = cat(x_0 … x_L)
//                                 taps "denseblock1".."denseblock4": N×256×H/4, 512×H/8, 1024×H/16, 1024×H/32
//   transition K  (K = 1..3) avg-pool 2×2(conv 1×1 (C → C/2)(relu(norm(x))))
//   norm5         relu(norm5(denseblock4))                                   tap "norm5"  N×1024×H/32
//   pooled        global average pool of norm5                               "pooled"     N×1024
// BatchNorm eps 1e-5, momentum 0.1; no dropout (torchvision's drop_rate 0). The classifier (Linear)
// is the head. Older published files (torchvision's own densenet121-a639ec97.pth) name the layer
// tensors "denselayerI.norm.1.weight"; upgrade_state_dict renames them as torchvision's loader does.
#pragma once

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

#include "models/backbones.h"

namespace shiftlab::models {

class DenseLayerImpl : public torch::nn::Module {
 public:
  DenseLayerImpl(int64_t in, int64_t growth, int64_t bn_size);
  /// The new features x_i from the concatenation of the previous ones.
  torch::Tensor forward(const std::vector<torch::Tensor>& previous);

 private:
  torch::nn::BatchNorm2d norm1_{nullptr}, norm2_{nullptr};
};
TORCH_MODULE(DenseLayer);

class DenseNetImpl : public BackboneImpl {
 public:
  DenseNetImpl(const BackboneOptions& o, int64_t growth, std::vector<int64_t> blocks, int64_t init_features);
  torch::Tensor forward(torch::Tensor x) override;
  std::map<std::string, torch::Tensor> forward_features(torch::Tensor x,
                                                        const std::vector<std::string>& taps) override;
  std::vector<std::string> tap_names() const override {
    return {"stem", "denseblock1", "denseblock2", "denseblock3", "denseblock4", "norm5", "pooled"};
  }
  int64_t feature_dim() const override { return feature_dim_; }
  /// stem, denseblock1 … denseblock4 (each with the transition after it; the last with norm5)
  std::vector<LayerGroup> layer_groups() const override;
  std::string in_conv_name() const override { return "features.conv0"; }
  int64_t in_channels() const override { return input_channels_at(*this, "features.conv0"); }
  void upgrade_state_dict(std::map<std::string, torch::Tensor>& weights) const override;
  bool supports_adapters() const override { return true; }
  /// the dense blocks features.denseblockK (their concatenated output channels)
  std::vector<AdapterSite> adapter_sites() const override;
  /// the dense blocks and their layers features.denseblockK.denselayerI
  std::vector<std::string> adapter_blocks() const override;

 private:
  int64_t feature_dim_;
  std::vector<std::shared_ptr<torch::nn::Module>> block_modules_;  // features.denseblockK
  std::vector<int64_t> block_channels_;
  std::shared_ptr<torch::nn::Module> features_;
  torch::nn::BatchNorm2d norm0_{nullptr}, norm5_{nullptr};
  std::vector<std::vector<DenseLayer>> blocks_;
  std::vector<std::shared_ptr<torch::nn::Module>> transitions_;
  std::vector<torch::nn::BatchNorm2d> transition_norms_;
};

}  // namespace shiftlab::models
