#include "probe/logreg.h"

#include <ATen/Parallel.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <LBFGS.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "core/format.h"
#include "core/error.h"
#include "core/log.h"

namespace shiftlab::probe {

namespace {

void check_labels(const std::vector<int>& y, Eigen::Index n, int K, const char* what) {
  core::check(static_cast<Eigen::Index>(y.size()) == n, what, ": ", y.size(), " labels for ", n, " rows");
  for (int v : y) core::check(v >= 0 && v < K, what, ": label ", v, " outside [0, ", K, ")");
}

// Eigen-decomposition of the features' second moments Σ = XᵀX/n (eigenvalues clamped at 0): the
// whitening of the preconditioned L-BFGS and the Σ factor of the Newton preconditioner.
template <typename T>
void second_moments(const Matrix<T>& X, Eigen::MatrixXd& U, Eigen::VectorXd& s) {
  Matrix<T> S(X.cols(), X.cols());
  gemm(X, true, X, false, S);
  sym_eig(S.template cast<double>() / static_cast<double>(X.rows()), s, U);
  s = s.cwiseMax(0.0);
}

// The rows the Hessian / Σ are computed on: X itself, or `rows` random rows of it (into storage).
const MatrixF& moment_rows(const MatrixF& X, int64_t rows, MatrixF& storage) {
  if (rows <= 0 || X.rows() <= rows) return X;
  storage = take_rows(X, subsample(X.rows(), rows, 4321));
  return storage;
}

}  // namespace

// ---------------------------------------------------------------- objective

template <typename T>
SoftmaxObjective<T>::SoftmaxObjective(const Matrix<T>& X, const std::vector<int>& y, int num_classes, double C,
                                      bool fit_intercept)
    : X_(X), y_(y), K_(num_classes), lambda_(1.0 / (C * static_cast<double>(X.rows()))), intercept_(fit_intercept) {
  core::check(C > 0, "logistic regression: C must be > 0, got ", C);
  core::check(X.rows() > 0 && num_classes >= 2, "logistic regression: needs rows and at least 2 classes");
  check_labels(y, X.rows(), num_classes, "logistic regression");
  W_.resize(X.cols(), K_);
  Zt_.resize(K_, X.rows());
  GW_.resize(X.cols(), K_);
}

template <typename T>
double SoftmaxObjective<T>::operator()(const Eigen::VectorXd& w, Eigen::VectorXd& grad) {
  ++evaluations;
  const Eigen::Index D = X_.cols(), N = X_.rows(), K = K_;
  Eigen::Map<const Eigen::MatrixXd> W(w.data(), D, K);
  W_ = W.cast<T>();
  gemm(W_, true, X_, true, Zt_);  // Zt = Wᵀ Xᵀ  (K×N)
  if (intercept_) Zt_.colwise() += w.tail(K).cast<T>();
  // column-wise softmax in place: Zt <- (P − Y)/N; loss accumulated per chunk in double
  const T inv_n = T(1) / static_cast<T>(N);
  const int64_t grain = 512;
  const int64_t chunks = (N + grain - 1) / grain;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      double acc = 0;
      const int64_t i1 = std::min<int64_t>(N, (c + 1) * grain);
      for (int64_t i = c * grain; i < i1; ++i) {
        auto col = Zt_.col(i);
        const T m = col.maxCoeff();
        const int yi = y_[static_cast<size_t>(i)];
        const T zy = col(yi) - m;
        col = (col.array() - m).exp();
        const T s = col.sum();
        acc += std::log(static_cast<double>(s)) - static_cast<double>(zy);
        col *= inv_n / s;
        col(yi) -= inv_n;
      }
      partial[static_cast<size_t>(c)] = acc;
    }
  });
  double loss = 0;
  for (double p : partial) loss += p;
  loss /= static_cast<double>(N);
  gemm(X_, true, Zt_, true, GW_);  // Xᵀ (P − Y)/N  (D×K)
  grad.resize(size());
  Eigen::Map<Eigen::MatrixXd> G(grad.data(), D, K);
  G = GW_.template cast<double>() + lambda_ * W;
  if (intercept_) grad.tail(K) = Zt_.rowwise().sum().template cast<double>();
  return loss + 0.5 * lambda_ * W.squaredNorm();
}

