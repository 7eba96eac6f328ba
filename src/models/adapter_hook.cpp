#include "models/adapter_hook.h"

#include "models/backbones.h"

namespace shiftlab::models {

std::set<std::string> adapter_parameter_names(const torch::nn::Module& root) {
  std::set<std::string> out;
  for (auto& kv : root.named_modules("", /*include_self=*/true)) {
    auto* am = dynamic_cast<const AdapterModule*>(kv.value().get());
    if (!am) continue;
    auto base = am->base_parameter_names();
    std::set<std::string> base_set(base.begin(), base.end());
    const std::string prefix = kv.key().empty() ? "" : kv.key() + ".";
    for (auto& p : kv.value()->named_parameters(true))
      if (!base_set.count(p.key())) out.insert(prefix + p.key());
  }
  return out;
}

bool has_child(const torch::nn::Module& m, const std::string& name) {
  auto kids = m.named_children();
  return kids.find(name) != nullptr;
}

torch::Tensor run_post_adapter(torch::nn::Module& m, torch::Tensor y) {
  if (!has_child(m, "adapter")) return y;
  return call_child(m, "adapter", std::move(y));
}

}  // namespace shiftlab::models
