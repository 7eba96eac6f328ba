#include "losses/composite.h"

#include <set>
#include <sstream>

#include "core/error.h"
#include "losses/util.h"

namespace shiftlab::losses {

CompositeMethod::CompositeMethod(std::vector<Part> parts) : parts_(std::move(parts)) {
  core::check_usage(!parts_.empty(), "method: a composite needs at least one method");
  for (size_t i = 0; i < parts_.size(); ++i) register_module(core::str(i, "_", parts_[i].name), parts_[i].method);
}

LossTerms CompositeMethod::loss(const StepOutputs& out) {
  LossTerms r;
  std::set<std::string> seen;
  for (size_t i = 0; i < parts_.size(); ++i) {
    auto& p = parts_[i];
    LossTerms t = p.method->loss(out);
    auto wl = t.total * p.weight;
    r.total = r.total.defined() ? r.total + wl : wl;
    for (size_t k = 0; k < t.terms.size(); ++k) {
      std::string name = t.terms[k].first;
      if (name.rfind(p.name, 0) != 0) name = p.name + "_" + name;
      if (seen.count(name)) name = core::str(i, "_", name);
      seen.insert(name);
      r.terms.emplace_back(name, k == 0 ? t.terms[k].second * p.weight : t.terms[k].second);
    }
  }
  return r;
}

std::vector<std::string> CompositeMethod::taps() const {
  std::vector<std::string> v;
  std::set<std::string> seen;
  for (auto& p : parts_)
    for (auto& t : p.method->taps())
      if (seen.insert(t).second) v.push_back(t);
  return v;
}

bool CompositeMethod::uses_target() const {
  for (auto& p : parts_)
    if (p.method->uses_target()) return true;
  return false;
}

bool CompositeMethod::adabn() const {
  for (auto& p : parts_)
    if (p.method->adabn()) return true;
  return false;
}

std::string CompositeMethod::describe() const {
  std::string s;
  for (auto& p : parts_) {
    if (!s.empty()) s += " + ";
    if (p.weight != 1) s += detail::format_number(p.weight) + "*";
    s += p.method->describe();
  }
  return s;
}

}  // namespace shiftlab::losses
