// MK-MMD (DAN) and joint MMD (JAN): estimators against explicit double loops and against TLlib's
// formulas (Python fixture), finite-difference gradients, statistical behaviour (unbiased ≈ 0 on
// same-distribution samples, large on shifted ones, the three estimators agree in expectation),
// the coefficient cache and multi-tap DAN.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "core/error.h"
#include "losses/jmmd.h"
#include "losses/mmd.h"
#include "support/testing.h"

using namespace shiftlab;
using namespace shiftlab::losses;

static const std::vector<double> kAlphas{0.125, 0.25, 0.5, 1, 2};

// ---- independent reference, explicit loops in double -------------------------------------------
using Mat = std::vector<std::vector<double>>;
static Mat to_mat(const torch::Tensor& t) {
  auto c = t.to(torch::kDouble).contiguous();
  Mat m(c.size(0), std::vector<double>(c.size(1)));
  for (int64_t i = 0; i < c.size(0); ++i)
    for (int64_t j = 0; j < c.size(1); ++j) m[i][j] = c[i][j].item<double>();
  return m;
}
static double sqd(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t k = 0; k < a.size(); ++k) s += (a[k] - b[k]) * (a[k] - b[k]);
  return s;
}
// kernel function over the concatenated rows x (source rows first): multi-kernel with mean bandwidth
struct RefKernel {
  Mat x;
  double mean = 0;
  double sigma = 0;  // fixed when > 0
  RefKernel(const Mat& s, const Mat& t, double fixed_sigma = 0) : sigma(fixed_sigma) {
    x = s;
    x.insert(x.end(), t.begin(), t.end());
    for (auto& a : x)
      for (auto& b : x) mean += sqd(a, b);
    mean /= double(x.size() * x.size());
  }
  double operator()(size_t i, size_t j) const {
    double d = sqd(x[i], x[j]);
    if (sigma > 0) return std::exp(-d / (2 * sigma * sigma));
    double k = 0;
    for (double a : kAlphas) k += std::exp(-d / (2 * a * mean));
    return k;
  }
};
// estimator over a joint kernel k(i, j) on indices of [s; t]
template <typename K>
static double ref_mmd(const K& k, size_t ns, size_t nt, const std::string& est) {
  if (est == "linear") {
    size_t n = std::min(ns, nt);
    double s = 0;
    for (size_t i = 0; i < n; ++i) {
      size_t i1 = (i + 1) % n;
      s += k(i, i1) + k(ns + i, ns + i1) - k(i, ns + i1) - k(i1, ns + i);
    }
    return s / n;
  }
  bool unb = est == "unbiased";
  double ss = 0, tt = 0, st = 0;
  for (size_t i = 0; i < ns; ++i)
    for (size_t j = 0; j < ns; ++j)
      if (!unb || i != j) ss += k(i, j);
  for (size_t i = 0; i < nt; ++i)
    for (size_t j = 0; j < nt; ++j)
      if (!unb || i != j) tt += k(ns + i, ns + j);
  for (size_t i = 0; i < ns; ++i)
    for (size_t j = 0; j < nt; ++j) st += k(i, ns + j);
  double ds = unb ? double(ns) * (ns - 1) : double(ns) * ns, dt = unb ? double(nt) * (nt - 1) : double(nt) * nt;
  return ss / ds + tt / dt - 2 * st / (double(ns) * nt);
}

static StepOutputs outputs(int64_t ns, int64_t nt, int64_t d, int64_t k, double shift) {
  StepOutputs o;
  o.f_s = torch::randn({ns, d}, torch::kDouble);
  o.f_t = torch::randn({nt, d}, torch::kDouble) + shift;
  o.logits_s = torch::randn({ns, k}, torch::kDouble);
  o.logits_t = torch::randn({nt, k}, torch::kDouble) + shift;
  return o;
}

TEST(Mmd, PairwiseDistancesMatchLoops) {
  torch::manual_seed(0);
  auto x = torch::randn({7, 5}, torch::kDouble) * 3 + 10;  // offset: centring keeps it accurate
  auto d = pairwise_sq_dists(x);
  auto m = to_mat(x);
  for (int i = 0; i < 7; ++i)
    for (int j = 0; j < 7; ++j) EXPECT_NEAR(d[i][j].item<double>(), sqd(m[i], m[j]), 1e-10);
}

