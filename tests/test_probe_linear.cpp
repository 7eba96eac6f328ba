// Linear and kNN probes: gradient vs finite differences, coefficients/accuracy vs scikit-learn.
#include <gtest/gtest.h>

#include <random>

#include "probe/knn.h"
#include "probe/linalg.h"
#include "probe/logreg.h"
#include "probe_test_util.h"

using namespace shiftlab;
using namespace shiftlab::probe;

TEST(ProbeLinalg, GemmAllTranspositionsAndBlocks) {
  Eigen::MatrixXd A = Eigen::MatrixXd::Random(7, 5), B = Eigen::MatrixXd::Random(5, 4), C(7, 4);
  gemm(A, false, B, false, C);
  EXPECT_LT((C - A * B).norm(), 1e-12);
  Eigen::MatrixXd At = A.transpose(), Bt = B.transpose();
  gemm(At, true, Bt, true, C);
  EXPECT_LT((C - A * B).norm(), 1e-12);
  Eigen::MatrixXd C2 = Eigen::MatrixXd::Ones(7, 4);
  gemm(A, false, Bt, true, C2, 2.0, 0.5);
  EXPECT_LT((C2 - (2 * A * B + 0.5 * Eigen::MatrixXd::Ones(7, 4))).norm(), 1e-12);
  // a row block of a column-major matrix (outer stride != rows)
  Eigen::MatrixXf X = Eigen::MatrixXf::Random(10, 6), Y = Eigen::MatrixXf::Random(3, 6);
  Eigen::MatrixXf S(4, 3);
  gemm(X.middleRows(2, 4), false, Y, true, S);
  EXPECT_LT((S - X.middleRows(2, 4) * Y.transpose()).norm(), 1e-5);
}

TEST(ProbeLinalg, StratifiedSplitKeepsClassesOnBothSides) {
  std::vector<int> y;
  for (int i = 0; i < 100; ++i) y.push_back(i % 4);
  auto s = stratified_split(y, 0.25, 3);
  EXPECT_EQ(s.first.size(), 76u);
  EXPECT_EQ(s.second.size(), 24u);
  std::vector<int> count(4, 0);
  for (auto i : s.second) count[static_cast<size_t>(y[static_cast<size_t>(i)])]++;
  for (int c : count) EXPECT_EQ(c, 6);
}

TEST(ProbeLogReg, GradientMatchesFiniteDifferences) {
  std::mt19937 rng(1);
  std::normal_distribution<double> nd;
  const int N = 30, D = 5, K = 4;
  Eigen::MatrixXd X(N, D);
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < D; ++j) X(i, j) = nd(rng);
  std::vector<int> y;
  for (int i = 0; i < N; ++i) y.push_back(i % K);
  for (bool intercept : {true, false}) {
    SoftmaxObjective<double> f(X, y, K, 0.7, intercept);
    Eigen::VectorXd w(f.size()), g;
    for (int i = 0; i < w.size(); ++i) w(i) = 0.3 * nd(rng);
    double f0 = f(w, g);
    // value vs a direct loop
    double direct = 0;
    for (int i = 0; i < N; ++i) {
      Eigen::VectorXd z(K);
      for (int k = 0; k < K; ++k) {
        z(k) = intercept ? w(D * K + k) : 0.0;
        for (int j = 0; j < D; ++j) z(k) += X(i, j) * w(k * D + j);
      }
      direct += std::log(z.array().exp().sum()) - z(y[static_cast<size_t>(i)]);
    }
    direct = direct / N + 0.5 / (0.7 * N) * w.head(D * K).squaredNorm();
    EXPECT_NEAR(f0, direct, 1e-12);
    double worst = 0;
    for (int i = 0; i < w.size(); ++i) {
      Eigen::VectorXd wp = w, wm = w, tmp;
      wp(i) += 1e-6;
      wm(i) -= 1e-6;
      double num = (f(wp, tmp) - f(wm, tmp)) / 2e-6;
      worst = std::max(worst, std::abs(num - g(i)) / std::max(1.0, std::abs(num)));
    }
    EXPECT_LT(worst, 1e-7) << "intercept " << intercept;
  }
}

