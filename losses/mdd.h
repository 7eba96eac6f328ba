// MDD (Zhang et al. 2019, TLlib's ClassificationMarginDisparityDiscrepancy): an adversarial head
// h' = Linear(D, width) - ReLU - Dropout(0.5) - Linear(width, K) on GRL(features) and the
// predictions yhat = argmax of the main head's logits (no gradient):
//   MDD  = -margin * mean_s CE(h'(f_s), yhat_s) + mean_t log(1 - softmax(h'(f_t))[yhat_t])
//   loss = -MDD
// (the log is TLlib's shift_log: log(min(x + 1e-6, 1))). The adversarial head minimises the loss
// (agrees with the main head on source, disagrees on target); the features, through the GRL with
// lambda(p) = max_lambda * (2/(1+exp(-gamma p)) - 1), do the opposite.
#pragma once

#include "losses/method.h"
#include "losses/methods.h"

namespace shiftlab::losses {

/// Terms "mdd" (the loss, -MDD) and "lambda".
class MddMethod : public MethodImpl {
 public:
  MddMethod(const MethodOptions::Mdd& o, int64_t feature_dim, int64_t num_classes);
  LossTerms loss(const StepOutputs& out) override;
  std::string describe() const override;
  /// -MDD from the main logits and the adversarial head's logits.
  static torch::Tensor mdd_loss(const torch::Tensor& y_s, const torch::Tensor& adv_s, const torch::Tensor& y_t,
                                const torch::Tensor& adv_t, double margin);

  torch::nn::Sequential adv_head{nullptr};

 private:
  MethodOptions::Mdd o_;
  int64_t dim_, classes_;
};

}  // namespace shiftlab::losses