template class SoftmaxObjective<float>;
template class SoftmaxObjective<double>;

// ---------------------------------------------------------------- Hessian-vector products

template <typename T>
SoftmaxHessian<T>::SoftmaxHessian(const Matrix<T>& X, int num_classes, double lambda, bool fit_intercept)
    : X_(X), K_(num_classes), lambda_(lambda), intercept_(fit_intercept) {
  core::check(X.rows() > 0 && num_classes >= 2, "logistic regression: the Hessian needs rows and 2 classes");
  P_.resize(K_, X.rows());
  Ut_.resize(K_, X.rows());
  V_.resize(X.cols(), K_);
  GW_.resize(X.cols(), K_);
}

template <typename T>
void SoftmaxHessian<T>::set_point(const Eigen::VectorXd& w) {
  const Eigen::Index D = X_.cols(), K = K_;
  V_ = Eigen::Map<const Eigen::MatrixXd>(w.data(), D, K).cast<T>();
  gemm(V_, true, X_, true, P_);  // K×n logits
  if (intercept_) P_.colwise() += w.tail(K).cast<T>();
  at::parallel_for(0, P_.cols(), 256, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      auto col = P_.col(i);
      col = (col.array() - col.maxCoeff()).exp();
      col /= col.sum();
    }
  });
  // preconditioner: B̄ = mean_i(diag(p_i) − p_i p_iᵀ) and, once, Σ = XᵀX/n
  const double n = static_cast<double>(X_.rows());
  Eigen::MatrixXd Pd = P_.template cast<double>();
  Eigen::MatrixXd B = Eigen::MatrixXd(Pd.rowwise().sum().asDiagonal()) / n - Pd * Pd.transpose() / n;
  sym_eig(B, sb_, Ub_);
  sb_ = sb_.cwiseMax(0.0);
  if (Ux_.size() == 0) second_moments(X_, Ux_, sx_);
}

template <typename T>
void SoftmaxHessian<T>::precondition(const Eigen::VectorXd& r, Eigen::VectorXd& out) {
  const Eigen::Index D = X_.cols(), K = K_;
  out.resize(r.size());
  Eigen::Map<const Eigen::MatrixXd> R(r.data(), D, K);
  Eigen::Map<Eigen::MatrixXd> O(out.data(), D, K);
  Eigen::MatrixXd Q = Ux_.transpose() * R * Ub_;
  for (Eigen::Index l = 0; l < K; ++l)
    for (Eigen::Index j = 0; j < D; ++j) Q(j, l) /= sx_(j) * sb_(l) + lambda_;
  O = Ux_ * Q * Ub_.transpose();
  if (intercept_) {
    // pseudo-inverse of B̄ (its null space, a shift of every intercept, has zero curvature)
    const double tiny = 1e-10 * std::max(1e-300, sb_.maxCoeff());
    Eigen::VectorXd q = Ub_.transpose() * r.tail(K);
    for (Eigen::Index l = 0; l < K; ++l) q(l) = sb_(l) > tiny ? q(l) / sb_(l) : 0.0;
    out.tail(K) = Ub_ * q;
  }
}

