#include "losses/cdan.h"

#include <cmath>

#include "core/error.h"
#include "losses/grl.h"
#include "losses/util.h"

namespace shiftlab::losses {

CdanMethod::CdanMethod(const MethodOptions::Cdan& o, int64_t feature_dim, int64_t num_classes)
    : o_(o), dim_(feature_dim), classes_(num_classes) {
  core::check_usage(feature_dim > 0 && num_classes > 0, "cdan: feature_dim and num_classes must be positive");
  core::check_usage(o.random_dim > 0, "cdan.random_dim must be positive");
  randomized_ = o.randomized || feature_dim * num_classes > o.random_threshold;
  if (randomized_) {
    Rf = register_buffer("Rf", torch::randn({feature_dim, o.random_dim}));
    Rg = register_buffer("Rg", torch::randn({num_classes, o.random_dim}));
  }
  discriminator = register_module("discriminator", DomainDiscriminator(map_dim(), o.hidden, o.depth, o.bn));
}

int64_t CdanMethod::map_dim() const { return randomized_ ? o_.random_dim : dim_ * classes_; }

torch::Tensor CdanMethod::map(const torch::Tensor& f, const torch::Tensor& g) const {
  if (randomized_) {
    auto rf = Rf.to(f.options()), rg = Rg.to(g.options());
    return torch::mm(f, rf) * torch::mm(g, rg) * (1.0 / std::sqrt(double(o_.random_dim)));
  }
  return (g.unsqueeze(2) * f.unsqueeze(1)).reshape({f.size(0), -1});
}

LossTerms CdanMethod::loss(const StepOutputs& out) {
  detail::check_matrix(out.f_s, "cdan", "f_s", dim_);
  detail::check_matrix(out.f_t, "cdan", "f_t", dim_);
  detail::check_matrix(out.logits_s, "cdan", "logits_s", classes_);
  detail::check_matrix(out.logits_t, "cdan", "logits_t", classes_);
  const double lambda = adversarial_lambda(o_, out.progress);
  const int64_t ns = out.f_s.size(0), n = ns + out.f_t.size(0);
  auto f = torch::cat({detail::upcast(out.f_s), detail::upcast(out.f_t)}, 0);
  auto logits = torch::cat({detail::upcast(out.logits_s), detail::upcast(out.logits_t)}, 0).detach();
  auto g = torch::softmax(logits, 1);
  auto d = discriminator->forward(grad_reverse(map(f, g), lambda));
  auto d_s = d.narrow(0, 0, ns), d_t = d.narrow(0, ns, n - ns);
  LossTerms r;
  if (o_.entropy) {
    auto w = 1.0 + torch::exp(-detail::softmax_entropy(logits));
    r.total = domain_bce(d_s, d_t, w.narrow(0, 0, ns), w.narrow(0, ns, n - ns));
  } else {
    r.total = domain_bce(d_s, d_t);
  }
  r.terms = {{"cdan", r.total.detach()},
             {"cdan_acc", domain_accuracy(d_s, d_t)},
             {"lambda", torch::full({}, lambda, r.total.options().requires_grad(false))}};
  return r;
}

std::string CdanMethod::describe() const {
  return core::str(o_.entropy ? "cdan+E" : "cdan", "(",
                   randomized_ ? core::str("randomized ", o_.random_dim) : core::str("multilinear ", map_dim()),
                   ", hidden=", o_.hidden, ", depth=", o_.depth,
                   o_.schedule == "constant" ? core::str(", lambda=", o_.max_lambda)
                                             : core::str(", gamma=", o_.gamma, ", max_lambda=", o_.max_lambda),
                   ")");
}

static MethodPtr make_cdan(const MethodOptions& o, int64_t feature_dim, int64_t num_classes,
                           const std::map<std::string, int64_t>&) {
  return std::make_shared<CdanMethod>(o.cdan, feature_dim, num_classes);
}

SHIFTLAB_REGISTER(method_registry(), "cdan",
                  "CDAN: discriminator on f ⊗ softmax(g) (randomized for large D*K); \"cdan+E\" adds entropy "
                  "conditioning",
                  make_cdan);

}  // namespace shiftlab::losses
