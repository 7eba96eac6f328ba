#include "probe/transferability.h"

#include <cmath>

#include "core/error.h"
#include "core/log.h"

namespace shiftlab::probe {

namespace {

void check_xy(const MatrixF& X, const std::vector<int>& y, const char* what) {
  core::check(X.rows() >= 2, what, ": needs at least 2 rows, got ", X.rows());
  core::check(static_cast<Eigen::Index>(y.size()) == X.rows(), what, ": ", y.size(), " labels for ", X.rows(),
              " rows");
  for (int v : y) core::check(v >= 0, what, ": unlabelled row (label ", v, ")");
}

MatrixD softmax_rows(const MatrixF& Z) {
  MatrixD P = Z.cast<double>();
  for (Eigen::Index i = 0; i < P.rows(); ++i) {
    P.row(i) = (P.row(i).array() - P.row(i).maxCoeff()).exp();
    P.row(i) /= P.row(i).sum();
  }
  return P;
}

}  // namespace

double logme(const MatrixF& Ff, const std::vector<int>& y) {
  check_xy(Ff, y, "LogME");
  const MatrixD F = Ff.cast<double>();
  const Eigen::Index N = F.rows(), D = F.cols();
  const int K = num_classes_of(y);
  MatrixD Y = MatrixD::Zero(N, K);
  for (Eigen::Index i = 0; i < N; ++i) Y(i, y[static_cast<size_t>(i)]) = 1;
  // eigenvalues σ (r of them; the other D − r are 0) and P = Vᵀ Fᵀ Y (r×K) of FᵀF
  Eigen::VectorXd sigma;
  MatrixD P;
  if (N > D) {
    MatrixD FtF(D, D), FtY(D, K);
    gemm(F, true, F, false, FtF);
    gemm(F, true, Y, false, FtY);
    MatrixD V;
    sym_eig(FtF, sigma, V);
    sigma = sigma.cwiseMax(0.0);
    P = V.transpose() * FtY;
  } else {
    // F Fᵀ = U Λ Uᵀ; right singular vectors v_i = Fᵀu_i/√λ_i, so p_i = v_iᵀFᵀy = √λ_i u_iᵀ y
    MatrixD FFt(N, N);
    gemm(F, false, F, true, FFt);
    MatrixD U;
    sym_eig(FFt, sigma, U);
    sigma = sigma.cwiseMax(0.0);
    P = sigma.cwiseSqrt().asDiagonal() * (U.transpose() * Y);
  }
  const double n = static_cast<double>(N), d = static_cast<double>(D);
  const double zeros = d - static_cast<double>(sigma.size());  // eigenvalues of FᵀF equal to 0
  double total = 0;
  for (int c = 0; c < K; ++c) {
    const Eigen::VectorXd p = P.col(c);
    const double yy = Y.col(c).squaredNorm();
    double alpha = 1, beta = 1, res = 0, mm = 0;
    auto update = [&](double a, double b) {
      Eigen::ArrayXd q = b * p.array() / (a + b * sigma.array());  // coordinates of m in the eigenbasis
      mm = q.square().sum();
      res = std::max(yy - 2 * (p.array() * q).sum() + (sigma.array() * q.square()).sum(), 1e-300);
      return (b * sigma.array() / (a + b * sigma.array())).sum();  // γ
    };
    for (int it = 0; it < 1000; ++it) {
      double gamma = update(alpha, beta);
      double a2 = gamma / std::max(mm, 1e-300), b2 = (n - gamma) / res;
      bool done = std::abs(a2 - alpha) <= 1e-10 * alpha && std::abs(b2 - beta) <= 1e-10 * beta;
      alpha = a2;
      beta = b2;
      if (done) break;
    }
    update(alpha, beta);
    double logdet = (alpha + beta * sigma.array()).log().sum() + zeros * std::log(alpha);
    double L = d / 2 * std::log(alpha) + n / 2 * std::log(beta) - 0.5 * logdet - beta / 2 * res - alpha / 2 * mm -
               n / 2 * std::log(2 * M_PI);
    total += L / n;
  }
  return total / K;
}

double leep(const MatrixF& logits, const std::vector<int>& y) {
  check_xy(logits, y, "LEEP");
  const MatrixD theta = softmax_rows(logits);
  const int K = num_classes_of(y);
  const double n = static_cast<double>(theta.rows());
  MatrixD joint = MatrixD::Zero(K, theta.cols());
  for (Eigen::Index i = 0; i < theta.rows(); ++i) joint.row(y[static_cast<size_t>(i)]) += theta.row(i) / n;
  Eigen::RowVectorXd pz = joint.colwise().sum();
  MatrixD cond = joint.array().rowwise() / pz.array().max(1e-300);
  double s = 0;
  for (Eigen::Index i = 0; i < theta.rows(); ++i) s += std::log(cond.row(y[static_cast<size_t>(i)]).dot(theta.row(i)));
  return s / n;
}

double nce(const MatrixF& logits, const std::vector<int>& y) {
  check_xy(logits, y, "NCE");
  const int K = num_classes_of(y);
  const double n = static_cast<double>(logits.rows());
  MatrixD joint = MatrixD::Zero(K, logits.cols());
  for (Eigen::Index i = 0; i < logits.rows(); ++i) {
    Eigen::Index z;
    logits.row(i).maxCoeff(&z);
    joint(y[static_cast<size_t>(i)], z) += 1.0 / n;
  }
  Eigen::RowVectorXd pz = joint.colwise().sum();
  double s = 0;
  for (Eigen::Index a = 0; a < joint.rows(); ++a)
    for (Eigen::Index b = 0; b < joint.cols(); ++b)
      if (joint(a, b) > 0) s += joint(a, b) * std::log(joint(a, b) / pz(b));
  return s;
}

double h_score(const MatrixF& Ff, const std::vector<int>& y) {
  check_xy(Ff, y, "H-score");
  MatrixD F = Ff.cast<double>();
  F.rowwise() -= F.colwise().mean();
  const int K = num_classes_of(y);
  const double n = static_cast<double>(F.rows());
  MatrixD means = MatrixD::Zero(K, F.cols());
  Eigen::VectorXd count = Eigen::VectorXd::Zero(K);
  for (Eigen::Index i = 0; i < F.rows(); ++i) {
    means.row(y[static_cast<size_t>(i)]) += F.row(i);
    count(y[static_cast<size_t>(i)]) += 1;
  }
  MatrixD G(F.rows(), F.cols());
  for (Eigen::Index i = 0; i < F.rows(); ++i) {
    int c = y[static_cast<size_t>(i)];
    G.row(i) = means.row(c) / count(c);
  }
  MatrixD cov(F.cols(), F.cols()), covg(F.cols(), F.cols());
  gemm(F, true, F, false, cov, 1.0 / n);
  gemm(G, true, G, false, covg, 1.0 / n);
  const double D = static_cast<double>(F.cols());
  double scale = 1.0;  // the regularised score is (1 − α) tr(cov_α⁻¹ cov_g)
  if (n <= D) {
    // With rows <= dimensions the covariance is singular and the features' span holds the class
    // means exactly: tr(cov⁺ cov_g) = K − 1 whatever the features. Ledoit–Wolf shrinkage towards
    // μI (the regularised H-score of Ibrahim et al., ICLR 2023) keeps the score informative.
    const double mu = cov.trace() / D;
    const double delta2 = (cov - mu * MatrixD::Identity(F.cols(), F.cols())).squaredNorm() / D;
    const double s2 = cov.squaredNorm();
    double b2 = 0;
    for (Eigen::Index i = 0; i < F.rows(); ++i) {
      const Eigen::VectorXd x = F.row(i).transpose();
      const double xx = x.squaredNorm();
      b2 += xx * xx - 2 * x.dot(cov * x) + s2;
    }
    b2 /= n * n * D;
    const double alpha = delta2 > 0 ? std::min(1.0, std::min(b2, delta2) / delta2) : 1.0;
    cov = (1 - alpha) * cov + alpha * mu * MatrixD::Identity(F.cols(), F.cols());
    scale = 1 - alpha;
    core::log_warn("H-score on ", F.rows(), " rows of ", F.cols(),
                   " dimensions: the covariance is singular (the plain score would be K - 1 = ", K - 1,
                   " for any features); shrunk towards the identity (Ledoit-Wolf, alpha = ", alpha,
                   ") — use more rows than dimensions for the plain H-score");
  }
  Eigen::VectorXd ev;
  MatrixD V;
  sym_eig(cov, ev, V);
  const double cut = 1e-10 * std::max(ev.maxCoeff(), 1e-300);
  Eigen::VectorXd inv = ev.unaryExpr([cut](double v) { return v > cut ? 1.0 / v : 0.0; });
  // tr(V diag(inv) Vᵀ covg) = Σ_i inv_i v_iᵀ covg v_i
  return scale * ((V.transpose() * covg * V).diagonal().array() * inv.array()).sum();
}

}  // namespace shiftlab::probe