template <typename T>
void SoftmaxHessian<T>::apply(const Eigen::VectorXd& v, Eigen::VectorXd& out) {
  const Eigen::Index D = X_.cols(), K = K_, n = X_.rows();
  Eigen::Map<const Eigen::MatrixXd> V(v.data(), D, K);
  V_ = V.cast<T>();
  gemm(V_, true, X_, true, Ut_);  // u_i = Vᵀ x_i (K×n)
  if (intercept_) Ut_.colwise() += v.tail(K).cast<T>();
  const T inv_n = T(1) / static_cast<T>(n);
  at::parallel_for(0, n, 256, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      auto u = Ut_.col(i);
      auto p = P_.col(i);
      const T pu = p.dot(u);
      u = (p.array() * (u.array() - pu) * inv_n).matrix();
    }
  });
  gemm(X_, true, Ut_, true, GW_);  // X_Sᵀ R / n (D×K)
  out.resize(v.size());
  Eigen::Map<Eigen::MatrixXd> O(out.data(), D, K);
  O = GW_.template cast<double>() + lambda_ * V;
  if (intercept_) out.tail(K) = Ut_.rowwise().sum().template cast<double>();
}

template class SoftmaxHessian<float>;
template class SoftmaxHessian<double>;

// ---------------------------------------------------------------- model

MatrixF LogRegModel::decision(const MatrixF& X) const {
  core::check(X.cols() == W.rows(), "logistic regression: ", X.cols(), " features, the model has ", W.rows());
  MatrixF Z(X.rows(), W.cols());
  MatrixF Wf = W.cast<float>();
  gemm(X, false, Wf, false, Z);
  if (b.size() == W.cols()) Z.rowwise() += b.cast<float>().transpose();
  return Z;
}

MatrixF LogRegModel::predict_proba(const MatrixF& X) const {
  MatrixF Z = decision(X);
  for (Eigen::Index i = 0; i < Z.rows(); ++i) {
    float m = Z.row(i).maxCoeff();
    Z.row(i) = (Z.row(i).array() - m).exp();
    Z.row(i) /= Z.row(i).sum();
  }
  return Z;
}

std::vector<int> LogRegModel::predict(const MatrixF& X) const {
  MatrixF Z = decision(X);
  std::vector<int> out(static_cast<size_t>(Z.rows()));
  for (Eigen::Index i = 0; i < Z.rows(); ++i) {
    Eigen::Index k;
    Z.row(i).maxCoeff(&k);
    out[static_cast<size_t>(i)] = static_cast<int>(k);
  }
  return out;
}

// ---------------------------------------------------------------- fitting

