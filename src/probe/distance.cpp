#include "probe/distance.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace shiftlab::probe {

namespace {

void check_pair(const MatrixF& S, const MatrixF& T, const char* what, Eigen::Index min_rows) {
  core::check(S.rows() >= min_rows && T.rows() >= min_rows, what, ": needs at least ", min_rows,
              " rows per domain (source ", S.rows(), ", target ", T.rows(), ")");
  core::check(S.cols() == T.cols(), what, ": source has ", S.cols(), " features, target ", T.cols());
}

MatrixD rows_double(const MatrixF& X, int64_t max_rows, uint64_t seed) {
  if (max_rows > 0 && X.rows() > max_rows) return take_rows(X, subsample(X.rows(), max_rows, seed)).cast<double>();
  return X.cast<double>();
}

MatrixD covariance(const MatrixD& X) {
  MatrixD Xc = X.rowwise() - X.colwise().mean();
  MatrixD C(X.cols(), X.cols());
  gemm(Xc, true, Xc, false, C, 1.0 / static_cast<double>(X.rows() - 1));
  return C;
}

}  // namespace

ADistanceResult proxy_a_distance(const MatrixF& S, const MatrixF& T, const ADistanceOptions& o) {
  check_pair(S, T, "A-distance", 4);
  int64_t n = std::min<int64_t>({S.rows(), T.rows(), o.max_rows > 0 ? o.max_rows : S.rows()});
  MatrixF X(2 * n, S.cols());
  X.topRows(n) = take_rows(S, subsample(S.rows(), n, o.seed + 1));
  X.bottomRows(n) = take_rows(T, subsample(T.rows(), n, o.seed + 2));
  std::vector<int> d(static_cast<size_t>(2 * n), 0);
  std::fill(d.begin() + n, d.end(), 1);
  auto split = stratified_split(d, o.test_fraction, o.seed + 3);  // first = train, second = test
  std::vector<int> dtr = take(d, split.first);
  auto inner = stratified_split(dtr, 0.25, o.seed + 4);           // C chosen on a quarter of train
  MatrixF Xtr = take_rows(X, split.first);
  LinearProbeOptions po;
  po.Cs = o.Cs;
  po.fit = o.fit;
  LinearProbe p;
  if (po.Cs.size() > 1) {
    p = fit_linear_probe(take_rows(Xtr, inner.first), take(dtr, inner.first), take_rows(Xtr, inner.second),
                         take(dtr, inner.second), 2, po);
    po.Cs = {p.best_C};  // refit on the whole training half at the chosen C
  }
  p = fit_linear_probe(Xtr, dtr, MatrixF(), {}, 2, po);
  double acc = p.accuracy(take_rows(X, split.second), take(d, split.second));
  ADistanceResult r;
  r.error = 1.0 - acc / 100.0;
  r.a_distance_raw = 2.0 * (1.0 - 2.0 * r.error);
  r.a_distance = std::clamp(r.a_distance_raw, 0.0, 2.0);
  r.C = p.best_C;
  r.rows_per_domain = n;
  r.test_rows = static_cast<int64_t>(split.second.size());
  return r;
}

double mk_mmd2(const MatrixF& S, const MatrixF& T, const MmdOptions& o) {
  check_pair(S, T, "MMD", o.unbiased ? 2 : 1);
  core::check(!o.alphas.empty(), "MMD: no kernel bandwidth multipliers");
  MatrixD s = rows_double(S, o.max_rows, o.seed + 1), t = rows_double(T, o.max_rows, o.seed + 2);
  const Eigen::Index ns = s.rows(), nt = t.rows(), n = ns + nt;
  MatrixD Z(n, s.cols());
  Z.topRows(ns) = s;
  Z.bottomRows(nt) = t;
  Z.rowwise() -= Z.colwise().mean();  // distances are shift invariant; centring keeps the Gram small
  MatrixD G(n, n);
  gemm(Z, false, Z, true, G);
  Eigen::VectorXd sq = G.diagonal();
  MatrixD D2 = ((-2.0 * G).colwise() + sq).rowwise() + sq.transpose();
  D2 = D2.cwiseMax(0.0);
  D2.diagonal().setZero();
  const double mean_d2 = std::max(D2.mean(), 1e-12);
  MatrixD K = MatrixD::Zero(n, n);
  for (double a : o.alphas) K.array() += (D2.array() * (-0.5 / (a * mean_d2))).exp();
  auto block_mean = [&](Eigen::Index r0, Eigen::Index nr, Eigen::Index c0, Eigen::Index nc, bool no_diag) {
    double sum = K.block(r0, c0, nr, nc).sum();
    if (no_diag) return (sum - K.block(r0, c0, nr, nc).diagonal().sum()) / static_cast<double>(nr * (nr - 1));
    return sum / static_cast<double>(nr * nc);
  };
  return block_mean(0, ns, 0, ns, o.unbiased) + block_mean(ns, nt, ns, nt, o.unbiased) -
         2.0 * block_mean(0, ns, ns, nt, false);
}

double coral_distance(const MatrixF& S, const MatrixF& T, int64_t max_rows, uint64_t seed) {
  check_pair(S, T, "CORAL", 2);
  MatrixD Cs = covariance(rows_double(S, max_rows, seed + 1)), Ct = covariance(rows_double(T, max_rows, seed + 2));
  const double d = static_cast<double>(S.cols());
  return (Cs - Ct).squaredNorm() / (4.0 * d * d);
}

}  // namespace shiftlab::probe
