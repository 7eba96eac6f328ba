#include "adapters/input_conv.h"

#include <torch/torch.h>

#include <set>

#include "core/error.h"
#include "core/log.h"

namespace shiftlab::adapters {

using core::Error;
using core::UsageError;

const std::vector<std::string>& input_conv_modes() {
  static const std::vector<std::string> m = {"auto",          "mean",       "first_k",    "copy_mean",
                                             "repeat_scaled", "zero_extra", "learned_1x1"};
  return m;
}

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
        .choices(input_conv_modes());
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

std::string resolve_mode(const InputConvOptions& o) {
  const auto& modes = input_conv_modes();
  if (std::find(modes.begin(), modes.end(), o.mode) == modes.end()) {
    std::string known;
    for (auto& m : modes) known += (known.empty() ? "" : ", ") + m;
    throw UsageError(core::str("model.band_mode: unknown mode '", o.mode, "' (known: ", known, ")"));
  }
  if (o.bands < 1) throw UsageError(core::str("model.bands must be >= 1, got ", o.bands));
  if (o.mode != "auto") return o.mode;
  if (o.bands == 1) return "mean";
  if (o.bands == 2) return "first_k";
  return "copy_mean";
}

void check_rgb_unused(const InputConvOptions& o, const std::string& mode) {
  if (!o.rgb_bands.empty())
    throw UsageError(core::str("model.rgb_bands is used by copy_mean, zero_extra and learned_1x1 with >= 3 bands, not by ",
                         mode, " with ", o.bands, " band", o.bands == 1 ? "" : "s"));
}

}  // namespace

torch::Tensor adapt_input_conv_weight(const torch::Tensor& w, const InputConvOptions& o) {
  std::string mode = resolve_mode(o);
  if (w.dim() != 4 || w.size(1) != 3)
    throw Error(core::str("input-conv adaptation expects a weight out×3×kh×kw, got ", w.sizes()));
  const int64_t C = o.bands;
  torch::NoGradGuard no_grad;
  auto wd = w.detach();
  if (mode == "learned_1x1") throw UsageError("learned_1x1 keeps the conv's weight; use adapt_input_conv");
  if (mode == "mean") {
    check_rgb_unused(o, mode);
    if (C == 3) return wd.clone();
    auto m = wd.sum(1, /*keepdim=*/true);
    if (C != 1) m = m / static_cast<double>(C);
    return m.expand({w.size(0), C, w.size(2), w.size(3)}).contiguous();
  }
  if (mode == "first_k") {
    check_rgb_unused(o, mode);
    if (C > 3)
      throw UsageError(core::str("model.band_mode = first_k needs at most 3 bands, model.bands = ", C,
                           " (use copy_mean, zero_extra, repeat_scaled or learned_1x1)"));
    return wd.slice(1, 0, C).clone();
  }
  if (mode == "repeat_scaled") {
    check_rgb_unused(o, mode);
    if (C == 1) return wd.sum(1, /*keepdim=*/true);  // timm: in_chans == 1 sums the RGB filters
    if (C == 3) return wd.clone();
    int64_t rep = (C + 2) / 3;
    return (wd.repeat({1, rep, 1, 1}).slice(1, 0, C) * (3.0 / static_cast<double>(C))).contiguous();
  }
  if (mode == "copy_mean" || mode == "zero_extra") {
    if (C < 3)
      throw UsageError(core::str("model.band_mode = ", mode, " needs at least 3 bands, model.bands = ", C,
                           " (use mean, first_k, repeat_scaled or learned_1x1)"));
    auto rgb = rgb_of(o);
    torch::Tensor out;
    if (mode == "copy_mean")
      out = wd.mean(1, /*keepdim=*/true).expand({w.size(0), C, w.size(2), w.size(3)}).contiguous();
    else
      out = torch::zeros({w.size(0), C, w.size(2), w.size(3)}, wd.options());
    for (int64_t i = 0; i < 3; ++i) out.select(1, rgb[static_cast<size_t>(i)]).copy_(wd.select(1, i));
    return out;
  }
  throw Error(core::str("input-conv mode '", mode, "' not handled"));  // unreachable: resolve_mode checked it
}

torch::nn::AnyModule adapt_input_conv(torch::nn::Module& model, const std::string& conv_name,
                                      const InputConvOptions& o) {
  std::string mode = resolve_mode(o);
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
  if (mode == "learned_1x1") {
    auto pre = torch::nn::Conv2d(torch::nn::Conv2dOptions(C, 3, 1).bias(false));
    torch::NoGradGuard no_grad;
    pre->weight.set_data(torch::zeros({3, C, 1, 1}, conv->weight.options()));
    if (C >= 3) {
      auto rgb = rgb_of(o);
      for (int64_t i = 0; i < 3; ++i) pre->weight[i][rgb[static_cast<size_t>(i)]].fill_(1.0);
    } else {
      check_rgb_unused(o, mode);
      pre->weight.fill_(1.0 / static_cast<double>(C));
    }
    core::log_info("input conv '", conv_name, "': learned 1x1 band mixer ", C, " -> 3 in front");
    return torch::nn::AnyModule(pre);
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
