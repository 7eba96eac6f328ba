// Stretch methods: MDD (value against loops, finite-difference gradient), BSP (value against power iteration / symmetric eigenvalues, finite-difference
// gradient) and stepwise AFN (value, gradient against finite differences with the radius frozen).
#include <gtest/gtest.h>

#include <cmath>

#include "losses/afn.h"
#include "losses/bsp.h"
#include "losses/mdd.h"
#include "losses/methods.h"
#include "support/testing.h"

using namespace shiftlab;
using namespace shiftlab::losses;

// largest eigenvalue of F^T F by power iteration, in plain loops
static double top_sq_singular(const torch::Tensor& f) {
  int64_t n = f.size(0), d = f.size(1);
  std::vector<std::vector<double>> g(d, std::vector<double>(d, 0));
  for (int64_t a = 0; a < d; ++a)
    for (int64_t b = 0; b < d; ++b)
      for (int64_t i = 0; i < n; ++i) g[a][b] += f[i][a].item<double>() * f[i][b].item<double>();
  std::vector<double> v(d, 1.0);
  double lambda = 0;
  for (int it = 0; it < 2000; ++it) {
    std::vector<double> w(d, 0);
    for (int64_t a = 0; a < d; ++a)
      for (int64_t b = 0; b < d; ++b) w[a] += g[a][b] * v[b];
    double norm = 0;
    for (double x : w) norm += x * x;
    norm = std::sqrt(norm);
    for (int64_t a = 0; a < d; ++a) v[a] = w[a] / norm;
    lambda = norm;
  }
  return lambda;
}

TEST(Bsp, ValueMatchesPowerIterationAndEigenvalues) {
  torch::manual_seed(0);
  auto fs = torch::randn({6, 4}, torch::kDouble), ft = torch::randn({5, 4}, torch::kDouble) * 2;
  EXPECT_NEAR(bsp_loss(fs, ft, 1).item<double>(), top_sq_singular(fs) + top_sq_singular(ft), 1e-9);
  auto top2 = [](const torch::Tensor& f) {
    auto e = torch::linalg_eigvalsh(torch::mm(f.t(), f));  // ascending
    return (e[-1] + e[-2]).item<double>();
  };
  EXPECT_NEAR(bsp_loss(fs, ft, 2).item<double>(), top2(fs) + top2(ft), 1e-9);
  StepOutputs o;
  o.f_s = fs;
  o.f_t = ft;
  MethodOptions::Bsp bo;
  auto r = BspMethod(bo).loss(o);
  EXPECT_EQ(r.terms[0].first, "bsp");
  auto res = testutil::gradcheck([](const std::vector<torch::Tensor>& in) { return bsp_loss(in[0], in[1], 2); },
                                 {fs.clone().set_requires_grad(true), ft.clone().set_requires_grad(true)});
  EXPECT_GRADCHECK(res, 1e-6);
}

// Batches narrower than the features take the F Fᵀ route: against the SVD, and its gradient.
TEST(Bsp, WideBatchesMatchSingularValuesAndGradients) {
  torch::manual_seed(3);
  auto fs = torch::randn({4, 9}, torch::kDouble), ft = torch::randn({3, 9}, torch::kDouble) * 3;
  auto top = [](const torch::Tensor& f, int64_t k) {
    auto s = torch::linalg_svdvals(f);  // descending
    return s.narrow(0, 0, k).pow(2).sum().item<double>();
  };
  EXPECT_NEAR(bsp_loss(fs, ft, 1).item<double>(), top(fs, 1) + top(ft, 1), 1e-9);
  EXPECT_NEAR(bsp_loss(fs, ft, 2).item<double>(), top(fs, 2) + top(ft, 2), 1e-9);
  EXPECT_NEAR(bsp_loss(fs, ft, 50).item<double>(), top(fs, 4) + top(ft, 3), 1e-9);  // k beyond the rank
  auto res = testutil::gradcheck([](const std::vector<torch::Tensor>& in) { return bsp_loss(in[0], in[1], 1); },
                                 {fs.clone().set_requires_grad(true), ft.clone().set_requires_grad(true)});
  EXPECT_GRADCHECK(res, 1e-6);
}

