// torchvision's ConvNeXt-Tiny with torchvision's parameter names (features.*, classifier.0).
//   stem      features.0 = {0: Conv2d(C,96,4,stride 4), 1: LayerNorm2d}          tap "stem"   N×96×H/4×W/4
//   stage k   features.{1,3,5,7}: CNBlocks (3,3,9,3 blocks, dims 96,192,384,768),
//             preceded for k ≥ 2 by features.{2,4,6} = {0: LayerNorm2d, 1: Conv2d 2×2/2}
//                                                                            taps "stage1".."stage4"
//   CNBlock:  x + layer_scale ⊙ Linear5(GELU(Linear3(LN(dwconv7×7(x)))))  (block.0/2/3/5, channels-last
//             inside), with stochastic depth (row mode) in train mode
//   pooled:   LayerNorm2d(classifier.0)(global average pool)                 "pooled" N×768
// The final Linear (classifier.2) is the head, not part of the backbone. LayerNorm eps 1e-6.
#pragma once

#include <torch/nn/modules/normalization.h>

#include "models/backbones.h"

namespace shiftlab::models {

/// LayerNorm over the channels of an N×C×H×W tensor (torchvision's LayerNorm2d).
class LayerNorm2dImpl : public torch::nn::Module {
 public:
  explicit LayerNorm2dImpl(int64_t channels, double eps = 1e-6);
  torch::Tensor forward(torch::Tensor x);
  torch::Tensor weight, bias;

 private:
  double eps_;
};
TORCH_MODULE(LayerNorm2d);

class CNBlockImpl : public torch::nn::Module {
 public:
  CNBlockImpl(int64_t dim, double drop_path);
  torch::Tensor forward(torch::Tensor x);

 private:
  double drop_path_;
  torch::Tensor layer_scale_;
  std::shared_ptr<torch::nn::Module> block_;
  torch::nn::LayerNorm norm_{nullptr};
};
TORCH_MODULE(CNBlock);

class ConvNeXtImpl : public BackboneImpl {
 public:
  ConvNeXtImpl(const BackboneOptions& o, std::vector<int64_t> depths, std::vector<int64_t> dims);
  torch::Tensor forward(torch::Tensor x) override;
  std::map<std::string, torch::Tensor> forward_features(torch::Tensor x,
                                                        const std::vector<std::string>& taps) override;
  std::vector<std::string> tap_names() const override {
    return {"stem", "stage1", "stage2", "stage3", "stage4", "pooled"};
  }
  int64_t feature_dim() const override { return dims_.back(); }
  std::vector<LayerGroup> layer_groups() const override;
  std::string in_conv_name() const override { return "features.0.0"; }
  int64_t in_channels() const override { return input_channels_at(*this, "features.0.0"); }
  /// classifier.0 (the final LayerNorm2d) belongs to the backbone; classifier.2 is the head
  std::vector<std::string> head_prefixes() const override { return {"classifier.2."}; }
  /// the stages features.1, .3, .5, .7 (their widths). No LoRA / residual adapters
  /// (supports_adapters() is false: the downsampling convs run inside Sequentials).
  std::vector<AdapterSite> adapter_sites() const override;

 private:
  std::vector<int64_t> dims_;
  std::shared_ptr<torch::nn::Module> features_;
  LayerNorm2d norm_{nullptr}, stem_norm_{nullptr};
  std::vector<std::shared_ptr<torch::nn::Module>> stages_;  // features.1, .3, .5, .7
};

}  // namespace shiftlab::models
