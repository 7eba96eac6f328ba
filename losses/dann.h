// DANN (Ganin et al. 2016): a domain discriminator learns to tell source (label 1) from target
// (label 0) features, while the features receive its gradient reversed (-lambda) through a GRL,
// so the feature extractor learns domain-invariant features.
#pragma once

#include <torch/torch.h>

#include "losses/method.h"
#include "losses/methods.h"

namespace shiftlab::losses {

/// TLlib's DomainDiscriminator, returning logits: depth × [Linear(., hidden) - BatchNorm1d -
/// ReLU] (or, with bn=false, [Linear - ReLU - Dropout(0.5)]) then Linear(hidden, 1).
/// Input N×in_features, output N (a positive logit means "source").
class DomainDiscriminatorImpl : public torch::nn::Module {
 public:
  DomainDiscriminatorImpl(int64_t in_features, int64_t hidden, int64_t depth, bool bn);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t in_features() const { return in_features_; }

  torch::nn::Sequential layers{nullptr};

 private:
  int64_t in_features_;
};
TORCH_MODULE(DomainDiscriminator);

/// Domain-classification loss on discriminator logits, TLlib's form
///   0.5 * ( sum_i w_s,i BCE(d_s,i, 1) + sum_j w_t,j BCE(d_t,j, 0) ),
/// with each domain's weights normalised to sum 1 (uniform 1/N when undefined), i.e. the mean of
/// the two per-domain means. BCE with logits: BCE(d,1) = softplus(-d), BCE(d,0) = softplus(d).
torch::Tensor domain_bce(const torch::Tensor& d_s, const torch::Tensor& d_t,
                         const torch::Tensor& w_s = {}, const torch::Tensor& w_t = {});
/// Discriminator accuracy 0.5 * (mean[d_s >= 0] + mean[d_t < 0]), detached.
torch::Tensor domain_accuracy(const torch::Tensor& d_s, const torch::Tensor& d_t);
/// lambda at progress p for an adversarial method's options.
double adversarial_lambda(const AdversarialOptions& o, double p);

/// The DANN method: loss = domain_bce(D(GRL_lambda(f_s)), D(GRL_lambda(f_t))), lambda(p) =
/// max_lambda * (2/(1+exp(-gamma p)) - 1). Terms "dann" (loss), "dann_acc", "lambda".
class DannMethod : public MethodImpl {
 public:
  DannMethod(const AdversarialOptions& o, int64_t feature_dim);
  LossTerms loss(const StepOutputs& out) override;
  std::string describe() const override;
  DomainDiscriminator discriminator{nullptr};

 private:
  AdversarialOptions o_;
  int64_t dim_;
};

}  // namespace shiftlab::losses
