// TLlib's digits LeNet (tllib/vision/models/digits.py), an nn.Sequential whose parameters are
// named by index: 0 = Conv2d(C,20,5), 3 = Conv2d(20,50,5), 8 = Linear(800,500).
//   x (N×C×28×28) -> conv0 -> maxpool2 -> relu                   tap "conv1"  N×20×12×12
//                 -> conv3 -> dropout2d(0.5) -> maxpool2 -> relu  tap "conv2"  N×50×4×4
//                 -> flatten (800) -> linear8 -> relu -> dropout(0.5)  "pooled" N×500
// feature_dim() = 500 (TLlib's out_features); inputs must be 28×28.
#pragma once

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "models/backbones.h"

namespace shiftlab::models {

class LeNetImpl : public BackboneImpl {
 public:
  explicit LeNetImpl(const BackboneOptions& o);
  torch::Tensor forward(torch::Tensor x) override;
  std::map<std::string, torch::Tensor> forward_features(torch::Tensor x,
                                                        const std::vector<std::string>& taps) override;
  std::vector<std::string> tap_names() const override { return {"conv1", "conv2", "pooled"}; }
  int64_t feature_dim() const override { return 500; }
  std::vector<LayerGroup> layer_groups() const override;
  std::string in_conv_name() const override { return "0"; }
  int64_t in_channels() const override;

 private:
  torch::nn::Conv2d conv3_{nullptr};  // "0" is looked up by name (see call_child)
  torch::nn::Linear fc8_{nullptr};
};

}  // namespace shiftlab::models
