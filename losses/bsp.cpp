#include "losses/bsp.h"

#include "core/error.h"
#include "losses/util.h"

namespace shiftlab::losses {

torch::Tensor bsp_loss(const torch::Tensor& f_s, const torch::Tensor& f_t, int64_t k) {
  // σ_i(F)² are the eigenvalues of the smaller Gram matrix (F Fᵀ for a batch narrower than the
  // features, else FᵀF): one GEMM and a symmetric eigen-decomposition of a batch×batch matrix,
  // forward and backward ~3× cheaper than the SVD of F (TLlib's torch.svd) on LeNet's 64×500.
  auto top = [k](const torch::Tensor& f_in) {
    auto f = detail::flat2d(f_in);
    auto g = f.size(0) <= f.size(1) ? torch::mm(f, f.t()) : torch::mm(f.t(), f);
    auto ev = torch::linalg_eigvalsh(g);  // ascending
    const int64_t n = std::min<int64_t>(k, ev.size(0));
    return ev.narrow(0, ev.size(0) - n, n).sum();
  };
  return top(f_s) + top(f_t);
}

BspMethod::BspMethod(const MethodOptions::Bsp& o) : o_(o) {
  core::check_usage(o.k >= 1, "bsp.k must be at least 1");
}

LossTerms BspMethod::loss(const StepOutputs& out) {
  detail::check_matrix(out.f_s, "bsp", "f_s");
  detail::check_matrix(out.f_t, "bsp", "f_t");
  LossTerms r;
  r.total = bsp_loss(out.f_s, out.f_t, o_.k);
  r.terms.emplace_back("bsp", r.total.detach());
  return r;
}

std::string BspMethod::describe() const { return core::str("bsp(k=", o_.k, ")"); }

static MethodPtr make_bsp(const MethodOptions& o, int64_t, int64_t, const std::map<std::string, int64_t>&) {
  return std::make_shared<BspMethod>(o.bsp);
}

SHIFTLAB_REGISTER(method_registry(), "bsp",
                  "BSP: penalise the largest singular values of the feature batches (pair with dann/cdan)", make_bsp);

}  // namespace shiftlab::losses