TEST(Mmd, EstimatorsMatchExplicitLoops) {
  torch::manual_seed(1);
  for (auto [ns, nt] : std::vector<std::pair<int, int>>{{6, 6}, {5, 8}}) {
    auto o = outputs(ns, nt, 4, 3, 0.7);
    RefKernel k(to_mat(o.f_s), to_mat(o.f_t));
    for (std::string est : {"biased", "unbiased", "linear"}) {
      MethodOptions::Dan opt;
      opt.estimator = est;
      DanMethod dan(opt);
      auto r = dan.loss(o);
      EXPECT_NEAR(r.total.item<double>(), ref_mmd(k, ns, nt, est), 1e-12) << est << " " << ns << "/" << nt;
      EXPECT_EQ(r.terms.size(), 1u);
      EXPECT_EQ(r.terms[0].first, "dan");
    }
  }
}

TEST(Jmmd, EstimatorsMatchExplicitLoops) {
  torch::manual_seed(2);
  for (auto [ns, nt] : std::vector<std::pair<int, int>>{{6, 6}, {7, 4}}) {
    auto o = outputs(ns, nt, 4, 3, 0.5);
    RefKernel kf(to_mat(o.f_s), to_mat(o.f_t));
    RefKernel kp(to_mat(torch::softmax(o.logits_s, 1)), to_mat(torch::softmax(o.logits_t, 1)), 0.92);
    auto joint = [&](size_t i, size_t j) { return kf(i, j) * kp(i, j); };
    for (std::string est : {"biased", "unbiased", "linear"}) {
      MethodOptions::Jan opt;
      opt.estimator = est;
      JanMethod jan(opt);
      EXPECT_NEAR(jan.loss(o).total.item<double>(), ref_mmd(joint, ns, nt, est), 1e-12) << est;
    }
  }
}

TEST(Mmd, MatchesTLlibFormulasFromPython) {
  REQUIRE_PYTHON({"torch", "numpy"});
  torch::manual_seed(3);
  const int n = 6;
  auto o = outputs(n, n, 5, 4, 0.4);
  auto dir = testutil::fresh_dir("losses_mmd_tllib");
  testutil::write_matrix(dir + "/zs.txt", o.f_s);
  testutil::write_matrix(dir + "/zt.txt", o.f_t);
  testutil::write_matrix(dir + "/ys.txt", o.logits_s);
  testutil::write_matrix(dir + "/yt.txt", o.logits_t);
  std::string log;
  ASSERT_EQ(testutil::run_shell("/usr/bin/python3 " + testutil::source_path("scripts/tllib_loss_reference.py") + " " +
                                    dir + " 2>&1",
                                &log),
            0)
      << log;
  std::map<std::string, double> ref;
  std::ifstream f(dir + "/ref.txt");
  std::string k;
  double v;
  while (f >> k >> v) ref[k] = v;
  const double c = 2.0 / (n - 1);  // TLlib's constant offset
  auto dan = [&](const std::string& est) {
    MethodOptions::Dan opt;
    opt.estimator = est;
    return DanMethod(opt).loss(o).total.item<double>();
  };
  auto jan = [&](const std::string& est) {
    MethodOptions::Jan opt;
    opt.estimator = est;
    return JanMethod(opt).loss(o).total.item<double>();
  };
  ASSERT_TRUE(ref.count("dan_nonlinear") && ref.count("jan_linear")) << "fixture incomplete";
  EXPECT_NEAR(dan("unbiased"), ref["dan_nonlinear"] - c, 1e-10);
  EXPECT_NEAR(dan("linear"), ref["dan_linear"] - c, 1e-10);
  EXPECT_NEAR(jan("unbiased"), ref["jan_nonlinear"] - c, 1e-10);
  EXPECT_NEAR(jan("linear"), ref["jan_linear"] - c, 1e-10);
}

