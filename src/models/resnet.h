// torchvision's ResNet family (v1.5: stride on the 3×3 conv of the bottleneck) with torchvision's
// parameter and buffer names: conv1, bn1, layer{1..4}.{i}.{conv1,bn1,conv2,bn2[,conv3,bn3]},
// layer{k}.0.downsample.{0,1}. The classifier `fc` is not part of the backbone.
//   x (N×C×H×W) -> conv1 7×7/2 -> bn1 -> relu -> maxpool 3×3/2   tap "stem"   N×64×H/4×W/4
//     -> layer1 .. layer4 (strides 1,2,2,2)                      taps "layer1".."layer4"
//     -> global average pool                                      "pooled"     N×(512·expansion)
// small_stem: conv1 is 3×3 stride 1 padding 1 and there is no max-pool (for 28–32 px inputs).
// Adapters (adapters/, models/adapter_hook.h): every conv (conv1, layerK.i.convJ, downsample.0) is
// run by name through call_child, so a wrapper swapped in with replace_module is honoured, and a
// child "adapter" of a stage (layerK.adapter) runs on that stage's output.
#pragma once

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include "models/backbones.h"

namespace shiftlab::models {

/// One residual block: BasicBlock (two 3×3 convs) or Bottleneck (1×1, 3×3, 1×1; expansion 4).
/// out = relu(bn_last(convs(x)) + downsample(x)).
class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t in_planes, int64_t planes, int64_t stride, bool bottleneck);
  torch::Tensor forward(torch::Tensor x);

 private:
  bool bottleneck_;
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr};
  torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(ResBlock);

class ResNetImpl : public BackboneImpl {
 public:
  /// depths: blocks per stage (e.g. {2,2,2,2}); bottleneck: Bottleneck blocks (ResNet-50+).
  ResNetImpl(const BackboneOptions& o, std::vector<int64_t> depths, bool bottleneck);
  torch::Tensor forward(torch::Tensor x) override;
  std::map<std::string, torch::Tensor> forward_features(torch::Tensor x,
                                                        const std::vector<std::string>& taps) override;
  std::vector<std::string> tap_names() const override {
    return {"stem", "layer1", "layer2", "layer3", "layer4", "pooled"};
  }
  int64_t feature_dim() const override { return feature_dim_; }
  std::vector<LayerGroup> layer_groups() const override;
  std::string in_conv_name() const override { return "conv1"; }
  int64_t in_channels() const override { return input_channels_at(*this, "conv1"); }
  bool supports_adapters() const override { return true; }
  /// layer1 … layer4 (64·2^k·expansion channels)
  std::vector<AdapterSite> adapter_sites() const override;
  /// layerK and its blocks layerK.i
  std::vector<std::string> adapter_blocks() const override;

 private:
  bool small_stem_;
  int64_t feature_dim_;
  std::vector<int64_t> depths_, stage_channels_;
  torch::nn::BatchNorm2d bn1_{nullptr};
  torch::nn::Sequential layers_[4] = {nullptr, nullptr, nullptr, nullptr};
};

}  // namespace shiftlab::models
