// Bottleneck adapters (Houlsby et al. 2019, "Parameter-efficient transfer learning for NLP"):
//   y -> y + up(act(down(y)))
// over the channels of a ResNet stage's output (N×C×H×W; down / up are 1×1 convs with bias) or the
// token dimension of a ViT branch (N×T×D; Linears with bias). down: C -> dim (PyTorch default
// init), up: dim -> C, zero weight and bias, so the adapter starts as exactly the identity.
// Parameters: 2·C·dim + dim + C. Where: the backbone's adapter_sites() (module name, C, spatial or
// tokens), registered as the child "adapter" of the module it follows:
//   ResNet   "layer4.adapter.{down,up}.{weight,bias}"      after stage layer4 (likewise EfficientNet
//            features.K, MobileNetV3 features.K, DenseNet features.denseblockK, ConvNeXt features.1/3/5/7)
//   ViT      "blocks.3.attn.adapter..." / "blocks.3.mlp.adapter..." after the attention / MLP
//            branch (before the residual sum; torchvision: "...self_attention.adapter", "...mlp.adapter")
// Spec: bottleneck(dim=64,act=relu|gelu)@layer3,layer4 | @blocks.* (attention and MLP) |
//       @blocks.*.mlp (MLP only).
#pragma once

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "adapters/adapter.h"
#include "models/adapter_hook.h"
#include "models/backbones.h"

namespace shiftlab::adapters {

class BottleneckAdapterImpl : public models::UnaryModuleImpl, public models::AdapterModule {
 public:
  /// conv: 1×1 convs over dim 1 of N×C×H×W; otherwise Linears over the last dim.
  BottleneckAdapterImpl(int64_t channels, int64_t dim, bool conv, const std::string& act);
  torch::Tensor forward(torch::Tensor x) override;

 private:
  bool conv_, gelu_;
  torch::nn::Conv2d cdown_{nullptr}, cup_{nullptr};
  torch::nn::Linear ldown_{nullptr}, lup_{nullptr};
};
TORCH_MODULE(BottleneckAdapter);

}  // namespace shiftlab::adapters