// H v of SoftmaxHessian (all rows) against central differences of the analytic gradient, and the
// sub-sampled Hessian on a subset equals the exact Hessian of that subset's data term + λ.
TEST(ProbeLogReg, HessianVectorProductMatchesGradientDifferences) {
  std::mt19937 rng(3);
  std::normal_distribution<double> nd;
  const int N = 40, D = 6, K = 3;
  Eigen::MatrixXd X(N, D);
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < D; ++j) X(i, j) = nd(rng);
  std::vector<int> y;
  for (int i = 0; i < N; ++i) y.push_back((i * 7) % K);
  for (bool intercept : {true, false}) {
    SoftmaxObjective<double> f(X, y, K, 0.5, intercept);
    SoftmaxHessian<double> H(X, K, f.lambda(), intercept);
    Eigen::VectorXd w(f.size()), v(f.size()), Hv, gp, gm;
    for (int i = 0; i < w.size(); ++i) w(i) = 0.4 * nd(rng), v(i) = nd(rng);
    H.set_point(w);
    H.apply(v, Hv);
    const double h = 1e-5;
    f(w + h * v, gp);
    f(w - h * v, gm);
    Eigen::VectorXd num = (gp - gm) / (2 * h);
    EXPECT_LT((num - Hv).cwiseAbs().maxCoeff() / std::max(1.0, num.cwiseAbs().maxCoeff()), 1e-7)
        << "intercept " << intercept;
    // symmetric: uᵀ H v = vᵀ H u
    Eigen::VectorXd u(f.size()), Hu;
    for (int i = 0; i < u.size(); ++i) u(i) = nd(rng);
    H.apply(u, Hu);
    EXPECT_NEAR(u.dot(Hv), v.dot(Hu), 1e-10 * std::max(1.0, std::abs(u.dot(Hv))));
  }
}

class ProbeSklearn : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    have_ = testutil::python_missing({"sklearn", "numpy"}).empty();
    if (!have_) return;
    dir_ = testutil::fresh_dir("probe_sklearn");
    err_ = testutil::probe_reference("logreg", dir_ + "/logreg");
    if (err_.empty()) err_ = testutil::probe_reference("knn", dir_ + "/knn");
    ok_ = err_.empty();
  }
  void SetUp() override {
    if (!have_) REQUIRE_PYTHON({"sklearn", "numpy"});
    ASSERT_TRUE(ok_) << err_;
  }
  static inline std::string dir_, err_;
  static inline bool ok_ = false, have_ = false;
};

TEST_F(ProbeSklearn, LogisticRegressionMatchesCoefficientsAndPredictions) {
  const std::string d = dir_ + "/logreg/";
  MatrixF X = testutil::npy_matrix(d + "X.npy").cast<float>(), Xt = testutil::npy_matrix(d + "Xt.npy").cast<float>();
  auto y = testutil::npy_labels(d + "y.npy");
  // Newton with the exact Hessian, Newton with a Hessian on 100 of the 300 rows, L-BFGS on
  // whitened coordinates (the default; Σ from 100 rows) and plain L-BFGS: one minimiser
  struct Solver {
    const char* name;
    int64_t hessian_rows;
    bool precondition;
  };
  for (Solver sv : {Solver{"newton", 0, true}, Solver{"newton", 100, true}, Solver{"lbfgs", 100, true},
                    Solver{"lbfgs", 0, false}})
  for (std::string C : {"0.01", "1.0"}) {
    SCOPED_TRACE(std::string(sv.name) + " hessian_rows " + std::to_string(sv.hessian_rows) + " precondition " +
                 std::to_string(sv.precondition));
    LogRegOptions o;
    o.C = std::stod(C);
    o.tol = 1e-7;
    o.ftol = 0;
    o.max_iter = 5000;
    o.solver = sv.name;
    o.hessian_rows = sv.hessian_rows;
    o.precondition = sv.precondition;
    auto m = fit_logreg(X, y, 4, o);
    EXPECT_TRUE(m.converged) << m.stop_reason;
    Eigen::MatrixXd coef = testutil::npy_matrix(d + "ref_" + C + "_coef.npy");  // K×D
    Eigen::VectorXd icpt = testutil::npy_matrix(d + "ref_" + C + "_intercept.npy");
    double scale = coef.cwiseAbs().maxCoeff();
    // float32 objective (X is float): the gradient's round-off (~1e-6) over the smallest curvature
    // λ = 1/(C·N) bounds how close any solver gets; measured up to 1.3e-3 (Newton, 100-row Hessian,
    // pip libtorch's MKL), 2e-3 as for the intercept below
    EXPECT_LT((m.W.transpose() - coef).cwiseAbs().maxCoeff() / scale, 2e-3) << "C=" << C << ", " << m.stop_reason << " after " << m.iterations << " iterations, objective " << m.objective;
    // the intercept is defined up to a constant shift across classes
    Eigen::VectorXd db = (m.b.array() - m.b.mean()) - (icpt.array() - icpt.mean());
    EXPECT_LT(db.cwiseAbs().maxCoeff() / std::max(1.0, icpt.cwiseAbs().maxCoeff()), 2e-3) << "C=" << C;
    auto pred = m.predict(Xt);
    auto ref = testutil::npy_labels(d + "ref_" + C + "_pred.npy");
    EXPECT_GE(accuracy_pct(pred, ref), 99.0) << "C=" << C;
  }
}

