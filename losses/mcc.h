// Minimum Class Confusion (Jin et al. 2020, TLlib's MinimumClassConfusionLoss) on target logits:
//   P = softmax(logits_t / T) (N×K); w_i = 1 + exp(-H(P_i)) (detached), rescaled to sum N;
//   C = P^T diag(w) P (K×K), each column j divided by its sum; loss = (sum(C) - trace(C)) / K.
#pragma once

#include "losses/method.h"
#include "losses/methods.h"

namespace shiftlab::losses {

torch::Tensor mcc_loss(const torch::Tensor& logits_t, double temperature);

/// Term "mcc".
class MccMethod : public MethodImpl {
 public:
  explicit MccMethod(const MethodOptions::Mcc& o);
  LossTerms loss(const StepOutputs& out) override;
  std::string describe() const override;

 private:
  MethodOptions::Mcc o_;
};

}  // namespace shiftlab::losses
