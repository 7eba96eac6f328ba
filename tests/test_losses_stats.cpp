// CORAL, MCC and entropy minimisation: values against explicit loops and TLlib's formulas
// (Python fixture), and finite-difference gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "core/error.h"
#include "losses/coral.h"
#include "losses/entropy.h"
#include "losses/mcc.h"
#include "support/testing.h"

using namespace shiftlab;
using namespace shiftlab::losses;

static double elem(const torch::Tensor& t, int64_t i, int64_t j) { return t[i][j].item<double>(); }

static std::vector<std::vector<double>> cov_loop(const torch::Tensor& x) {
  int64_t n = x.size(0), d = x.size(1);
  std::vector<double> mu(d, 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t a = 0; a < d; ++a) mu[a] += elem(x, i, a) / n;
  std::vector<std::vector<double>> c(d, std::vector<double>(d, 0));
  for (int64_t a = 0; a < d; ++a)
    for (int64_t b = 0; b < d; ++b) {
      for (int64_t i = 0; i < n; ++i) c[a][b] += (elem(x, i, a) - mu[a]) * (elem(x, i, b) - mu[b]);
      c[a][b] /= (n - 1);
    }
  return c;
}

TEST(Coral, ValueMatchesLoops) {
  torch::manual_seed(0);
  auto xs = torch::randn({6, 4}, torch::kDouble), xt = torch::randn({9, 4}, torch::kDouble) * 1.5 + 0.3;
  auto cs = cov_loop(xs), ct = cov_loop(xt);
  double fro = 0, mean = 0;
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) fro += std::pow(cs[a][b] - ct[a][b], 2);
  for (int a = 0; a < 4; ++a) {
    double ms = 0, mt = 0;
    for (int i = 0; i < 6; ++i) ms += elem(xs, i, a) / 6;
    for (int i = 0; i < 9; ++i) mt += elem(xt, i, a) / 9;
    mean += std::pow(ms - mt, 2) / 4;
  }
  EXPECT_NEAR(coral_loss(xs, xt, false).item<double>(), fro / (4 * 16), 1e-13);
  EXPECT_NEAR(coral_loss(xs, xt, true).item<double>(), fro / (4 * 16) + mean, 1e-13);
  StepOutputs o;
  o.f_s = xs;
  o.f_t = xt;
  auto r = CoralMethod(MethodOptions::Coral{}).loss(o);
  EXPECT_EQ(r.terms[0].first, "coral");
  EXPECT_NEAR(r.total.item<double>(), fro / 64, 1e-13);
  EXPECT_THROW(coral_loss(xs.narrow(0, 0, 1), xt, false), core::Error);
}

TEST(Coral, WideFeaturesUseTheGramFormWithTheSameValue) {
  torch::manual_seed(6);
  auto xs = torch::randn({5, 20}, torch::kDouble), xt = torch::randn({6, 20}, torch::kDouble) * 1.3;
  auto cs = cov_loop(xs), ct = cov_loop(xt);
  double fro = 0;
  for (int a = 0; a < 20; ++a)
    for (int b = 0; b < 20; ++b) fro += std::pow(cs[a][b] - ct[a][b], 2);
  EXPECT_NEAR(coral_loss(xs, xt, false).item<double>(), fro / (4 * 400), 1e-14);
  // float32 inputs still get a float32 result close to the double one
  EXPECT_NEAR(coral_loss(xs.to(torch::kFloat), xt.to(torch::kFloat), false).item<float>(), fro / 1600, 1e-6);
  auto res = testutil::gradcheck([](const std::vector<torch::Tensor>& in) { return coral_loss(in[0], in[1], true); },
                                 {xs.clone().set_requires_grad(true), xt.clone().set_requires_grad(true)});
  EXPECT_GRADCHECK(res, 1e-6);
}

TEST(Coral, FiniteDifferenceGradient) {
  torch::manual_seed(1);
  for (bool mt : {false, true}) {
    auto res = testutil::gradcheck([&](const std::vector<torch::Tensor>& in) { return coral_loss(in[0], in[1], mt); },
                                   {torch::randn({5, 3}).set_requires_grad(true),
                                    torch::randn({4, 3}).set_requires_grad(true)});
    EXPECT_GRADCHECK(res, 1e-6);
  }
}

// MCC written as loops, with the entropy weights computed from `wlogits` (frozen in gradient checks)
static double mcc_ref(const torch::Tensor& logits, const torch::Tensor& wlogits, double temp) {
  int64_t n = logits.size(0), k = logits.size(1);
  auto softmax = [&](const torch::Tensor& l, int64_t i) {
    std::vector<double> p(k);
    double mx = -1e300, s = 0;
    for (int64_t j = 0; j < k; ++j) mx = std::max(mx, elem(l, i, j) / temp);
    for (int64_t j = 0; j < k; ++j) s += (p[j] = std::exp(elem(l, i, j) / temp - mx));
    for (auto& v : p) v /= s;
    return p;
  };
  std::vector<std::vector<double>> p(n);
  std::vector<double> w(n);
  double wsum = 0;
  for (int64_t i = 0; i < n; ++i) {
    p[i] = softmax(logits, i);
    auto q = softmax(wlogits, i);
    double h = 0;
    for (double v : q) h -= v * std::log(v);
    w[i] = 1 + std::exp(-h);
    wsum += w[i];
  }
  std::vector<std::vector<double>> c(k, std::vector<double>(k, 0));
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b)
      for (int64_t i = 0; i < n; ++i) c[a][b] += p[i][a] * (n * w[i] / wsum) * p[i][b];
  double loss = 0;
  for (int64_t b = 0; b < k; ++b) {
    double col = 0;
    for (int64_t a = 0; a < k; ++a) col += c[a][b];
    for (int64_t a = 0; a < k; ++a)
      if (a != b) loss += c[a][b] / col;
  }
  return loss / k;
}

