#include "losses/afn.h"

#include "core/error.h"
#include "losses/util.h"

namespace shiftlab::losses {

torch::Tensor afn_loss(const torch::Tensor& f, double delta) {
  auto norm = detail::flat2d(f).norm(2, 1);
  return (norm - (norm.detach() + delta)).pow(2).mean();
}

LossTerms AfnMethod::loss(const StepOutputs& out) {
  detail::check_matrix(out.f_s, "afn", "f_s");
  detail::check_matrix(out.f_t, "afn", "f_t");
  LossTerms r;
  r.total = afn_loss(out.f_s, o_.delta) + afn_loss(out.f_t, o_.delta);
  r.terms.emplace_back("afn", r.total.detach());
  return r;
}

std::string AfnMethod::describe() const { return core::str("afn(delta=", o_.delta, ")"); }

static MethodPtr make_afn(const MethodOptions& o, int64_t, int64_t, const std::map<std::string, int64_t>&) {
  return std::make_shared<AfnMethod>(o.afn);
}

SHIFTLAB_REGISTER(method_registry(), "afn",
                  "AFN (stepwise SAFN): enlarge feature norms by delta per step on both domains (use 0.01*afn)",
                  make_afn);

}  // namespace shiftlab::losses
