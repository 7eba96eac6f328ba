// Multinomial logistic regression with L2 (the linear probe), fitted by sub-sampled Newton-CG
// (default) or L-BFGS (LBFGS++).
//
// Model: rows x_i ∈ R^D (N×D), K classes, p_ik = softmax_k(x_i·W_k + b_k), W: D×K, b: K.
// Objective (mean form):  f(W, b) = (1/N) Σ_i −log p_{i,y_i} + (λ/2) ‖W‖²_F,  λ = 1/(C·N),
// i.e. (1/N)·[C Σ_i loss_i + ½‖W‖²] / C: the same minimiser as scikit-learn's
// LogisticRegression(C, multi_class="multinomial", solver="lbfgs"); the intercept is not penalised.
// Gradient: ∇_W f = Xᵀ(P − Y)/N + λW,  ∇_b f = Σ_i (p_i − y_i)/N.
// The two N×D×K products per evaluation go through gemm() (BLAS) in the data's precision
// (float for cached features); the softmax runs column-wise on the K×N logits, parallel over
// samples; the loss is accumulated in double.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <string>
#include <vector>

#include "probe/linalg.h"

namespace shiftlab::probe {

struct LogRegOptions {
  double C = 1.0;             ///< inverse L2 strength (scikit-learn convention)
  std::string solver = "lbfgs";  ///< "lbfgs" or "newton" (sub-sampled Newton-CG)
  /// L-BFGS in whitened coordinates W = T W', T = U diag(1/sqrt(s + δ)) from the features' second
  /// moments Σ = U diag(s) Uᵀ (on `hessian_rows` rows): the same minimiser, far fewer iterations on
  /// correlated features (tol then applies to the gradient in those coordinates).
  bool precondition = true;
  int max_iter = 300;         ///< outer iterations (Newton steps or L-BFGS iterations)
  double tol = 1e-5;          ///< stop when ‖∇f‖₂ ≤ tol (mean-form objective)
  double ftol = 1e-7;         ///< ... or when f decreased by less than ftol·max(1,|f|) over 3 iterations
  int memory = 10;            ///< L-BFGS corrections kept
  int64_t hessian_rows = 8192;  ///< rows of the Newton Hessian / the preconditioner's Σ (0 or ≥ N: all rows)
  int max_cg = 50;            ///< Newton: conjugate-gradient steps per iteration
  bool fit_intercept = true;
  /// Multilevel warm start: when N > 2·warmup_rows (> 0), first fit a random subset of
  /// warmup_rows rows (same λ, i.e. C·N/n there), then continue on all rows from that solution.
  int64_t warmup_rows = 0;
};

/// A fitted model: W (D×K), b (K) and how the fit went.
struct LogRegModel {
  Eigen::MatrixXd W;
  Eigen::VectorXd b;
  double C = 0;
  int iterations = 0;   ///< Newton or L-BFGS iterations (all stages)
  int cg_iterations = 0;  ///< Newton: conjugate-gradient steps (Hessian-vector products on the subset)
  int evaluations = 0;  ///< objective + gradient evaluations
  double objective = 0; ///< final f (mean form)
  bool converged = false;
  std::string stop_reason;

  /// Logits X·W + b (N×K).
  MatrixF decision(const MatrixF& X) const;
  /// Class probabilities (N×K).
  MatrixF predict_proba(const MatrixF& X) const;
  std::vector<int> predict(const MatrixF& X) const;
  int num_classes() const { return static_cast<int>(W.cols()); }
};

/// f and ∇f of the objective above at the flat parameter vector w = [vec(W) (column-major); b].
/// T = float or double: the precision of X and of the products (the tests use double).
template <typename T>
class SoftmaxObjective {
 public:
  SoftmaxObjective(const Matrix<T>& X, const std::vector<int>& y, int num_classes, double C, bool fit_intercept);
  double operator()(const Eigen::VectorXd& w, Eigen::VectorXd& grad);
  Eigen::Index size() const { return X_.cols() * K_ + (intercept_ ? K_ : 0); }
  double lambda() const { return lambda_; }
  int evaluations = 0;

