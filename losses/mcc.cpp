#include "losses/mcc.h"

#include "core/error.h"
#include "losses/util.h"

namespace shiftlab::losses {

torch::Tensor mcc_loss(const torch::Tensor& logits_in, double temperature) {
  auto logits = detail::upcast(logits_in) / temperature;
  const int64_t n = logits.size(0), k = logits.size(1);
  auto p = torch::softmax(logits, 1);
  auto w = 1.0 + torch::exp(-detail::softmax_entropy(logits.detach()));
  w = w * (double(n) / w.sum());
  auto c = torch::mm((p * w.unsqueeze(1)).t(), p);  // K×K, symmetric
  c = c / c.sum(0, true);                            // column-normalised
  return (c.sum() - c.trace()) / double(k);
}

MccMethod::MccMethod(const MethodOptions::Mcc& o) : o_(o) {
  core::check_usage(o.temperature > 0, "mcc.temperature must be positive, got ", o.temperature);
}

LossTerms MccMethod::loss(const StepOutputs& out) {
  detail::check_matrix(out.logits_t, "mcc", "logits_t");
  LossTerms r;
  r.total = mcc_loss(out.logits_t, o_.temperature);
  r.terms.emplace_back("mcc", r.total.detach());
  return r;
}

std::string MccMethod::describe() const { return core::str("mcc(T=", o_.temperature, ")"); }

static MethodPtr make_mcc(const MethodOptions& o, int64_t, int64_t, const std::map<std::string, int64_t>&) {
  return std::make_shared<MccMethod>(o.mcc);
}

SHIFTLAB_REGISTER(method_registry(), "mcc", "Minimum Class Confusion on target predictions (temperature 2.5)",
                  make_mcc);

}  // namespace shiftlab::losses
