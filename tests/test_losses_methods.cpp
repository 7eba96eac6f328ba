// The method registry, the spec grammar (good and bad specs, round trip), composite weighting and
// term names, options (declare / from config), and that every method's modules are parameters.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "core/options.h"
#include "losses/baseline.h"
#include "losses/cdan.h"
#include "losses/composite.h"
#include "losses/dann.h"
#include "losses/methods.h"
#include "support/testing.h"

using namespace shiftlab;
using namespace shiftlab::losses;

static StepOutputs outputs(int64_t n, int64_t d, int64_t k) {
  StepOutputs o;
  o.f_s = torch::randn({n, d});
  o.f_t = torch::randn({n, d}) + 0.5;
  o.logits_s = torch::randn({n, k});
  o.logits_t = torch::randn({n, k});
  o.labels_s = torch::randint(0, k, {n}, torch::kLong);
  o.progress = 0.5;
  return o;
}

TEST(Methods, RegistryHoldsEveryMethod) {
  auto names = method_registry().names();
  for (std::string want :
       {"source_only", "adabn", "dann", "dan", "jan", "cdan", "coral", "mcc", "entropy", "bsp", "afn", "mdd"})
    EXPECT_TRUE(method_registry().has(want)) << want;
  EXPECT_TRUE(core::registry_kinds().count("methods"));
}

TEST(Methods, SpecParserAcceptsTheGrammar) {
  auto t = parse_method_spec("dann + 0.1*entropy");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].name, "dann");
  EXPECT_DOUBLE_EQ(t[0].weight, 1);
  EXPECT_EQ(t[1].name, "entropy");
  EXPECT_DOUBLE_EQ(t[1].weight, 0.1);
  t = parse_method_spec("cdan+E");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_TRUE(t[0].entropy_flag);
  t = parse_method_spec(" 0.5 * dan+mcc ");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_DOUBLE_EQ(t[0].weight, 0.5);
  EXPECT_EQ(t[1].name, "mcc");
  t = parse_method_spec("2*cdan + E + 1e-2*entropy");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_TRUE(t[0].entropy_flag);
  EXPECT_DOUBLE_EQ(t[1].weight, 0.01);
  // round trip: canonical text parses back to the same terms and is a fixed point
  for (std::string s : {"dann + 0.1*entropy", "cdan+E", "0.5*dan + mcc", "source_only", "0.3*cdan+E + 2*coral"}) {
    auto a = parse_method_spec(s);
    auto text = format_method_spec(a);
    auto b = parse_method_spec(text);
    ASSERT_EQ(a.size(), b.size()) << s;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].name, b[i].name);
      EXPECT_EQ(a[i].weight, b[i].weight);
      EXPECT_EQ(a[i].entropy_flag, b[i].entropy_flag);
    }
    EXPECT_EQ(format_method_spec(b), text);
  }
  EXPECT_EQ(format_method_spec(parse_method_spec("dann+0.1*entropy")), "dann + 0.1*entropy");
}

