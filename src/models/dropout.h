// Dropout on CPU without ATen's serial Bernoulli sampler.
//
// torch::dropout on a CPU tensor draws its mask with bernoulli_, one element at a time from the
// locked default generator: ~1 ms for a 128×500 activation on this machine, about 7 % of a LeNet
// DANN step (three such layers). Here the mask comes from a counter-based generator (SplitMix64
// of seed + element index), filled in parallel, with the seed drawn once per call from the default
// CPU generator — so runs stay reproducible under run.seed (and its checkpointed RNG state), the
// mask does not depend on the number of threads, and the cost is ~0.05 ms. Same semantics as
// torch::dropout / torch::feature_dropout: identity in eval mode or at p = 0, zeros at p = 1, kept
// elements scaled by 1 / (1 - p), the gradient masked the same way. CUDA tensors use ATen's fused
// kernel.
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <cstdint>
#include <ostream>

namespace shiftlab::models {

/// Elementwise dropout (torch::dropout semantics).
torch::Tensor dropout(const torch::Tensor& x, double p, bool training);
/// Channel dropout of an N×C×... tensor: whole channels dropped (torch::feature_dropout semantics).
torch::Tensor feature_dropout(const torch::Tensor& x, double p, bool training);
/// The scaled keep mask used by dropout(): `numel` floats, each 1 / (1 - p) with probability
/// 1 - p, else 0, element i a function of (seed, i) only. Exposed for tests.
torch::Tensor dropout_mask(int64_t numel, double p, uint64_t seed);

/// dropout() as a module, for Sequentials (drop-in for torch::nn::Dropout).
class DropoutImpl : public torch::nn::Cloneable<DropoutImpl> {
 public:
  explicit DropoutImpl(double p = 0.5);
  void reset() override {}
  torch::Tensor forward(const torch::Tensor& x) { return models::dropout(x, p_, is_training()); }
  void pretty_print(std::ostream& os) const override;
  double p() const { return p_; }

 private:
  double p_;
};
TORCH_MODULE(Dropout);

}  // namespace shiftlab::models
