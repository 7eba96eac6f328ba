// Deep CORAL (Sun & Saenko 2016): aligns second-order statistics,
//   loss = ||C_s - C_t||_F^2 / (4 d^2),  C = (X - mean)^T (X - mean) / (n - 1)   (d×d),
// plus, with mean_term, TLlib's first-order term mean_k (mu_s,k - mu_t,k)^2.
// When d^2 exceeds the batch's n^2 terms, the Frobenius norm is computed from n×n Gram matrices
// (in double precision) instead of the d×d covariances: same value, O(n^2 d) work.
#pragma once

#include "losses/method.h"
#include "losses/methods.h"

namespace shiftlab::losses {

/// The CORAL value for source x_s (n_s×d) and target x_t (n_t×d), n ≥ 2 each.
torch::Tensor coral_loss(const torch::Tensor& x_s, const torch::Tensor& x_t, bool mean_term);

/// Term "coral".
class CoralMethod : public MethodImpl {
 public:
  explicit CoralMethod(const MethodOptions::Coral& o) : o_(o) {}
  LossTerms loss(const StepOutputs& out) override;
  std::string describe() const override;

 private:
  MethodOptions::Coral o_;
};

}  // namespace shiftlab::losses
