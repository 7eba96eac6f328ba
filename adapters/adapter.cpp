#include "adapters/adapter.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>

#include "core/log.h"
#include "core/spec.h"
#include "models/adapter_hook.h"
#include "models/resnet.h"
#include "models/vit.h"

namespace shiftlab::adapters {

using core::str;
using core::UsageError;

core::Registry<AdapterKind>& adapter_registry() {
  static core::Registry<AdapterKind> r("adapters", "parameter-efficient modules inserted into a backbone (model.adapters)");
  return r;
}

// ---------------------------------------------------------------- spec

std::string AdapterSpec::str() const {
  std::string s = kind;
  if (!args.empty()) {
    s += "(";
    for (size_t i = 0; i < args.size(); ++i) s += (i ? "," : "") + args[i].first + "=" + args[i].second;
    s += ")";
  }
  s += "@";
  for (size_t i = 0; i < patterns.size(); ++i) s += (i ? "," : "") + patterns[i];
  return s;
}

bool AdapterSpec::has(const std::string& key) const {
  for (auto& [k, v] : args)
    if (k == key) return true;
  return false;
}

static const std::string* arg_of(const AdapterSpec& s, const std::string& key) {
  for (auto& [k, v] : s.args)
    if (k == key) return &v;
  return nullptr;
}

int64_t AdapterSpec::get_int(const std::string& key, int64_t def, int64_t lo) const {
  const std::string* v = arg_of(*this, key);
  if (!v) return def;
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v->c_str(), &end, 10);
  if (v->empty() || *end != '\0' || errno != 0 || x < lo)
    throw UsageError(core::str("model.adapters: ", this->str(), ": ", key, " must be an integer >= ", lo, " (got '", *v, "')"));
  return x;
}

double AdapterSpec::get_float(const std::string& key, double def, double lo, double hi) const {
  const std::string* v = arg_of(*this, key);
  if (!v) return def;
  char* end = nullptr;
  double x = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0' || !std::isfinite(x) || x < lo || x > hi)
    throw UsageError(core::str("model.adapters: ", this->str(), ": ", key, " must be a number in [", lo, ", ", hi,
                         "] (got '", *v, "')"));
  return x;
}

std::string AdapterSpec::get_choice(const std::string& key, const std::string& def,
                                    const std::vector<std::string>& choices) const {
  const std::string* v = arg_of(*this, key);
  if (!v) return def;
  for (auto& c : choices)
    if (c == *v) return c;
  std::string known;
  for (auto& c : choices) known += (known.empty() ? "" : ", ") + c;
  throw UsageError(core::str("model.adapters: ", this->str(), ": ", key, " must be one of ", known, " (got '", *v, "')"));
}

static std::string join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

std::vector<AdapterSpec> parse_adapter_specs(const std::string& text) {
  // the grammar is core::parse_spec_targets (core/spec.h); kinds and argument names are ours
  core::SpecParser p("model.adapters", text);
  std::vector<AdapterSpec> out;
  for (auto& t : core::parse_spec_targets(p, "an adapter kind", "a target module pattern")) {
    AdapterSpec s;
    s.kind = t.item.name;
    if (!adapter_registry().has(s.kind)) p.fail_unknown("adapter", s.kind, t.item.pos, adapter_registry().names());
    const auto& kind = adapter_registry().get(s.kind);
    for (auto& a : t.item.args) {
      if (a.key.empty())
        p.fail(a.value.pos, str("argument '", a.value.str(), "' is not key=value"),
               str(" (", s.kind, " arguments: ", kind.args.empty() ? std::string("none") : join(kind.args), ")"));
      bool ok = false;
      for (auto& k : kind.args) ok = ok || k == a.key;
      if (!ok)
        p.fail(a.key_pos, str(s.kind, " takes no argument '", a.key, "'"),
               str(" (arguments: ", kind.args.empty() ? std::string("none") : join(kind.args), ")"));
      s.args.emplace_back(a.key, a.value.is_word() ? a.value.text : a.value.str());
    }
    for (auto& g : t.globs) s.patterns.push_back(g.text);
    out.push_back(std::move(s));
  }
  return out;
}

std::string format_adapter_specs(const std::vector<AdapterSpec>& specs) {
  std::string s;
  for (auto& x : specs) s += (s.empty() ? "" : "; ") + x.str();
  return s;
}

// ---------------------------------------------------------------- patterns and targets

static bool glob(const char* p, const char* n) {
  while (*p) {
    if (p[0] == '*' && p[1] == '*') {
      p += 2;
      for (const char* k = n;; ++k) {
        if (glob(p, k)) return true;
        if (!*k) return false;
      }
    }
    if (*p == '*') {
      ++p;
      for (const char* k = n;; ++k) {
        if (glob(p, k)) return true;
        if (!*k || *k == '.') return false;
      }
    }
    if (*p != *n) return false;
    ++p, ++n;
  }
  return *n == '\0';
}

bool match_pattern(const std::string& pattern, const std::string& name) { return glob(pattern.c_str(), name.c_str()); }

