#include "probe/tsne.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"

namespace shiftlab::probe {

namespace {

// Conditional affinities of row i at precision beta: returns the entropy (nats).
double row_affinities(const double* d2, Eigen::Index n, Eigen::Index i, double beta, double* p) {
  double dmin = std::numeric_limits<double>::infinity();
  for (Eigen::Index j = 0; j < n; ++j)
    if (j != i) dmin = std::min(dmin, d2[j]);
  double sum = 0, wsum = 0;
  for (Eigen::Index j = 0; j < n; ++j) {
    p[j] = j == i ? 0.0 : std::exp(-beta * (d2[j] - dmin));  // shift for stability (cancels)
    sum += p[j];
    wsum += p[j] * (d2[j] - dmin);
  }
  for (Eigen::Index j = 0; j < n; ++j) p[j] /= sum;
  return std::log(sum) + beta * wsum / sum;
}

double kl_divergence(const MatrixD& P, const MatrixD& Qnum, double qsum) {
  double kl = 0;
  for (Eigen::Index j = 0; j < P.cols(); ++j)
    for (Eigen::Index i = 0; i < P.rows(); ++i)
      if (i != j && P(i, j) > 0) kl += P(i, j) * std::log(P(i, j) / std::max(Qnum(i, j) / qsum, 1e-300));
  return kl;
}

}  // namespace

TsneResult tsne(const MatrixF& Xf, const TsneOptions& o) {
  const Eigen::Index n = Xf.rows();
  core::check(n >= 4, "t-SNE: needs at least 4 rows, got ", n);
  core::check(o.perplexity > 0 && o.perplexity < static_cast<double>(n - 1), "t-SNE: perplexity ", o.perplexity,
              " must be in (0, N-1 = ", n - 1, ")");
  MatrixD X = Xf.cast<double>();
  X.rowwise() -= X.colwise().mean();
  MatrixD G(n, n);
  gemm(X, false, X, true, G);
  Eigen::VectorXd sq = G.diagonal();
  MatrixD D2 = (((-2.0 * G).colwise() + sq).rowwise() + sq.transpose()).cwiseMax(0.0);
  // column i of P holds p_j|i (column-major: contiguous)
  MatrixD P(n, n);
  const double target = std::log(o.perplexity);
  at::parallel_for(0, n, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double lo = 0, hi = std::numeric_limits<double>::infinity(), beta = 1;
      for (int it = 0; it < 100; ++it) {
        double h = row_affinities(D2.col(i).data(), n, i, beta, P.col(i).data());
        if (std::abs(h - target) < 1e-5) break;
        if (h > target) {
          lo = beta;
          beta = std::isinf(hi) ? beta * 2 : (beta + hi) / 2;
        } else {
          hi = beta;
          beta = (beta + lo) / 2;
        }
      }
    }
  });
  MatrixD Psym = (P + P.transpose()) / (2.0 * static_cast<double>(n));
  Psym = Psym.cwiseMax(1e-12);
  Psym.diagonal().setZero();

  std::mt19937_64 rng(o.seed);
  std::normal_distribution<double> nd(0.0, 1e-4);
  TsneResult r;
  r.Y.resize(n, 2);
  for (Eigen::Index i = 0; i < n; ++i) r.Y(i, 0) = nd(rng), r.Y(i, 1) = nd(rng);
  MatrixD update = MatrixD::Zero(n, 2), gains = MatrixD::Ones(n, 2), grad(n, 2), Qnum(n, n);
  const double eta = o.learning_rate > 0 ? o.learning_rate : std::max(static_cast<double>(n) / o.exaggeration / 4, 50.0);
  for (int it = 0; it < o.iterations; ++it) {
    const double ex = it < o.exaggeration_iters ? o.exaggeration : 1.0;
    // Student-t numerators and their sum
    std::vector<double> partial(static_cast<size_t>(n), 0.0);
    at::parallel_for(0, n, 32, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        double s = 0;
        for (Eigen::Index i = 0; i < n; ++i) {
          double dx = r.Y(i, 0) - r.Y(j, 0), dy = r.Y(i, 1) - r.Y(j, 1);
          double q = i == j ? 0.0 : 1.0 / (1.0 + dx * dx + dy * dy);
          Qnum(i, j) = q;
          s += q;
        }
        partial[static_cast<size_t>(j)] = s;
      }
    });
    double qsum = 0;
    for (double v : partial) qsum += v;
    at::parallel_for(0, n, 32, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        double gx = 0, gy = 0;
        for (Eigen::Index i = 0; i < n; ++i) {
          double q = Qnum(i, j);
          double m = (ex * Psym(i, j) - q / qsum) * q;
          gx += m * (r.Y(j, 0) - r.Y(i, 0));
          gy += m * (r.Y(j, 1) - r.Y(i, 1));
        }
        grad(j, 0) = 4 * gx;
        grad(j, 1) = 4 * gy;
      }
    });
    if (ex == 1.0 && (o.kl_every > 0 && (it % o.kl_every == 0)))
      r.kl.emplace_back(it, kl_divergence(Psym, Qnum, qsum));
    const double momentum = it < o.exaggeration_iters ? 0.5 : 0.8;
    for (Eigen::Index k = 0; k < grad.size(); ++k) {
      double& g = gains.data()[k];
      const double gr = grad.data()[k], up = update.data()[k];
      g = (gr > 0) != (up > 0) ? g + 0.2 : g * 0.8;
      g = std::max(g, 0.01);
      update.data()[k] = momentum * up - eta * g * gr;
      r.Y.data()[k] += update.data()[k];
    }
    r.Y.rowwise() -= r.Y.colwise().mean();
  }
  // final KL
  double qsum = 0;
  for (Eigen::Index j = 0; j < n; ++j)
    for (Eigen::Index i = 0; i < n; ++i) {
      double dx = r.Y(i, 0) - r.Y(j, 0), dy = r.Y(i, 1) - r.Y(j, 1);
      Qnum(i, j) = i == j ? 0.0 : 1.0 / (1.0 + dx * dx + dy * dy);
      qsum += Qnum(i, j);
    }
  r.kl.emplace_back(o.iterations, kl_divergence(Psym, Qnum, qsum));
  return r;
}

}  // namespace shiftlab::probe
