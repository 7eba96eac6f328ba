// shiftlab: git-style subcommands. Turns every exception into one line on stderr and an exit
// code: 0 success, 1 runtime failure, 2 usage error. Full context goes to the run's log.txt.
#include <c10/util/Exception.h>

#include <csignal>
#include <iostream>

#include "apps/command.h"
#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/signals.h"

namespace shiftlab::apps {

static void print_usage(std::ostream& os) {
  os << "usage: shiftlab <command> [--config FILE.ini ...] [--section.key=value ...] [args]\n"
        "       shiftlab <command> --help     every option with type, default and doc\n"
        "       shiftlab --version\n\n"
        "Transfer learning under domain shift: pretrained backbones, domain adaptation,\n"
        "adapters, feature caches and probes, driven by INI configs.\n\ncommands:\n";
  for (auto& e : commands().list()) {
    os << "  " << e.name;
    if (e.name.size() < 18) os << std::string(18 - e.name.size(), ' ');
    else os << "  ";
    os << e.doc << "\n";
  }
}

static std::string first_line(const std::string& s) {
  auto p = s.find('\n');
  return p == std::string::npos ? s : s.substr(0, p);
}

int main_impl(int argc, char** argv) {
  std::vector<std::string> all(argv, argv + argc);
  std::vector<std::string> args(all.begin() + 1, all.end());
  if (args.empty()) {
    print_usage(std::cerr);
    return 2;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_usage(std::cout);
    return 0;
  }
  if (args[0] == "--version") {
    args[0] = "version";
  }
  std::string name = args[0];
  size_t used = 1;
  if (args.size() > 1 && commands().has(args[0] + " " + args[1])) {
    name = args[0] + " " + args[1];
    used = 2;
  } else if (!commands().has(name)) {
    // a group such as "data" without a sub-command: list its sub-commands
    std::vector<std::string> subs;
    for (auto& e : commands().list())
      if (e.name.rfind(name + " ", 0) == 0) subs.push_back(e.name);
    if (!subs.empty()) {
      bool help = args.size() > 1 && (args[1] == "--help" || args[1] == "-h");
      auto& os = help ? std::cout : std::cerr;
      if (!help && args.size() > 1)
        os << "shiftlab: error: unknown command '" << name << " " << args[1] << "'\n";
      os << "usage: shiftlab " << name << " <sub-command> ...\n\nsub-commands:\n";
      for (auto& e : commands().list())
        if (e.name.rfind(name + " ", 0) == 0) os << "  " << e.name << "  —  " << e.doc << "\n";
      return help ? 0 : 2;
    }
    commands().get(name);  // throws "unknown command 'x' — did you mean ...?"
  }
  const Command& cmd = commands().get(name);
  std::vector<std::string> rest(args.begin() + static_cast<long>(used), args.end());
  core::Schema schema = cmd.schema ? cmd.schema() : core::Schema();
  core::Config cfg = core::parse_args(schema, rest, cmd.positionals);
  if (cfg.help) {
    std::cout << "usage: shiftlab " << name << " [options]"
              << (cmd.positionals.usage.empty() ? "" : " " + cmd.positionals.usage) << "\n\n"
              << cmd.doc << "\n";
    if (!cmd.details.empty()) std::cout << "\n" << cmd.details << "\n";
    std::cout << "\ncommand options:\n"
              << "  --config=<path>                       INI file; repeat to layer (later wins)\n"
              << "  --help                                this text\n"
              << schema.help();
    return 0;
  }
  return cmd.run(cfg, all);
}

}  // namespace shiftlab::apps

int main(int argc, char** argv) {
  using namespace shiftlab;
  core::tune_malloc();  // before the first large allocation
  core::install_signal_handlers();
  try {
    return apps::main_impl(argc, argv);
  } catch (const core::UsageError& e) {
    core::log_to_file_only(e.what());
    std::cerr << "shiftlab: error: " << apps::first_line(e.what()) << "\n";
    return 2;
  } catch (const core::Error& e) {
    core::log_to_file_only(e.what());
    std::cerr << "shiftlab: error: " << apps::first_line(e.what()) << "\n";
    return 1;
  } catch (const c10::Error& e) {
    core::log_to_file_only(e.what());
    std::cerr << "shiftlab: error: " << apps::first_line(e.what_without_backtrace()) << "\n";
    return 1;
  } catch (const std::exception& e) {
    core::log_to_file_only(e.what());
    std::cerr << "shiftlab: error: " << apps::first_line(e.what()) << "\n";
    return 1;
  }
}
