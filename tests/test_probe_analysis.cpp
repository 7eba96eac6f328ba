// Domain distances, transferability scores, t-SNE and the SVG writer.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <random>

#include "core/error.h"
#include "probe/distance.h"
#include "probe/knn.h"
#include "probe/transferability.h"
#include "probe/tsne.h"
#include "report/svg.h"
#include "probe_test_util.h"
#include "support/svg_check.h"

using namespace shiftlab;
using namespace shiftlab::probe;
using namespace shiftlab::report;  // the SVG writer

namespace {

MatrixF gaussian(int n, int d, double shift, uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd;
  MatrixF X(n, d);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) X(i, j) = static_cast<float>(nd(rng) * scale + (j == 0 ? shift : 0.0));
  return X;
}

}  // namespace

TEST(ProbeDistance, ADistanceNearZeroForOneDistributionAndTwoForSeparable) {
  auto s = gaussian(400, 8, 0, 1), t = gaussian(400, 8, 0, 2);
  ADistanceOptions o;
  auto same = proxy_a_distance(s, t, o);
  EXPECT_LT(same.a_distance, 0.3) << "error " << same.error;
  EXPECT_GT(same.error, 0.4);
  auto far = proxy_a_distance(s, gaussian(400, 8, 12, 3), o);
  EXPECT_GT(far.a_distance, 1.95) << "error " << far.error;
  auto mid = proxy_a_distance(s, gaussian(400, 8, 1.0, 4), o);
  EXPECT_GT(mid.a_distance, same.a_distance);
  EXPECT_LT(mid.a_distance, far.a_distance);
}

TEST(ProbeDistance, MmdMatchesDoubleLoop) {
  auto s = gaussian(23, 5, 0, 5), t = gaussian(17, 5, 0.7, 6, 1.3);
  for (bool unbiased : {false, true}) {
    MmdOptions o;
    o.unbiased = unbiased;
    double got = mk_mmd2(s, t, o);
    // direct formula
    std::vector<Eigen::VectorXd> z;
    for (int i = 0; i < s.rows(); ++i) z.push_back(s.row(i).transpose().cast<double>());
    for (int i = 0; i < t.rows(); ++i) z.push_back(t.row(i).transpose().cast<double>());
    const size_t n = z.size(), ns = 23;
    double mean = 0;
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j) mean += (z[i] - z[j]).squaredNorm();
    mean /= static_cast<double>(n * n);
    auto k = [&](size_t i, size_t j) {
      double d = (z[i] - z[j]).squaredNorm(), v = 0;
      for (double a : o.alphas) v += std::exp(-d / (2 * a * mean));
      return v;
    };
    double ss = 0, tt = 0, st = 0;
    const size_t nt = n - ns;
    for (size_t i = 0; i < ns; ++i)
      for (size_t j = 0; j < ns; ++j)
        if (!unbiased || i != j) ss += k(i, j);
    for (size_t i = ns; i < n; ++i)
      for (size_t j = ns; j < n; ++j)
        if (!unbiased || i != j) tt += k(i, j);
    for (size_t i = 0; i < ns; ++i)
      for (size_t j = ns; j < n; ++j) st += k(i, j);
    double ref = unbiased ? ss / (ns * (ns - 1.0)) + tt / (nt * (nt - 1.0)) - 2 * st / (ns * nt)
                          : ss / (ns * ns * 1.0) + tt / (nt * nt * 1.0) - 2 * st / (ns * nt);
    EXPECT_NEAR(got, ref, 1e-10) << "unbiased " << unbiased;
  }
  EXPECT_GT(mk_mmd2(s, gaussian(17, 5, 5, 7), {}), mk_mmd2(s, t, {}));
}

TEST(ProbeDistance, CoralMatchesDoubleLoop) {
  auto s = gaussian(30, 4, 0, 8), t = gaussian(25, 4, 0.5, 9, 2.0);
  auto cov = [](const MatrixF& X) {
    const int n = static_cast<int>(X.rows()), d = static_cast<int>(X.cols());
    Eigen::MatrixXd C = Eigen::MatrixXd::Zero(d, d);
    Eigen::VectorXd mu = Eigen::VectorXd::Zero(d);
    for (int i = 0; i < n; ++i)
      for (int a = 0; a < d; ++a) mu(a) += X(i, a) / static_cast<double>(n);
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b) {
        for (int i = 0; i < n; ++i) C(a, b) += (X(i, a) - mu(a)) * (X(i, b) - mu(b));
        C(a, b) /= n - 1;
      }
    return C;
  };
  double ref = (cov(s) - cov(t)).squaredNorm() / (4.0 * 16);
  EXPECT_NEAR(coral_distance(s, t), ref, 1e-9 * std::max(1.0, ref));
  EXPECT_NEAR(coral_distance(s, s), 0.0, 1e-12);
}

