#include "adapters/bottleneck.h"

#include <map>
#include <set>

namespace shiftlab::adapters {

using core::str;

BottleneckAdapterImpl::BottleneckAdapterImpl(int64_t channels, int64_t dim, bool conv, const std::string& act)
    : conv_(conv), gelu_(act == "gelu") {
  core::check_usage(act == "relu" || act == "gelu", "bottleneck adapter: act must be relu or gelu (got '", act, "')");
  torch::NoGradGuard ng;
  if (conv_) {
    cdown_ = register_module("down", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, dim, 1)));
    cup_ = register_module("up", torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, channels, 1)));
    cup_->weight.zero_();
    cup_->bias.zero_();
  } else {
    ldown_ = register_module("down", torch::nn::Linear(channels, dim));
    lup_ = register_module("up", torch::nn::Linear(dim, channels));
    lup_->weight.zero_();
    lup_->bias.zero_();
  }
}

torch::Tensor BottleneckAdapterImpl::forward(torch::Tensor x) {
  auto h = conv_ ? cdown_->forward(x) : ldown_->forward(x);
  h = gelu_ ? torch::gelu(h) : torch::relu(h);
  return x + (conv_ ? cup_->forward(h) : lup_->forward(h));
}

static AdapterResult apply_bottleneck(models::BackboneImpl& bb, const AdapterSpec& spec) {
  const int64_t dim = spec.get_int("dim", 64, 1);
  const std::string act = spec.get_choice("act", "relu", {"relu", "gelu"});
  // where adapters go (the backbone's sites) and the names that select them: each site's own and
  // its group's (a ViT block selects its attention and MLP)
  const auto sites = bb.adapter_sites();
  core::check_usage(!sites.empty(), "model.adapters: ", spec.str(),
                    ": bottleneck adapters need a backbone with adapter sites (stage outputs or transformer "
                    "branches: ResNet, ViT, EfficientNet, MobileNetV3, DenseNet, ConvNeXt); this is a ",
                    bb.name());
  std::map<std::string, std::vector<const models::AdapterSite*>> selects;
  for (auto& site : sites) {
    selects[site.name].push_back(&site);
    if (!site.group.empty()) selects[site.group].push_back(&site);
  }
  std::vector<AdapterTarget> cands;  // in module order
  for (auto& t : plain_modules(bb))
    if (selects.count(t.name)) cands.push_back(t);
  AdapterResult r;
  std::set<std::string> done;
  for (auto& t : resolve_targets(spec, cands)) {
    for (const auto* site : selects.at(t.name)) {
      if (done.count(site->name)) continue;
      done.insert(site->name);
      auto module = module_at(bb, site->name);
      core::check_usage(!models::has_child(*module, "adapter"), "model.adapters: ", spec.str(), ": '", site->name,
                        "' already has a bottleneck adapter");
      auto m = std::make_shared<BottleneckAdapterImpl>(site->channels, dim, site->spatial, act);
      module->register_module("adapter", m);
      r.modules.push_back(site->name);
      r.params += adapter_numel(*m);
    }
  }
  return r;
}

SHIFTLAB_REGISTER(adapter_registry(), "bottleneck",
                  "bottleneck adapters (Houlsby et al.): y + up(act(down(y))), zero-init up, after the matched "
                  "adapter sites of the backbone (CNN stages, ViT blocks' attention / MLP); dim=64, act=relu|gelu",
                  (AdapterKind{{"dim", "act"}, apply_bottleneck}));

}  // namespace shiftlab::adapters
