// Helpers shared by the commands that work on run directories (train, eval, ...).
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

#include <memory>

#include "core/options.h"
#include "core/run_dir.h"
#include "core/runtime.h"
#include "train/dist.h"

namespace shiftlab::apps {

/// Rebuilds a run's Config from its config.resolved.ini, then applies the keys the user set on
/// this command line, which must all be in `allowed` (prefix match; "" allows all).
core::Config config_of_run(const core::RunDir& run, const core::Config& cli, const std::vector<std::string>& allowed);

/// Sets up the runtime (threads, seeds, log level, device) and, when the environment describes a
/// distributed job (dist.env), joins it: the local ranks share the cores (run.threads = 0 becomes
/// cores / local ranks), ranks other than 0 log warnings only, a CUDA rank takes the GPU
/// LOCAL_RANK, and the ranks check they run the same configuration. Returns the communicator
/// (null for one process); `device` receives the device.
std::unique_ptr<train::Communicator> setup_runtime_maybe_distributed(const core::Config& cfg, core::RuntimeOptions rt,
                                                                     torch::Device& device);

}  // namespace shiftlab::apps