namespace {

// Wraps the objective for LBFGS++, remembering the best point seen: a line search that fails
// near the optimum (float round-off) throws, and the fit then keeps the best point.
template <typename F>
struct Tracked {
  F& f;
  double best_f = std::numeric_limits<double>::infinity();
  Eigen::VectorXd best_x;
  double operator()(const Eigen::VectorXd& x, Eigen::VectorXd& g) {
    double v = f(x, g);
    core::check(std::isfinite(v), "logistic regression: the objective became ", v);
    if (v < best_f) {
      best_f = v;
      best_x = x;
    }
    return v;
  }
};

template <typename F>
void run_lbfgs(F& obj, Eigen::VectorXd& w, const LogRegOptions& o, int max_iter, LogRegModel& m) {
  LBFGSpp::LBFGSParam<double> p;
  p.m = o.memory;
  p.epsilon = o.tol;
  p.epsilon_rel = 0;
  p.past = o.ftol > 0 ? 3 : 0;
  p.delta = o.ftol;
  p.max_iterations = max_iter;
  p.max_linesearch = 40;
  p.linesearch = LBFGSpp::LBFGS_LINESEARCH_BACKTRACKING_STRONG_WOLFE;
  LBFGSpp::LBFGSSolver<double, LBFGSpp::LineSearchNocedalWright> solver(p);
  Tracked<F> t{obj, std::numeric_limits<double>::infinity(), Eigen::VectorXd()};
  double fx = 0;
  try {
    int it = solver.minimize(t, w, fx);
    m.iterations += it;
    m.converged = it < max_iter;
    m.stop_reason = m.converged ? "converged" : "max_iter";
  } catch (const std::exception& e) {
    // a failed line search near the optimum: keep the best point evaluated
    core::log_debug("logistic regression (C=", o.C, "): L-BFGS stopped: ", e.what());
    if (t.best_x.size() == w.size()) w = t.best_x;
    m.converged = true;
    m.stop_reason = std::string("line search: ") + e.what();
  }
  m.objective = t.best_f;
  if (t.best_x.size() == w.size() && t.best_f < fx) w = t.best_x;
}

// The objective in whitened coordinates: W = T W', T = U diag(1/sqrt(s + δ)) from the eigen-
// decomposition Σ = U diag(s) Uᵀ of the features' second moments, so L-BFGS sees decorrelated
// features (X is never transformed: only W and the gradient, D²K work per evaluation).
struct Whitened {
  SoftmaxObjective<float>& f;
  Eigen::MatrixXd T, Tinv;
  Eigen::Index D, K;
  Eigen::VectorXd w, g;
  Whitened(SoftmaxObjective<float>& obj, const MatrixF& X, int num_classes, int64_t rows)
      : f(obj), D(X.cols()), K(num_classes) {
    MatrixF storage;
    Eigen::MatrixXd U;
    Eigen::VectorXd sv;
    second_moments(moment_rows(X, rows, storage), U, sv);
    const double delta = 1e-3 * std::max(1e-12, sv.mean());
    Eigen::VectorXd sc = (sv.array() + delta).rsqrt().matrix();
    T = U * sc.asDiagonal();
    Tinv = sc.cwiseInverse().asDiagonal() * U.transpose();
  }
  Eigen::VectorXd to_w(const Eigen::VectorXd& wp) const {
    Eigen::VectorXd out = wp;
    Eigen::Map<Eigen::MatrixXd>(out.data(), D, K) = T * Eigen::Map<const Eigen::MatrixXd>(wp.data(), D, K);
    return out;
  }
  Eigen::VectorXd from_w(const Eigen::VectorXd& w0) const {
    Eigen::VectorXd out = w0;
    Eigen::Map<Eigen::MatrixXd>(out.data(), D, K) = Tinv * Eigen::Map<const Eigen::MatrixXd>(w0.data(), D, K);
    return out;
  }
  double operator()(const Eigen::VectorXd& wp, Eigen::VectorXd& gp) {
    w = to_w(wp);
    double v = f(w, g);
    gp = g;
    Eigen::Map<Eigen::MatrixXd>(gp.data(), D, K) = T.transpose() * Eigen::Map<const Eigen::MatrixXd>(g.data(), D, K);
    return v;
  }
};

// Sub-sampled Newton-CG with an Armijo backtracking line search (see logreg.h).
void run_newton(SoftmaxObjective<float>& obj, const MatrixF& X, int K, Eigen::VectorXd& w, const LogRegOptions& o,
                LogRegModel& m) {
  MatrixF storage;
  SoftmaxHessian<float> H(moment_rows(X, o.hessian_rows, storage), K, obj.lambda(), o.fit_intercept);
  Eigen::VectorXd g, gn, wn, d, r, z, p, Hp;
  double f = obj(w, g);
  core::check(std::isfinite(f), "logistic regression: the objective became ", f);
  const double g0 = std::max(g.norm(), 1e-300);
  double best_g = std::numeric_limits<double>::infinity();
  int small = 0, stalled = 0;
  m.stop_reason = "max_iter";
  for (int it = 0;; ++it) {
    const double gnorm = g.norm();
    if (gnorm <= o.tol) {
      m.converged = true;
      m.stop_reason = "converged";
      break;
    }
    if (it >= o.max_iter) break;
    H.set_point(w);
    // preconditioned CG on H d = −g to the forcing tolerance η‖g‖, η = min(0.5, sqrt(‖g‖/‖g₀‖))
    const double eta = std::min(0.5, std::sqrt(gnorm / g0));
    d.setZero(w.size());
    r = -g;
    H.precondition(r, z);
    p = z;
    double rz = r.dot(z);
    for (int k = 0; k < o.max_cg && r.norm() > eta * gnorm; ++k) {
      H.apply(p, Hp);
      const double pHp = p.dot(Hp);
      if (!(pHp > 0) || !(rz > 0)) break;  // H is positive semi-definite; round-off guard
      const double a = rz / pHp;
      d += a * p;
      r -= a * Hp;
      H.precondition(r, z);
      const double rz2 = r.dot(z);
      p = z + (rz2 / rz) * p;
      rz = rz2;
      ++m.cg_iterations;
    }
    double gd = g.dot(d);
    if (!(gd < 0)) {  // no descent direction from CG (e.g. zero steps): steepest descent
      d = -g;
      gd = -g.squaredNorm();
    }
    double alpha = 1, fn = 0;
    bool ok = false;
    for (int ls = 0; ls < 40; ++ls) {
      wn = w + alpha * d;
      fn = obj(wn, gn);
      if (std::isfinite(fn) && fn <= f + 1e-4 * alpha * gd) {
        ok = true;
        break;
      }
      // quadratic interpolation of the step, kept within [0.1, 0.5]·alpha
      const double q = std::isfinite(fn) ? -gd * alpha * alpha / (2 * (fn - f - gd * alpha)) : 0.1 * alpha;
      alpha = std::clamp(q, 0.1 * alpha, 0.5 * alpha);
    }
    if (!ok) {  // no decrease along d: at the optimum within float round-off
      m.converged = true;
      m.stop_reason = "line search: no decrease (round-off)";
      break;
    }
    const double decrease = f - fn;
    core::log_debug("logistic regression (C=", o.C, ") Newton step ", it, ": f ", fn, ", |g| ", gnorm, ", step ", alpha,
                    ", CG steps so far ", m.cg_iterations);
    w.swap(wn);
    g.swap(gn);
    f = fn;
    ++m.iterations;
    // ftol; or (always) the float objective's round-off: no decrease beyond it while the gradient
    // norm has stopped falling too (a sub-sampled Hessian converges linearly: tiny decreases with a
    // still-falling gradient are progress, not noise)
    if (gnorm < 0.9 * best_g) {
      best_g = gnorm;
      stalled = 0;
    } else {
      ++stalled;
    }
    const bool tiny = decrease < 1e-9 * std::max(1.0, std::abs(f));
    const bool below_ftol = o.ftol > 0 && decrease < o.ftol * std::max(1.0, std::abs(f));
    small = (below_ftol || tiny) ? small + 1 : 0;
    if (small >= 3 && (below_ftol || stalled >= 5)) {
      m.converged = true;
      m.stop_reason = below_ftol ? "converged (objective change below ftol)" : "converged (round-off)";
      break;
    }
  }
  m.objective = f;
}

void run_solver(SoftmaxObjective<float>& obj, const MatrixF& X, int K, Eigen::VectorXd& w, const LogRegOptions& o,
                LogRegModel& m) {
  core::check(o.solver == "newton" || o.solver == "lbfgs", "logistic regression: unknown solver '", o.solver,
              "' (newton or lbfgs)");
  if (o.solver == "newton") {
    run_newton(obj, X, K, w, o, m);
  } else if (o.precondition) {
    Whitened wf(obj, X, K, o.hessian_rows);
    Eigen::VectorXd wp = wf.from_w(w);
    run_lbfgs(wf, wp, o, o.max_iter, m);
    w = wf.to_w(wp);
  } else {
    run_lbfgs(obj, w, o, o.max_iter, m);
  }
}

}  // namespace

