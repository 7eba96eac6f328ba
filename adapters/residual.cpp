#include "adapters/residual.h"

#include <torch/nn/functional/conv.h>
#include <torch/nn/init.h>

#include <algorithm>
#include <set>

namespace shiftlab::adapters {

using core::str;

ResidualConvAdapterImpl::ResidualConvAdapterImpl(std::shared_ptr<torch::nn::Conv2dImpl> base, bool series)
    : base_(std::move(base)), series_(series) {
  const auto& o = base_->options;
  register_parameter("weight", base_->weight, base_->weight.requires_grad());
  if (base_->bias.defined()) register_parameter("bias", base_->bias, base_->bias.requires_grad());
  if (!series_) {
    // the 1×1 branch must produce W's output size; checked on two small probe inputs (odd and even)
    torch::NoGradGuard ng;
    const auto& k = o.kernel_size();
    const auto& d = o.dilation();
    const int64_t span = std::max(((*k)[0] - 1) * (*d)[0], ((*k)[1] - 1) * (*d)[1]) + 1;
    bool same = o.groups() == 1;
    for (int64_t extra : {4, 5}) {
      if (!same) break;
      auto probe = torch::zeros({1, o.in_channels(), span + extra, span + extra}, base_->weight.options());
      auto a = base_->forward(probe);
      auto b = torch::nn::functional::conv2d(probe, torch::zeros({1, o.in_channels(), 1, 1}, probe.options()),
                                             torch::nn::functional::Conv2dFuncOptions().stride(o.stride()));
      same = a.size(2) == b.size(2) && a.size(3) == b.size(3);
    }
    core::check_usage(same, "residual adapter (parallel): a 1x1 conv with this conv's stride gives another output "
                            "size (padding must be (k-1)/2, groups 1); use mode=series");
  }
  int64_t in = series_ ? o.out_channels() : o.in_channels();
  adapter = register_module(
      "adapter", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, o.out_channels(), 1)
                                       .stride(series_ ? torch::ExpandingArray<2>(1) : o.stride())
                                       .bias(false)));
  torch::NoGradGuard ng;
  adapter->weight.zero_();
}

torch::Tensor ResidualConvAdapterImpl::forward(torch::Tensor x) {
  auto y = base_->forward(x);
  return series_ ? y + adapter->forward(y) : y + adapter->forward(x);
}

std::vector<std::string> ResidualConvAdapterImpl::base_parameter_names() const {
  return base_->bias.defined() ? std::vector<std::string>{"weight", "bias"} : std::vector<std::string>{"weight"};
}

static bool is_kxk_conv(const torch::nn::Module& m) {
  auto* c = dynamic_cast<const torch::nn::Conv2dImpl*>(&m);
  return c && ((*c->options.kernel_size())[0] > 1 || (*c->options.kernel_size())[1] > 1);
}

static AdapterResult apply_residual(models::BackboneImpl& bb, const AdapterSpec& spec) {
  const bool series = spec.get_choice("mode", "parallel", {"parallel", "series"}) == "series";
  // candidates: the backbone's stages and blocks (ResNet layerK, layerK.i) and the k×k convs
  // themselves (incl. the stem conv)
  const auto blocks = bb.adapter_blocks();
  core::check_usage(bb.supports_adapters() && !blocks.empty(), "model.adapters: ", spec.str(),
                    ": residual adapters need a backbone with k×k convolution stages that honours inserted modules "
                    "(ResNet, EfficientNet, MobileNetV3, DenseNet); use bottleneck or lora on a ViT; this is a ",
                    bb.name());
  const std::set<std::string> block_set(blocks.begin(), blocks.end());
  auto mods = plain_modules(bb);
  std::vector<AdapterTarget> cands;
  for (auto& t : mods)
    if (block_set.count(t.name) || is_kxk_conv(*t.module)) cands.push_back(t);
  std::vector<std::string> convs;  // k×k convs covered by the matched targets, in module order
  auto targets = resolve_targets(spec, cands);
  for (auto& t : mods) {
    if (!is_kxk_conv(*t.module)) continue;
    bool covered = false;
    for (auto& m : targets) covered = covered || t.name == m.name || t.name.compare(0, m.name.size() + 1, m.name + ".") == 0;
    if (covered) convs.push_back(t.name);
  }
  AdapterResult r;
  for (auto& name : convs) {
    auto conv = std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(module_at(bb, name));
    std::shared_ptr<ResidualConvAdapterImpl> m;
    try {
      m = std::make_shared<ResidualConvAdapterImpl>(conv, series);
    } catch (const core::UsageError& e) {
      throw core::UsageError(str("model.adapters: ", spec.str(), ": '", name, "': ", e.what()));
    }
    replace_module_at(bb, name, m);
    r.modules.push_back(name);
    r.params += adapter_numel(*m);
  }
  return r;
}

SHIFTLAB_REGISTER(adapter_registry(), "residual",
                  "residual adapters (Rebuffi et al.): a zero-init 1x1 conv beside (mode=parallel) or after "
                  "(mode=series) each kxk conv of the matched stages / blocks / convs of the backbone",
                  (AdapterKind{{"mode"}, apply_residual}));

}  // namespace shiftlab::adapters
