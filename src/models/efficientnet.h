// torchvision's EfficientNet-B0…B4 with torchvision 0.14's parameter and buffer names, and the
// building blocks it shares with MobileNetV3 (mobilenet_v3.h).
//
// Building blocks (torchvision.ops.misc):
//   ConvBnAct   Conv2dNormActivation: children "0" Conv2d(k×k, stride, padding (k−1)/2·dilation,
//               groups, no bias), "1" BatchNorm2d(eps, momentum), then the activation
//               (none | ReLU | SiLU | hard-swish x·relu6(x+3)/6); the conv is run by name.
//   SqueezeExcitation   s = σ(fc2(δ(fc1(mean_hw(x))))), y = s ⊙ x with fc1: C→S, fc2: S→C 1×1
//               convs with bias; EfficientNet δ = SiLU, σ = sigmoid; MobileNetV3 δ = ReLU,
//               σ = hard-sigmoid relu6(x+3)/6.
//   stochastic_depth    torchvision's StochasticDepth(p, "row"): in train mode with p > 0,
//               x ⊙ b / (1−p), b ~ Bernoulli(1−p) one per sample (N×1×1×1); identity otherwise.
//
// EfficientNet (width w, depth d; B0 1.0/1.0, B1 1.0/1.1, B2 1.1/1.2, B3 1.2/1.4, B4 1.4/1.8):
//   channels c → make_divisible(c·w, 8), blocks n → ceil(n·d)
//   features.0   ConvBnAct(C_in, 32w, 3×3/2, SiLU)                         tap "stem"     N×32w×H/2
//   features.k   stage k = 1..7 of MBConv blocks (expand, kernel, stride, out, n):
//                (1,3,1,16,1) (6,3,2,24,2) (6,5,2,40,2) (6,3,2,80,3) (6,5,1,112,3)
//                (6,5,2,192,4) (6,3,1,320,1); strides 2,4,8,16,16,32,32   taps "stage1".."stage7"
//   features.8   ConvBnAct(320w, 4·320w, 1×1, SiLU)    (B0: 1280)          tap "last_conv"
//   pooled       global average pool of features.8                         "pooled" N×4·320w
// MBConv (features.k.i.block.*): [ConvBnAct 1×1 expand, SiLU (absent when expand = 1)],
//   ConvBnAct k×k depthwise (stride on the first block of a stage), SiLU, SqueezeExcitation
//   (S = max(1, C_in/4), SiLU / sigmoid), ConvBnAct 1×1 project (no activation);
//   out = stochastic_depth(block(x), p_i) + x when stride 1 and C_in = C_out, else block(x);
//   p_i = drop_path · i / (number of blocks) for the i-th block overall (torchvision: 0.2).
// BatchNorm eps 1e-5, momentum 0.1 (torchvision's B0–B4; only B5+ and V2 use eps 1e-3).
// The classifier (classifier.0 Dropout, classifier.1 Linear) is the head, not the backbone.
#pragma once

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include "models/backbones.h"

namespace shiftlab::models {

enum class Act { kNone, kReLU, kSiLU, kHardSwish };

/// The activation `a` applied to x in place (as torchvision's inplace=True activations: no new
/// buffer for the large feature maps); returns x.
torch::Tensor activate_(torch::Tensor x, Act a);

/// torchvision's _make_divisible(v, divisor): the nearest multiple of `divisor` ≥ divisor, rounded
/// up by one step when rounding lost more than 10 %.
int64_t make_divisible(double v, int64_t divisor = 8);

/// torchvision's stochastic_depth(x, p, "row", training) (see the header comment).
torch::Tensor stochastic_depth(const torch::Tensor& x, double p, bool training);

struct BatchNormSpec {
  double eps = 1e-5;
  double momentum = 0.1;
};

class ConvBnActImpl : public torch::nn::Module {
 public:
  ConvBnActImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, Act act,
                const BatchNormSpec& bn, int64_t dilation = 1);
  torch::Tensor forward(torch::Tensor x);

 private:
  Act act_;
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(ConvBnAct);

class SqueezeExcitationImpl : public torch::nn::Module {
 public:
  /// hard = false: SiLU / sigmoid (EfficientNet); true: ReLU / hard-sigmoid (MobileNetV3).
  SqueezeExcitationImpl(int64_t channels, int64_t squeeze, bool hard);
  torch::Tensor forward(torch::Tensor x);

 private:
  bool hard_;
};
TORCH_MODULE(SqueezeExcitation);

class MBConvImpl : public torch::nn::Module {
 public:
  MBConvImpl(int64_t in, int64_t out, int64_t expand_ratio, int64_t kernel, int64_t stride, double drop_path);
  torch::Tensor forward(torch::Tensor x);

 private:
  bool residual_;
  double drop_path_;
  torch::nn::Sequential block_{nullptr};
};
TORCH_MODULE(MBConv);

class EfficientNetImpl : public BackboneImpl {
 public:
  EfficientNetImpl(const BackboneOptions& o, double width_mult, double depth_mult);
  torch::Tensor forward(torch::Tensor x) override;
  std::map<std::string, torch::Tensor> forward_features(torch::Tensor x,
                                                        const std::vector<std::string>& taps) override;
  std::vector<std::string> tap_names() const override;
  int64_t feature_dim() const override { return feature_dim_; }
  /// stem, stage1 … stage7, last_conv
  std::vector<LayerGroup> layer_groups() const override;
  std::string in_conv_name() const override { return "features.0.0"; }
  int64_t in_channels() const override { return input_channels_at(*this, "features.0.0"); }
  bool supports_adapters() const override { return true; }
  /// the stages features.1 … features.7 (their output channels)
  std::vector<AdapterSite> adapter_sites() const override;
  /// the stages and their MBConv blocks features.K.i
  std::vector<std::string> adapter_blocks() const override;

 private:
  int64_t feature_dim_;
  ConvBnAct stem_{nullptr}, last_{nullptr};
  std::vector<torch::nn::Sequential> stages_;
  std::vector<int64_t> stage_channels_;
};

}  // namespace shiftlab::models
