// Distances between a source and a target feature distribution (rows = samples).
//
// proxy A-distance (Ben-David et al. 2007; Ganin et al. 2016): a linear domain classifier
//   (the linear probe: standardised logistic regression, C swept on an inner validation split) is
//   trained on a stratified half of S ∪ T (labels 0 = source, 1 = target, equally many rows of
//   each) and tested on the other half; with test error ε,  d_A = 2(1 − 2ε)  (0: indistinguishable,
//   2: separable). Reported clamped to [0, 2]; the raw value can be slightly negative by chance.
// MK-MMD² (Gretton et al. 2012; DAN): k(x, y) = Σ_u exp(−‖x − y‖² / (2 α_u m)) with m the mean of
//   all pairwise squared distances of [S; T] (as losses/mmd.h); biased (V) or unbiased (U) estimate.
// CORAL distance (Sun & Saenko 2016): ‖C_S − C_T‖²_F / (4 d²), C the unbiased (n − 1) covariance.
// Computed in double; large sets are subsampled (max_rows per domain, seeded).
#pragma once

#include <vector>

#include "probe/linalg.h"
#include "probe/logreg.h"

namespace shiftlab::probe {

struct ADistanceOptions {
  int64_t max_rows = 5000;  ///< per domain
  double test_fraction = 0.5;
  std::vector<double> Cs{1e-3, 1e-2, 1e-1, 1, 10};
  LogRegOptions fit;
  uint64_t seed = 0;
};

struct ADistanceResult {
  double a_distance = 0;      ///< clamp(2(1 − 2ε), 0, 2)
  double a_distance_raw = 0;  ///< 2(1 − 2ε)
  double error = 0;           ///< ε, fraction of test rows misclassified
  double C = 0;               ///< chosen regularisation
  int64_t rows_per_domain = 0;
  int64_t test_rows = 0;      ///< rows ε was measured on (both domains)
};

ADistanceResult proxy_a_distance(const MatrixF& S, const MatrixF& T, const ADistanceOptions& o);

struct MmdOptions {
  std::vector<double> alphas{0.125, 0.25, 0.5, 1, 2};
  bool unbiased = false;
  int64_t max_rows = 2000;  ///< per domain
  uint64_t seed = 0;
};

/// MK-MMD² between the rows of S and T.
double mk_mmd2(const MatrixF& S, const MatrixF& T, const MmdOptions& o);

/// CORAL distance ‖C_S − C_T‖²_F / (4 d²) (all rows, or max_rows per domain when > 0).
double coral_distance(const MatrixF& S, const MatrixF& T, int64_t max_rows = 0, uint64_t seed = 0);

}  // namespace shiftlab::probe