TEST(Mcc, ValueMatchesLoops) {
  torch::manual_seed(2);
  auto l = torch::randn({7, 4}, torch::kDouble) * 3;
  for (double t : {1.0, 2.5}) EXPECT_NEAR(mcc_loss(l, t).item<double>(), mcc_ref(l, l, t), 1e-13) << t;
  StepOutputs o;
  o.logits_t = l;
  MethodOptions::Mcc mo;
  auto r = MccMethod(mo).loss(o);
  EXPECT_EQ(r.terms[0].first, "mcc");
  EXPECT_NEAR(r.total.item<double>(), mcc_ref(l, l, 2.5), 1e-13);
  mo.temperature = 0;
  EXPECT_THROW(MccMethod{mo}, core::UsageError);
}

TEST(Mcc, GradientMatchesFiniteDifferencesWithFrozenEntropyWeights) {
  // TLlib detaches the entropy weights; the gradient is that of the loss with weights frozen.
  torch::manual_seed(3);
  auto l = (torch::randn({5, 3}, torch::kDouble) * 2).set_requires_grad(true);
  mcc_loss(l, 2.5).backward();
  auto base = l.detach().clone();
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j) {
      auto p = base.clone(), m = base.clone();
      p[i][j] += 1e-6;
      m[i][j] -= 1e-6;
      double num = (mcc_ref(p, base, 2.5) - mcc_ref(m, base, 2.5)) / 2e-6;
      EXPECT_NEAR(l.grad()[i][j].item<double>(), num, 1e-8);
    }
}

TEST(Entropy, ValueAndGradient) {
  torch::manual_seed(4);
  auto l = torch::randn({6, 5}, torch::kDouble) * 2;
  double h = 0;
  std::vector<double> pbar(5, 0);
  for (int i = 0; i < 6; ++i) {
    double s = 0;
    for (int j = 0; j < 5; ++j) s += std::exp(elem(l, i, j));
    for (int j = 0; j < 5; ++j) {
      double p = std::exp(elem(l, i, j)) / s;
      h -= p * std::log(p) / 6;
      pbar[j] += p / 6;
    }
  }
  double hbar = 0;
  for (double p : pbar) hbar -= p * std::log(p);
  EXPECT_NEAR(entropy_loss(l, 0).item<double>(), h, 1e-13);
  EXPECT_NEAR(entropy_loss(l, 1).item<double>(), h - hbar, 1e-13);
  for (double div : {0.0, 0.7}) {
    auto res = testutil::gradcheck([&](const std::vector<torch::Tensor>& in) { return entropy_loss(in[0], div); },
                                   {l.clone().set_requires_grad(true)});
    EXPECT_GRADCHECK(res, 1e-6) << div;
  }
  StepOutputs o;
  o.logits_t = l;
  auto r = EntropyMethod(MethodOptions::Entropy{}).loss(o);
  EXPECT_EQ(r.terms[0].first, "entropy");
  EXPECT_NEAR(r.total.item<double>(), h, 1e-13);
}

TEST(Stats, MatchTLlibFormulasFromPython) {
  REQUIRE_PYTHON({"torch", "numpy"});
  torch::manual_seed(5);
  auto zs = torch::randn({6, 4}, torch::kDouble), zt = torch::randn({6, 4}, torch::kDouble) + 0.2;
  auto ys = torch::randn({6, 3}, torch::kDouble), yt = torch::randn({6, 3}, torch::kDouble) * 2;
  auto dir = testutil::fresh_dir("losses_stats_tllib");
  testutil::write_matrix(dir + "/zs.txt", zs);
  testutil::write_matrix(dir + "/zt.txt", zt);
  testutil::write_matrix(dir + "/ys.txt", ys);
  testutil::write_matrix(dir + "/yt.txt", yt);
  std::string log;
  ASSERT_EQ(testutil::run_shell(
                "/usr/bin/python3 " + testutil::source_path("scripts/tllib_loss_reference.py") + " " + dir + " 2>&1", &log),
            0)
      << log;
  std::map<std::string, double> ref;
  std::ifstream f(dir + "/ref.txt");
  std::string k;
  double v;
  while (f >> k >> v) ref[k] = v;
  ASSERT_TRUE(ref.count("mcc") && ref.count("coral_cov")) << "fixture incomplete";
  // TLlib's entropy has log(p + 1e-5); ours is exact: agreement to ~1e-5 relative.
  EXPECT_NEAR(mcc_loss(yt, 2.5).item<double>(), ref["mcc"], 1e-4 * std::fabs(ref["mcc"]));
  // TLlib CORAL = mean((mu_s-mu_t)^2) + mean((C_s-C_t)^2); ours = ||C_s-C_t||^2/(4d^2) [+ mean term]
  EXPECT_NEAR(coral_loss(zs, zt, false).item<double>(), ref["coral_cov"] / 4, 1e-12);
  EXPECT_NEAR(coral_loss(zs, zt, true).item<double>(), ref["coral_cov"] / 4 + ref["coral_mean"], 1e-12);
}
