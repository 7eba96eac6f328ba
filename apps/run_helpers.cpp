#include "apps/run_helpers.h"

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

}  // namespace shiftlab::apps
