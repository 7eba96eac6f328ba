#include "losses/util.h"

#include <sstream>

#include "core/error.h"

namespace shiftlab::losses::detail {

torch::Tensor zero_scalar(const torch::Tensor& like) {
  return torch::zeros({}, like.options().dtype(upcast(like).scalar_type()).requires_grad(false));
}

torch::Tensor upcast(const torch::Tensor& t) {
  if (t.scalar_type() == torch::kHalf || t.scalar_type() == torch::kBFloat16) return t.to(torch::kFloat);
  return t;
}

torch::Tensor softmax_entropy(const torch::Tensor& logits) {
  auto lp = torch::log_softmax(upcast(logits), 1);
  return -(lp.exp() * lp).sum(1);
}

void check_matrix(const torch::Tensor& t, const std::string& who, const std::string& what, int64_t cols) {
  core::check(t.defined(), who, ": ", what, " is missing from the step outputs");
  if (t.dim() != 2) {
    std::ostringstream os;
    os << t.sizes();
    throw core::Error(core::str(who, ": ", what, " must be N×D, got a ", t.dim(), "-D tensor ", os.str()));
  }
  core::check(t.size(0) > 0, who, ": ", what, " is empty");
  if (cols > 0)
    core::check(t.size(1) == cols, who, ": ", what, " has ", t.size(1), " columns, expected ", cols);
}

torch::Tensor flat2d(const torch::Tensor& t) {
  auto u = upcast(t);
  return u.dim() == 2 ? u : u.reshape({u.size(0), -1});
}

std::pair<torch::Tensor, torch::Tensor> tap_pair(const StepOutputs& out, const std::string& tap,
                                                 const std::string& who) {
  if (tap == "features") return {out.f_s, out.f_t};
  auto is = out.taps_s.find(tap), it = out.taps_t.find(tap);
  core::check(is != out.taps_s.end() && it != out.taps_t.end(), who, ": tap '", tap,
              "' is missing from the step outputs (the trainer must fill taps_s/taps_t for every name in taps())");
  return {is->second, it->second};
}

std::string format_number(double v) {
  std::string s;
  for (int prec = 1; prec <= 17; ++prec) {
    std::ostringstream os;
    os.precision(prec);
    os << v;
    s = os.str();
    if (std::stod(s) == v) break;
  }
  return s;
}

}  // namespace shiftlab::losses::detail