TEST(ProbeTransferability, MatchesIndependentNumpyReference) {
  REQUIRE_PYTHON({"numpy"});
  auto dir = testutil::fresh_dir("probe_transfer");
  auto err = testutil::probe_reference("transfer", dir);
  ASSERT_TRUE(err.empty()) << err;
  MatrixF F = testutil::npy_matrix(dir + "/F.npy").cast<float>(), Z = testutil::npy_matrix(dir + "/Z.npy").cast<float>();
  auto y = testutil::npy_labels(dir + "/y.npy");
  std::map<std::string, double> ref;
  std::ifstream f(dir + "/ref.txt");
  std::string k;
  double v;
  while (f >> k >> v) ref[k] = v;
  ASSERT_EQ(ref.size(), 5u);
  EXPECT_NEAR(logme(F, y), ref["logme"], 1e-7);
  EXPECT_NEAR(leep(Z, y), ref["leep"], 1e-9);
  EXPECT_NEAR(nce(Z, y), ref["nce"], 1e-9);
  EXPECT_NEAR(h_score(F, y), ref["hscore"], 1e-7);
  // N < D goes through the N×N Gram matrix
  MatrixF Fw = testutil::npy_matrix(dir + "/Fw.npy").cast<float>();
  EXPECT_NEAR(logme(Fw, testutil::npy_labels(dir + "/yw.npy")), ref["logme_wide"], 1e-7);
}

TEST(ProbeTransferability, LogMeRanksInformativeFeaturesHigher) {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> nd;
  const int n = 300, d = 16;
  std::vector<int> y;
  MatrixF good(n, d), bad(n, d);
  for (int i = 0; i < n; ++i) {
    y.push_back(i % 3);
    for (int j = 0; j < d; ++j) {
      bad(i, j) = nd(rng);
      good(i, j) = nd(rng) + (j == y.back() ? 3.0f : 0.0f);
    }
  }
  EXPECT_GT(logme(good, y), logme(bad, y));
  EXPECT_GT(h_score(good, y), h_score(bad, y));
}

TEST(ProbeTsne, SeparatesTwoBlobsAndKlDecreases) {
  MatrixF X(160, 10);
  X.topRows(80) = gaussian(80, 10, 0, 11);
  X.bottomRows(80) = gaussian(80, 10, 8, 12);
  std::vector<int> y(160, 0);
  std::fill(y.begin() + 80, y.end(), 1);
  TsneOptions o;
  o.perplexity = 20;
  o.iterations = 400;
  o.exaggeration_iters = 100;
  auto r = tsne(X, o);
  ASSERT_EQ(r.Y.rows(), 160);
  ASSERT_GE(r.kl.size(), 3u);
  EXPECT_LT(r.kl.back().second, r.kl.front().second);
  // 2-D kNN accuracy (leave-one-out style: train on even rows, test on odd)
  MatrixF tr(80, 2), te(80, 2);
  std::vector<int> ytr, yte;
  for (int i = 0; i < 160; ++i) {
    (i % 2 ? te : tr).row(i / 2) = r.Y.row(i).cast<float>();
    (i % 2 ? yte : ytr).push_back(y[static_cast<size_t>(i)]);
  }
  // cosine kNN is not what we want in 2-D: use Euclidean nearest neighbour directly
  int ok = 0;
  for (int i = 0; i < 80; ++i) {
    Eigen::Index j;
    (tr.rowwise() - te.row(i)).rowwise().squaredNorm().minCoeff(&j);
    ok += ytr[static_cast<size_t>(j)] == yte[static_cast<size_t>(i)];
  }
  EXPECT_GE(ok, 79);
}

