// The classification model used by training: backbone -> (bottleneck) -> features f -> linear
// classifier -> logits, with freezing and BatchNorm modes. Parameter names follow TLlib's
// ImageClassifier: backbone.*, bottleneck.{0 = Linear, 1 = BatchNorm1d}, head.{weight,bias}.
//   linear head:      f = dropout(backbone(x))                     (N×D),  logits = head(f)
//   bottleneck head:  f = dropout(relu(bn(W x + b))) of backbone(x) (N×bottleneck_dim), logits = head(f)
// Freezing (model.freeze): none | backbone | top:<k> (the deepest k backbone layer groups train,
// the head always trains). A frozen layer group's parameters get requires_grad = false and its
// BatchNorm layers stay in eval mode. model.bn = frozen puts every backbone BatchNorm in eval mode
// (running statistics never change) whatever the freeze mode; their affine weights still follow
// model.freeze. Backbone parameters outside every layer group, and adapters' own parameters
// (models/adapter_hook.h: lora_A/B, residual and bottleneck adapter weights) keep their
// requires_grad. ClassifierImpl::train() re-applies both after every mode change.
#pragma once

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include "core/options.h"
#include "models/backbones.h"

namespace shiftlab::models {

struct HeadOptions {
  std::string type = "linear";   ///< linear | bottleneck
  int64_t bottleneck_dim = 256;  ///< bottleneck width
  double dropout = 0;            ///< dropout on the features before the classifier
};

struct ModelOptions {
  BackboneOptions backbone;
  HeadOptions head;
  std::string freeze = "none";  ///< none | backbone | top:<k>
  std::string bn = "train";     ///< train | frozen
  std::string weights;          ///< pretrained backbone weights (.safetensors / .pth); "" = random init
  bool strict = true;           ///< weights must match the backbone exactly (head keys always skipped)
};

/// model.backbone, model.in_channels, model.small_stem, model.image_size, model.pool,
/// model.drop_path, model.head, model.bottleneck_dim, model.dropout, model.freeze, model.bn,
/// model.weights, model.strict. Reading checks the model.freeze grammar.
const core::OptionTable<ModelOptions>& model_option_table();
inline void declare_model_options(core::Schema& s) { model_option_table().declare(s); }
inline ModelOptions model_options_from(const core::Config& c) { return model_option_table().read(c); }

class ClassifierImpl : public torch::nn::Module {
 public:
  ClassifierImpl(BackbonePtr backbone, const HeadOptions& head, int64_t num_classes);

  struct Output {
    torch::Tensor features;  ///< N×feature_dim() (after the bottleneck, if any)
    torch::Tensor logits;    ///< N×num_classes()
    std::map<std::string, torch::Tensor> taps;  ///< requested backbone taps pooled to N×D
  };
  /// One backbone pass; `taps` are extra backbone tap names (see BackboneImpl::tap_names()).
  Output forward(torch::Tensor x, const std::vector<std::string>& taps = {});

  /// Sets train/eval mode; BatchNorm layers frozen by apply_freeze stay in eval mode.
  void train(bool on = true) override;
  /// Sets requires_grad and BatchNorm modes (UsageError naming model.freeze / model.bn when bad).
  void apply_freeze(const std::string& freeze, const std::string& bn);

  /// Puts a module in front of the backbone (e.g. the learned 1×1 band mixer of
  /// adapters::adapt_input_conv); registered as "input_adapter", trained with the stem group.
  void set_input_adapter(torch::nn::AnyModule m);

  BackbonePtr backbone() { return backbone_; }
  /// Bands the model takes: the input adapter's (the learned 1×1 band mixer's input) when there is
  /// one with a weight, else the backbone's.
  int64_t input_channels() const;
  int64_t feature_dim() const { return feature_dim_; }
  int64_t num_classes() const { return num_classes_; }
  /// Backbone groups (prefixes prefixed with "backbone.") then "head" (bottleneck + classifier).
  std::vector<LayerGroup> layer_groups() const;
  /// Number of backbone BatchNorm layers currently held in eval mode.
  size_t frozen_bn_count() const { return frozen_bn_.size(); }

 private:
  BackbonePtr backbone_;
  torch::nn::AnyModule input_adapter_;
  torch::nn::Sequential bottleneck_{nullptr};
  torch::nn::Linear head_{nullptr};
  double dropout_;
  int64_t feature_dim_, num_classes_;
  std::vector<std::shared_ptr<torch::nn::Module>> frozen_bn_;
};
TORCH_MODULE(Classifier);

/// "top:3" -> 3, "backbone" -> 0, "none" -> all groups (throws UsageError naming model.freeze).
int64_t trainable_backbone_groups(const std::string& freeze, int64_t num_groups);

}  // namespace shiftlab::models
