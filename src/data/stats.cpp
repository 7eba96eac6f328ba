#include "data/stats.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <cstdio>
#include <exception>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "data/loader.h"
#include "data/rng.h"

namespace shiftlab::data {

std::string BandStats::normalize_spec() const {
  auto l = [](const std::vector<double>& v) {
    std::string s = "[";
    char b[32];
    for (size_t i = 0; i < v.size(); ++i) {
      std::snprintf(b, sizeof(b), "%.4f", v[i]);
      s += (i ? ", " : "") + std::string(b);
    }
    return s + "]";
  };
  return "normalize(mean=" + l(mean) + ", std=" + l(std) + ")";
}

BandStats compute_band_stats(const Dataset& ds, int64_t max_items, int workers, uint64_t seed) {
  const int64_t n = static_cast<int64_t>(ds.size());
  core::check(n > 0, "cannot compute statistics of an empty dataset (", ds.describe(), ")");
  std::vector<int64_t> items(static_cast<size_t>(n));
  std::iota(items.begin(), items.end(), 0);
  if (max_items > 0 && max_items < n) {
    Rng rng(mix_seed(seed, 0x57a7));
    rng.shuffle(items);
    items.resize(static_cast<size_t>(max_items));
    std::sort(items.begin(), items.end());
  }
  const int64_t m = static_cast<int64_t>(items.size());
  const int64_t chunk = 64, nchunks = (m + chunk - 1) / chunk;
  struct Acc {
    std::vector<double> s, s2;
    int64_t pixels = 0;
    int64_t bands = -1;
  };
  std::vector<Acc> acc(static_cast<size_t>(nchunks));
  std::atomic<int64_t> next{0};
  std::exception_ptr err;
  std::mutex err_mu;
  auto work = [&] {
    try {
      for (int64_t c; (c = next++) < nchunks;) {
        Acc& a = acc[static_cast<size_t>(c)];
        for (int64_t k = c * chunk; k < std::min(m, (c + 1) * chunk); ++k) {
          int64_t i = items[static_cast<size_t>(k)];
          auto img = ds.get(static_cast<size_t>(i), item_seed(seed, 0, i)).image.to(torch::kFloat64).contiguous();
          const int64_t C = img.size(0), P = img.numel() / C;
          if (a.bands < 0) a.bands = C, a.s.assign(static_cast<size_t>(C), 0), a.s2.assign(static_cast<size_t>(C), 0);
          core::check(C == a.bands, "item ", i, " has ", C, " bands, others ", a.bands, " (", ds.describe(), ")");
          const double* p = img.data_ptr<double>();
          for (int64_t b = 0; b < C; ++b) {
            double s = 0, s2 = 0;
            for (int64_t j = 0; j < P; ++j) {
              double v = p[b * P + j];
              s += v, s2 += v * v;
            }
            a.s[static_cast<size_t>(b)] += s, a.s2[static_cast<size_t>(b)] += s2;
          }
          a.pixels += P;
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lk(err_mu);
      if (!err) err = std::current_exception();
      next = nchunks;
    }
  };
  std::vector<std::thread> th;
  for (int t = 0; t < workers; ++t) th.emplace_back(work);
  if (workers <= 0) work();
  for (auto& t : th) t.join();
  if (err) std::rethrow_exception(err);
  BandStats r;
  std::vector<double> s, s2;
  int64_t bands = -1;
  for (auto& a : acc) {
    if (a.bands < 0) continue;
    if (bands < 0) bands = a.bands, s.assign(static_cast<size_t>(bands), 0), s2.assign(static_cast<size_t>(bands), 0);
    core::check(a.bands == bands, "items have different band counts (", ds.describe(), ")");
    for (int64_t b = 0; b < bands; ++b) s[static_cast<size_t>(b)] += a.s[static_cast<size_t>(b)], s2[static_cast<size_t>(b)] += a.s2[static_cast<size_t>(b)];
    r.pixels_per_band += a.pixels;
  }
  r.items = m;
  for (int64_t b = 0; b < bands; ++b) {
    double P = static_cast<double>(r.pixels_per_band);
    double mean = s[static_cast<size_t>(b)] / P;
    r.mean.push_back(mean);
    r.std.push_back(std::sqrt(std::max(0.0, s2[static_cast<size_t>(b)] / P - mean * mean)));
  }
  return r;
}

}  // namespace shiftlab::data
