// CDAN: multilinear and randomized conditioning, entropy weighting, value against explicit loops,
// finite-difference gradients, buffers and parameters.
#include <gtest/gtest.h>

#include <cmath>

#include "losses/cdan.h"
#include "losses/grl.h"
#include "support/testing.h"

using namespace shiftlab;
using namespace shiftlab::losses;

static StepOutputs outputs(int64_t ns, int64_t nt, int64_t d, int64_t k) {
  StepOutputs o;
  o.f_s = torch::randn({ns, d}, torch::kDouble);
  o.f_t = torch::randn({nt, d}, torch::kDouble) + 0.5;
  o.logits_s = torch::randn({ns, k}, torch::kDouble) * 2;
  o.logits_t = torch::randn({nt, k}, torch::kDouble);
  return o;
}

static MethodOptions::Cdan small(bool entropy, bool randomized = false) {
  MethodOptions::Cdan c;
  c.hidden = 6;
  c.entropy = entropy;
  c.randomized = randomized;
  c.random_dim = 7;
  return c;
}

TEST(Cdan, MultilinearMapIsTheFlattenedOuterProduct) {
  torch::manual_seed(0);
  CdanMethod m(small(false), 4, 3);
  EXPECT_FALSE(m.randomized());
  EXPECT_EQ(m.map_dim(), 12);
  auto f = torch::randn({5, 4}, torch::kDouble), g = torch::randn({5, 3}, torch::kDouble);
  auto t = m.map(f, g);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{5, 12}));
  for (int n = 0; n < 5; ++n)
    for (int k = 0; k < 3; ++k)
      for (int d = 0; d < 4; ++d)
        EXPECT_DOUBLE_EQ(t[n][k * 4 + d].item<double>(), g[n][k].item<double>() * f[n][d].item<double>());
}

TEST(Cdan, RandomizedMapShapeValueAndAutomaticChoice) {
  torch::manual_seed(1);
  CdanMethod m(small(false, true), 4, 3);
  ASSERT_TRUE(m.randomized());
  EXPECT_EQ(m.map_dim(), 7);
  EXPECT_EQ(m.Rf.sizes(), (std::vector<int64_t>{4, 7}));
  EXPECT_EQ(m.Rg.sizes(), (std::vector<int64_t>{3, 7}));
  auto bufs = m.named_buffers();
  EXPECT_TRUE(bufs.contains("Rf") && bufs.contains("Rg"));
  m.to(torch::kDouble);
  auto f = torch::randn({5, 4}, torch::kDouble), g = torch::softmax(torch::randn({5, 3}, torch::kDouble), 1);
  auto t = m.map(f, g);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{5, 7}));
  for (int n = 0; n < 5; ++n)
    for (int o = 0; o < 7; ++o) {
      double a = 0, b = 0;
      for (int d = 0; d < 4; ++d) a += f[n][d].item<double>() * m.Rf[d][o].item<double>();
      for (int k = 0; k < 3; ++k) b += g[n][k].item<double>() * m.Rg[k][o].item<double>();
      EXPECT_NEAR(t[n][o].item<double>(), a * b / std::sqrt(7.0), 1e-12);
    }
  EXPECT_EQ(m.discriminator->in_features(), 7);
  // automatic: D*K above the threshold switches to the randomized map
  auto c = small(false);
  c.random_threshold = 11;
  EXPECT_TRUE(CdanMethod(c, 4, 3).randomized());
  c.random_threshold = 12;
  EXPECT_FALSE(CdanMethod(c, 4, 3).randomized());
  // defaults: 2048×31 (ResNet-50, Office-31) randomized to 1024; 256×10 multilinear
  MethodOptions::Cdan def;
  CdanMethod big(def, 2048, 31);
  EXPECT_TRUE(big.randomized());
  EXPECT_EQ(big.map_dim(), 1024);
  EXPECT_FALSE(CdanMethod(def, 256, 10).randomized());
}

