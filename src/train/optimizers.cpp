#include "train/optimizers.h"

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

namespace shiftlab::train {

core::Registry<OptimizerFactory>& optimizer_registry() {
  static core::Registry<OptimizerFactory> r("optimizers", "optimizers (optim.name)");
  return r;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<OptimizerGroup>& groups,
                                                        const OptimOptions& o, double default_lr) {
  return optimizer_registry().get(o.name)(groups, o, default_lr);
}

namespace {

// The groups with their options (lr, weight decay and the kind's settings) for optimizer `Opt`.
template <typename Options>
std::vector<torch::optim::OptimizerParamGroup> optimizer_param_groups(const std::vector<OptimizerGroup>& groups,
                                                            const std::function<Options(const OptimizerGroup&)>& opts) {
  std::vector<torch::optim::OptimizerParamGroup> pgs;
  for (auto& g : groups) pgs.emplace_back(g.params, std::make_unique<Options>(opts(g)));
  return pgs;
}

std::unique_ptr<torch::optim::Optimizer> make_sgd_optimizer(const std::vector<OptimizerGroup>& groups, const OptimOptions& o,
                                                  double default_lr) {
  auto pgs = optimizer_param_groups<torch::optim::SGDOptions>(groups, [&](const OptimizerGroup& g) {
    return torch::optim::SGDOptions(g.lr)
        .momentum(o.momentum)
        .nesterov(o.nesterov && o.momentum > 0)
        .weight_decay(g.weight_decay);
  });
  return std::make_unique<torch::optim::SGD>(pgs, torch::optim::SGDOptions(default_lr).momentum(o.momentum));
}

std::unique_ptr<torch::optim::Optimizer> make_adam_optimizer(const std::vector<OptimizerGroup>& groups, const OptimOptions& o,
                                                   double default_lr) {
  auto pgs = optimizer_param_groups<torch::optim::AdamOptions>(groups, [&](const OptimizerGroup& g) {
    return torch::optim::AdamOptions(g.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(g.weight_decay);
  });
  return std::make_unique<torch::optim::Adam>(pgs, torch::optim::AdamOptions(default_lr));
}

std::unique_ptr<torch::optim::Optimizer> make_adamw_optimizer(const std::vector<OptimizerGroup>& groups, const OptimOptions& o,
                                                    double default_lr) {
  auto pgs = optimizer_param_groups<torch::optim::AdamWOptions>(groups, [&](const OptimizerGroup& g) {
    return torch::optim::AdamWOptions(g.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(g.weight_decay);
  });
  return std::make_unique<torch::optim::AdamW>(pgs, torch::optim::AdamWOptions(default_lr));
}

}  // namespace

SHIFTLAB_REGISTER(optimizer_registry(), "sgd",
                  "SGD with momentum (optim.momentum; Nesterov when optim.nesterov) and weight decay", make_sgd_optimizer);
SHIFTLAB_REGISTER(optimizer_registry(), "adam", "Adam (optim.beta1, optim.beta2, optim.eps), L2 weight decay",
                  make_adam_optimizer);
SHIFTLAB_REGISTER(optimizer_registry(), "adamw",
                  "AdamW (optim.beta1, optim.beta2, optim.eps), decoupled weight decay", make_adamw_optimizer);

}  // namespace shiftlab::train
