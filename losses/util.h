// Small helpers shared by the loss implementations (internal to losses/).
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>

#include "losses/method.h"

namespace shiftlab::losses::detail {

/// A scalar 0 (no grad) with the dtype/device of `like`.
torch::Tensor zero_scalar(const torch::Tensor& like);
/// Half / bfloat16 -> float32 (losses are computed in at least fp32); others unchanged.
torch::Tensor upcast(const torch::Tensor& t);
/// Row-wise Shannon entropy (nats) of softmax(logits): N×K -> N, -sum_k p_k log p_k computed
/// from log_softmax (stable, no epsilon).
torch::Tensor softmax_entropy(const torch::Tensor& logits);
/// Checks `t` is defined, 2-D, with `cols` columns when cols > 0; throws Error naming who/what.
void check_matrix(const torch::Tensor& t, const std::string& who, const std::string& what, int64_t cols = -1);
/// (source, target) pooled activations of a tap: "features" = (f_s, f_t), else taps_s/taps_t[tap].
/// Throws Error naming the method and the tap when absent.
std::pair<torch::Tensor, torch::Tensor> tap_pair(const StepOutputs& out, const std::string& tap,
                                                 const std::string& who);
/// Shortest decimal text that parses back to exactly v ("0.1", "2", "1e-05").
std::string format_number(double v);
/// Flattens to N×(rest) and upcasts.
torch::Tensor flat2d(const torch::Tensor& t);

}  // namespace shiftlab::losses::detail
