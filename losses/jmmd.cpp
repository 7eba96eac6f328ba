#include "losses/jmmd.h"

#include <sstream>

#include "core/error.h"
#include "losses/util.h"

namespace shiftlab::losses {

static std::vector<KernelSpec> jan_kernels(const MethodOptions::Jan& o) {
  core::check_usage(!o.kernels.empty(), "jan.kernels: at least one bandwidth multiplier is needed");
  for (double a : o.kernels) core::check_usage(a > 0, "jan.kernels: multipliers must be positive, got ", a);
  core::check_usage(o.softmax_sigma > 0, "jan.softmax_sigma must be positive");
  std::vector<KernelSpec> k(o.taps.size(), KernelSpec{o.kernels, 0, true});
  k.push_back(KernelSpec{{}, o.softmax_sigma, true});
  return k;
}

JanMethod::JanMethod(const MethodOptions::Jan& o)
    : o_(o), mmd_(jan_kernels(o), parse_mmd_estimator(o.estimator, "jan.estimator")) {}

LossTerms JanMethod::loss(const StepOutputs& out) {
  std::vector<torch::Tensor> zs, zt;
  for (auto& tap : o_.taps) {
    auto [s, t] = detail::tap_pair(out, tap, "jan");
    core::check(s.defined() && t.defined() && s.dim() >= 2 && t.dim() >= 2, "jan: tap '", tap,
                "' must be an N×D tensor in both domains");
    zs.push_back(s);
    zt.push_back(t);
  }
  detail::check_matrix(out.logits_s, "jan", "logits_s");
  detail::check_matrix(out.logits_t, "jan", "logits_t", out.logits_s.size(1));
  zs.push_back(torch::softmax(detail::upcast(out.logits_s), 1));
  zt.push_back(torch::softmax(detail::upcast(out.logits_t), 1));
  LossTerms r;
  r.total = mmd_(zs, zt, "jan");
  r.terms.emplace_back("jan", r.total.detach());
  return r;
}

std::vector<std::string> JanMethod::taps() const {
  std::vector<std::string> v;
  for (auto& t : o_.taps)
    if (t != "features") v.push_back(t);
  return v;
}

std::string JanMethod::describe() const {
  std::ostringstream os;
  os << "jan(" << o_.estimator << ", kernels=";
  for (size_t i = 0; i < o_.kernels.size(); ++i) os << (i ? "/" : "") << o_.kernels[i];
  os << ", softmax_sigma=" << o_.softmax_sigma << ", taps=";
  for (size_t i = 0; i < o_.taps.size(); ++i) os << (i ? "/" : "") << o_.taps[i];
  os << "+softmax)";
  return os.str();
}

static MethodPtr make_jan(const MethodOptions& o, int64_t, int64_t, const std::map<std::string, int64_t>&) {
  return std::make_shared<JanMethod>(o.jan);
}

SHIFTLAB_REGISTER(method_registry(), "jan",
                  "JAN: joint multi-kernel MMD over features and softmax outputs (product kernel)", make_jan);

}  // namespace shiftlab::losses
