// Exact t-SNE (van der Maaten & Hinton 2008) for small sets (N ≲ 2000; O(N²) per iteration).
//
// Input affinities: p_j|i ∝ exp(−β_i ‖x_i − x_j‖²) with β_i found by bisection so that the
// perplexity 2^H(P_i) equals `perplexity`; P = (P_j|i + P_i|j) / 2N. Output: q_ij ∝ (1 + ‖y_i − y_j‖²)⁻¹.
// Gradient ∂KL/∂y_i = 4 Σ_j (p_ij − q_ij)(1 + ‖y_i − y_j‖²)⁻¹ (y_i − y_j); descent with momentum
// (0.5, then 0.8), per-coordinate gains (+0.2 / ×0.8, min 0.01) and early exaggeration (P × 12 for
// the first 250 iterations), as the reference implementation. Learning rate "auto" = max(N/48, 50)
// (scikit-learn's choice for exaggeration 12). Squared distances come from one Gram matrix.
#pragma once

#include <utility>
#include <vector>

#include "probe/linalg.h"

namespace shiftlab::probe {

struct TsneOptions {
  double perplexity = 30;
  int iterations = 1000;
  int exaggeration_iters = 250;
  double exaggeration = 12;
  double learning_rate = 0;  ///< 0 = auto
  uint64_t seed = 0;
  int kl_every = 50;  ///< record KL(P‖Q) every this many iterations (and at the end)
};

struct TsneResult {
  MatrixD Y;                                   ///< N×2 embedding
  std::vector<std::pair<int, double>> kl;      ///< (iteration, KL(P‖Q)) with the true (unexaggerated) P
};

TsneResult tsne(const MatrixF& X, const TsneOptions& o);

}  // namespace shiftlab::probe
