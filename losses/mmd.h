// Multi-kernel Maximum Mean Discrepancy (DAN, Long et al. 2015) and the kernel machinery JAN
// shares.
//
// Kernel: k(x, y) = sum_u exp(-||x - y||^2 / (2 sigma_u^2)), sigma_u^2 = alpha_u * mean of all
// pairwise squared distances of the concatenated batch [z_s; z_t] (TLlib's GaussianKernel with
// track_running_stats; the mean is detached). The pairwise squared-distance matrix is computed
// once per layer from one Gram matrix and every bandwidth's kernel is derived from it.
// Estimators of MMD^2 between source (n_s rows) and target (n_t rows):
//   biased   (V-statistic): sum_ij k(s_i,s_j)/n_s^2 + sum_ij k(t_i,t_j)/n_t^2 - 2 sum_ij k(s_i,t_j)/(n_s n_t)
//   unbiased (U-statistic): same without the i = j terms in the ss and tt sums, divided by
//            n(n-1); equals TLlib's non-linear MK-MMD minus its constant 2/(n-1)
//   linear   (Gretton 2012, TLlib's linear DAN, cyclic pairs over n = min(n_s, n_t) rows):
//            (1/n) sum_i [k(s_i,s_i+1) + k(t_i,t_i+1) - k(s_i,t_i+1) - k(s_i+1,t_i)], O(n D) —
//            no distance matrix; the bandwidth mean uses the closed form
//            mean_ij ||x_i - x_j||^2 = (2/N) sum_i ||x_i - xbar||^2.
// The estimator's coefficient matrix is cached by (n_s, n_t, dtype, device).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "losses/method.h"
#include "losses/methods.h"

namespace shiftlab::losses {

enum class MmdEstimator { Biased, Unbiased, Linear };
/// "biased" | "unbiased" | "linear"; anything else throws UsageError naming `key`.
MmdEstimator parse_mmd_estimator(const std::string& s, const std::string& key = "estimator");
const char* mmd_estimator_name(MmdEstimator e);

/// Squared Euclidean distances between the rows of x (N×D) -> N×N, from one Gram matrix of the
/// centred rows (centring makes the expansion ||a||^2 + ||b||^2 - 2ab numerically safer).
torch::Tensor pairwise_sq_dists(const torch::Tensor& x);

/// One layer's kernel: a sum of Gaussians with bandwidths alpha_u * mean distance, or (when
/// fixed_sigma > 0) one Gaussian of fixed bandwidth sigma.
struct KernelSpec {
  std::vector<double> alphas{0.125, 0.25, 0.5, 1, 2};
  double fixed_sigma = 0;
  /// Treat the data-dependent bandwidth as a constant in backward (TLlib). Tests turn it off
  /// to check the whole function against finite differences.
  bool detach_bandwidth = true;
};
/// Applies the kernel to squared distances d2 (any shape), mean_d2 being the bandwidth base.
torch::Tensor kernel_from_sq_dists(const torch::Tensor& d2, const torch::Tensor& mean_d2, const KernelSpec& k);

/// Joint multi-kernel MMD^2 (JAN): the kernel on the joint activations is the product over
/// layers of each layer's kernel; with one layer this is MK-MMD (DAN). zs[l] is n_s×D_l,
/// zt[l] n_t×D_l. Holds the cache of estimator coefficient matrices.
class JointMmd {
 public:
  JointMmd(std::vector<KernelSpec> kernels, MmdEstimator est) : kernels_(std::move(kernels)), est_(est) {}
  torch::Tensor operator()(const std::vector<torch::Tensor>& zs, const std::vector<torch::Tensor>& zt,
                           const std::string& who);
  /// The (n_s+n_t)² coefficient matrix W with MMD^2 = sum(K ∘ W) for the biased/unbiased estimators.
  torch::Tensor coefficients(int64_t ns, int64_t nt, const torch::TensorOptions& opt);
  MmdEstimator estimator() const { return est_; }

 private:
  std::vector<KernelSpec> kernels_;
  MmdEstimator est_;
  std::map<std::tuple<int64_t, int64_t, int, std::string>, torch::Tensor> cache_;
};

/// DAN: MK-MMD on each configured tap ("features" = f_s/f_t), summed over taps. Terms "dan"
/// and, with several taps, "dan_<tap>" (each tap's MMD^2).
class DanMethod : public MethodImpl {
 public:
  explicit DanMethod(const MethodOptions::Dan& o);
  LossTerms loss(const StepOutputs& out) override;
  std::vector<std::string> taps() const override;
  std::string describe() const override;

 private:
  MethodOptions::Dan o_;
  JointMmd mmd_;
};

}  // namespace shiftlab::losses
