#include "losses/baseline.h"

#include "losses/util.h"

namespace shiftlab::losses {

LossTerms SourceOnlyMethod::loss(const StepOutputs& out) {
  LossTerms r;
  r.total = detail::zero_scalar(out.logits_s.defined() ? out.logits_s : out.f_s);
  return r;
}

static MethodPtr make_source_only(const MethodOptions&, int64_t, int64_t, const std::map<std::string, int64_t>&) {
  return std::make_shared<SourceOnlyMethod>();
}
static MethodPtr make_adabn(const MethodOptions&, int64_t, int64_t, const std::map<std::string, int64_t>&) {
  return std::make_shared<AdaBnMethod>();
}

SHIFTLAB_REGISTER(method_registry(), "source_only", "no adaptation: cross-entropy on the labelled source only",
                  make_source_only);
SHIFTLAB_REGISTER(method_registry(), "adabn",
                  "AdaBN: source-only training, BatchNorm statistics re-estimated on target before evaluation",
                  make_adabn);

}  // namespace shiftlab::losses
