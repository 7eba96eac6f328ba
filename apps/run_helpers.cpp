#include "apps/run_helpers.h"

#include <torch/cuda.h>

#include <algorithm>
#include <thread>

#include "core/error.h"

namespace shiftlab::apps {

core::Config config_of_run(const core::RunDir& run, const core::Config& cli, const std::vector<std::string>& allowed) {
  core::Config c(cli.schema());
  core::apply_ini_file(c, run.file("config.resolved.ini"));
  for (auto& k : cli.schema().keys()) {
    if (!cli.is_set(k) || cli.schema().spec(k).cli_only) continue;
    bool ok = false;
    for (auto& a : allowed) ok = ok || a.empty() || k.rfind(a, 0) == 0;
    core::check_usage(ok, "option '", k, "' cannot be changed for an existing run '", run.path(), "'");
    c.set(k, cli.get_string(k), "command line");
  }
  return c;
}

std::unique_ptr<train::Communicator> setup_runtime_maybe_distributed(const core::Config& cfg, core::RuntimeOptions rt,
                                                                     torch::Device& device) {
  const auto dopt = train::dist_options_from(cfg);
  const auto denv = train::dist_env_from(dopt.env);
  rt.blas_threads = 1;  // training / extraction: libtorch's intra-op pool parallelises (runtime.h)
  if (!denv.active()) {
    device = core::setup_runtime(rt);
    return nullptr;
  }
  if (rt.threads == 0)
    rt.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / denv.local_world_size);
  if (denv.rank != 0 && rt.log_level != "debug") rt.log_level = "warn";
  device = core::setup_runtime(rt);
  if (device.is_cuda() && (rt.device == "auto" || rt.device == "cuda"))  // one GPU per local rank
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(
                                             denv.local_rank % std::max<int64_t>(1, torch::cuda::device_count())));
  auto comm = train::Communicator::connect(denv, dopt, device);
  comm->check_same(cfg.to_ini(), "configuration");
  return comm;
}

}  // namespace shiftlab::apps
