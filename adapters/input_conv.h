// Multi-band input-conv adaptation: a network pretrained on 3-band (RGB) images gets C input bands.
//
// The first convolution's weight W (out × 3 × kh × kw, RGB filters W_R, W_G, W_B) becomes
// W' (out × C × kh × kw), changed in place so every holder of the conv stays valid. With
// rgb = rgb_bands (default {0, 1, 2}: input band rgb[i] feeds colour i) and W̄ = mean_i W_i:
//   auto           C=1 -> mean, C=2 -> first_k, C=3 -> unchanged, C>3 -> copy_mean
//   mean           every band gets (3/C)·W̄, i.e. Σ_i W_i / C: a band-constant image gives the
//                  output of the original net on its grey value repeated to RGB (C=1: Σ_i W_i,
//                  timm's in_chans=1 rule); C=3 keeps W unchanged
//   first_k        C ≤ 3: W'_j = W_j for j < C (the first C RGB filters, unscaled)
//   copy_mean      C ≥ 3: W'_rgb[i] = W_i, every other band W̄ (seed 004's adapt_first_conv)
//   repeat_scaled  timm's adapt_input_conv: W'_j = W_(j mod 3) · 3/C (C=1: Σ_i W_i, C=3: W)
//   zero_extra     C ≥ 3: W'_rgb[i] = W_i, every other band 0 (extra bands ignored at start)
//   learned_1x1    the conv keeps its 3 input channels; a trainable 1×1 conv C -> 3 (no bias) is
//                  returned to run in front of the backbone, initialised to pick band rgb[i] for
//                  colour i when C ≥ 3 (= zero_extra) or to average all C bands when C < 3
//                  (C=1: = mean)
// The bias is never changed. With C = 3 and the default rgb_bands every mode leaves the network's
// function unchanged.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/conv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/registry.h"

namespace shiftlab::adapters {

struct InputConvOptions {
  int64_t bands = 0;               ///< input bands C; 0 = the backbone's own (no adaptation)
  std::string mode = "auto";       ///< see the header comment; "auto" picks by C
  std::vector<int64_t> rgb_bands;  ///< input bands feeding R, G, B (empty: 0, 1, 2)
};

/// A band-adaptation mode (registry "band_modes", model.band_mode). Exactly one of:
struct BandMode {
  /// auto: the mode it stands for with `bands` input bands.
  std::function<std::string(int64_t bands)> resolve;
  /// A weight mode: W (out × 3 × kh × kw) -> out × o.bands × kh × kw (UsageError for a band count
  /// or an rgb_bands it does not take).
  std::function<torch::Tensor(const torch::Tensor& w, const InputConvOptions& o)> weight;
  /// A front mode (learned_1x1): the conv keeps its weight; the module to run in front of the model.
  std::function<torch::nn::AnyModule(const torch::nn::Conv2dImpl& conv, const InputConvOptions& o)> front;
};

/// The "band_modes" registry.
core::Registry<BandMode>& band_mode_registry();
/// Its names (model.band_mode's choices).
std::vector<std::string> input_conv_modes();

/// model.bands (default 0 = the backbone's own), model.band_mode (default auto) and
/// model.rgb_bands (band indices, default empty = 0,1,2).
const core::OptionTable<InputConvOptions>& input_conv_option_table();
inline void declare_input_conv_options(core::Schema& s) { input_conv_option_table().declare(s); }
inline InputConvOptions input_conv_options_from(const core::Config& c) { return input_conv_option_table().read(c); }

/// Adapts the torch::nn::Conv2d named `conv_name` in `model` (a dotted path as in named_modules(),
/// e.g. "conv1", "conv_proj", "patch_embed.proj") to o.bands input bands, as o.mode says, and
/// returns the module to put in front of the model: a torch::nn::Identity, or for learned_1x1 a
/// torch::nn::Conv2d(C, 3, 1) whose parameters must be trained too. Throws UsageError for a bad
/// combination (e.g. zero_extra with C < 3) and Error when the name is not a 3-input Conv2d.
torch::nn::AnyModule adapt_input_conv(torch::nn::Module& model, const std::string& conv_name,
                                      const InputConvOptions& o);

/// The weight transformation alone: W (out × 3 × kh × kw) -> (out × C × kh × kw) for the weight
/// modes (not learned_1x1). Exposed for tests.
torch::Tensor adapt_input_conv_weight(const torch::Tensor& w, const InputConvOptions& o);

}  // namespace shiftlab::adapters
