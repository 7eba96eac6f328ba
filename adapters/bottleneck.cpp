#include "adapters/bottleneck.h"

#include <map>
#include <set>

#include "models/resnet.h"
#include "models/vit.h"

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
  // candidates: where an "adapter" child runs (ResNet stages; ViT attention / MLP) and ViT blocks
  struct Site {
    std::string name;
    std::shared_ptr<torch::nn::Module> module;
    int64_t channels;
    bool conv;
  };
  std::vector<AdapterTarget> cands;
  std::map<std::string, std::vector<Site>> sites;  // candidate name -> where adapters go
  auto mods = plain_modules(bb);
  if (auto* rn = dynamic_cast<models::ResNetImpl*>(&bb)) {
    const int64_t expansion = rn->feature_dim() / 512;
    for (int s = 0; s < 4; ++s) {
      std::string n = "layer" + std::to_string(s + 1);
      auto m = module_at(bb, n);
      cands.push_back({n, m});
      sites[n] = {{n, m, (int64_t{64} << s) * expansion, true}};
    }
  } else if (auto* vit = dynamic_cast<models::VisionTransformerImpl*>(&bb)) {
    const int64_t D = vit->config().dim;
    for (auto& t : mods) {
      if (!dynamic_cast<models::ViTBlockImpl*>(t.module.get())) continue;
      std::vector<Site> both;
      for (auto& kv : t.module->named_children()) {
        bool attn = dynamic_cast<models::ViTAttentionImpl*>(kv.value().get()) != nullptr;
        if (!attn && kv.key() != "mlp") continue;
        std::string n = t.name + "." + kv.key();
        Site site{n, kv.value(), D, false};
        both.push_back(site);
        sites[n] = {site};
      }
      sites[t.name] = both;
    }
    for (auto& t : mods)
      if (sites.count(t.name)) cands.push_back(t);
  } else {
    throw core::UsageError(str("model.adapters: ", spec.str(), ": bottleneck adapters need a ResNet or ViT backbone"));
  }
  AdapterResult r;
  std::set<std::string> done;
  for (auto& t : resolve_targets(spec, cands)) {
    for (auto& site : sites.at(t.name)) {
      if (done.count(site.name)) continue;
      done.insert(site.name);
      core::check_usage(!models::has_child(*site.module, "adapter"), "model.adapters: ", spec.str(), ": '", site.name,
                        "' already has a bottleneck adapter");
      auto m = std::make_shared<BottleneckAdapterImpl>(site.channels, dim, site.conv, act);
      site.module->register_module("adapter", m);
      r.modules.push_back(site.name);
      r.params += adapter_numel(*m);
    }
  }
  return r;
}

SHIFTLAB_REGISTER(adapter_registry(), "bottleneck",
                  "bottleneck adapters (Houlsby et al.): y + up(act(down(y))), zero-init up, after matched ResNet "
                  "stages or ViT blocks' attention / MLP; dim=64, act=relu|gelu",
                  (AdapterKind{{"dim", "act"}, apply_bottleneck}));

}  // namespace shiftlab::adapters
