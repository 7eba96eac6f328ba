// torchvision's MobileNetV3-Small / -Large (width 1.0) with torchvision 0.14's parameter and buffer
// names (features.N.block.K..., classifier.0). Building blocks: efficientnet.h.
//   features.0      ConvBnAct(C_in, 16, 3×3/2, hard-swish)
//   features.1..B   InvertedResidual (input, kernel, expanded, out, SE, activation, stride) as
//                   torchvision's _mobilenet_v3_conf table: [ConvBnAct 1×1 expand (absent when
//                   expanded = input)], ConvBnAct k×k depthwise (stride), [SqueezeExcitation
//                   (S = make_divisible(expanded/4), ReLU / hard-sigmoid)], ConvBnAct 1×1 project
//                   (no activation); out = block(x) + x when stride 1 and input = out
//   features.B+1    ConvBnAct(last, 6·last, 1×1, hard-swish)     (Large 960, Small 576)
//   classifier.0    Linear(6·last, 1280 | 1024), then hard-swish: torchvision's penultimate features
// Taps by output stride: "stem" (features up to the first stride-2 block, H/2), "stage1".."stage4"
// (H/4, H/8, H/16, H/32; each starts at a stride-2 block), "last_conv" (features.B+1),
// "pooled" = hardswish(classifier.0(global average pool)) N×1280 (Large) | N×1024 (Small).
// classifier.2 (Dropout) and classifier.3 (Linear) are the head, not the backbone.
// BatchNorm eps 1e-3, momentum 0.01 (torchvision's norm_layer for MobileNetV3). No stochastic depth.
#pragma once

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include "models/efficientnet.h"

namespace shiftlab::models {

class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(int64_t in, int64_t kernel, int64_t expanded, int64_t out, bool se, Act act, int64_t stride);
  torch::Tensor forward(torch::Tensor x);

 private:
  bool residual_;
  torch::nn::Sequential block_{nullptr};
};
TORCH_MODULE(InvertedResidual);

class MobileNetV3Impl : public BackboneImpl {
 public:
  MobileNetV3Impl(const BackboneOptions& o, bool large);
  torch::Tensor forward(torch::Tensor x) override;
  std::map<std::string, torch::Tensor> forward_features(torch::Tensor x,
                                                        const std::vector<std::string>& taps) override;
  std::vector<std::string> tap_names() const override {
    return {"stem", "stage1", "stage2", "stage3", "stage4", "last_conv", "pooled"};
  }
  int64_t feature_dim() const override { return feature_dim_; }
  /// stem, stage1 … stage4, last_conv (features.B+1 and classifier.0)
  std::vector<LayerGroup> layer_groups() const override;
  std::string in_conv_name() const override { return "features.0.0"; }
  int64_t in_channels() const override { return input_channels_at(*this, "features.0.0"); }
  /// classifier.0 belongs to the backbone; classifier.3 is the head
  std::vector<std::string> head_prefixes() const override { return {"classifier.3."}; }
  bool supports_adapters() const override { return true; }
  /// every inverted-residual block features.1 … features.B (its output channels)
  std::vector<AdapterSite> adapter_sites() const override;
  /// the same blocks
  std::vector<std::string> adapter_blocks() const override;

 private:
  int64_t feature_dim_;
  std::vector<int64_t> block_channels_;
  ConvBnAct stem_{nullptr}, last_{nullptr};         // features.0, features.B+1
  std::vector<InvertedResidual> blocks_;            // features.1 … features.B
  /// first features index of the stem (0), stage1 … stage4 (stride-2 blocks), last conv (B+1)
  std::vector<size_t> stage_start_;
  std::shared_ptr<torch::nn::Module> classifier_;  // classifier.0 (run by name)
};

}  // namespace shiftlab::models