 private:
  const Matrix<T>& X_;
  const std::vector<int>& y_;
  int K_;
  double lambda_;
  bool intercept_;
  Matrix<T> W_, Zt_, GW_;  // D×K, K×N, D×K work buffers
};

/// Hessian-vector products of the objective above (λ given: the full problem's), with the data
/// term averaged over the rows of X — all rows (exact) or a subset (the sub-sampled Hessian).
template <typename T>
class SoftmaxHessian {
 public:
  SoftmaxHessian(const Matrix<T>& X, int num_classes, double lambda, bool fit_intercept);
  /// The point w (flat, as SoftmaxObjective) whose Hessian apply() multiplies by.
  void set_point(const Eigen::VectorXd& w);
  /// out = H(w) v.
  void apply(const Eigen::VectorXd& v, Eigen::VectorXd& out);
  /// out = M⁻¹ r, M the Kronecker approximation of H at the point: for W, Σ ⊗ B̄ + λI with
  /// Σ = X̃ᵀX̃/n (feature second moments) and B̄ = mean_i(diag(p_i) − p_i p_iᵀ); for b, B̄'s
  /// pseudo-inverse (the intercept is not penalised). Exact when every row has the same p_i; it
  /// removes the feature correlations that make CG slow (used as the CG preconditioner).
  void precondition(const Eigen::VectorXd& r, Eigen::VectorXd& out);

 private:
  const Matrix<T>& X_;
  int K_;
  double lambda_;
  bool intercept_;
  Matrix<T> P_, Ut_, V_, GW_;  // K×n probabilities, K×n work, D×K, D×K
  Eigen::MatrixXd Ux_, Ub_;    // eigenvectors of Σ (D×D, computed once) and of B̄ (K×K)
  Eigen::VectorXd sx_, sb_;    // their eigenvalues
};

/// Fits on (X, y) with labels in [0, num_classes). `warm` (optional, same D and K) is the start.
LogRegModel fit_logreg(const MatrixF& X, const std::vector<int>& y, int num_classes, const LogRegOptions& o,
                       const LogRegModel* warm = nullptr);

/// One point of a regularisation sweep.
struct SweepPoint {
  double C = 0;
  double val_acc = 0;  ///< percent
  int iterations = 0;   ///< completed L-BFGS / Newton iterations (a fit its line search stopped counts none of its own)
  int evaluations = 0;  ///< objective + gradient evaluations (counted however the fit stopped)
  std::string stop_reason;
  double seconds = 0;
};

struct LinearProbeOptions {
  /// C values tried in increasing order, each warm-started from the previous; one value = no sweep.
  std::vector<double> Cs{1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100};
  int patience = 2;  ///< stop the sweep after this many C values without a better validation accuracy
  LogRegOptions fit;
};

/// A linear probe: the standardiser fitted on the training rows and the model at the chosen C.
struct LinearProbe {
  Standardizer scaler;
  LogRegModel model;
  double best_C = 0;
  std::vector<SweepPoint> sweep;
  double seconds = 0;  ///< whole fit (standardise + sweep)
  std::vector<int> predict(const MatrixF& raw) const;
  MatrixF predict_proba(const MatrixF& raw) const;
  double accuracy(const MatrixF& raw, const std::vector<int>& y) const;
};

/// Standardises with the training statistics, fits every C of the sweep on (Xtr, ytr) and keeps the
/// model with the best accuracy on (Xval, yval) (ties: the smaller C). With one C, val may be empty.
LinearProbe fit_linear_probe(const MatrixF& Xtr, const std::vector<int>& ytr, const MatrixF& Xval,
                             const std::vector<int>& yval, int num_classes, const LinearProbeOptions& o);

}  // namespace shiftlab::probe
