// JAN (Long et al. 2017): joint MMD over the features of the configured taps and the softmax
// outputs. The joint kernel is the product of each layer's kernel: multi-kernel Gaussians on the
// features (bandwidths alpha_u * mean distance) and one Gaussian of fixed sigma (TLlib: 0.92)
// on softmax(logits); gradients flow through the softmax. Estimators as in losses/mmd.h.
#pragma once

#include "losses/mmd.h"

namespace shiftlab::losses {

/// Term "jan".
class JanMethod : public MethodImpl {
 public:
  explicit JanMethod(const MethodOptions::Jan& o);
  LossTerms loss(const StepOutputs& out) override;
  std::vector<std::string> taps() const override;
  std::string describe() const override;

 private:
  MethodOptions::Jan o_;
  JointMmd mmd_;
};

}  // namespace shiftlab::losses
