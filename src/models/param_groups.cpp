#include "models/param_groups.h"

#include <cmath>
#include <cstdio>
#include <set>

#include "core/log.h"
#include "core/spec.h"
#include "models/adapter_hook.h"

namespace shiftlab::models {

const core::OptionTable<ParamGroupOptions>& param_group_option_table() {
  static const auto table = [] {
    using O = ParamGroupOptions;
    core::OptionTable<O> t("models::ParamGroupOptions");
    t.field("optim.lr", &O::lr, "learning rate of the head (backbone groups: × layer_decay^distance)").range(0, 1e3);
    t.field("optim.layer_decay", &O::layer_decay, "layer-wise lr decay per layer group away from the head")
        .range(0, 1);
    t.field("optim.weight_decay", &O::weight_decay, "weight decay").range(0, 10);
    t.field("optim.no_decay_bn_bias", &O::no_decay_bn_bias,
            "no weight decay on biases, norm weights, tokens, position embeddings");
    t.field_as(
        "optim.group_lr", &O::lr_overrides, core::OptType::String,
        [](const std::string& text, const std::string&) { return parse_group_lr(text); },
        [](const std::map<std::string, double>& m) {
          std::string out;
          for (auto& [name, lr] : m) out += (out.empty() ? "" : ",") + name + "=" + core::format_number(lr);
          return out;
        },
        "per-group lr overrides, e.g. layer4=1e-3,head=1e-2");
    return t;
  }();
  return table;
}

std::map<std::string, double> parse_group_lr(const std::string& spec) {
  // the grammar is core::parse_spec_args (core/spec.h): name=lr, ...
  core::SpecParser p("optim.group_lr", spec);
  std::map<std::string, double> m;
  for (auto& a : core::parse_spec_args(p)) {
    if (a.key.empty()) p.fail(a.value.pos, core::str("'", a.value.str(), "' is not name=lr"), " (e.g. layer4=1e-3, head=1e-2)");
    if (!a.value.is_number() || !std::isfinite(a.value.number) || a.value.number < 0)
      p.fail(a.value.pos, core::str("the lr of group '", a.key, "' must be a non-negative number, not '", a.value.str(), "'"));
    m[a.key] = a.value.number;
  }
  return m;
}

bool is_no_decay(const std::string& name, const torch::Tensor& p) {
  if (p.dim() <= 1) return true;  // biases, BatchNorm / LayerNorm weights
  for (const char* tok : {"cls_token", "class_token", "pos_embed", "pos_embedding"}) {
    std::string t = tok;
    auto dot = name.rfind('.');
    std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
    if (leaf == t) return true;
  }
  return false;
}

std::vector<ParamGroup> make_param_groups(ClassifierImpl& model, const ParamGroupOptions& o) {
  auto groups = model.layer_groups();
  std::vector<ParamGroup> out;
  std::set<std::string> names;
  for (auto& g : groups) names.insert(g.name);
  names.insert("extra");
  for (auto& [n, lr] : o.lr_overrides) {
    if (!names.count(n)) {
      std::string known;
      for (auto& g : groups) known += (known.empty() ? "" : ", ") + g.name;
      std::string hint = core::nearest(n, std::vector<std::string>(names.begin(), names.end()));
      throw core::UsageError(core::str("optim.group_lr: the model has no layer group '", n, "'",
                                       hint.empty() ? "" : core::str(" — did you mean '", hint, "'?"),
                                       " (groups: ", known, ")"));
    }
  }
  const int64_t G = static_cast<int64_t>(groups.size());
  std::vector<std::vector<std::pair<std::string, torch::Tensor>>> members(G + 1);  // last: extra
  std::set<std::string> adapter_params;  // full names; adapters' own parameters go to "extra"
  for (auto& n : adapter_parameter_names(*model.backbone())) adapter_params.insert("backbone." + n);
  for (auto& kv : model.named_parameters(true)) {
    if (!kv.value().requires_grad()) continue;
    if (adapter_params.count(kv.key())) {
      members[G].push_back({kv.key(), kv.value()});
      continue;
    }
    int64_t best = G;
    size_t best_len = 0;
    for (int64_t g = 0; g < G; ++g)
      for (auto& p : groups[g].prefixes)
        if (kv.key().compare(0, p.size(), p) == 0 && p.size() >= best_len) best = g, best_len = p.size();
    members[best].push_back({kv.key(), kv.value()});
  }
  if (!members[G].empty()) {
    std::string list;
    for (auto& [n, t] : members[G]) list += (list.empty() ? "" : ", ") + n;
    core::log_debug("adapter parameters and parameters outside every layer group (group 'extra', head lr): ", list);
  }
  for (int64_t g = 0; g <= G; ++g) {
    std::string name = g < G ? groups[g].name : "extra";
    // head (last of groups) has distance 0, the deepest backbone group 1, ...; extra: head lr
    int64_t distance = g < G ? G - 1 - g : 0;
    double lr = o.lr * std::pow(o.layer_decay, static_cast<double>(distance));
    if (o.lr_overrides.count(name)) lr = o.lr_overrides.at(name);
    ParamGroup decay{name, {}, lr, o.weight_decay, 0}, nodecay{name + ".no_decay", {}, lr, 0.0, 0};
    for (auto& [n, t] : members[g]) {
      auto& dst = (o.no_decay_bn_bias && is_no_decay(n, t)) ? nodecay : decay;
      dst.params.push_back(t);
      dst.numel += t.numel();
    }
    if (!decay.params.empty()) out.push_back(std::move(decay));
    if (!nodecay.params.empty()) out.push_back(std::move(nodecay));
  }
  return out;
}

std::string param_group_table(const std::vector<ParamGroup>& groups) {
  std::string s;
  char line[256];
  std::snprintf(line, sizeof line, "%-24s %8s %12s %12s %10s\n", "group", "tensors", "params", "lr", "wd");
  s += line;
  int64_t tensors = 0, numel = 0;
  for (auto& g : groups) {
    std::snprintf(line, sizeof line, "%-24s %8zu %12lld %12.4g %10.3g\n", g.name.c_str(), g.params.size(),
                  static_cast<long long>(g.numel), g.lr, g.weight_decay);
    s += line;
    tensors += static_cast<int64_t>(g.params.size());
    numel += g.numel;
  }
  std::snprintf(line, sizeof line, "%-24s %8lld %12lld\n", "total trainable", static_cast<long long>(tensors),
                static_cast<long long>(numel));
  s += line;
  return s;
}

}  // namespace shiftlab::models