TEST(ProbeSvg, ChartsAreWellFormed) {
  LineChart c;
  c.title = "acc <by> layer & tap";
  c.categories = {"layer1", "layer2", "pooled"};
  c.series = {{"source", {50, 70, 90}, false}, {"target", {40, NAN, 60}, false}, {"A-distance", {1.9, 1.5, 1.2}, true}};
  for (auto& series : c.series) series.markers = true;  // as the probe's per-layer charts draw them
  auto s = line_chart_svg(c);
  std::string why;
  EXPECT_TRUE(testutil::svg_well_formed(s, &why)) << why << "\n" << s;
  EXPECT_NE(s.find("acc &lt;by&gt; layer &amp; tap"), std::string::npos);
  EXPECT_EQ(s.find("nan"), std::string::npos);
  EXPECT_EQ(s.find("inf"), std::string::npos);
  // one dot per finite value (3 + 2 + 3); the NaN breaks the target's line into two pieces
  auto count = [](const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(s, "<circle"), 8u);
  EXPECT_EQ(count(s, "<path"), 3u);
  std::vector<std::string> paths;
  for (size_t p = s.find("<path d=\""); p != std::string::npos; p = s.find("<path d=\"", p + 1))
    paths.push_back(s.substr(p + 9, s.find('"', p + 9) - p - 9));
  ASSERT_EQ(paths.size(), 3u);
  EXPECT_EQ(count(paths[0], "M"), 1u) << paths[0];
  EXPECT_EQ(count(paths[0], "L"), 2u) << paths[0];
  EXPECT_EQ(count(paths[1], "M"), 2u) << paths[1];  // the gap
  EXPECT_EQ(count(paths[1], "L"), 0u) << paths[1];
  EXPECT_NE(s.find("A-distance (right)"), std::string::npos);  // the right-axis series says so
  for (auto cat : {"layer1", "layer2", "pooled"}) EXPECT_NE(s.find(std::string(">") + cat + "<"), std::string::npos) << cat;
  c.series[0].y.pop_back();
  EXPECT_THROW(line_chart_svg(c), core::Error);

  MatrixD Y(3, 2);
  Y << 0, 0, 1, 1, 2, 0;
  auto sc = scatter_svg("t & <u>", Y, {0, 1, 1}, {"source", "target"});
  EXPECT_TRUE(testutil::svg_well_formed(sc, &why)) << why << "\n" << sc;
  EXPECT_NE(sc.find("t &amp; &lt;u&gt;"), std::string::npos);
  EXPECT_EQ(count(sc, "<circle"), 3u + 2u);  // the points and one legend dot per group
  // points of one group share the colour of that group's legend entry
  std::vector<std::string> fills;
  for (size_t p = sc.find("<circle"); p != std::string::npos; p = sc.find("<circle", p + 1)) {
    size_t f = sc.find("fill=\"", p) + 6;
    fills.push_back(sc.substr(f, sc.find('"', f) - f));
  }
  ASSERT_EQ(fills.size(), 5u);
  EXPECT_EQ(fills[1], fills[2]);
  EXPECT_NE(fills[0], fills[1]);
  EXPECT_EQ(fills[3], fills[0]);  // legend: source
  EXPECT_EQ(fills[4], fills[1]);  // legend: target
  EXPECT_THROW(scatter_svg("t", Y, {0, 2, 1}, {"source", "target"}), core::Error);
}

// issue 18 §3.14: with rows <= dimensions the plain H-score is K − 1 for any features (noise
// included); shrinkage keeps it below that for noise, above noise for informative features, and warns
TEST(ProbeTransferability, HScoreWithFewerRowsThanDimensionsIsRegularisedAndWarns) {
  const int n = 24, d = 64, K = 4;
  std::vector<int> y;
  for (int i = 0; i < n; ++i) y.push_back(i % K);
  MatrixF noise = gaussian(n, d, 0, 5), good = gaussian(n, d, 0, 6);
  for (int i = 0; i < n; ++i) good(i, y[static_cast<size_t>(i)]) += 4.0f;
  testing::internal::CaptureStderr();
  const double hn = h_score(noise, y), hg = h_score(good, y);
  auto err = testing::internal::GetCapturedStderr();
  EXPECT_LT(hn, K - 1 - 0.5) << "saturated";
  EXPECT_GT(hg, hn);
  EXPECT_LT(hg, K - 1 + 1e-9);
  EXPECT_NE(err.find("H-score on 24 rows of 64 dimensions"), std::string::npos) << err;
  // more rows than dimensions: the plain score, no warning
  std::vector<int> y2;
  for (int i = 0; i < 200; ++i) y2.push_back(i % 2);
  testing::internal::CaptureStderr();
  h_score(gaussian(200, 8, 0, 7), y2);
  EXPECT_EQ(testing::internal::GetCapturedStderr().find("H-score"), std::string::npos);
}

// issue 18 §3.14: k >= the training rows makes every kNN prediction the majority class: warned
TEST(ProbeKnn, KAtLeastTheRowsWarns) {
  MatrixF tr = gaussian(6, 4, 0, 8), q = gaussian(3, 4, 0, 9);
  std::vector<int> ytr = {0, 0, 0, 0, 1, 1};
  KnnOptions o;
  o.k = 20;
  testing::internal::CaptureStderr();
  auto pred = knn_predict(tr, ytr, q, o);
  auto err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(pred, (std::vector<int>{0, 0, 0}));
  EXPECT_NE(err.find("kNN: k = 20 but only 6 training rows"), std::string::npos) << err;
  o.k = 3;
  testing::internal::CaptureStderr();
  knn_predict(tr, ytr, q, o);
  EXPECT_EQ(testing::internal::GetCapturedStderr().find("kNN"), std::string::npos);
}
