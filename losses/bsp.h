// Batch Spectral Penalization (Chen et al. 2019, TLlib's BatchSpectralPenalizationLoss): penalises
// the k largest singular values of the source and target feature matrices,
//   loss = sum_{i<k} sigma_i(F_s)^2 + sigma_i(F_t)^2,
// to keep transferability while adversarial alignment (use with DANN/CDAN: "dann + 1e-4*bsp").
#pragma once

#include "losses/method.h"
#include "losses/methods.h"

namespace shiftlab::losses {

torch::Tensor bsp_loss(const torch::Tensor& f_s, const torch::Tensor& f_t, int64_t k);

/// Term "bsp".
class BspMethod : public MethodImpl {
 public:
  explicit BspMethod(const MethodOptions::Bsp& o);
  LossTerms loss(const StepOutputs& out) override;
  std::string describe() const override;

 private:
  MethodOptions::Bsp o_;
};

}  // namespace shiftlab::losses
