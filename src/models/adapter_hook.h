// The small contract between backbones and the adapters of adapters/ (residual, bottleneck, LoRA).
//
// Backbones that support adapters (ResNet, ViT) run their convolutions / Linears through
// call_child (backbones.h), so a wrapper put in place with Module::replace_module is honoured, and
// call run_post_adapter(m, y) after a ResNet stage and after a ViT block's attention and MLP, so a
// module registered as the child "adapter" of that stage / attention / MLP runs on its output.
// A torchvision ViT attention also runs a child "in_proj" (when present) instead of its packed
// in_proj_weight / in_proj_bias (the LoRA delta on that Parameter).
//
// Modules inserted by adapters derive from AdapterModule. Their parameters are the adapter's own
// (they always train, also with model.freeze = backbone, and form the optimizer group "extra" at
// the head learning rate), except base_parameter_names(): the wrapped weight / bias that keep the
// backbone's original names (e.g. "layer3.0.conv1.weight") and follow model.freeze.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <set>
#include <string>
#include <vector>

namespace shiftlab::models {

/// Mixin for modules inserted by an adapter (see the header comment).
class AdapterModule {
 public:
  virtual ~AdapterModule() = default;
  /// Names (relative to this module) of the backbone tensors this module holds under their
  /// original names; every other parameter below this module belongs to the adapter.
  virtual std::vector<std::string> base_parameter_names() const { return {}; }
};

/// Full names (relative to `root`, e.g. "layer3.0.conv1.lora_A") of every adapter-owned parameter.
std::set<std::string> adapter_parameter_names(const torch::nn::Module& root);

/// True when `m` has a direct child module called `name`.
bool has_child(const torch::nn::Module& m, const std::string& name);

/// y, or the child "adapter" of `m` applied to y when `m` has one (see call_child).
torch::Tensor run_post_adapter(torch::nn::Module& m, torch::Tensor y);

}  // namespace shiftlab::models
