// The optimizer registry ("optimizers", optim.name): SGD, Adam, AdamW, each a factory from the
// parameter groups (per-group learning rate and weight decay) and the optim.* settings.
#pragma once

#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <functional>
#include <memory>
#include <vector>

#include "core/registry.h"
#include "train/options.h"

namespace shiftlab::train {

/// One parameter group as an optimizer receives it.
struct OptimizerGroup {
  std::vector<torch::Tensor> params;
  double lr = 0;
  double weight_decay = 0;
};

/// Builds an optimizer over `groups` with the settings `o` (momentum, betas, ...); `default_lr` is
/// the optimizer's own default (the groups carry their learning rates).
using OptimizerFactory = std::function<std::unique_ptr<torch::optim::Optimizer>(
    const std::vector<OptimizerGroup>& groups, const OptimOptions& o, double default_lr)>;

/// The "optimizers" registry.
core::Registry<OptimizerFactory>& optimizer_registry();

/// The optimizer o.name (UsageError listing the known names when unknown).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<OptimizerGroup>& groups,
                                                        const OptimOptions& o, double default_lr);

}  // namespace shiftlab::train