static std::string usage_error(const std::string& spec) {
  try {
    parse_method_spec(spec);
  } catch (const core::UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(Methods, SpecParserRejectsBadSpecsNamingTheToken) {
  auto e = usage_error("dann + entropi");
  EXPECT_NE(e.find("'entropi'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'entropy'"), std::string::npos) << e;
  EXPECT_NE(e.find("known:"), std::string::npos) << e;
  EXPECT_NE(e.find("coral"), std::string::npos) << e;
  e = usage_error("x*dann");
  EXPECT_NE(e.find("bad weight 'x'"), std::string::npos) << e;
  EXPECT_NE(usage_error("-1*dann").find("bad weight"), std::string::npos);
  EXPECT_NE(usage_error("dann +").find("expected a method name after '+' at column 7"), std::string::npos);
  EXPECT_NE(usage_error("").find("empty spec"), std::string::npos);
  EXPECT_NE(usage_error("mcc+E").find("'+E'"), std::string::npos);
  EXPECT_NE(usage_error("cdan+E+E").find("'+E'"), std::string::npos);
  EXPECT_NE(usage_error("0.5*").find("expected a method name after '*' at column 5"), std::string::npos);
}

TEST(Methods, SingleTermBuildsTheMethodItselfOtherwiseAComposite) {
  MethodOptions o;
  o.spec = "dann";
  EXPECT_TRUE(std::dynamic_pointer_cast<DannMethod>(make_method(o, 8, 3)));
  o.spec = "0.5*dann";
  EXPECT_TRUE(std::dynamic_pointer_cast<CompositeMethod>(make_method(o, 8, 3)));
  o.spec = "cdan+E";
  auto m = make_method(o, 8, 3);
  ASSERT_TRUE(std::dynamic_pointer_cast<CdanMethod>(m));
  EXPECT_EQ(m->describe().rfind("cdan+E(", 0), 0u) << m->describe();
  o.spec = "nope";
  EXPECT_THROW(make_method(o, 8, 3), core::UsageError);
}

TEST(Methods, CompositeWeightsTermsAndNames) {
  torch::manual_seed(0);
  MethodOptions o;
  o.dann.hidden = 8;
  o.spec = "dann + 0.1*entropy + 0.5*mcc";
  auto m = make_method(o, 6, 4);
  auto comp = std::dynamic_pointer_cast<CompositeMethod>(m);
  ASSERT_TRUE(comp);
  auto out = outputs(8, 6, 4);
  auto r = m->loss(out);
  auto& parts = comp->parts();
  ASSERT_EQ(parts.size(), 3u);
  double d = parts[0].method->loss(out).total.item<double>();
  double h = parts[1].method->loss(out).total.item<double>();
  double c = parts[2].method->loss(out).total.item<double>();
  EXPECT_NEAR(r.total.item<double>(), d + 0.1 * h + 0.5 * c, 1e-6);
  std::vector<std::string> names;
  for (auto& [n, t] : r.terms) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"dann", "dann_acc", "dann_lambda", "entropy", "mcc"}));
  EXPECT_NEAR(r.terms[0].second.item<double>(), d, 1e-6);
  EXPECT_NEAR(r.terms[3].second.item<double>(), 0.1 * h, 1e-6);
  EXPECT_NEAR(r.terms[4].second.item<double>(), 0.5 * c, 1e-6);
  EXPECT_NEAR(r.terms[2].second.item<double>(), 2.0 / (1.0 + std::exp(-5.0)) - 1.0, 1e-6);  // unweighted
  EXPECT_EQ(m->describe(), "dann(hidden=8, depth=2, bn=on, gamma=10, max_lambda=1) + 0.1*entropy + 0.5*mcc(T=2.5)");
  // total has a gradient path to the features
  out.f_s.set_requires_grad(true);
  m->loss(out).total.backward();
  EXPECT_TRUE(out.f_s.grad().defined());
  // two adversarial parts keep their own lambda names, a repeated method gets its index
  o.spec = "dann + cdan + 0.5*dann";
  auto r2 = make_method(o, 6, 4)->loss(outputs(8, 6, 4));
  names.clear();
  for (auto& [n, t] : r2.terms) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"dann", "dann_acc", "dann_lambda", "cdan", "cdan_acc", "cdan_lambda",
                                             "2_dann", "2_dann_acc", "2_dann_lambda"}));
}

TEST(Methods, EveryMethodsModulesAreParameters) {
  torch::manual_seed(1);
  MethodOptions o;
  o.dann.hidden = 8;
  o.cdan.hidden = 8;
  for (auto& name : method_registry().names()) {
    o.spec = name;
    auto m = make_method(o, 6, 4);
    bool has_modules = name == "dann" || name == "cdan" || name == "mdd";
    EXPECT_EQ(m->parameters().size() > 0, has_modules) << name;
    // the composite exposes its parts' parameters under stable names
    o.spec = "0.5*" + name + " + entropy";
    auto c = make_method(o, 6, 4);
    EXPECT_EQ(c->parameters().size(), m->parameters().size()) << name;
    if (has_modules) {
      EXPECT_TRUE(c->named_parameters().contains(
          "0_" + name + (name == "mdd" ? ".adv_head.0.weight" : ".discriminator.layers.0.weight")));
    }
  }
  o.spec = "dann + cdan";
  o.cdan.randomized = true;
  o.cdan.random_dim = 16;
  auto m = make_method(o, 6, 4);
  auto params = m->named_parameters();
  EXPECT_TRUE(params.contains("0_dann.discriminator.layers.6.bias"));
  EXPECT_TRUE(params.contains("1_cdan.discriminator.layers.0.weight"));
  EXPECT_EQ(params["1_cdan.discriminator.layers.0.weight"].size(1), 16);
  EXPECT_TRUE(m->named_buffers().contains("1_cdan.Rf"));
}