TEST(Mmd, FiniteDifferenceGradients) {
  torch::manual_seed(4);
  for (auto est : {MmdEstimator::Biased, MmdEstimator::Unbiased, MmdEstimator::Linear}) {
    // bandwidth not detached, so autograd sees the whole function finite differences see
    JointMmd mmd({KernelSpec{kAlphas, 0, false}}, est);
    auto f = [&](const std::vector<torch::Tensor>& in) { return mmd({in[0]}, {in[1]}, "test"); };
    auto res = testutil::gradcheck(f, {torch::randn({4, 3}).set_requires_grad(true),
                                       (torch::randn({5, 3}) + 0.5).set_requires_grad(true)});
    EXPECT_GRADCHECK(res, 1e-6) << mmd_estimator_name(est);
    // joint: features × fixed-sigma softmax kernel
    JointMmd joint({KernelSpec{kAlphas, 0, false}, KernelSpec{{}, 0.92, false}}, est);
    auto g = [&](const std::vector<torch::Tensor>& in) {
      return joint({in[0], torch::softmax(in[2], 1)}, {in[1], torch::softmax(in[3], 1)}, "test");
    };
    auto res2 = testutil::gradcheck(g, {torch::randn({4, 3}).set_requires_grad(true),
                                        (torch::randn({4, 3}) + 0.5).set_requires_grad(true),
                                        torch::randn({4, 2}).set_requires_grad(true),
                                        torch::randn({4, 2}).set_requires_grad(true)});
    EXPECT_GRADCHECK(res2, 1e-6) << "joint " << mmd_estimator_name(est);
  }
}

TEST(Mmd, DetachedBandwidthGradientMatchesFixedBandwidthDerivative) {
  // The methods detach the bandwidth (TLlib): their gradient must equal the finite-difference
  // derivative of the MMD with the bandwidth frozen at its current value.
  torch::manual_seed(5);
  auto xs = torch::randn({5, 3}, torch::kDouble).set_requires_grad(true);
  auto xt = (torch::randn({5, 3}, torch::kDouble) + 0.3).set_requires_grad(true);
  MethodOptions::Dan opt;
  DanMethod dan(opt);
  StepOutputs o;
  o.f_s = xs;
  o.f_t = xt;
  dan.loss(o).total.backward();
  auto frozen = [&](const torch::Tensor& s) {
    RefKernel k0(to_mat(xs.detach()), to_mat(xt.detach()));
    RefKernel k(to_mat(s), to_mat(xt.detach()));
    k.mean = k0.mean;
    return ref_mmd(k, 5, 5, "unbiased");
  };
  auto base = xs.detach().clone();
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j) {
      auto p = base.clone(), m = base.clone();
      p[i][j] += 1e-6;
      m[i][j] -= 1e-6;
      double num = (frozen(p) - frozen(m)) / 2e-6;
      EXPECT_NEAR(xs.grad()[i][j].item<double>(), num, 1e-7);
    }
}

TEST(Mmd, UnbiasedIsZeroInExpectationAndLargeUnderShift) {
  torch::manual_seed(6);
  const int reps = 200, n = 24, d = 5;
  auto stats = [&](MmdEstimator est, double shift) {
    JointMmd mmd({KernelSpec{kAlphas}}, est);
    std::vector<double> v;
    for (int r = 0; r < reps; ++r)
      v.push_back(mmd({torch::randn({n, d}, torch::kDouble)}, {torch::randn({n, d}, torch::kDouble) + shift}, "t")
                      .item<double>());
    double m = 0, s = 0;
    for (double x : v) m += x;
    m /= reps;
    for (double x : v) s += (x - m) * (x - m);
    return std::make_pair(m, std::sqrt(s / (reps - 1) / reps));  // mean, standard error
  };
  auto [m0, se0] = stats(MmdEstimator::Unbiased, 0.0);
  EXPECT_LT(std::fabs(m0), 4 * se0) << "unbiased MMD on same-distribution samples: " << m0 << " ± " << se0;
  auto [m1, se1] = stats(MmdEstimator::Unbiased, 1.0);
  EXPECT_GT(m1, 20 * se0 + 4 * se1) << m1;
  auto [l0, lse0] = stats(MmdEstimator::Linear, 0.0);
  EXPECT_LT(std::fabs(l0), 4 * lse0);
  auto [b0, bse0] = stats(MmdEstimator::Biased, 0.0);
  EXPECT_GT(b0, 4 * bse0) << "the biased estimator is positively biased";
  // the three agree on the expectation under shift (biased only up to its O(1/n) bias)
  auto [l1, lse1] = stats(MmdEstimator::Linear, 1.0);
  auto [b1, bse1] = stats(MmdEstimator::Biased, 1.0);
  EXPECT_LT(std::fabs(l1 - m1), 4 * std::hypot(lse1, se1)) << "linear " << l1 << " unbiased " << m1;
  // E[biased] - E[unbiased] = (1/n_s)(E k(x,x) - E k(x,x')) + (same for t), in (0, 5 kernels × 2/n)
  EXPECT_GT(b1, m1);
  EXPECT_LT(b1 - m1, 5.0 * 2 / n) << "biased " << b1 << " unbiased " << m1;
}

