// Gradient reversal (Ganin & Lempitsky 2015): identity in the forward pass, -lambda * grad in
// the backward pass, and the lambda schedule over training progress.
#pragma once

#include <torch/torch.h>

namespace shiftlab::losses {

/// The autograd function: forward(x, lambda) = x; backward(g) = -lambda * g (lambda kept in
/// ctx->saved_data["lambda"]; no gradient for lambda).
struct GradReverse : public torch::autograd::Function<GradReverse> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, double lambda);
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out);
};

/// x unchanged forward; its gradient multiplied by -lambda backward.
torch::Tensor grad_reverse(torch::Tensor x, double lambda);

/// Ganin's schedule lambda(p) = 2 / (1 + exp(-gamma p)) - 1, p in [0, 1] (clamped): 0 at p=0,
/// ~1 at p=1 for gamma=10. Multiply by the method's max_lambda.
double dann_lambda(double p, double gamma = 10);

}  // namespace shiftlab::losses
