// Residual adapters (Rebuffi et al. 2017 "Learning multiple visual domains with residual
// adapters", 2018 "Efficient parametrization of multi-domain deep neural networks") on a k×k
// convolution W (k > 1, padding (k-1)/2 so that a 1×1 conv with the same stride gives the same
// output size):
//   parallel:  y = W * x + A * x      A: 1×1 conv in -> out, stride of W   (in·out parameters)
//   series:    z = W * x,  y = z + A * z   A: 1×1 conv out -> out          (out·out parameters)
// A is zero-initialised, so the adapted conv starts as exactly W. No bias, no BatchNorm (the
// backbone's following BatchNorm normalises the sum). The wrapper registers W's "weight" (and
// "bias") under their names; A is the child "adapter": "layer3.0.conv1.adapter.weight".
// Spec: residual(mode=parallel|series)@<stage, block or conv names>; the stages and blocks are the
// backbone's adapter_blocks() (ResNet layerK / layerK.i, EfficientNet features.K / features.K.i,
// MobileNetV3 features.K, DenseNet features.denseblockK / .denselayerI); a stage or block stands
// for every k×k conv inside it (ResNet: the 3×3 convs, never the 1×1 downsample). Depthwise convs
// (EfficientNet, MobileNetV3) take mode=series only.
#pragma once

#include <torch/nn/modules/conv.h>

#include "adapters/adapter.h"
#include "models/adapter_hook.h"
#include "models/backbones.h"

namespace shiftlab::adapters {

class ResidualConvAdapterImpl : public models::UnaryModuleImpl, public models::AdapterModule {
 public:
  /// series = false: parallel. Throws UsageError when W's padding is not "same"-like.
  ResidualConvAdapterImpl(std::shared_ptr<torch::nn::Conv2dImpl> base, bool series);
  torch::Tensor forward(torch::Tensor x) override;
  std::vector<std::string> base_parameter_names() const override;
  std::shared_ptr<torch::nn::Conv2dImpl> base() const { return base_; }
  torch::nn::Conv2d adapter{nullptr};

 private:
  std::shared_ptr<torch::nn::Conv2dImpl> base_;
  bool series_;
};
TORCH_MODULE(ResidualConvAdapter);

}  // namespace shiftlab::adapters