TEST(Mmd, CoefficientMatrixIsCachedPerBatchSize) {
  JointMmd mmd({KernelSpec{kAlphas}}, MmdEstimator::Unbiased);
  auto opt = torch::dtype(torch::kFloat);
  auto a = mmd.coefficients(4, 6, opt), b = mmd.coefficients(4, 6, opt), c = mmd.coefficients(6, 4, opt);
  EXPECT_EQ(a.data_ptr(), b.data_ptr());
  EXPECT_NE(a.data_ptr(), c.data_ptr());
  EXPECT_NEAR(a.sum().item<double>(), 0.0, 1e-6);  // 1 + 1 - 2
  EXPECT_EQ(a[0][0].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(a[0][1].item<float>(), 1.0f / 12);
  EXPECT_FLOAT_EQ(a[0][5].item<float>(), -1.0f / 24);
}

TEST(Dan, SeveralTapsSumAndMissingTapFails) {
  torch::manual_seed(7);
  auto o = outputs(6, 6, 4, 3, 0.5);
  o.taps_s["layer3"] = torch::randn({6, 2, 3}, torch::kDouble);  // flattened to 6×6
  o.taps_t["layer3"] = torch::randn({6, 2, 3}, torch::kDouble) - 0.5;
  MethodOptions::Dan opt;
  opt.taps = {"features", "layer3"};
  DanMethod dan(opt);
  EXPECT_EQ(dan.taps(), std::vector<std::string>{"layer3"});
  auto r = dan.loss(o);
  MethodOptions::Dan one;
  double f = DanMethod(one).loss(o).total.item<double>();
  StepOutputs o3 = o;
  o3.f_s = o.taps_s["layer3"].reshape({6, -1});
  o3.f_t = o.taps_t["layer3"].reshape({6, -1});
  double l3 = DanMethod(one).loss(o3).total.item<double>();
  EXPECT_NEAR(r.total.item<double>(), f + l3, 1e-12);
  ASSERT_EQ(r.terms.size(), 3u);
  EXPECT_EQ(r.terms[1].first, "dan_features");
  EXPECT_EQ(r.terms[2].first, "dan_layer3");
  o.taps_t.clear();
  try {
    dan.loss(o);
    FAIL() << "missing tap accepted";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer3"), std::string::npos) << e.what();
  }
  MethodOptions::Dan bad;
  bad.estimator = "quadratic";
  EXPECT_THROW(DanMethod{bad}, core::UsageError);
}

TEST(Jan, LogitGradientMatchesFiniteDifferences) {
  // The softmax kernel has a fixed bandwidth, so JAN's gradient w.r.t. the logits is exact.
  torch::manual_seed(8);
  auto o = outputs(4, 4, 3, 3, 0.4);
  MethodOptions::Jan opt;
  JanMethod jan(opt);
  auto f = [&](const std::vector<torch::Tensor>& in) {
    StepOutputs p = o;
    p.logits_s = in[0];
    p.logits_t = in[1];
    return jan.loss(p).total;
  };
  auto res = testutil::gradcheck(f, {o.logits_s.set_requires_grad(true), o.logits_t.set_requires_grad(true)});
  EXPECT_GRADCHECK(res, 1e-6);
}