LogRegModel fit_logreg(const MatrixF& X, const std::vector<int>& y, int K, const LogRegOptions& o,
                       const LogRegModel* warm) {
  const Eigen::Index D = X.cols();
  check_labels(y, X.rows(), K, "logistic regression");
  LogRegModel m;
  m.C = o.C;
  Eigen::VectorXd w = Eigen::VectorXd::Zero(D * K + (o.fit_intercept ? K : 0));
  if (warm && warm->W.rows() == D && warm->W.cols() == K) {
    w.head(D * K) = Eigen::Map<const Eigen::VectorXd>(warm->W.data(), D * K);
    if (o.fit_intercept && warm->b.size() == K) w.tail(K) = warm->b;
  }
  if (o.warmup_rows > 0 && X.rows() > 2 * o.warmup_rows && !warm) {
    auto idx = subsample(X.rows(), o.warmup_rows, 12345);
    MatrixF Xs = take_rows(X, idx);
    std::vector<int> ys = take(y, idx);
    LogRegOptions os = o;
    os.C = o.C * static_cast<double>(X.rows()) / static_cast<double>(Xs.rows());
    os.tol = o.tol * 10;
    SoftmaxObjective<float> sub(Xs, ys, K, os.C, o.fit_intercept);
    LogRegModel ms;
    run_solver(sub, Xs, K, w, os, ms);
    m.evaluations += sub.evaluations;
    core::log_debug("logistic regression warm-up on ", Xs.rows(), " rows: ", ms.iterations, " iterations");
  }
  SoftmaxObjective<float> obj(X, y, K, o.C, o.fit_intercept);
  run_solver(obj, X, K, w, o, m);
  m.evaluations += obj.evaluations;
  m.W = Eigen::Map<const Eigen::MatrixXd>(w.data(), D, K);
  m.b = o.fit_intercept ? Eigen::VectorXd(w.tail(K)) : Eigen::VectorXd::Zero(K);
  return m;
}

