// Forward throughput of registered backbones: eval mode, no gradients, random input at each
// backbone's native size (models::BackboneInfo::image_size, or --size), fixed batch and intra-op
// threads. Prints one line per backbone:
//   <name> params <P> size <S> batch <B> threads <T> ms_best <min> ms_median <median> cpu_ms <median>
//   images_per_s <B / min> images_per_cpu_s <B / median CPU seconds (all threads)>
// On a shared machine the best wall time and the process CPU time are the steadier numbers.
// Usage: backbone_bench [--batch=8] [--threads=2] [--iters=5] [--warmup=1] [--size=0] NAME...
// (bench/backbones_bench.sh runs it beside the torchvision equivalent, bench/backbones_bench.py.)
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/backbones.h"

using namespace shiftlab;

int main(int argc, char** argv) {
  int64_t batch = 8, threads = 2, iters = 5, warmup = 1, size = 0;
  std::vector<std::string> names;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* key, int64_t& out) {
      std::string k = std::string("--") + key + "=";
      if (a.rfind(k, 0) != 0) return false;
      out = std::stoll(a.substr(k.size()));
      return true;
    };
    if (val("batch", batch) || val("threads", threads) || val("iters", iters) || val("warmup", warmup) ||
        val("size", size))
      continue;
    names.push_back(a);
  }
  if (names.empty()) {
    std::cerr << "usage: backbone_bench [--batch=8] [--threads=2] [--iters=5] [--warmup=1] [--size=0] NAME...\n";
    return 2;
  }
  try {
    at::set_num_threads(static_cast<int>(threads));
    for (auto& name : names) {
      models::BackboneOptions o;
      o.name = name;
      auto bb = models::make_backbone(o);
      bb->eval();
      int64_t params = 0;
      for (auto& p : bb->parameters()) params += p.numel();
      const auto* info = models::backbone_info(name);
      const int64_t s = size > 0 ? size : info ? info->image_size : 224;
      torch::manual_seed(0);
      auto x = torch::randn({batch, 3, s, s});
      torch::NoGradGuard ng;
      for (int64_t i = 0; i < warmup; ++i) bb->forward(x);
      std::vector<double> ms, cpu;
      for (int64_t i = 0; i < iters; ++i) {
        const std::clock_t c0 = std::clock();  // process CPU time, all threads
        auto t0 = std::chrono::steady_clock::now();
        auto y = bb->forward(x);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        cpu.push_back(1000.0 * static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC);
      }
      std::sort(ms.begin(), ms.end());
      std::sort(cpu.begin(), cpu.end());
      const double best = ms.front(), med = ms[ms.size() / 2], cmed = cpu[cpu.size() / 2];
      const double b = static_cast<double>(batch);
      std::printf("%s params %lld size %lld batch %lld threads %lld ms_best %.1f ms_median %.1f cpu_ms %.1f images_per_s %.2f "
                  "images_per_cpu_s %.2f\n",
                  name.c_str(), static_cast<long long>(params), static_cast<long long>(s), static_cast<long long>(batch),
                  static_cast<long long>(threads), best, med, cmed, 1000.0 * b / best, 1000.0 * b / cmed);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::cerr << "backbone_bench: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
