// The backbone registry ("backbones") and the options every backbone factory receives.
//
// Backbones (see lenet.cpp, resnet.cpp, vit.cpp) keep the parameter and buffer names of their
// Python originals, so a torchvision / timm / TLlib state dict loads by name:
//   lenet                         TLlib digits LeNet (nn.Sequential indices 0, 3, 8)
//   resnet18/34/50/101/152        torchvision (conv1, bn1, layer1.0.conv1, ..., downsample.0/1)
//   vit_b_16                      torchvision (conv_proj, class_token, encoder.layers.encoder_layer_N...)
//   vit_{tiny,small,base}_patch16_224  timm (patch_embed.proj, cls_token, pos_embed, blocks.N...)
//   convnext_tiny                 torchvision (features.N..., classifier.0)
//   efficientnet_b0..b4           torchvision (features.N.M.block.K..., see efficientnet.h)
//   mobilenet_v3_small/large      torchvision (features.N.block.K..., classifier.0, see mobilenet_v3.h)
//   densenet121                   torchvision (features.denseblockK.denselayerI.norm1..., see densenet.h)
// Layer-group prefixes end in "." for modules (e.g. "layer1.") or are full tensor names
// ("class_token"), so a plain starts-with test assigns every parameter to exactly one group.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/format.h"
#include "core/options.h"
#include "core/registry.h"
#include "models/backbone.h"

namespace shiftlab::models {

/// What a backbone factory needs. Fields a family does not use are ignored.
struct BackboneOptions {
  std::string name = "resnet50";  ///< registry name (model.backbone)
  int64_t in_channels = 3;     ///< input bands the first conv / patch embedding takes
  bool small_stem = false;     ///< ResNet: 3×3 stride-1 conv1 and no max-pool (28–32 px inputs)
  int64_t image_size = 224;    ///< ViT: input side; the position embedding is sized to it
  /// Stochastic depth (ViT, ConvNeXt, EfficientNet): the rate the per-block linear ramp reaches;
  /// < 0 = the architecture's torchvision default (EfficientNet 0.2, ConvNeXt 0.1, ViT 0).
  double drop_path = -1;
  std::string pool = "token";  ///< ViT: "token" (class token) | "mean" (mean of patch tokens)
  // ViT architecture overrides for tests / custom sizes (0 = the named architecture's value).
  int64_t vit_dim = 0, vit_depth = 0, vit_heads = 0, vit_mlp_dim = 0, patch_size = 0;
};

/// The drop_path a family uses: o.drop_path, or `family_default` when it is < 0 (unset);
/// UsageError naming model.drop_path when it is ≥ 1.
double resolve_drop_path(const BackboneOptions& o, double family_default);

using BackboneFactory = std::function<BackbonePtr(const BackboneOptions&)>;

/// What a registered backbone expects of its input: the preprocessing of its default pretrained
/// weights (torchvision's / timm's weights enum; ImageNet mean / std unless stated), so configs and
/// `shiftlab advise` can pick the resolution. Recorded with SHIFTLAB_BACKBONE_INFO beside the
/// registration line; `shiftlab list backbones` prints it.
struct BackboneInfo {
  int64_t image_size = 224;   ///< native input side in px (the eval crop; the paper's size for EfficientNet)
  int64_t resize_size = 256;  ///< eval: shorter side resized to this, then center-cropped to the weights' crop
  int64_t crop_size = 0;      ///< the pretrained weights' eval crop when it differs from image_size (0 = same)
  std::string interpolation = "bilinear";  ///< of the weights' eval resize (shiftlab's resize is bilinear)
  std::vector<double> mean{0.485, 0.456, 0.406}, std{0.229, 0.224, 0.225};
  std::string weights;        ///< where these numbers come from, e.g. "EfficientNet_B3_Weights.IMAGENET1K_V1"