std::vector<AdapterTarget> resolve_targets(const AdapterSpec& spec, const std::vector<AdapterTarget>& candidates) {
  std::vector<bool> hit(candidates.size(), false);
  for (auto& p : spec.patterns) {
    bool any = false;
    for (size_t i = 0; i < candidates.size(); ++i)
      if (match_pattern(p, candidates[i].name)) hit[i] = any = true;
    if (!any) {
      std::string list;
      const size_t show = 16;
      for (size_t i = 0; i < candidates.size() && i < show; ++i) list += (i ? ", " : "") + candidates[i].name;
      if (candidates.size() > show) list += str(", ... (", candidates.size(), " in all)");
      throw UsageError(str("model.adapters: ", spec.str(), ": pattern '", p, "' matches no module a ", spec.kind,
                           " adapter can take (candidates: ", candidates.empty() ? std::string("none") : list,
                           "; '*' matches within one name segment, '**' across dots)"));
    }
  }
  std::vector<AdapterTarget> out;
  for (size_t i = 0; i < candidates.size(); ++i)
    if (hit[i]) out.push_back(candidates[i]);
  return out;
}

std::vector<AdapterTarget> plain_modules(torch::nn::Module& root) {
  std::vector<AdapterTarget> out;
  std::vector<std::string> adapter_prefixes;
  for (auto& kv : root.named_modules("", /*include_self=*/false)) {
    const std::string& n = kv.key();
    bool inside = false;
    for (auto& p : adapter_prefixes) inside = inside || n.compare(0, p.size(), p) == 0;
    if (inside) continue;
    if (dynamic_cast<models::AdapterModule*>(kv.value().get())) {
      adapter_prefixes.push_back(n + ".");
      continue;
    }
    out.push_back({n, kv.value()});
  }
  return out;
}

std::shared_ptr<torch::nn::Module> module_at(torch::nn::Module& root, const std::string& path) {
  auto mods = root.named_modules("", /*include_self=*/false);
  if (auto* m = mods.find(path)) return *m;
  throw core::Error(str("no module '", path, "' in ", root.name()));
}

void replace_module_at(torch::nn::Module& root, const std::string& path, std::shared_ptr<torch::nn::Module> m) {
  auto dot = path.rfind('.');
  auto parent = dot == std::string::npos ? std::shared_ptr<torch::nn::Module>() : module_at(root, path.substr(0, dot));
  torch::nn::Module& p = parent ? *parent : root;
  p.replace_module(dot == std::string::npos ? path : path.substr(dot + 1), std::move(m));
}

int64_t adapter_numel(const torch::nn::Module& m) {
  int64_t n = 0;
  auto params = m.named_parameters(true);
  for (auto& name : models::adapter_parameter_names(m))
    if (auto* t = params.find(name)) n += t->numel();
  return n;
}

// ---------------------------------------------------------------- options and apply

const core::OptionTable<AdapterOptions>& adapter_option_table() {
  static const auto table = [] {
    core::OptionTable<AdapterOptions> t("adapters::AdapterOptions");
    t.field_as(
        "model.adapters", &AdapterOptions::specs, core::OptType::String,
        [](const std::string& text, const std::string&) { return parse_adapter_specs(text); },
        [](const std::vector<AdapterSpec>& specs) { return format_adapter_specs(specs); },
        "adapters inserted into the backbone (ResNet / ViT), trained even when it is frozen: "
        "kind[(key=value,...)]@pattern[,pattern] joined by ';', e.g. 'residual@layer3,layer4; "
        "bottleneck(dim=64)@layer4; lora(r=8,alpha=16,dropout=0)@blocks.*.attn.qkv'. Kinds: residual "
        "(mode=parallel|series), bottleneck (dim, act=relu|gelu), lora (r, alpha, dropout); patterns name "
        "backbone modules, '*' within a name segment, '**' across dots (see `shiftlab list adapters`)");
    return t;
  }();
  return table;
}

std::string AdaptersReport::summary() const {
  std::string s;
  for (auto& [spec, r] : applied)
    s += str(s.empty() ? "" : "; ", spec, " -> ", r.modules.size(), " module", r.modules.size() == 1 ? "" : "s", ", +",
             r.params, " parameters");
  return str("adapters: ", s.empty() ? std::string("none") : s, " (total +", params, ")");
}

AdaptersReport apply_adapters(models::BackboneImpl& bb, const AdapterOptions& o) {
  AdaptersReport rep;
  if (o.specs.empty()) return rep;
  // each kind checks what it needs of the backbone (models::BackboneImpl: supports_adapters(),
  // adapter_sites(), adapter_blocks())
  for (auto& spec : o.specs) {
    auto r = adapter_registry().get(spec.kind).apply(bb, spec);
    core::log_debug("adapter ", spec.str(), ": ", join(r.modules));
    rep.params += r.params;
    rep.applied.emplace_back(spec.str(), std::move(r));
  }
  return rep;
}

}  // namespace shiftlab::adapters
