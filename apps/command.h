// The `shiftlab` subcommands: each file in apps/ registers one Command (parse -> build -> run ->
// print; no algorithms here). Nested commands use a space: "data prepare".
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/options.h"
#include "core/registry.h"

namespace shiftlab::apps {

struct Command {
  std::string doc;                               ///< one line for `shiftlab --help`
  std::function<core::Schema()> schema;          ///< every option the command accepts
  core::Positionals positionals;                 ///< positional arguments
  std::string details;                           ///< extra help text (may be empty)
  /// Runs with the parsed config; `argv` is the full command line (for command.txt).
  std::function<int(const core::Config&, const std::vector<std::string>& argv)> run;
};

core::Registry<Command>& commands();

}  // namespace shiftlab::apps

#define SHIFTLAB_COMMAND(name, doc, ...) \
  SHIFTLAB_REGISTER(::shiftlab::apps::commands(), name, doc, (::shiftlab::apps::Command{doc, __VA_ARGS__}))
