#include "losses/grl.h"

#include <algorithm>
#include <cmath>

namespace shiftlab::losses {

torch::Tensor GradReverse::forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, double lambda) {
  ctx->saved_data["lambda"] = lambda;
  // A view, so no copy; autograd gives it this function's backward.
  return x.view_as(x);
}

torch::autograd::variable_list GradReverse::backward(torch::autograd::AutogradContext* ctx,
                                                     torch::autograd::variable_list grad_out) {
  const double lambda = ctx->saved_data["lambda"].toDouble();
  return {grad_out[0] * (-lambda), torch::Tensor()};
}

torch::Tensor grad_reverse(torch::Tensor x, double lambda) { return GradReverse::apply(x, lambda); }

double dann_lambda(double p, double gamma) {
  p = std::clamp(p, 0.0, 1.0);
  return 2.0 / (1.0 + std::exp(-gamma * p)) - 1.0;
}

}  // namespace shiftlab::losses
