#include "losses/methods.h"

#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "core/spec.h"
#include "losses/composite.h"
#include "losses/util.h"

namespace shiftlab::losses {

core::Registry<MethodFactory>& method_registry() {
  static core::Registry<MethodFactory> r("methods", "domain-adaptation methods (method = \"dann + 0.1*entropy\")");
  return r;
}

// ------------------------------------------------------------------ options

static void declare_adversarial(core::Schema& s, const std::string& sec, const std::string& what) {
  s.add_int(sec + ".hidden", 1024, what + " discriminator width").range(1, 1 << 20);
  s.add_int(sec + ".depth", 2, what + " discriminator hidden layers").range(1, 16);
  s.add_bool(sec + ".bn", true, what + " discriminator: BatchNorm (else ReLU + Dropout 0.5)");
  s.add_choice(sec + ".schedule", "ganin", {"ganin", "constant"},
               what + " GRL coefficient: ganin = max_lambda*(2/(1+exp(-gamma p))-1), constant = max_lambda");
  s.add_float(sec + ".gamma", 10, what + " steepness gamma of the ganin schedule").range(0, 1e4);
  s.add_float(sec + ".max_lambda", 1, what + " final (or constant) GRL coefficient").range(0, 1e4);
}

void declare_method_options(core::Schema& s) {
  s.add_string("method", "source_only",
               "DA method spec: weighted sum of registered methods, e.g. \"dann + 0.1*entropy\", \"cdan+E\", "
               "\"0.5*dan + mcc\" (see `shiftlab list methods`)");
  declare_adversarial(s, "dann", "DANN");
  s.add_list("dan.kernels", "0.125,0.25,0.5,1,2", "DAN Gaussian bandwidth multipliers of the mean pairwise sq. distance");
  s.add_choice("dan.estimator", "unbiased", {"biased", "unbiased", "linear"}, "DAN MMD^2 estimator");
  s.add_list("dan.taps", "features", "DAN layers (\"features\" = classifier input; other backbone taps by name)");
  s.add_list("jan.kernels", "0.125,0.25,0.5,1,2", "JAN feature-kernel bandwidth multipliers");
  s.add_float("jan.softmax_sigma", 0.92, "JAN fixed bandwidth of the softmax-output kernel").range(1e-6, 1e6);
  s.add_choice("jan.estimator", "unbiased", {"biased", "unbiased", "linear"}, "JAN joint MMD^2 estimator");
  s.add_list("jan.taps", "features", "JAN feature layers joined with the softmax outputs");
  declare_adversarial(s, "cdan", "CDAN");
  s.add_bool("cdan.entropy", false, "CDAN+E entropy conditioning (also set by \"cdan+E\" in the spec)");
  s.add_bool("cdan.randomized", false, "CDAN: force the randomized multilinear map");
  s.add_int("cdan.random_dim", 1024, "CDAN randomized map output dimension").range(1, 1 << 20);
  s.add_int("cdan.random_threshold", 4096, "CDAN: use the randomized map when D*K exceeds this").range(0, 1e12);
  s.add_bool("coral.mean_term", false, "CORAL: add TLlib's mean-difference term");
  s.add_float("mcc.temperature", 2.5, "MCC softmax temperature").range(1e-6, 1e6);
  s.add_float("entropy.diversity", 0, "entropy: weight of -H(mean prediction) (1 = information maximisation)")
      .range(0, 1e6);
  s.add_int("bsp.k", 1, "BSP: number of largest singular values penalised per domain").range(1, 1 << 20);
  s.add_float("afn.delta", 1, "AFN (stepwise SAFN): feature-norm increase per step").range(0, 1e6);
  s.add_float("mdd.margin", 4, "MDD margin gamma").range(0, 1e6);
  s.add_int("mdd.width", 1024, "MDD adversarial head width").range(1, 1 << 20);
  s.add_choice("mdd.schedule", "ganin", {"ganin", "constant"}, "MDD GRL coefficient schedule (as dann.schedule)");
  s.add_float("mdd.gamma", 10, "MDD steepness of the ganin schedule").range(0, 1e4);
  s.add_float("mdd.max_lambda", 0.1, "MDD final (or constant) GRL coefficient").range(0, 1e4);
}

static std::vector<double> float_list(const core::Config& c, const std::string& key) {
  std::vector<double> v;
  for (auto& item : c.get_list(key)) {
    char* end = nullptr;
    double x = std::strtod(item.c_str(), &end);
    core::check_usage(end && *end == '\0' && std::isfinite(x) && x > 0, key, ": '", item,
                      "' is not a positive number");
    v.push_back(x);
  }
  core::check_usage(!v.empty(), key, ": at least one value is needed");
  return v;
}

static void read_adversarial(const core::Config& c, const std::string& sec, AdversarialOptions& o) {
  o.hidden = c.get_int(sec + ".hidden");
  o.depth = c.get_int(sec + ".depth");
  o.bn = c.get_bool(sec + ".bn");
  o.schedule = c.get_string(sec + ".schedule");
  o.gamma = c.get_float(sec + ".gamma");
  o.max_lambda = c.get_float(sec + ".max_lambda");
}

MethodOptions method_options_from(const core::Config& c) {
  MethodOptions o;
  o.spec = c.get_string("method");
  parse_method_spec(o.spec);  // fail early, at the app boundary
  read_adversarial(c, "dann", o.dann);
  o.dan.kernels = float_list(c, "dan.kernels");
  o.dan.estimator = c.get_string("dan.estimator");
  o.dan.taps = c.get_list("dan.taps");
  core::check_usage(!o.dan.taps.empty(), "dan.taps: at least one tap is needed");
  o.jan.kernels = float_list(c, "jan.kernels");
  o.jan.softmax_sigma = c.get_float("jan.softmax_sigma");
  o.jan.estimator = c.get_string("jan.estimator");
  o.jan.taps = c.get_list("jan.taps");
  read_adversarial(c, "cdan", o.cdan);
  o.cdan.entropy = c.get_bool("cdan.entropy");
  o.cdan.randomized = c.get_bool("cdan.randomized");
  o.cdan.random_dim = c.get_int("cdan.random_dim");
  o.cdan.random_threshold = c.get_int("cdan.random_threshold");
  o.coral.mean_term = c.get_bool("coral.mean_term");
  o.mcc.temperature = c.get_float("mcc.temperature");
  o.entropy.diversity = c.get_float("entropy.diversity");
  o.bsp.k = c.get_int("bsp.k");
  o.afn.delta = c.get_float("afn.delta");
  o.mdd.margin = c.get_float("mdd.margin");
  o.mdd.width = c.get_int("mdd.width");
  o.mdd.schedule = c.get_string("mdd.schedule");
  o.mdd.gamma = c.get_float("mdd.gamma");
  o.mdd.max_lambda = c.get_float("mdd.max_lambda");
  return o;
}

// ------------------------------------------------------------------ spec grammar

std::vector<MethodTerm> parse_method_spec(const std::string& spec) {
  // the grammar is core::parse_spec_sum (core/spec.h); "+E" is a bare term E after cdan
  core::SpecParser p("method", spec);
  if (p.at_end()) p.fail(0, "empty spec", " (e.g. 'dann + 0.1*entropy'; see `shiftlab list methods`)");
  std::vector<MethodTerm> terms;
  for (auto& term : core::parse_spec_sum(p, "a method name")) {
    const core::SpecItem& it = term.item;
    if (it.name == "E" && !term.weight && !it.parens && !method_registry().has("E")) {
      if (terms.empty() || terms.back().name != "cdan" || terms.back().entropy_flag)
        p.fail(it.pos, "'+E' (entropy conditioning) may only follow 'cdan'");
      terms.back().entropy_flag = true;
      continue;
    }
    MethodTerm t;
    if (term.weight) {
      const core::SpecValue& w = *term.weight;
      if (!w.is_number() || !std::isfinite(w.number) || w.number < 0)
        p.fail(w.pos, core::str("bad weight '", w.str(), "'"), " (a weight is a non-negative number)");
      t.weight = w.number;
    }
    if (!method_registry().has(it.name)) p.fail_unknown("method", it.name, it.pos, method_registry().names());
    if (it.parens)
      p.fail(it.paren_pos, core::str("a method term takes no arguments"),
             core::str(" (set the [", it.name, "] options instead)"));
    t.name = it.name;
    terms.push_back(t);
  }
  return terms;
}

std::string format_method_spec(const std::vector<MethodTerm>& terms) {
  std::string s;
  for (auto& t : terms) {
    if (!s.empty()) s += " + ";
    if (t.weight != 1) s += detail::format_number(t.weight) + "*";
    s += t.name;
    if (t.entropy_flag) s += "+E";
  }
  return s;
}

MethodPtr make_method(const MethodOptions& o, int64_t feature_dim, int64_t num_classes,
                      const std::map<std::string, int64_t>& tap_dims) {
  auto terms = parse_method_spec(o.spec);
  std::vector<CompositeMethod::Part> parts;
  for (auto& t : terms) {
    MethodOptions sub = o;
    if (t.entropy_flag) sub.cdan.entropy = true;
    parts.push_back({t.weight, t.name, method_registry().get(t.name)(sub, feature_dim, num_classes, tap_dims)});
  }
  if (parts.size() == 1 && parts[0].weight == 1) return parts[0].method;
  return std::make_shared<CompositeMethod>(std::move(parts));
}

}  // namespace shiftlab::losses
