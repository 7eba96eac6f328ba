#include "core/registry.h"

#include <algorithm>

namespace shiftlab::core {

std::map<std::string, RegistryView>& registry_kinds() {
  static std::map<std::string, RegistryView> kinds;
  return kinds;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string nearest(const std::string& name, const std::vector<std::string>& known) {
  // only suggest when reasonably close: at most a third of the length (min 2) edits away
  const size_t limit = std::max<size_t>(2, name.size() / 3);
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& k : known) {
    // a key that ends with what was typed ("lr" -> "train.lr") is a good suggestion too
    bool suffix = k.size() > name.size() && k.compare(k.size() - name.size(), name.size(), name) == 0 &&
                  k[k.size() - name.size() - 1] == '.';
    // the edit distance is at least the length difference: skip hopeless candidates without the
    // O(|name| x |k|) computation (a megabyte-long name from a file must stay cheap)
    size_t diff = name.size() > k.size() ? name.size() - k.size() : k.size() - name.size();
    size_t d = suffix ? 1 : std::string::npos;
    if (diff <= limit) d = std::min(d, edit_distance(name, k));
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  return best_d <= limit ? best : std::string();
}

}  // namespace shiftlab::core
