// Adaptive Feature Norm, stepwise variant (SAFN, Xu et al. 2019, TLlib's
// StepwiseAdaptiveFeatureNorm): each step pushes every feature norm up by delta,
//   loss = mean_i (||f_s,i|| - (||f_s,i||.detach() + delta))^2 + (same for target),
// whose value is always 2 delta^2 while its gradient is -2 delta mean_i f_i/||f_i|| per domain.
// TLlib weights it by 0.01 ("0.01*afn").
#pragma once

#include "losses/method.h"
#include "losses/methods.h"

namespace shiftlab::losses {

torch::Tensor afn_loss(const torch::Tensor& f, double delta);

/// Term "afn".
class AfnMethod : public MethodImpl {
 public:
  explicit AfnMethod(const MethodOptions::Afn& o) : o_(o) {}
  LossTerms loss(const StepOutputs& out) override;
  std::string describe() const override;

 private:
  MethodOptions::Afn o_;
};

}  // namespace shiftlab::losses
