// k-nearest-neighbour probe with cosine similarity.
//
// Train and query rows are L2-normalised; similarities S = Q̂ T̂ᵀ are computed one block of query
// rows at a time (block_rows × N_train, one GEMM per block) so memory stays bounded for large N.
// Each query takes the majority label of its k most similar training rows (uniform weights; a
// tie between classes goes to the smallest label, as scikit-learn's KNeighborsClassifier does).
#pragma once

#include <vector>

#include "probe/linalg.h"

namespace shiftlab::probe {

struct KnnOptions {
  int k = 20;
  int64_t block_rows = 1024;  ///< query rows per similarity block
};

/// Predicted labels of the rows of Xq given labelled training rows (Xtr, ytr).
std::vector<int> knn_predict(const MatrixF& Xtr, const std::vector<int>& ytr, const MatrixF& Xq, const KnnOptions& o);

}  // namespace shiftlab::probe
