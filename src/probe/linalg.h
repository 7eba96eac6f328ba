// Dense linear-algebra helpers shared by the probes: matrix products through the BLAS behind
// libtorch, standardisation, row normalisation, stratified splits and subsampling.
//
// Matrices are Eigen column-major with one ROW PER SAMPLE (N×D), as features::FeatureBlock::X.
// gemm() wraps the Eigen storage as torch tensors (no copy) and calls torch::mm_out: Eigen's own
// product, compiled here without -march flags, runs at ~17 GFLOP/s in float on this CPU against
// ~54 GFLOP/s for the OpenBLAS (MKL in pip builds) kernel libtorch dispatches to (measured, 1 thread,
// 20000×2048×65). Everything else (softmax, reductions) is plain Eigen.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <string>
#include <vector>

namespace shiftlab::probe {

using MatrixF = Eigen::MatrixXf;
using MatrixD = Eigen::MatrixXd;
template <typename T>
using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
template <typename T>
using ConstRef = Eigen::Ref<const Matrix<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using MutRef = Eigen::Ref<Matrix<T>, 0, Eigen::OuterStride<>>;

/// C = alpha · op(A) · op(B) + beta · C, op(M) = M or Mᵀ. C must already have the result's shape.
/// Any column-major block with unit inner stride is accepted (e.g. X.middleRows(a, n)).
void gemm(ConstRef<float> A, bool trans_a, ConstRef<float> B, bool trans_b, MutRef<float> C, float alpha = 1,
          float beta = 0);
void gemm(ConstRef<double> A, bool trans_a, ConstRef<double> B, bool trans_b, MutRef<double> C, double alpha = 1,
          double beta = 0);

/// Eigen-decomposition of a symmetric matrix A = V diag(values) Vᵀ, values ascending (Eigen's
/// SelfAdjointEigenSolver). Instantiated here only: the solver's templates cost every file that
/// instantiates them ~8 s of compilation.
void sym_eig(const MatrixD& A, Eigen::VectorXd& values, MatrixD& vectors);

/// Per-feature mean and standard deviation of a training set; apply() maps x -> (x - mean) / std.
/// Features with std < 1e-8·(1 + |mean|) (constant columns) keep std = 1.
struct Standardizer {
  Eigen::RowVectorXd mean, std;
  static Standardizer fit(const MatrixF& X);
  void apply(MatrixF& X) const;  ///< in place
  MatrixF applied(const MatrixF& X) const;
};

/// Rows scaled to unit L2 norm (zero rows stay zero).
MatrixF l2_normalize_rows(const MatrixF& X);

/// Rows of X selected by `idx`, in that order.
MatrixF take_rows(const MatrixF& X, const std::vector<int64_t>& idx);
template <typename V>
std::vector<V> take(const std::vector<V>& v, const std::vector<int64_t>& idx) {
  std::vector<V> out;
  out.reserve(idx.size());
  for (auto i : idx) out.push_back(v[static_cast<size_t>(i)]);
  return out;
}

/// A deterministic stratified split of n labelled samples: about `fraction` of each class goes
/// to `second`, the rest to `first` (a class with one sample stays in `first`). Indices sorted.
struct Split {
  std::vector<int64_t> first, second;
};
Split stratified_split(const std::vector<int>& labels, double fraction, uint64_t seed);
/// Up to `max_rows` distinct indices of [0, n), sorted, chosen uniformly at random (all if n ≤ max_rows).
std::vector<int64_t> subsample(int64_t n, int64_t max_rows, uint64_t seed);

/// Number of classes implied by labels (max + 1; labels must be ≥ 0).
int num_classes_of(const std::vector<int>& labels);
/// Fraction of positions where a == b, in percent.
double accuracy_pct(const std::vector<int>& predicted, const std::vector<int>& truth);

}  // namespace shiftlab::probe
