#include "models/dropout.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <mutex>

#include "core/error.h"

namespace shiftlab::models {

static uint64_t draw_seed() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
}

static inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

torch::Tensor dropout_mask(int64_t numel, double p, uint64_t seed) {
  core::check_usage(p >= 0 && p <= 1, "dropout probability must be in [0, 1], got ", p);
  auto mask = torch::empty({numel}, torch::kFloat32);
  float* m = mask.data_ptr<float>();
  const float scale = p < 1 ? static_cast<float>(1.0 / (1.0 - p)) : 0.f;
  // keep when the top 32 bits of the hash fall below (1 - p) * 2^32
  const uint64_t threshold = static_cast<uint64_t>((1.0 - p) * 4294967296.0);
  const uint64_t base = splitmix64(seed);
  at::parallel_for(0, numel, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      m[i] = (splitmix64(base + static_cast<uint64_t>(i)) >> 32) < threshold ? scale : 0.f;
  });
  return mask;
}

torch::Tensor dropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p == 0) return x;
  if (!x.device().is_cpu()) return torch::dropout(x, p, training);
  if (p == 1) return x * torch::zeros({}, x.options());
  auto mask = dropout_mask(x.numel(), p, draw_seed()).view(x.sizes()).to(x.scalar_type());
  return x * mask;
}

torch::Tensor feature_dropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p == 0) return x;
  if (!x.device().is_cpu()) return torch::feature_dropout(x, p, training);
  core::check_usage(x.dim() >= 2, "feature_dropout needs an N×C×... tensor, got ", x.dim(), " dimensions");
  if (p == 1) return x * torch::zeros({}, x.options());
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[0] = x.size(0);
  shape[1] = x.size(1);
  auto mask = dropout_mask(x.size(0) * x.size(1), p, draw_seed()).view(shape).to(x.scalar_type());
  return x * mask;
}

DropoutImpl::DropoutImpl(double p) : p_(p) {
  core::check_usage(p >= 0 && p <= 1, "dropout probability must be in [0, 1], got ", p);
}

void DropoutImpl::pretty_print(std::ostream& os) const { os << "shiftlab::Dropout(p=" << p_ << ")"; }

}  // namespace shiftlab::models
