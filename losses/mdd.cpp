#include "losses/mdd.h"

#include "core/error.h"
#include "losses/dann.h"
#include "losses/grl.h"
#include "losses/util.h"
#include "models/dropout.h"

namespace shiftlab::losses {

MddMethod::MddMethod(const MethodOptions::Mdd& o, int64_t feature_dim, int64_t num_classes)
    : o_(o), dim_(feature_dim), classes_(num_classes) {
  core::check_usage(feature_dim > 0 && num_classes > 1 && o.width > 0,
                    "mdd: feature_dim, width and num_classes (>1) must be positive");
  torch::nn::Linear l1(feature_dim, o.width), l2(o.width, num_classes);
  {
    torch::NoGradGuard ng;  // TLlib's head initialisation
    for (auto* l : {&l1, &l2}) {
      (*l)->weight.normal_(0, 0.01);
      (*l)->bias.zero_();
    }
  }
  adv_head = register_module("adv_head",
                             torch::nn::Sequential(l1, torch::nn::ReLU(), models::Dropout(0.5), l2));
}

torch::Tensor MddMethod::mdd_loss(const torch::Tensor& y_s, const torch::Tensor& adv_s, const torch::Tensor& y_t,
                                  const torch::Tensor& adv_t, double margin) {
  auto pred_s = y_s.argmax(1), pred_t = y_t.argmax(1);
  auto ce_s = torch::nll_loss(torch::log_softmax(adv_s, 1), pred_s);
  auto p_t = torch::softmax(adv_t, 1).gather(1, pred_t.unsqueeze(1)).squeeze(1);
  auto log_t = torch::log((1.0 - p_t + 1e-6).clamp_max(1.0)).mean();
  return margin * ce_s - log_t;  // = -MDD
}

LossTerms MddMethod::loss(const StepOutputs& out) {
  detail::check_matrix(out.f_s, "mdd", "f_s", dim_);
  detail::check_matrix(out.f_t, "mdd", "f_t", dim_);
  detail::check_matrix(out.logits_s, "mdd", "logits_s", classes_);
  detail::check_matrix(out.logits_t, "mdd", "logits_t", classes_);
  AdversarialOptions ao;
  ao.schedule = o_.schedule;
  ao.gamma = o_.gamma;
  ao.max_lambda = o_.max_lambda;
  const double lambda = adversarial_lambda(ao, out.progress);
  const int64_t ns = out.f_s.size(0);
  auto f = torch::cat({detail::upcast(out.f_s), detail::upcast(out.f_t)}, 0);
  auto adv = adv_head->forward(grad_reverse(f, lambda));
  auto adv_s = adv.narrow(0, 0, ns), adv_t = adv.narrow(0, ns, adv.size(0) - ns);
  LossTerms r;
  r.total = mdd_loss(detail::upcast(out.logits_s).detach(), adv_s, detail::upcast(out.logits_t).detach(), adv_t,
                     o_.margin);
  r.terms = {{"mdd", r.total.detach()}, {"lambda", torch::full({}, lambda, r.total.options().requires_grad(false))}};
  return r;
}

std::string MddMethod::describe() const {
  return core::str("mdd(margin=", o_.margin, ", width=", o_.width,
                   o_.schedule == "constant" ? core::str(", lambda=", o_.max_lambda)
                                             : core::str(", gamma=", o_.gamma, ", max_lambda=", o_.max_lambda),
                   ")");
}

static MethodPtr make_mdd(const MethodOptions& o, int64_t feature_dim, int64_t num_classes,
                          const std::map<std::string, int64_t>&) {
  return std::make_shared<MddMethod>(o.mdd, feature_dim, num_classes);
}

SHIFTLAB_REGISTER(method_registry(), "mdd",
                  "MDD: margin disparity discrepancy with an adversarial head through gradient reversal", make_mdd);

}  // namespace shiftlab::losses
