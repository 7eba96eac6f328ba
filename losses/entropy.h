// Entropy minimisation on target predictions (Grandvalet & Bengio 2005):
//   loss = mean_i H(softmax(logits_t,i)) - diversity * H(mean_i softmax(logits_t,i)),
// H in nats. diversity = 0 (default) is plain entropy minimisation; diversity = 1 is the
// information-maximisation loss (SHOT) that also keeps the predicted classes balanced.
#pragma once

#include "losses/method.h"
#include "losses/methods.h"

namespace shiftlab::losses {

torch::Tensor entropy_loss(const torch::Tensor& logits_t, double diversity);

/// Term "entropy".
class EntropyMethod : public MethodImpl {
 public:
  explicit EntropyMethod(const MethodOptions::Entropy& o) : o_(o) {}
  LossTerms loss(const StepOutputs& out) override;
  std::string describe() const override;

 private:
  MethodOptions::Entropy o_;
};

}  // namespace shiftlab::losses