TEST_F(ProbeSklearn, LinearProbeStandardisesLikeStandardScaler) {
  const std::string d = dir_ + "/logreg/";
  MatrixF X = testutil::npy_matrix(d + "X.npy").cast<float>(), Xt = testutil::npy_matrix(d + "Xt.npy").cast<float>();
  auto y = testutil::npy_labels(d + "y.npy"), yt = testutil::npy_labels(d + "yt.npy");
  LinearProbeOptions o;
  o.Cs = {1.0};
  o.fit.tol = 1e-7;
  o.fit.ftol = 0;
  auto p = fit_linear_probe(X, y, MatrixF(), {}, 4, o);
  Eigen::MatrixXd coef = testutil::npy_matrix(d + "ref_1.0_std_coef.npy");
  EXPECT_LT((p.model.W.transpose() - coef).cwiseAbs().maxCoeff() / coef.cwiseAbs().maxCoeff(), 2e-3);
  EXPECT_NEAR(p.accuracy(Xt, yt), testutil::npy_matrix(d + "ref_1.0_std_acc.npy")(0), 1.0);
}

TEST_F(ProbeSklearn, SweepPicksACAndKeepsItsModel) {
  const std::string d = dir_ + "/logreg/";
  MatrixF X = testutil::npy_matrix(d + "X.npy").cast<float>(), Xt = testutil::npy_matrix(d + "Xt.npy").cast<float>();
  auto y = testutil::npy_labels(d + "y.npy"), yt = testutil::npy_labels(d + "yt.npy");
  LinearProbeOptions o;
  o.patience = 10;
  auto p = fit_linear_probe(X, y, Xt, yt, 4, o);
  ASSERT_EQ(p.sweep.size(), o.Cs.size());
  double best = 0;
  for (auto& s : p.sweep) best = std::max(best, s.val_acc);
  EXPECT_DOUBLE_EQ(p.accuracy(Xt, yt), best);
  EXPECT_GT(best, 60.0);
}

TEST_F(ProbeSklearn, CosineKnnMatchesKNeighborsClassifier) {
  const std::string d = dir_ + "/knn/";
  MatrixF X = testutil::npy_matrix(d + "X.npy").cast<float>(), Xt = testutil::npy_matrix(d + "Xt.npy").cast<float>();
  auto y = testutil::npy_labels(d + "y.npy");
  for (int k : {1, 5, 10}) {
    KnnOptions o;
    o.k = k;
    o.block_rows = 64;  // several blocks
    auto pred = knn_predict(X, y, Xt, o);
    auto ref = testutil::npy_labels(d + "ref_k" + std::to_string(k) + ".npy");
    EXPECT_GE(accuracy_pct(pred, ref), 99.0) << "k=" << k;  // float vs double cosine: rare near-ties
  }
}
