// Backbones: torch modules whose parameter and buffer names equal the Python originals
// (torchvision ResNet/ViT, timm ViT), exposing named feature taps and ordered layer groups.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace shiftlab::models {

/// A module after which a post-module adapter (adapters/bottleneck.h) may run on the output: the
/// backbone's forward passes that module's output through run_post_adapter(module, y)
/// (models/adapter_hook.h).
struct AdapterSite {
  std::string name;      ///< dotted module name, e.g. "layer3", "blocks.0.mlp"
  int64_t channels = 0;  ///< size of the adapted dimension of its output: C of N×C×H×W, D of N×T×D
  bool spatial = true;   ///< output N×C×H×W (adapted over dim 1) or N×T×D tokens (over the last dim)
  std::string group;     ///< an enclosing module whose name also selects this site (ViT "blocks.0"); "" none
};

/// A named group of parameters for freezing and layer-wise learning rates, shallow -> deep
/// (e.g. "stem", "layer1", ..., "layer4" / "embed", "blocks.0", ..., "norm").
struct LayerGroup {
  std::string name;
  std::vector<std::string> prefixes;  ///< parameter-name prefixes within the backbone
};

class BackboneImpl : public torch::nn::Module {
 public:
  /// Pooled features (N × feature_dim()), what a head consumes.
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  /// Named intermediate outputs; `taps` chooses which (tap_names() lists all). Spatial taps are
  /// returned unpooled (N×C×H×W); "pooled" is N×D.
  virtual std::map<std::string, torch::Tensor> forward_features(torch::Tensor x,
                                                                const std::vector<std::string>& taps) = 0;
  virtual std::vector<std::string> tap_names() const = 0;
  virtual int64_t feature_dim() const = 0;
  virtual std::vector<LayerGroup> layer_groups() const = 0;
  /// Name of the first convolution / patch embedding (for input-band adaptation), e.g. "conv1".
  virtual std::string in_conv_name() const = 0;
  /// Input bands the stem currently expects.
  virtual int64_t in_channels() const = 0;
  /// State-dict key prefixes of the original model's classification head, which is not part of
  /// the backbone: skipped (on both sides) when a full model's weights are loaded. A family whose
  /// backbone keeps part of the original classifier narrows this (ConvNeXt "classifier.2.",
  /// MobileNetV3 "classifier.3.").
  virtual std::vector<std::string> head_prefixes() const { return {"fc.", "head.", "heads.", "classifier."}; }
  /// Upgrades, in place, a weight file written by an older PyTorch / torchvision to this backbone's
  /// names: every BatchNorm whose running_mean is present but num_batches_tracked absent (files
  /// saved before PyTorch 0.4.1) gets num_batches_tracked = 0, as BatchNorm's own loader does;
  /// families rename keys on top (DenseNet: "denselayer1.norm.1.weight" -> "denselayer1.norm1.weight").
  virtual void upgrade_state_dict(std::map<std::string, torch::Tensor>& weights) const;
  /// True when forward runs its convolutions / Linears by name (call_child), so the adapters of
  /// adapters/ may replace them (ResNet, ViT, EfficientNet, MobileNetV3, DenseNet): LoRA and
  /// residual adapters need it.
  virtual bool supports_adapters() const { return false; }
  /// Where post-module (bottleneck) adapters may go, shallow -> deep: stage outputs of a CNN, the
  /// attention and MLP branches of a transformer. Empty (the default): nowhere.
  virtual std::vector<AdapterSite> adapter_sites() const { return {}; }
  /// Stages and blocks (dotted module names, shallow -> deep) whose k×k convolutions residual
  /// adapters may wrap (a pattern may also name a k×k convolution itself). Empty (the default):
  /// the family takes no residual adapters.
  virtual std::vector<std::string> adapter_blocks() const { return {}; }
};

using BackbonePtr = std::shared_ptr<BackboneImpl>;

}  // namespace shiftlab::models
