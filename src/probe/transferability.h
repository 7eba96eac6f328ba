// Transferability estimators: score features (or a source model's outputs) for a labelled task
// without fine-tuning, to rank backbones or layers. Rows = samples; labels in [0, K).
//
// LogME (You et al., ICML 2021): per class c, the maximum log evidence (per sample) of Bayesian
//   linear regression of the indicator 1[y = c] on the features, m ~ N(0, α⁻¹I), noise N(0, β⁻¹):
//   MacKay's fixed point on (α, β) in the eigenbasis of FᵀF (σ_i eigenvalues, p = Vᵀ Fᵀ y):
//     γ = Σ βσ_i/(α + βσ_i),  q = βp/(α + βσ),  α = γ/‖q‖²,  β = (N − γ)/‖y − Fm‖²;
//   L = D/2 log α + N/2 log β − ½ Σ log(α + βσ_i) − β/2 ‖y − Fm‖² − α/2 ‖m‖² − N/2 log 2π;
//   LogME = mean_c L_c / N. Iterated to relative changes < 1e-10 (the paper's code stops at
//   1 % changes of α/β; the fixed point is the same). Higher is better.
// LEEP (Nguyen et al., ICML 2020): θ_i = softmax of the source model's logits (Z source classes);
//   P(y, z) = (1/n) Σ_{i: y_i = y} θ_iz,  P(y|z) = P(y, z)/P(z);  LEEP = (1/n) Σ_i log Σ_z P(y_i|z) θ_iz.
// NCE (Tran et al., ICCV 2019): with hard source labels z_i = argmax θ_i, NCE = Σ_{y,z} P(y,z) log P(y|z).
// H-score (Bao et al., ICIP 2019): tr(cov(F)⁺ cov(E[F|y])) (1/n covariances, pseudo-inverse). With
//   rows <= dimensions cov(F) is singular and the plain score is K − 1 for any features: then
//   (1 − α) tr(((1 − α) cov(F) + α μ I)⁻¹ cov(E[F|y])), μ = tr(cov)/D, α the Ledoit–Wolf shrinkage
//   (regularised H-score, Ibrahim et al., ICLR 2023), with a warning.
#pragma once

#include <vector>

#include "probe/linalg.h"

namespace shiftlab::probe {

double logme(const MatrixF& F, const std::vector<int>& y);
double leep(const MatrixF& source_logits, const std::vector<int>& y);
double nce(const MatrixF& source_logits, const std::vector<int>& y);
double h_score(const MatrixF& F, const std::vector<int>& y);

}  // namespace shiftlab::probe
