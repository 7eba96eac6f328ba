#include "losses/dann.h"

#include "core/error.h"
#include "losses/grl.h"
#include "losses/util.h"
#include "models/backbones.h"
#include "models/dropout.h"

namespace shiftlab::losses {

DomainDiscriminatorImpl::DomainDiscriminatorImpl(int64_t in_features, int64_t hidden, int64_t depth, bool bn)
    : in_features_(in_features) {
  core::check_usage(in_features > 0 && hidden > 0 && depth >= 1,
                    "domain discriminator: in_features, hidden and depth must be positive (got ", in_features,
                    ", ", hidden, ", ", depth, ")");
  torch::nn::Sequential seq;
  int64_t in = in_features;
  for (int64_t i = 0; i < depth; ++i) {
    seq->push_back(torch::nn::Linear(in, hidden));
    if (bn) {
      seq->push_back(torch::nn::BatchNorm1d(hidden));
      seq->push_back(torch::nn::ReLU());
    } else {
      seq->push_back(torch::nn::ReLU());
      seq->push_back(models::Dropout(0.5));
    }
    in = hidden;
  }
  seq->push_back(torch::nn::Linear(in, 1));
  layers = register_module("layers", seq);
}

// run_sequential: the BatchNorm layers honour dist.sync_bn (statistics over every rank's batch)
torch::Tensor DomainDiscriminatorImpl::forward(const torch::Tensor& x) {
  return models::run_sequential(*layers, x).squeeze(1);
}

torch::Tensor domain_bce(const torch::Tensor& d_s, const torch::Tensor& d_t, const torch::Tensor& w_s,
                         const torch::Tensor& w_t) {
  auto ls = torch::softplus(-d_s), lt = torch::softplus(d_t);
  auto side = [](const torch::Tensor& l, const torch::Tensor& w) {
    if (!w.defined()) return l.mean();
    auto v = w.reshape({-1}).to(l.scalar_type());
    return (v * l).sum() / v.sum();
  };
  return 0.5 * (side(ls, w_s) + side(lt, w_t));
}

torch::Tensor domain_accuracy(const torch::Tensor& d_s, const torch::Tensor& d_t) {
  torch::NoGradGuard ng;
  auto acc_s = d_s.ge(0).to(d_s.scalar_type()).mean();
  auto acc_t = d_t.lt(0).to(d_t.scalar_type()).mean();
  return 0.5 * (acc_s + acc_t);
}

double adversarial_lambda(const AdversarialOptions& o, double p) {
  if (o.schedule == "constant") return o.max_lambda;
  return o.max_lambda * dann_lambda(p, o.gamma);
}

DannMethod::DannMethod(const AdversarialOptions& o, int64_t feature_dim) : o_(o), dim_(feature_dim) {
  discriminator = register_module("discriminator", DomainDiscriminator(feature_dim, o.hidden, o.depth, o.bn));
}

LossTerms DannMethod::loss(const StepOutputs& out) {
  detail::check_matrix(out.f_s, "dann", "f_s", dim_);
  detail::check_matrix(out.f_t, "dann", "f_t", dim_);
  const double lambda = adversarial_lambda(o_, out.progress);
  const int64_t ns = out.f_s.size(0);
  auto f = torch::cat({detail::upcast(out.f_s), detail::upcast(out.f_t)}, 0);
  auto d = discriminator->forward(grad_reverse(f, lambda));
  auto d_s = d.narrow(0, 0, ns), d_t = d.narrow(0, ns, d.size(0) - ns);
  LossTerms r;
  r.total = domain_bce(d_s, d_t);
  r.terms = {{"dann", r.total.detach()},
             {"dann_acc", domain_accuracy(d_s, d_t)},
             {"lambda", torch::full({}, lambda, r.total.options().requires_grad(false))}};
  return r;
}

std::string DannMethod::describe() const {
  return core::str("dann(hidden=", o_.hidden, ", depth=", o_.depth, ", bn=", o_.bn ? "on" : "off",
                   o_.schedule == "constant" ? core::str(", lambda=", o_.max_lambda)
                                             : core::str(", gamma=", o_.gamma, ", max_lambda=", o_.max_lambda),
                   ")");
}

static MethodPtr make_dann(const MethodOptions& o, int64_t feature_dim, int64_t,
                           const std::map<std::string, int64_t>&) {
  return std::make_shared<DannMethod>(o.dann, feature_dim);
}

SHIFTLAB_REGISTER(method_registry(), "dann",
                  "DANN: domain discriminator through gradient reversal, lambda(p) = 2/(1+exp(-10p)) - 1",
                  make_dann);

}  // namespace shiftlab::losses
