// CDAN (Long et al. 2018): the domain discriminator sees the multilinear conditioning
// T(f, g) = vec(g ⊗ f) (N × K·D, g = softmax(logits), detached as in TLlib) through a GRL, or —
// when forced or when K·D exceeds random_threshold — the randomized multilinear map
// T(f, g) = (f R_f) ⊙ (g R_g) / sqrt(random_dim), with R_f (D×random_dim) and R_g
// (K×random_dim) drawn once from N(0, 1) and kept as buffers (so checkpoints restore them).
// CDAN+E weights each example by w = 1 + exp(-H(g)), normalised to sum 1 within each domain
// (as the original CDAN code; TLlib normalises over the joint batch, identical when n_s = n_t).
#pragma once

#include "losses/dann.h"

namespace shiftlab::losses {

/// Terms "cdan" (loss), "cdan_acc", "lambda".
class CdanMethod : public MethodImpl {
 public:
  CdanMethod(const MethodOptions::Cdan& o, int64_t feature_dim, int64_t num_classes);
  LossTerms loss(const StepOutputs& out) override;
  std::string describe() const override;
  /// The conditioning T(f, g): N×D, N×K -> N×(K·D) or N×random_dim.
  torch::Tensor map(const torch::Tensor& f, const torch::Tensor& g) const;
  bool randomized() const { return randomized_; }
  /// Discriminator input dimension.
  int64_t map_dim() const;

  DomainDiscriminator discriminator{nullptr};
  torch::Tensor Rf, Rg;  ///< random matrices (buffers "Rf", "Rg"), only when randomized

 private:
  MethodOptions::Cdan o_;
  int64_t dim_, classes_;
  bool randomized_;
};

}  // namespace shiftlab::losses