TEST(Methods, FlagsTapsAndZeroLosses) {
  MethodOptions o;
  o.spec = "source_only";
  auto so = make_method(o, 6, 4);
  EXPECT_FALSE(so->uses_target());
  EXPECT_FALSE(so->adabn());
  auto out = outputs(4, 6, 4);
  auto r = so->loss(out);
  EXPECT_EQ(r.total.item<double>(), 0.0);
  EXPECT_FALSE(r.total.requires_grad());
  EXPECT_TRUE(r.terms.empty());
  o.spec = "adabn";
  auto ab = make_method(o, 6, 4);
  EXPECT_TRUE(ab->adabn());
  EXPECT_FALSE(ab->uses_target());
  EXPECT_EQ(ab->loss(out).total.item<double>(), 0.0);
  o.spec = "adabn + entropy";
  auto c = make_method(o, 6, 4);
  EXPECT_TRUE(c->adabn());
  EXPECT_TRUE(c->uses_target());
  o.dan.taps = {"features", "layer3"};
  o.jan.taps = {"layer2", "layer3"};
  o.spec = "dan + jan";
  EXPECT_EQ(make_method(o, 6, 4)->taps(), (std::vector<std::string>{"layer3", "layer2"}));
}

TEST(Methods, OptionsFromConfig) {
  core::Schema s;
  declare_method_options(s);
  auto def = method_options_from(core::parse_args(s, {}));
  EXPECT_EQ(def.spec, "source_only");
  EXPECT_EQ(def.dann.hidden, 1024);
  EXPECT_EQ(def.dann.depth, 2);
  EXPECT_TRUE(def.dann.bn);
  EXPECT_DOUBLE_EQ(def.dann.gamma, 10);
  EXPECT_EQ(def.dan.kernels, (std::vector<double>{0.125, 0.25, 0.5, 1, 2}));
  EXPECT_EQ(def.dan.estimator, "unbiased");
  EXPECT_DOUBLE_EQ(def.mcc.temperature, 2.5);
  EXPECT_EQ(def.cdan.random_dim, 1024);
  auto c = method_options_from(core::parse_args(
      s, {"--method=cdan+E + 0.1*mcc", "--cdan.hidden=64", "--dan.kernels=0.5,1,2", "--dan.estimator=linear",
          "--dan.taps=features,layer3", "--mcc.temperature=3", "--coral.mean_term=true", "--dann.schedule=constant"}));
  EXPECT_EQ(c.spec, "cdan+E + 0.1*mcc");
  EXPECT_EQ(c.cdan.hidden, 64);
  EXPECT_EQ(c.dan.kernels, (std::vector<double>{0.5, 1, 2}));
  EXPECT_EQ(c.dan.estimator, "linear");
  EXPECT_EQ(c.dan.taps, (std::vector<std::string>{"features", "layer3"}));
  EXPECT_DOUBLE_EQ(c.mcc.temperature, 3);
  EXPECT_TRUE(c.coral.mean_term);
  EXPECT_EQ(c.dann.schedule, "constant");
  try {
    method_options_from(core::parse_args(s, {"--method=dann + foo"}));
    FAIL() << "bad spec accepted";
  } catch (const core::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("method 'dann + foo': unknown method 'foo' at column 8"), std::string::npos) << e.what();
  }
  try {
    method_options_from(core::parse_args(s, {"--dan.kernels=1,x"}));
    FAIL() << "bad kernel list accepted";
  } catch (const core::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("dan.kernels"), std::string::npos) << e.what();
  }
  EXPECT_THROW(core::parse_args(s, {"--dan.estimator=cubic"}), core::UsageError);
}

// Timing of one loss forward+backward per method (not run by default):
//   build/tests/test_losses_methods --gtest_also_run_disabled_tests --gtest_filter='*StepCost*'
// sizes via SHIFTLAB_BENCH_N / _D / _K (default 32+32 rows, D=256, K=31).
TEST(LossBench, DISABLED_StepCost) {
  auto env = [](const char* k, int64_t d) { const char* v = std::getenv(k); return v ? std::atoll(v) : d; };
  const int64_t n = env("SHIFTLAB_BENCH_N", 32), d = env("SHIFTLAB_BENCH_D", 256), k = env("SHIFTLAB_BENCH_K", 31);
  std::printf("threads %d, N=%ld+%ld D=%ld K=%ld\n", torch::get_num_threads(), long(n), long(n), long(d), long(k));
  MethodOptions o;
  for (std::string spec : {"source_only", "dann", "dan", "0.5*dan", "jan", "cdan", "cdan+E", "coral", "mcc", "entropy",
                           "bsp", "afn", "mdd", "dann + 0.1*entropy"}) {
    o.spec = spec;
    o.dan.estimator = "unbiased";
    auto m = make_method(o, d, k);
    auto out = outputs(n, d, k);
    out.f_s.set_requires_grad(true);
    out.f_t.set_requires_grad(true);
    out.logits_s.set_requires_grad(true);
    out.logits_t.set_requires_grad(true);
    auto run = [&] {
      auto t = m->loss(out).total;
      if (t.requires_grad()) t.backward();
    };
    for (int i = 0; i < 3; ++i) run();
    const int reps = 20;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) run();
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
    std::printf("%-22s %8.3f ms\n", spec.c_str(), ms);
  }
}
