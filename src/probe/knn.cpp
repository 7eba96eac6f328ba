#include "probe/knn.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "core/log.h"

namespace shiftlab::probe {

std::vector<int> knn_predict(const MatrixF& Xtr, const std::vector<int>& ytr, const MatrixF& Xq, const KnnOptions& o) {
  core::check(o.k >= 1, "knn: k must be >= 1, got ", o.k);
  core::check(static_cast<Eigen::Index>(ytr.size()) == Xtr.rows(), "knn: ", ytr.size(), " labels for ", Xtr.rows(),
              " training rows");
  core::check(Xtr.rows() > 0, "knn: no training rows");
  core::check(Xq.cols() == Xtr.cols(), "knn: query has ", Xq.cols(), " features, training rows ", Xtr.cols());
  const int K = num_classes_of(ytr);
  const Eigen::Index n = Xtr.rows();
  const int k = static_cast<int>(std::min<Eigen::Index>(o.k, n));
  if (o.k >= n)  // every query votes over all training rows: the majority class, whatever the features
    core::log_warn("kNN: k = ", o.k, " but only ", n, " training rows: every query gets the majority class of all of ",
                   "them (set probe.knn_k below the number of rows)");
  MatrixF T = l2_normalize_rows(Xtr), Q = l2_normalize_rows(Xq);
  std::vector<int> out(static_cast<size_t>(Xq.rows()));
  const int64_t B = std::max<int64_t>(1, o.block_rows);
  MatrixF S;
  for (int64_t r0 = 0; r0 < Xq.rows(); r0 += B) {
    const int64_t rows = std::min<int64_t>(B, Xq.rows() - r0);
    S.resize(n, rows);  // column j = similarities of query r0+j to every training row
    gemm(T, false, Q.middleRows(r0, rows), true, S);
    at::parallel_for(0, rows, 16, [&](int64_t j0, int64_t j1) {
      std::vector<int> idx(static_cast<size_t>(n));
      std::vector<int> votes(static_cast<size_t>(K));
      for (int64_t j = j0; j < j1; ++j) {
        const float* s = S.col(j).data();
        std::iota(idx.begin(), idx.end(), 0);
        // the k most similar in front (order among them irrelevant); equal similarities: lower index wins
        std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(),
                         [s](int a, int b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
        std::fill(votes.begin(), votes.end(), 0);
        for (int t = 0; t < k; ++t) votes[static_cast<size_t>(ytr[static_cast<size_t>(idx[static_cast<size_t>(t)])])]++;
        out[static_cast<size_t>(r0 + j)] = static_cast<int>(std::max_element(votes.begin(), votes.end()) - votes.begin());
      }
    });
  }
  return out;
}

}  // namespace shiftlab::probe
