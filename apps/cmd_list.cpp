// shiftlab list [KIND]: what the registries hold, each entry with a one-line description (backbones
// also with their native input size and eval preprocessing, models::BackboneInfo).
#include <iostream>

#include "apps/command.h"
#include "core/error.h"
#include "models/backbones.h"

namespace shiftlab::apps {

static int run_list(const core::Config& cfg, const std::vector<std::string>&) {
  auto& kinds = core::registry_kinds();
  std::vector<std::string> names;
  for (auto& [k, v] : kinds)
    if (k != "commands") names.push_back(k);
  if (!cfg.positional.empty()) {
    const std::string& want = cfg.positional[0];
    if (!kinds.count(want) || want == "commands") {
      std::string known;
      for (auto& n : names) known += (known.empty() ? "" : ", ") + n;
      std::string hint = core::nearest(want, names);
      throw core::UsageError(core::str("unknown registry '", want, "'",
                                       hint.empty() ? "" : core::str(" — did you mean '", hint, "'?"),
                                       " (known: ", known, ")"));
    }
    names = {want};
  }
  for (auto& k : names) {
    const auto& view = kinds.at(k);
    std::cout << k << " — " << view.doc << "\n";
    auto entries = view.entries();
    if (entries.empty()) std::cout << "  (none registered)\n";
    for (auto& e : entries) {
      std::cout << "  " << e.name;
      if (e.name.size() < 22) std::cout << std::string(22 - e.name.size(), ' ');
      else std::cout << "  ";
      std::cout << e.doc << "\n";
      // backbones: the input their default pretrained weights expect (models::BackboneInfo)
      if (k == "backbones")
        if (const auto* info = models::backbone_info(e.name)) std::cout << std::string(26, ' ') << info->summary() << "\n";
    }
    if (names.size() > 1) std::cout << "\n";
  }
  return 0;
}

SHIFTLAB_COMMAND("list", "list what the registries hold (backbones, methods, adapters, datasets, ...)",
                 [] { return core::Schema(); }, core::Positionals{"[KIND]", 0, 1},
                 "Without KIND: every registry with its entries; with KIND (e.g. backbones, methods, adapters,\n"
                 "datasets, transforms): that one.\n"
                 "\n"
                 "Examples:\n"
                 "  shiftlab list\n"
                 "  shiftlab list methods",
                 run_list);

}  // namespace shiftlab::apps
