// Optimizer parameter groups for a Classifier: one group per layer group (shallow -> deep, then
// "head"), each split into a decayed part and a no-decay part (biases, normalisation weights,
// class token / position embeddings) when no_decay_bn_bias is on.
//   lr(group) = lr × layer_decay^distance, distance = 0 for "head", 1 for the deepest backbone
//   group, ... (layer-wise decay / discriminative learning rates); lr_overrides[name] replaces it.
// Only trainable parameters (requires_grad) are included; empty groups are dropped. Trainable
// backbone parameters outside every layer group, and adapters' own parameters (those of
// models::AdapterModule modules, e.g. "layer3.0.conv1.lora_A"), form a group "extra" at the head lr.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/options.h"
#include "models/classifier.h"

namespace shiftlab::models {

struct ParamGroupOptions {
  double lr = 1e-2;            ///< head learning rate
  double layer_decay = 1.0;    ///< lr × decay^(distance from head)
  double weight_decay = 5e-4;
  bool no_decay_bn_bias = true;  ///< weight decay 0 for biases, norm weights, tokens, embeddings
  std::map<std::string, double> lr_overrides;  ///< group name -> lr, from "layer4=1e-3,head=1e-2"
};

/// optim.lr, optim.layer_decay, optim.weight_decay, optim.no_decay_bn_bias, optim.group_lr.
const core::OptionTable<ParamGroupOptions>& param_group_option_table();
inline void declare_param_group_options(core::Schema& s) { param_group_option_table().declare(s); }
inline ParamGroupOptions param_group_options_from(const core::Config& c) {
  return param_group_option_table().read(c);
}
/// Parses "layer4=1e-3, head=1e-2" (`args` in core/spec.h; a core::SpecError naming optim.group_lr
/// and the column on a bad item).
std::map<std::string, double> parse_group_lr(const std::string& spec);

struct ParamGroup {
  std::string name;  ///< layer group name; the no-decay half is "<name>.no_decay"
  std::vector<torch::Tensor> params;
  double lr;
  double weight_decay;
  int64_t numel;
};

/// Groups in order shallow -> deep (decay part before no-decay part). An override naming no
/// layer group of the model is a UsageError (listing the group names).
std::vector<ParamGroup> make_param_groups(ClassifierImpl& model, const ParamGroupOptions& o);
/// True when `name` (a parameter name) is exempt from weight decay under no_decay_bn_bias.
bool is_no_decay(const std::string& name, const torch::Tensor& p);
/// Text table: group, tensors, parameters, lr, wd, plus the trainable total.
std::string param_group_table(const std::vector<ParamGroup>& g);

}  // namespace shiftlab::models
