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

namespace {

// The keys of an adversarial method's AdversarialOptions (DANN, CDAN) under section `sec`.
template <class Get>
void adversarial_fields(core::OptionTable<MethodOptions>& t, const std::string& sec, const std::string& what,
                        Get get) {
  t.field(sec + ".hidden", [get](MethodOptions& o) -> auto& { return get(o).hidden; },
          what + " discriminator width")
      .range(1, 1 << 20);
  t.field(sec + ".depth", [get](MethodOptions& o) -> auto& { return get(o).depth; },
          what + " discriminator hidden layers")
      .range(1, 16);
  t.field(sec + ".bn", [get](MethodOptions& o) -> auto& { return get(o).bn; },
          what + " discriminator: BatchNorm (else ReLU + Dropout 0.5)");
  t.field(sec + ".schedule", [get](MethodOptions& o) -> auto& { return get(o).schedule; },
          what + " GRL coefficient: ganin = max_lambda*(2/(1+exp(-gamma p))-1), constant = max_lambda")
      .choices({"ganin", "constant"});
  t.field(sec + ".gamma", [get](MethodOptions& o) -> auto& { return get(o).gamma; },
          what + " steepness gamma of the ganin schedule")
      .range(0, 1e4);
  t.field(sec + ".max_lambda", [get](MethodOptions& o) -> auto& { return get(o).max_lambda; },
          what + " final (or constant) GRL coefficient")
      .range(0, 1e4);
}

// Kernel bandwidth multipliers: at least one, each > 0.
void check_kernel_list(std::vector<double>& v, const std::string& key) {
  for (double x : v) core::check_usage(x > 0, key, ": '", core::format_number(x), "' is not a positive number");
  core::check_usage(!v.empty(), key, ": at least one value is needed");
}

}  // namespace

const core::OptionTable<MethodOptions>& method_option_table() {
  static const auto table = [] {
    using O = MethodOptions;
    core::OptionTable<O> t("losses::MethodOptions");
    t.field("method", &O::spec,
            "DA method spec: weighted sum of registered methods, e.g. \"dann + 0.1*entropy\", \"cdan+E\", "
            "\"0.5*dan + mcc\" (see `shiftlab list methods`)")
        .check([](std::string& v, const std::string&) { parse_method_spec(v); });  // fail early, at the app boundary
    adversarial_fields(t, "dann", "DANN", [](O& o) -> AdversarialOptions& { return o.dann; });
    t.field("dan.kernels", [](O& o) -> auto& { return o.dan.kernels; },
            "DAN Gaussian bandwidth multipliers of the mean pairwise sq. distance")
        .check(check_kernel_list);
    t.field("dan.estimator", [](O& o) -> auto& { return o.dan.estimator; }, "DAN MMD^2 estimator")
        .choices({"biased", "unbiased", "linear"});
    t.field("dan.taps", [](O& o) -> auto& { return o.dan.taps; },
            "DAN layers (\"features\" = classifier input; other backbone taps by name)")
        .check([](std::vector<std::string>& v, const std::string& key) {
          core::check_usage(!v.empty(), key, ": at least one tap is needed");
        });
    t.field("jan.kernels", [](O& o) -> auto& { return o.jan.kernels; }, "JAN feature-kernel bandwidth multipliers")
        .check(check_kernel_list);
    t.field("jan.softmax_sigma", [](O& o) -> auto& { return o.jan.softmax_sigma; },
            "JAN fixed bandwidth of the softmax-output kernel")
        .range(1e-6, 1e6);
    t.field("jan.estimator", [](O& o) -> auto& { return o.jan.estimator; }, "JAN joint MMD^2 estimator")
        .choices({"biased", "unbiased", "linear"});
    t.field("jan.taps", [](O& o) -> auto& { return o.jan.taps; }, "JAN feature layers joined with the softmax outputs");
    adversarial_fields(t, "cdan", "CDAN", [](O& o) -> AdversarialOptions& { return o.cdan; });
    t.field("cdan.entropy", [](O& o) -> auto& { return o.cdan.entropy; },
            "CDAN+E entropy conditioning (also set by \"cdan+E\" in the spec)");
    t.field("cdan.randomized", [](O& o) -> auto& { return o.cdan.randomized; },
            "CDAN: force the randomized multilinear map");
    t.field("cdan.random_dim", [](O& o) -> auto& { return o.cdan.random_dim; },
            "CDAN randomized map output dimension")
        .range(1, 1 << 20);
    t.field("cdan.random_threshold", [](O& o) -> auto& { return o.cdan.random_threshold; },
            "CDAN: use the randomized map when D*K exceeds this")
        .range(0, 1e12);
    t.field("coral.mean_term", [](O& o) -> auto& { return o.coral.mean_term; }, "CORAL: add TLlib's mean-difference term");
    t.field("mcc.temperature", [](O& o) -> auto& { return o.mcc.temperature; }, "MCC softmax temperature")
        .range(1e-6, 1e6);
    t.field("entropy.diversity", [](O& o) -> auto& { return o.entropy.diversity; },
            "entropy: weight of -H(mean prediction) (1 = information maximisation)")
        .range(0, 1e6);
    t.field("bsp.k", [](O& o) -> auto& { return o.bsp.k; }, "BSP: number of largest singular values penalised per domain")
        .range(1, 1 << 20);
    t.field("afn.delta", [](O& o) -> auto& { return o.afn.delta; }, "AFN (stepwise SAFN): feature-norm increase per step")
        .range(0, 1e6);
    t.field("mdd.margin", [](O& o) -> auto& { return o.mdd.margin; }, "MDD margin gamma").range(0, 1e6);
    t.field("mdd.width", [](O& o) -> auto& { return o.mdd.width; }, "MDD adversarial head width").range(1, 1 << 20);
    t.field("mdd.schedule", [](O& o) -> auto& { return o.mdd.schedule; },
            "MDD GRL coefficient schedule (as dann.schedule)")
        .choices({"ganin", "constant"});
    t.field("mdd.gamma", [](O& o) -> auto& { return o.mdd.gamma; }, "MDD steepness of the ganin schedule")
        .range(0, 1e4);
    t.field("mdd.max_lambda", [](O& o) -> auto& { return o.mdd.max_lambda; },
            "MDD final (or constant) GRL coefficient")
        .range(0, 1e4);
    return t;
  }();
  return table;
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
