#include "probe/linalg.h"

#include <torch/types.h>

#include <Eigen/Eigenvalues>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "core/error.h"

namespace shiftlab::probe {

namespace {

// An Eigen column-major r×c block with outer stride ld is the row-major c×r tensor Mᵀ.
template <typename T>
torch::Tensor as_transposed_tensor(const T* data, Eigen::Index rows, Eigen::Index cols, Eigen::Index ld,
                                   torch::ScalarType st) {
  return torch::from_blob(const_cast<T*>(data), {static_cast<int64_t>(cols), static_cast<int64_t>(rows)},
                          {static_cast<int64_t>(ld), 1}, torch::TensorOptions().dtype(st));
}

template <typename T>
void gemm_impl(const ConstRef<T>& A, bool ta, const ConstRef<T>& B, bool tb, MutRef<T>& C, T alpha, T beta,
               torch::ScalarType st) {
  const auto m = ta ? A.cols() : A.rows(), k = ta ? A.rows() : A.cols();
  const auto kb = tb ? B.cols() : B.rows(), n = tb ? B.rows() : B.cols();
  core::check(k == kb && C.rows() == m && C.cols() == n, "gemm: shape mismatch (", m, "x", k, ") * (", kb, "x", n,
              ") -> ", C.rows(), "x", C.cols());
  if (m == 0 || n == 0) return;
  if (k == 0) {
    C *= beta;
    return;
  }
  // Cᵀ = op(B)ᵀ op(A)ᵀ; the tensor of an Eigen matrix M is Mᵀ.
  auto tA = as_transposed_tensor(A.data(), A.rows(), A.cols(), A.outerStride(), st);
  auto tB = as_transposed_tensor(B.data(), B.rows(), B.cols(), B.outerStride(), st);
  auto tC = as_transposed_tensor(C.data(), C.rows(), C.cols(), C.outerStride(), st);
  auto lhs = tb ? tB.t() : tB;
  auto rhs = ta ? tA.t() : tA;
  if (beta == T(0) && alpha == T(1) && C.outerStride() == C.rows()) {
    torch::mm_out(tC, lhs, rhs);
  } else if (beta == T(0) && alpha == T(1)) {
    tC.copy_(torch::mm(lhs, rhs));
  } else {
    tC.copy_(torch::addmm(tC, lhs, rhs, beta, alpha));
  }
}

}  // namespace

void gemm(ConstRef<float> A, bool ta, ConstRef<float> B, bool tb, MutRef<float> C, float alpha, float beta) {
  gemm_impl<float>(A, ta, B, tb, C, alpha, beta, torch::kFloat32);
}
void gemm(ConstRef<double> A, bool ta, ConstRef<double> B, bool tb, MutRef<double> C, double alpha, double beta) {
  gemm_impl<double>(A, ta, B, tb, C, alpha, beta, torch::kFloat64);
}

Standardizer Standardizer::fit(const MatrixF& X) {
  core::check(X.rows() > 0, "standardize: empty training set");
  Standardizer s;
  const auto n = static_cast<double>(X.rows());
  s.mean = X.cast<double>().colwise().sum() / n;
  s.std.resize(X.cols());
  for (Eigen::Index j = 0; j < X.cols(); ++j) {
    double acc = 0;
    for (Eigen::Index i = 0; i < X.rows(); ++i) {
      double d = X(i, j) - s.mean(j);
      acc += d * d;
    }
    double sd = std::sqrt(acc / n);
    s.std(j) = sd < 1e-8 * (1 + std::abs(s.mean(j))) ? 1.0 : sd;
  }
  return s;
}

void Standardizer::apply(MatrixF& X) const {
  core::check(X.cols() == mean.size(), "standardize: ", X.cols(), " features, expected ", mean.size());
  const Eigen::RowVectorXf m = mean.cast<float>(), inv = std.cwiseInverse().cast<float>();
  for (Eigen::Index j = 0; j < X.cols(); ++j) X.col(j) = (X.col(j).array() - m(j)) * inv(j);
}

MatrixF Standardizer::applied(const MatrixF& X) const {
  MatrixF Y = X;
  apply(Y);
  return Y;
}

MatrixF l2_normalize_rows(const MatrixF& X) {
  Eigen::VectorXf norm = X.rowwise().norm();
  MatrixF Y = X;
  for (Eigen::Index i = 0; i < X.rows(); ++i)
    if (norm(i) > 0) Y.row(i) /= norm(i);
  return Y;
}

MatrixF take_rows(const MatrixF& X, const std::vector<int64_t>& idx) {
  MatrixF Y(static_cast<Eigen::Index>(idx.size()), X.cols());
  for (size_t r = 0; r < idx.size(); ++r) Y.row(static_cast<Eigen::Index>(r)) = X.row(idx[r]);
  return Y;
}

Split stratified_split(const std::vector<int>& labels, double fraction, uint64_t seed) {
  std::map<int, std::vector<int64_t>> by_class;
  for (size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].push_back(static_cast<int64_t>(i));
  std::mt19937_64 rng(seed);
  Split s;
  for (auto& [c, idx] : by_class) {
    std::shuffle(idx.begin(), idx.end(), rng);
    auto n2 = static_cast<size_t>(std::llround(fraction * static_cast<double>(idx.size())));
    if (idx.size() >= 2) n2 = std::clamp<size_t>(n2, 1, idx.size() - 1);
    else n2 = 0;
    s.second.insert(s.second.end(), idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n2));
    s.first.insert(s.first.end(), idx.begin() + static_cast<std::ptrdiff_t>(n2), idx.end());
  }
  std::sort(s.first.begin(), s.first.end());
  std::sort(s.second.begin(), s.second.end());
  return s;
}

std::vector<int64_t> subsample(int64_t n, int64_t max_rows, uint64_t seed) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  if (max_rows <= 0 || n <= max_rows) return idx;
  std::mt19937_64 rng(seed);
  std::shuffle(idx.begin(), idx.end(), rng);
  idx.resize(static_cast<size_t>(max_rows));
  std::sort(idx.begin(), idx.end());
  return idx;
}

int num_classes_of(const std::vector<int>& labels) {
  int k = 0;
  for (int y : labels) {
    core::check(y >= 0, "negative label ", y, " among the labels of a labelled set");
    k = std::max(k, y + 1);
  }
  return k;
}

double accuracy_pct(const std::vector<int>& predicted, const std::vector<int>& truth) {
  core::check(predicted.size() == truth.size(), "accuracy: ", predicted.size(), " predictions for ", truth.size(),
              " labels");
  if (truth.empty()) return 0;
  size_t ok = 0;
  for (size_t i = 0; i < truth.size(); ++i) ok += predicted[i] == truth[i];
  return 100.0 * static_cast<double>(ok) / static_cast<double>(truth.size());
}

void sym_eig(const MatrixD& A, Eigen::VectorXd& values, MatrixD& vectors) {
  Eigen::SelfAdjointEigenSolver<MatrixD> es(A);
  core::check(es.info() == Eigen::Success, "symmetric eigen-decomposition of a ", A.rows(), "×", A.cols(),
              " matrix did not converge");
  values = es.eigenvalues();
  vectors = es.eigenvectors();
}

}  // namespace shiftlab::probe
