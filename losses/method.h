// Domain-adaptation methods. A method owns its extra modules (e.g. DANN's domain discriminator,
// registered as submodules so the optimizer and checkpoints see them) and turns one step's
// outputs into weighted loss terms. Methods compose: "dann + 0.1*entropy" is a sum of methods,
// each with its weight (parsed by make_method). Source-only is a method whose loss is zero.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace shiftlab::losses {

/// What one training step produced, for the method to use.
struct StepOutputs {
  torch::Tensor f_s, f_t;            ///< features fed to the classifier (N_s×D, N_t×D)
  torch::Tensor logits_s, logits_t;  ///< classifier outputs (N_s×K, N_t×K)
  torch::Tensor labels_s;            ///< source labels (N_s), int64
  /// Extra backbone taps a method asked for (taps()), pooled to N×D.
  std::map<std::string, torch::Tensor> taps_s, taps_t;
  double progress = 0;  ///< training progress p in [0, 1]
  int64_t step = 0;
};

/// The method's contribution to the loss: `total` (already weighted, a scalar with grad) and
/// each named term (detached scalars, weighted) for logging, e.g. {"dann", "dann_acc", "lambda"}.
struct LossTerms {
  torch::Tensor total;
  std::vector<std::pair<std::string, torch::Tensor>> terms;
};

class MethodImpl : public torch::nn::Module {
 public:
  virtual LossTerms loss(const StepOutputs& out) = 0;
  /// Backbone taps (besides the classifier features) the method needs, e.g. {"layer3"}.
  virtual std::vector<std::string> taps() const { return {}; }
  /// Whether the method uses target data at all (source_only does not).
  virtual bool uses_target() const { return true; }
  /// Whether BatchNorm statistics should be re-estimated on target data before evaluation.
  virtual bool adabn() const { return false; }
  /// Short description for logs, e.g. "dann(hidden=1024) + 0.1*entropy".
  virtual std::string describe() const = 0;
};

using MethodPtr = std::shared_ptr<MethodImpl>;

}  // namespace shiftlab::losses
