#include "losses/entropy.h"

#include "core/error.h"
#include "losses/util.h"

namespace shiftlab::losses {

torch::Tensor entropy_loss(const torch::Tensor& logits_t, double diversity) {
  auto loss = detail::softmax_entropy(logits_t).mean();
  if (diversity != 0) {
    auto pbar = torch::softmax(detail::upcast(logits_t), 1).mean(0);
    auto h = -(torch::xlogy(pbar, pbar)).sum();
    loss = loss - diversity * h;
  }
  return loss;
}

LossTerms EntropyMethod::loss(const StepOutputs& out) {
  detail::check_matrix(out.logits_t, "entropy", "logits_t");
  LossTerms r;
  r.total = entropy_loss(out.logits_t, o_.diversity);
  r.terms.emplace_back("entropy", r.total.detach());
  return r;
}

std::string EntropyMethod::describe() const {
  return o_.diversity != 0 ? core::str("entropy(diversity=", o_.diversity, ")") : "entropy";
}

static MethodPtr make_entropy(const MethodOptions& o, int64_t, int64_t, const std::map<std::string, int64_t>&) {
  return std::make_shared<EntropyMethod>(o.entropy);
}

SHIFTLAB_REGISTER(method_registry(), "entropy", "entropy minimisation of target predictions", make_entropy);

}  // namespace shiftlab::losses
