#include "adapters/input_conv.h"

#include <torch/torch.h>

#include <set>

#include "core/error.h"
#include "core/log.h"

namespace shiftlab::adapters {

using core::Error;
using core::UsageError;

core::Registry<BandMode>& band_mode_registry() {
  static core::Registry<BandMode> r("band_modes", "input-conv band adaptation to model.bands bands (model.band_mode)");
  return r;
}

std::vector<std::string> input_conv_modes() { return band_mode_registry().names(); }

const core::OptionTable<InputConvOptions>& input_conv_option_table() {
  static const auto table = [] {
    using O = InputConvOptions;
    core::OptionTable<O> t("adapters::InputConvOptions");
    t.field("model.bands", &O::bands,
            "input bands (channels) of the data; 0 = the backbone's own (model.in_channels, no adaptation); "
            "another value adapts the pretrained first conv")
        .range(0, 4096);
    t.field("model.band_mode", &O::mode,
            "how a pretrained 3-band first conv is adapted to model.bands bands: auto (C=1 mean, C=2 "
            "first_k, C>=3 copy_mean), mean, first_k, copy_mean, repeat_scaled (timm), zero_extra, "
            "learned_1x1")
        .choices_from(input_conv_modes);
    t.field("model.rgb_bands", &O::rgb_bands,
            "input bands (0-based) that feed the pretrained R,G,B filters, e.g. 3,2,1 for Sentinel-2 "
            "B4,B3,B2 (default 0,1,2)")
        .range(0, 4095);
    return t;
  }();
  return table;
}

namespace {

// Validated rgb band indices for C >= 3 (or an error naming the option).
std::vector<int64_t> rgb_of(const InputConvOptions& o) {
  if (o.rgb_bands.empty()) return {0, 1, 2};
  if (o.rgb_bands.size() != 3)
    throw UsageError(core::str("model.rgb_bands: expected 3 band indices (R,G,B), got ", o.rgb_bands.size()));
  std::set<int64_t> seen;
  for (int64_t b : o.rgb_bands) {
    if (b < 0 || b >= o.bands)
      throw UsageError(core::str("model.rgb_bands: band ", b, " is outside 0..", o.bands - 1, " (model.bands = ", o.bands, ")"));
    if (!seen.insert(b).second) throw UsageError(core::str("model.rgb_bands: band ", b, " given twice"));
  }
  return o.rgb_bands;
}

// The mode o.mode stands for (auto resolved by the band count) and its registry entry.
std::pair<std::string, const BandMode*> resolve_mode(const InputConvOptions& o) {
  const auto& reg = band_mode_registry();
  if (!reg.has(o.mode)) {
    std::string known;
    for (auto& m : reg.names()) known += (known.empty() ? "" : ", ") + m;
    throw UsageError(core::str("model.band_mode: unknown mode '", o.mode, "' (known: ", known, ")"));
  }
  if (o.bands < 1) throw UsageError(core::str("model.bands must be >= 1, got ", o.bands));
  std::string mode = o.mode;
  if (reg.get(mode).resolve) mode = reg.get(mode).resolve(o.bands);
  return {mode, &reg.get(mode)};
}

void check_rgb_unused(const InputConvOptions& o, const std::string& mode) {
  if (!o.rgb_bands.empty())
    throw UsageError(core::str("model.rgb_bands is used by copy_mean, zero_extra and learned_1x1 with >= 3 bands, not by ",
                         mode, " with ", o.bands, " band", o.bands == 1 ? "" : "s"));
}

// ---------------------------------------------------------------- the modes

torch::Tensor band_mean(const torch::Tensor& wd, const InputConvOptions& o) {
  check_rgb_unused(o, "mean");
  const int64_t C = o.bands;
  if (C == 3) return wd.clone();
  auto m = wd.sum(1, /*keepdim=*/true);
  if (C != 1) m = m / static_cast<double>(C);
  return m.expand({wd.size(0), C, wd.size(2), wd.size(3)}).contiguous();
}

torch::Tensor band_first_k(const torch::Tensor& wd, const InputConvOptions& o) {
  check_rgb_unused(o, "first_k");
  const int64_t C = o.bands;
  if (C > 3)
    throw UsageError(core::str("model.band_mode = first_k needs at most 3 bands, model.bands = ", C,
                               " (use copy_mean, zero_extra, repeat_scaled or learned_1x1)"));
  return wd.slice(1, 0, C).clone();
}

torch::Tensor band_repeat_scaled(const torch::Tensor& wd, const InputConvOptions& o) {
  check_rgb_unused(o, "repeat_scaled");
  const int64_t C = o.bands;
  if (C == 1) return wd.sum(1, /*keepdim=*/true);  // timm: in_chans == 1 sums the RGB filters
  if (C == 3) return wd.clone();
  int64_t rep = (C + 2) / 3;
  return (wd.repeat({1, rep, 1, 1}).slice(1, 0, C) * (3.0 / static_cast<double>(C))).contiguous();
}

// copy_mean (extra bands get the mean filter) or zero_extra (they get 0)
torch::Tensor band_copy_rgb(const torch::Tensor& wd, const InputConvOptions& o, bool zero_extra) {
  const int64_t C = o.bands;
  const char* mode = zero_extra ? "zero_extra" : "copy_mean";
  if (C < 3)
    throw UsageError(core::str("model.band_mode = ", mode, " needs at least 3 bands, model.bands = ", C,
                               " (use mean, first_k, repeat_scaled or learned_1x1)"));
  auto rgb = rgb_of(o);
  torch::Tensor out;
  if (!zero_extra)
    out = wd.mean(1, /*keepdim=*/true).expand({wd.size(0), C, wd.size(2), wd.size(3)}).contiguous();
  else
    out = torch::zeros({wd.size(0), C, wd.size(2), wd.size(3)}, wd.options());
  for (int64_t i = 0; i < 3; ++i) out.select(1, rgb[static_cast<size_t>(i)]).copy_(wd.select(1, i));
  return out;
}

torch::nn::AnyModule band_learned_1x1(const torch::nn::Conv2dImpl& conv, const InputConvOptions& o) {
  const int64_t C = o.bands;
  auto pre = torch::nn::Conv2d(torch::nn::Conv2dOptions(C, 3, 1).bias(false));
  torch::NoGradGuard no_grad;
  pre->weight.set_data(torch::zeros({3, C, 1, 1}, conv.weight.options()));
  if (C >= 3) {
    auto rgb = rgb_of(o);
    for (int64_t i = 0; i < 3; ++i) pre->weight[i][rgb[static_cast<size_t>(i)]].fill_(1.0);
  } else {
    check_rgb_unused(o, "learned_1x1");
    pre->weight.fill_(1.0 / static_cast<double>(C));
  }
  return torch::nn::AnyModule(pre);
}

}  // namespace

SHIFTLAB_REGISTER(band_mode_registry(), "auto", "C=1 mean, C=2 first_k, C>=3 copy_mean",
                  (BandMode{[](int64_t C) { return std::string(C == 1 ? "mean" : C == 2 ? "first_k" : "copy_mean"); },
                            nullptr, nullptr}));
SHIFTLAB_REGISTER(band_mode_registry(), "mean", "every band (3/C)·mean filter (C=1: the RGB filters summed, timm)",
                  (BandMode{nullptr, band_mean, nullptr}));
SHIFTLAB_REGISTER(band_mode_registry(), "first_k", "C <= 3: the first C RGB filters, unscaled",
                  (BandMode{nullptr, band_first_k, nullptr}));
SHIFTLAB_REGISTER(band_mode_registry(), "copy_mean",
                  "C >= 3: bands rgb_bands get the R, G, B filters, every other band the mean filter",
                  (BandMode{nullptr, [](const torch::Tensor& w, const InputConvOptions& o) {
                              return band_copy_rgb(w, o, false);
                            },
                            nullptr}));
SHIFTLAB_REGISTER(band_mode_registry(), "repeat_scaled", "timm's adapt_input_conv: filter j mod 3, times 3/C",
                  (BandMode{nullptr, band_repeat_scaled, nullptr}));
SHIFTLAB_REGISTER(band_mode_registry(), "zero_extra", "C >= 3: bands rgb_bands get the R, G, B filters, others 0",
                  (BandMode{nullptr, [](const torch::Tensor& w, const InputConvOptions& o) {
                              return band_copy_rgb(w, o, true);
                            },
                            nullptr}));
SHIFTLAB_REGISTER(band_mode_registry(), "learned_1x1",
                  "a trainable 1x1 conv C -> 3 in front of the unchanged network (initialised as zero_extra / mean)",
                  (BandMode{nullptr, nullptr, band_learned_1x1}));

torch::Tensor adapt_input_conv_weight(const torch::Tensor& w, const InputConvOptions& o) {
  auto [mode, entry] = resolve_mode(o);
  if (w.dim() != 4 || w.size(1) != 3)
    throw Error(core::str("input-conv adaptation expects a weight out×3×kh×kw, got ", w.sizes()));
  torch::NoGradGuard no_grad;
  if (!entry->weight) throw UsageError(core::str(mode, " keeps the conv's weight; use adapt_input_conv"));
  return entry->weight(w.detach(), o);
}

torch::nn::AnyModule adapt_input_conv(torch::nn::Module& model, const std::string& conv_name,
                                      const InputConvOptions& o) {
  auto [mode, entry] = resolve_mode(o);
  std::shared_ptr<torch::nn::Module> found;
  for (const auto& item : model.named_modules("", /*include_self=*/false))
    if (item.key() == conv_name) found = item.value();
  if (!found) throw Error(core::str("input-conv adaptation: the model has no submodule '", conv_name, "'"));
  auto conv = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(found);
  if (!conv) throw Error(core::str("input-conv adaptation: '", conv_name, "' is a ", found->name(), ", not a Conv2d"));
  if (conv->options.groups() != 1)
    throw Error(core::str("input-conv adaptation: '", conv_name, "' is a grouped conv (groups = ", conv->options.groups(), ")"));
  if (conv->weight.size(1) != 3)
    throw Error(core::str("input-conv adaptation: '", conv_name, "' takes ", conv->weight.size(1),
                    " input channels, not the 3 (RGB) this adaptation starts from"));
  const int64_t C = o.bands;
  if (entry->front) {
    auto pre = entry->front(*conv, o);
    core::log_info("input conv '", conv_name, "': ", mode, " in front (", C, " -> 3 bands)");
    return pre;
  }
  auto w = adapt_input_conv_weight(conv->weight, o);
  {
    torch::NoGradGuard no_grad;
    conv->weight.set_data(w);
  }
  conv->options.in_channels(C);
  if (C != 3 || !o.rgb_bands.empty())
    core::log_info("input conv '", conv_name, "': 3 -> ", C, " bands (", mode, ")");
  return torch::nn::AnyModule(torch::nn::Identity());
}

}  // namespace shiftlab::adapters
