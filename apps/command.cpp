#include "apps/command.h"

namespace shiftlab::apps {

core::Registry<Command>& commands() {
  static core::Registry<Command> r("commands", "shiftlab subcommands");
  return r;
}

}  // namespace shiftlab::apps
