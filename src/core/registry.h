// Name -> factory registries, one per kind of component (backbones, methods, adapters, ...).
//
// Each implementation registers itself with one line at the bottom of its source file:
//   SHIFTLAB_REGISTER(models::backbone_registry(), "resnet18", "ResNet-18 (torchvision)", make_r18);
// The core library is a shared library, so these static initialisers always run.
// Looking up an unknown name throws UsageError listing the known names; a duplicate is an error.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"

namespace shiftlab::core {

struct RegistryEntryInfo {
  std::string name;
  std::string doc;
};

/// Type-erased view of one registry, for `shiftlab list`.
struct RegistryView {
  std::string kind;                                     ///< plural noun: "backbones"
  std::string doc;                                      ///< one line about the kind
  std::function<std::vector<RegistryEntryInfo>()> entries;
};

/// All registries that exist, by kind name (sorted).
std::map<std::string, RegistryView>& registry_kinds();

/// Nearest names to `name` among `known` by edit distance (for "did you mean").
std::string nearest(const std::string& name, const std::vector<std::string>& known);
/// Levenshtein distance.
size_t edit_distance(const std::string& a, const std::string& b);

template <typename Factory>
class Registry {
 public:
  Registry(std::string kind, std::string doc) : kind_(std::move(kind)) {
    registry_kinds()[kind_] = RegistryView{kind_, std::move(doc), [this] { return list(); }};
  }

  /// Adds a factory; a duplicate name throws (caught at start-up as a programming error).
  bool add(const std::string& name, const std::string& doc, Factory f) {
    if (entries_.count(name)) throw Error(str("duplicate ", kind_, " registration '", name, "'"));
    entries_.emplace(name, Entry{doc, std::move(f)});
    return true;
  }

  bool has(const std::string& name) const { return entries_.count(name) > 0; }

  const Factory& get(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      std::string known;
      for (auto& [n, e] : entries_) known += (known.empty() ? "" : ", ") + n;
      std::string hint = nearest(name, names());
      throw UsageError(str("unknown ", singular(), " '", name, "'",
                           hint.empty() ? "" : str(" — did you mean '", hint, "'?"),
                           " (known: ", known, ")"));
    }
    return it->second.factory;
  }

  std::vector<std::string> names() const {
    std::vector<std::string> v;
    for (auto& [n, e] : entries_) v.push_back(n);
    return v;
  }

  std::vector<RegistryEntryInfo> list() const {
    std::vector<RegistryEntryInfo> v;
    for (auto& [n, e] : entries_) v.push_back({n, e.doc});
    return v;
  }

  const std::string& kind() const { return kind_; }

 private:
  struct Entry {
    std::string doc;
    Factory factory;
  };
  std::string singular() const {
    if (kind_.size() > 1 && kind_.back() == 's') return kind_.substr(0, kind_.size() - 1);
    return kind_;
  }
  std::string kind_;
  std::map<std::string, Entry> entries_;
};

}  // namespace shiftlab::core

#define SHIFTLAB_CONCAT_INNER(a, b) a##b
#define SHIFTLAB_CONCAT(a, b) SHIFTLAB_CONCAT_INNER(a, b)
/// Registers `factory` under `name` in `registry` at static-initialisation time.
#define SHIFTLAB_REGISTER(registry, name, doc, factory)                                     \
  static const bool SHIFTLAB_CONCAT(shiftlab_registered_, __COUNTER__) [[maybe_unused]] = \
      (registry).add(name, doc, factory)
