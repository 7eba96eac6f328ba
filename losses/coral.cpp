#include "losses/coral.h"

#include "core/error.h"
#include "losses/util.h"

namespace shiftlab::losses {

static torch::Tensor covariance(const torch::Tensor& x) {
  auto xc = x - x.mean(0, true);
  return torch::mm(xc.t(), xc) / double(x.size(0) - 1);
}

torch::Tensor coral_loss(const torch::Tensor& x_s_in, const torch::Tensor& x_t_in, bool mean_term) {
  auto x_s = detail::flat2d(x_s_in), x_t = detail::flat2d(x_t_in);
  core::check(x_s.size(0) >= 2 && x_t.size(0) >= 2, "coral: needs at least 2 source and 2 target samples");
  core::check(x_s.size(1) == x_t.size(1), "coral: source and target dimensions differ (", x_s.size(1), " vs ",
              x_t.size(1), ")");
  const int64_t ns = x_s.size(0), nt = x_t.size(0), dim = x_s.size(1);
  const double d = double(dim);
  torch::Tensor fro;
  if (ns * ns + nt * nt + ns * nt < dim * dim) {
    // Wide features (d larger than the batch): ||C_s - C_t||_F^2 from the n×n Gram matrices of the
    // centred rows, tr(A^T A) = ||X_s X_s^T||^2, <A, B> = ||X_s X_t^T||^2 — O(n^2 d) instead of
    // O(n d^2). The expansion cancels when C_s ≈ C_t, so it runs in double precision.
    auto cs = x_s - x_s.mean(0, true), ct = x_t - x_t.mean(0, true);
    auto a = cs.to(torch::kDouble), b = ct.to(torch::kDouble);
    const double us = 1.0 / (ns - 1), ut = 1.0 / (nt - 1);
    fro = torch::mm(a, a.t()).pow(2).sum() * (us * us) + torch::mm(b, b.t()).pow(2).sum() * (ut * ut) -
          torch::mm(a, b.t()).pow(2).sum() * (2 * us * ut);
    fro = fro.to(x_s.scalar_type());
  } else {
    fro = (covariance(x_s) - covariance(x_t)).pow(2).sum();
  }
  auto loss = fro / (4 * d * d);
  if (mean_term) loss = loss + (x_s.mean(0) - x_t.mean(0)).pow(2).mean();
  return loss;
}

LossTerms CoralMethod::loss(const StepOutputs& out) {
  detail::check_matrix(out.f_s, "coral", "f_s");
  detail::check_matrix(out.f_t, "coral", "f_t", out.f_s.size(1));
  LossTerms r;
  r.total = coral_loss(out.f_s, out.f_t, o_.mean_term);
  r.terms.emplace_back("coral", r.total.detach());
  return r;
}

std::string CoralMethod::describe() const { return o_.mean_term ? "coral(+mean)" : "coral"; }

static MethodPtr make_coral(const MethodOptions& o, int64_t, int64_t, const std::map<std::string, int64_t>&) {
  return std::make_shared<CoralMethod>(o.coral);
}

SHIFTLAB_REGISTER(method_registry(), "coral", "Deep CORAL: ||C_s - C_t||_F^2 / (4 d^2) on the features",
                  make_coral);

}  // namespace shiftlab::losses
