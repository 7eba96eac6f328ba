#include "probe/logreg.h"

#include <ATen/Parallel.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <LBFGS.h>
#pragma GCC diagnostic pop

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
struct Tracked {
  SoftmaxObjective<float>& f;
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

void run_lbfgs(SoftmaxObjective<float>& obj, Eigen::VectorXd& w, const LogRegOptions& o, int max_iter,
               LogRegModel& m) {
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
  Tracked t{obj, std::numeric_limits<double>::infinity(), Eigen::VectorXd()};
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
    run_lbfgs(sub, w, os, o.max_iter, ms);
    m.evaluations += sub.evaluations;
    core::log_debug("logistic regression warm-up on ", Xs.rows(), " rows: ", ms.iterations, " iterations");
  }
  SoftmaxObjective<float> obj(X, y, K, o.C, o.fit_intercept);
  run_lbfgs(obj, w, o, o.max_iter, m);
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
    SweepPoint sp{fo.C, Vs.rows() ? accuracy_pct(m.predict(Vs), yval) : 0.0, m.iterations, core::seconds_since(t1)};
    p.sweep.push_back(sp);
    core::log_debug("linear probe C=", fo.C, ": val ", sp.val_acc, " %, ", m.iterations, " iterations, ",
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