std::vector<int> LinearProbe::predict(const MatrixF& raw) const { return model.predict(scaler.applied(raw)); }
MatrixF LinearProbe::predict_proba(const MatrixF& raw) const { return model.predict_proba(scaler.applied(raw)); }
double LinearProbe::accuracy(const MatrixF& raw, const std::vector<int>& y) const {
  return accuracy_pct(predict(raw), y);
}

LinearProbe fit_linear_probe(const MatrixF& Xtr, const std::vector<int>& ytr, const MatrixF& Xval,
                             const std::vector<int>& yval, int K, const LinearProbeOptions& o) {
  core::check(!o.Cs.empty(), "linear probe: no C values to try");
  const bool sweep = o.Cs.size() > 1;
  core::check(!sweep || Xval.rows() > 0, "linear probe: a C sweep needs validation rows");
  auto t0 = std::chrono::steady_clock::now();
  LinearProbe p;
  p.scaler = Standardizer::fit(Xtr);
  MatrixF Xs = p.scaler.applied(Xtr);
  MatrixF Vs = Xval.rows() ? p.scaler.applied(Xval) : MatrixF();
  double best = -1;
  int since_best = 0;
  LogRegModel prev;
  for (size_t i = 0; i < o.Cs.size(); ++i) {
    auto t1 = std::chrono::steady_clock::now();
    LogRegOptions fo = o.fit;
    fo.C = o.Cs[i];
    LogRegModel m = fit_logreg(Xs, ytr, K, fo, i ? &prev : nullptr);
    SweepPoint sp{fo.C, Vs.rows() ? accuracy_pct(m.predict(Vs), yval) : 0.0, m.iterations, m.evaluations,
                  m.stop_reason, core::seconds_since(t1)};
    p.sweep.push_back(sp);
    core::log_debug("linear probe C=", fo.C, ": val ", sp.val_acc, " %, ", m.iterations, " iterations, ", m.evaluations,
                    " evaluations (", m.stop_reason, "), ",
                    sp.seconds, " s");
    if (sp.val_acc > best) {
      best = sp.val_acc;
      p.model = m;
      p.best_C = fo.C;
      since_best = 0;
    } else if (++since_best >= o.patience) {
      break;
    }
    prev = std::move(m);
  }
  p.seconds = core::seconds_since(t0);
  return p;
}

}  // namespace shiftlab::probe