TEST(Afn, ValueIsTwoDeltaSquaredAndGradientEnlargesNorms) {
  torch::manual_seed(1);
  auto fs = torch::randn({5, 3}, torch::kDouble).set_requires_grad(true);
  auto ft = torch::randn({4, 3}, torch::kDouble);
  MethodOptions::Afn ao;
  ao.delta = 0.7;
  StepOutputs o;
  o.f_s = fs;
  o.f_t = ft;
  auto r = AfnMethod(ao).loss(o);
  EXPECT_NEAR(r.total.item<double>(), 2 * 0.49, 1e-14);
  r.total.backward();
  // finite differences of mean_i (||f_i|| - (r_i + delta))^2 with the radii r_i frozen
  auto base = fs.detach().clone();
  auto frozen = [&](const torch::Tensor& f) {
    double s = 0;
    for (int i = 0; i < 5; ++i) {
      double n = 0, r0 = 0;
      for (int j = 0; j < 3; ++j) {
        n += std::pow(f[i][j].item<double>(), 2);
        r0 += std::pow(base[i][j].item<double>(), 2);
      }
      s += std::pow(std::sqrt(n) - (std::sqrt(r0) + 0.7), 2);
    }
    return s / 5;
  };
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j) {
      auto p = base.clone(), m = base.clone();
      p[i][j] += 1e-6;
      m[i][j] -= 1e-6;
      EXPECT_NEAR(fs.grad()[i][j].item<double>(), (frozen(p) - frozen(m)) / 2e-6, 1e-8);
    }
  // a gradient step enlarges every norm
  auto after = base - 0.1 * fs.grad();
  EXPECT_TRUE((after.norm(2, 1) > base.norm(2, 1)).all().item<bool>());
}

TEST(Mdd, ValueMatchesLoopsAndGradientMatchesFiniteDifferences) {
  torch::manual_seed(2);
  MethodOptions::Mdd mo;
  mo.width = 6;
  mo.schedule = "constant";
  mo.max_lambda = -1;  // GRL multiplies by +1: autograd equals the plain derivative
  auto m = std::make_shared<MddMethod>(mo, 3, 4);
  m->to(torch::kDouble);
  m->eval();  // no dropout, so the function is deterministic
  {
    torch::NoGradGuard ng;  // larger weights than TLlib's init, so the value is not trivial
    for (auto& p : m->parameters()) p.normal_(0, 1);
  }
  StepOutputs o;
  o.f_s = torch::randn({5, 3}, torch::kDouble);
  o.f_t = torch::randn({6, 3}, torch::kDouble);
  o.logits_s = torch::randn({5, 4}, torch::kDouble);
  o.logits_t = torch::randn({6, 4}, torch::kDouble);
  auto adv = m->adv_head->forward(torch::cat({o.f_s, o.f_t})).detach();
  auto argmax = [](const torch::Tensor& l, int64_t i) {
    int64_t best = 0;
    for (int64_t j = 1; j < l.size(1); ++j)
      if (l[i][j].item<double>() > l[i][best].item<double>()) best = j;
    return best;
  };
  auto softmax_at = [&](int64_t row, int64_t cls) {
    double s = 0;
    for (int64_t j = 0; j < 4; ++j) s += std::exp(adv[row][j].item<double>());
    return std::exp(adv[row][cls].item<double>()) / s;
  };
  double ce = 0, lt = 0;
  for (int64_t i = 0; i < 5; ++i) ce += -std::log(softmax_at(i, argmax(o.logits_s, i))) / 5;
  for (int64_t i = 0; i < 6; ++i) lt += std::log(std::min(1.0 - softmax_at(5 + i, argmax(o.logits_t, i)) + 1e-6, 1.0)) / 6;
  auto r = m->loss(o);
  EXPECT_NEAR(r.total.item<double>(), 4 * ce - lt, 1e-12);
  EXPECT_EQ(r.terms[0].first, "mdd");
  EXPECT_EQ(r.terms[1].first, "lambda");
  auto f = [&](const std::vector<torch::Tensor>& in) {
    StepOutputs p = o;
    p.f_s = in[0];
    p.f_t = in[1];
    return m->loss(p).total;
  };
  auto res = testutil::gradcheck(f, {o.f_s.clone().set_requires_grad(true), o.f_t.clone().set_requires_grad(true)});
  EXPECT_GRADCHECK(res, 1e-6);
}
