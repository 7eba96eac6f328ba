#include "losses/mmd.h"

#include <sstream>

#include "core/error.h"
#include "losses/util.h"

namespace shiftlab::losses {

MmdEstimator parse_mmd_estimator(const std::string& s, const std::string& key) {
  if (s == "biased") return MmdEstimator::Biased;
  if (s == "unbiased") return MmdEstimator::Unbiased;
  if (s == "linear") return MmdEstimator::Linear;
  throw core::UsageError(core::str(key, ": unknown MMD estimator '", s, "' (known: biased, unbiased, linear)"));
}

const char* mmd_estimator_name(MmdEstimator e) {
  switch (e) {
    case MmdEstimator::Biased: return "biased";
    case MmdEstimator::Unbiased: return "unbiased";
    case MmdEstimator::Linear: return "linear";
  }
  return "?";
}

torch::Tensor pairwise_sq_dists(const torch::Tensor& x) {
  auto xc = x - x.mean(0, true);
  auto sq = (xc * xc).sum(1);
  auto g = torch::mm(xc, xc.t());
  return (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * g).clamp_min(0);
}

torch::Tensor kernel_from_sq_dists(const torch::Tensor& d2, const torch::Tensor& mean_d2, const KernelSpec& k) {
  if (k.fixed_sigma > 0) return torch::exp(d2 * (-1.0 / (2 * k.fixed_sigma * k.fixed_sigma)));
  // -d2 / (2 alpha m) = (-d2 / (2 m)) / alpha: one scaled matrix, one exp per bandwidth.
  auto base = d2 * (-0.5 / mean_d2.clamp_min(1e-12));
  torch::Tensor sum;
  for (double a : k.alphas) {
    auto e = torch::exp(base * (1.0 / a));
    sum = sum.defined() ? sum + e : e;
  }
  return sum;
}

torch::Tensor JointMmd::coefficients(int64_t ns, int64_t nt, const torch::TensorOptions& opt) {
  auto key = std::make_tuple(ns, nt, static_cast<int>(c10::typeMetaToScalarType(opt.dtype())),
                             opt.device().str());
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  const int64_t n = ns + nt;
  auto w = torch::empty({n, n}, torch::dtype(torch::kDouble));
  auto st = w.narrow(0, 0, ns).narrow(1, ns, nt), ts = w.narrow(0, ns, nt).narrow(1, 0, ns);
  auto ss = w.narrow(0, 0, ns).narrow(1, 0, ns), tt = w.narrow(0, ns, nt).narrow(1, ns, nt);
  st.fill_(-1.0 / (double(ns) * nt));
  ts.fill_(-1.0 / (double(ns) * nt));
  if (est_ == MmdEstimator::Biased) {
    ss.fill_(1.0 / (double(ns) * ns));
    tt.fill_(1.0 / (double(nt) * nt));
  } else {
    ss.fill_(1.0 / (double(ns) * (ns - 1)));
    tt.fill_(1.0 / (double(nt) * (nt - 1)));
    ss.fill_diagonal_(0);
    tt.fill_diagonal_(0);
  }
  w = w.to(opt);
  cache_.emplace(key, w);
  return w;
}

torch::Tensor JointMmd::operator()(const std::vector<torch::Tensor>& zs_in, const std::vector<torch::Tensor>& zt_in,
                                   const std::string& who) {
  core::check(zs_in.size() == kernels_.size() && zt_in.size() == kernels_.size(), who, ": expected ",
              kernels_.size(), " layers, got ", zs_in.size(), " / ", zt_in.size());
  const int64_t ns = zs_in[0].size(0), nt = zt_in[0].size(0);
  for (size_t l = 0; l < zs_in.size(); ++l) {
    core::check(zs_in[l].size(0) == ns && zt_in[l].size(0) == nt, who, ": layer ", l,
                " has a different batch size than layer 0");
    core::check(zs_in[l].numel() / ns == zt_in[l].numel() / nt, who, ": layer ", l,
                " has different source and target dimensions");
  }
  if (est_ == MmdEstimator::Linear) {
    const int64_t n = std::min(ns, nt);
    core::check(n >= 2, who, ": the linear MMD estimator needs at least 2 source and 2 target samples");
    // Cyclic pairs (i, i+1 mod n) over the first n rows of each domain.
    torch::Tensor prod;
    for (size_t l = 0; l < zs_in.size(); ++l) {
      auto zs = detail::flat2d(zs_in[l]), zt = detail::flat2d(zt_in[l]);
      auto x = torch::cat({zs, zt}, 0);
      auto xc = x - x.mean(0, true);
      auto mean_d2 = (xc * xc).sum() * (2.0 / x.size(0));
      if (kernels_[l].detach_bandwidth) mean_d2 = mean_d2.detach();
      auto s = zs.narrow(0, 0, n), t = zt.narrow(0, 0, n);
      auto s1 = torch::roll(s, {-1}, {0}), t1 = torch::roll(t, {-1}, {0});
      auto a = torch::cat({s, t, s, s1}, 0), b = torch::cat({s1, t1, t1, t}, 0);
      auto d2 = (a - b).pow(2).sum(1);  // 4n: ss, tt, st, ts
      auto k = kernel_from_sq_dists(d2, mean_d2, kernels_[l]);
      prod = prod.defined() ? prod * k : k;
    }
    auto k4 = prod.view({4, n});
    return (k4[0] + k4[1] - k4[2] - k4[3]).mean();
  }
  core::check(est_ == MmdEstimator::Biased || (ns >= 2 && nt >= 2), who,
              ": the unbiased MMD estimator needs at least 2 source and 2 target samples");
  torch::Tensor prod;
  for (size_t l = 0; l < zs_in.size(); ++l) {
    auto x = torch::cat({detail::flat2d(zs_in[l]), detail::flat2d(zt_in[l])}, 0);
    auto d2 = pairwise_sq_dists(x);
    auto mean_d2 = kernels_[l].detach_bandwidth ? d2.mean().detach() : d2.mean();
    auto k = kernel_from_sq_dists(d2, mean_d2, kernels_[l]);
    prod = prod.defined() ? prod * k : k;
  }
  return (prod * coefficients(ns, nt, prod.options())).sum();
}

DanMethod::DanMethod(const MethodOptions::Dan& o)
    : o_(o), mmd_({KernelSpec{o.kernels, 0, true}}, parse_mmd_estimator(o.estimator, "dan.estimator")) {
  core::check_usage(!o.kernels.empty(), "dan.kernels: at least one bandwidth multiplier is needed");
  for (double a : o.kernels) core::check_usage(a > 0, "dan.kernels: multipliers must be positive, got ", a);
  core::check_usage(!o.taps.empty(), "dan.taps: at least one tap is needed (\"features\" = classifier features)");
}

LossTerms DanMethod::loss(const StepOutputs& out) {
  LossTerms r;
  std::vector<std::pair<std::string, torch::Tensor>> per_tap;
  for (auto& tap : o_.taps) {
    auto [s, t] = detail::tap_pair(out, tap, "dan");
    core::check(s.defined() && t.defined() && s.dim() >= 2 && t.dim() >= 2, "dan: tap '", tap,
                "' must be an N×D tensor in both domains");
    auto v = mmd_({s}, {t}, "dan");
    r.total = r.total.defined() ? r.total + v : v;
    per_tap.emplace_back("dan_" + tap, v.detach());
  }
  r.terms.emplace_back("dan", r.total.detach());
  if (per_tap.size() > 1) r.terms.insert(r.terms.end(), per_tap.begin(), per_tap.end());
  return r;
}

std::vector<std::string> DanMethod::taps() const {
  std::vector<std::string> v;
  for (auto& t : o_.taps)
    if (t != "features") v.push_back(t);
  return v;
}

std::string DanMethod::describe() const {
  std::ostringstream os;
  os << "dan(" << o_.estimator << ", kernels=";
  for (size_t i = 0; i < o_.kernels.size(); ++i) os << (i ? "/" : "") << o_.kernels[i];
  os << ", taps=";
  for (size_t i = 0; i < o_.taps.size(); ++i) os << (i ? "/" : "") << o_.taps[i];
  os << ")";
  return os.str();
}

static MethodPtr make_dan(const MethodOptions& o, int64_t, int64_t, const std::map<std::string, int64_t>&) {
  return std::make_shared<DanMethod>(o.dan);
}

SHIFTLAB_REGISTER(method_registry(), "dan",
                  "DAN: multi-kernel Gaussian MMD (biased / unbiased / linear-time) on one or several taps",
                  make_dan);

}  // namespace shiftlab::losses