// Reference: disc applied to the explicit conditioning, then weighted BCE as loops.
static double reference(CdanMethod& m, const StepOutputs& o, bool entropy) {
  torch::NoGradGuard ng;
  const int64_t ns = o.f_s.size(0), nt = o.f_t.size(0), n = ns + nt;
  auto f = torch::cat({o.f_s, o.f_t}), lg = torch::cat({o.logits_s, o.logits_t});
  auto g = torch::softmax(lg, 1);
  auto d = m.discriminator->forward(m.map(f, g));
  std::vector<double> w(n, 1.0);
  if (entropy)
    for (int64_t i = 0; i < n; ++i) {
      double h = 0;
      for (int64_t k = 0; k < g.size(1); ++k) {
        double p = g[i][k].item<double>();
        h -= p * std::log(p);
      }
      w[i] = 1 + std::exp(-h);
    }
  double ws = 0, wt = 0, ls = 0, lt = 0;
  for (int64_t i = 0; i < ns; ++i) ws += w[i];
  for (int64_t i = ns; i < n; ++i) wt += w[i];
  for (int64_t i = 0; i < ns; ++i) ls += w[i] / ws * std::log1p(std::exp(-d[i].item<double>()));
  for (int64_t i = ns; i < n; ++i) lt += w[i] / wt * std::log1p(std::exp(d[i].item<double>()));
  return 0.5 * (ls + lt);
}

TEST(Cdan, ValueMatchesExplicitFormulaWithAndWithoutEntropy) {
  torch::manual_seed(2);
  for (bool ent : {false, true})
    for (bool rnd : {false, true}) {
      CdanMethod m(small(ent, rnd), 4, 3);
      m.to(torch::kDouble);
      auto o = outputs(5, 6, 4, 3);
      o.progress = 0.25;
      auto r = m.loss(o);
      EXPECT_NEAR(r.total.item<double>(), reference(m, o, ent), 1e-12) << "entropy " << ent << " rnd " << rnd;
      ASSERT_EQ(r.terms.size(), 3u);
      EXPECT_EQ(r.terms[0].first, "cdan");
      EXPECT_EQ(r.terms[1].first, "cdan_acc");
      EXPECT_NEAR(r.terms[2].second.item<double>(), dann_lambda(0.25), 1e-15);
    }
}

TEST(Cdan, FiniteDifferenceGradientWrtFeatures) {
  torch::manual_seed(3);
  for (bool ent : {false, true})
    for (bool rnd : {false, true}) {
      auto c = small(ent, rnd);
      c.schedule = "constant";
      c.max_lambda = -1;  // the GRL then multiplies by +1: autograd equals the plain derivative
      auto m = std::make_shared<CdanMethod>(c, 3, 2);
      m->to(torch::kDouble);
      auto o = outputs(4, 3, 3, 2);
      auto f = [&](const std::vector<torch::Tensor>& in) {
        StepOutputs p = o;
        p.f_s = in[0];
        p.f_t = in[1];
        return m->loss(p).total;
      };
      auto res = testutil::gradcheck(f, {o.f_s.set_requires_grad(true), o.f_t.set_requires_grad(true)});
      EXPECT_GRADCHECK(res, 1e-6) << "entropy " << ent << " rnd " << rnd;
    }
}

TEST(Cdan, SoftmaxConditioningIsDetachedAndFeatureGradientReversed) {
  torch::manual_seed(4);
  CdanMethod m(small(true), 3, 2);
  m.to(torch::kDouble);
  auto o = outputs(4, 4, 3, 2);
  o.logits_s.set_requires_grad(true);
  o.f_s.set_requires_grad(true);
  o.progress = 1.0;
  m.loss(o).total.backward();
  EXPECT_FALSE(o.logits_s.grad().defined() && o.logits_s.grad().abs().sum().item<double>() > 0);
  auto g_rev = o.f_s.grad().clone();
  // same discriminator, GRL of -1 → the true gradient; reversed one is -lambda(1) times it
  auto c = small(true);
  c.schedule = "constant";
  c.max_lambda = -1;
  CdanMethod plain(c, 3, 2);
  plain.to(torch::kDouble);
  {
    torch::NoGradGuard ng;
    auto src = m.named_parameters();
    for (auto& kv : plain.named_parameters()) kv.value().copy_(src[kv.key()]);
  }
  o.f_s.mutable_grad() = torch::Tensor();
  plain.loss(o).total.backward();
  EXPECT_TRUE(torch::allclose(g_rev, o.f_s.grad() * (-dann_lambda(1.0)), 1e-12, 1e-14));
}
