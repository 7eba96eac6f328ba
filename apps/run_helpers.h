// Helpers shared by the commands that work on run directories (train, eval, ...).
#pragma once

#include <string>
#include <vector>

#include "core/options.h"
#include "core/run_dir.h"

namespace shiftlab::apps {

/// Rebuilds a run's Config from its config.resolved.ini, then applies the keys the user set on
/// this command line, which must all be in `allowed` (prefix match; "" allows all).
core::Config config_of_run(const core::RunDir& run, const core::Config& cli, const std::vector<std::string>& allowed);

}  // namespace shiftlab::apps