  /// The weights' eval crop (crop_size, or image_size).
  int64_t eval_crop() const { return crop_size > 0 ? crop_size : image_size; }
  /// "resize(320), center_crop(300), normalize(imagenet)" (mean / std written out when not ImageNet's)
  std::string eval_transform() const;
  /// "random_resized_crop(300), hflip, normalize(imagenet)"
  std::string train_transform() const;
  /// One line for `shiftlab list backbones`.
  std::string summary() const;
};

/// Records `info` for the backbone `name` (a duplicate is an Error). Returns true (for the macro).
bool add_backbone_info(const std::string& name, const BackboneInfo& info);
/// The info recorded for `name`, or nullptr.
const BackboneInfo* backbone_info(const std::string& name);

#define SHIFTLAB_BACKBONE_INFO(name, ...)                                                     \
  static const bool SHIFTLAB_CONCAT(shiftlab_backbone_info_, __COUNTER__) [[maybe_unused]] = \
      ::shiftlab::models::add_backbone_info(name, __VA_ARGS__)

/// The "backbones" registry.
core::Registry<BackboneFactory>& backbone_registry();

/// Builds the backbone named by o.name (UsageError listing the known names when unknown).
BackbonePtr make_backbone(const BackboneOptions& o);

/// Pools one tap of `bb` to N×D: N×C×H×W -> spatial mean; N×T×D (ViT tokens) -> the backbone's
/// pooling (class token or mean of patch tokens); N×D -> unchanged.
torch::Tensor pool_tap(const BackboneImpl& bb, const torch::Tensor& t);

/// A child module mapping one tensor to one tensor. Adapters that replace a backbone's input
/// conv (in_conv_name()) with something other than a Conv2d / Sequential derive from this.
class UnaryModuleImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

/// One BatchNorm call handed to the sync hook: input N×C×..., affine weight and bias (undefined
/// when affine = false), running statistics (updated in place), the exponential-average factor
/// (momentum, or 1/num_batches_tracked for a cumulative average) and eps.
struct BatchNormCall {
  torch::Tensor x, weight, bias, running_mean, running_var;
  double momentum = 0.1;
  double eps = 1e-5;
};
using BatchNormSync = std::function<torch::Tensor(const BatchNormCall&)>;

/// Installs the process-wide BatchNorm hook (distributed SyncBatchNorm, train/dist.h) or removes
/// it (empty function). Process-wide like the process group it talks to.
void set_batch_norm_sync(BatchNormSync fn);
bool batch_norm_sync_installed();

/// BatchNorm forward: through the sync hook when one is installed and the layer is in training
/// mode, tracks running statistics and gradients are being recorded (a training step); otherwise
/// (evaluation, AdaBN re-estimation under no-grad, frozen BN) exactly the module's own forward.
/// Backbones and heads call their BatchNorm layers through these so `dist.sync_bn` reaches them.
torch::Tensor batch_norm(torch::nn::BatchNorm1dImpl& bn, const torch::Tensor& x);
torch::Tensor batch_norm(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x);
/// Sequential::forward, with its BatchNorm1d/2d layers run through batch_norm().
torch::Tensor run_sequential(torch::nn::SequentialImpl& seq, torch::Tensor x);

/// Runs the descendant `path` ("conv1", "patch_embed.proj") of `parent`, looked up by name at
/// each call so a replaced module is honoured: Conv2d, Linear, Sequential or UnaryModuleImpl.
torch::Tensor call_child(torch::nn::Module& parent, const std::string& path, torch::Tensor x);

/// Input channels of the conv / patch embedding at `path`: size(1) of its first 4-d weight
/// (works after an adapter swapped the weight or wrapped the conv).
int64_t input_channels_at(const torch::nn::Module& parent, const std::string& path);

/// "[2, 3, 28, 28]" (c10::ArrayRef would make core::str ambiguous through ADL).
inline std::string shape_str(const torch::Tensor& t) { return core::shape_str(t.sizes()); }

/// For convolutional backbones' forward_features: checks that x is N×C×H×W with C = in_channels()
/// and that every requested tap is one of tap_names() (UsageErrors naming `family`), and returns
/// the requested taps as a set.
std::set<std::string> check_features_request(const BackboneImpl& bb, const std::string& family, const torch::Tensor& x,
                                             const std::vector<std::string>& taps);

/// True when parameter `name` belongs to a group with these prefixes (starts-with test).
bool in_group(const std::string& name, const LayerGroup& g);

}  // namespace shiftlab::models
