// End-to-end checks of the `shiftlab` binary: help of every subcommand, version, list, exit codes
// and one-line errors.
#include <gtest/gtest.h>

#include "support/testing.h"

using shiftlab::testutil::run_cli;

static std::vector<std::string> command_names() {
  auto r = run_cli({"--help"});
  std::vector<std::string> names;
  std::istringstream in(r.out);
  std::string line;
  bool in_cmds = false;
  while (std::getline(in, line)) {
    if (line == "commands:") {
      in_cmds = true;
      continue;
    }
    if (!in_cmds || line.size() < 3) continue;
    // "  data prepare      doc": the name ends at the first run of 2+ spaces
    auto name = line.substr(2, line.find("  ", 2) - 2);
    names.push_back(name);
  }
  return names;
}

TEST(Cli, HelpListsCommands) {
  auto r = run_cli({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("commands:"), std::string::npos);
  auto names = command_names();
  EXPECT_GE(names.size(), 2u);
  EXPECT_NE(std::find(names.begin(), names.end(), "list"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "version"), names.end());
}

TEST(Cli, EverySubcommandHasHelp) {
  for (auto& name : command_names()) {
    std::vector<std::string> args;
    std::istringstream ss(name);
    std::string w;
    while (ss >> w) args.push_back(w);
    args.push_back("--help");
    auto r = run_cli(args);
    EXPECT_EQ(r.exit_code, 0) << name << ": " << r.err;
    EXPECT_NE(r.out.find("usage: shiftlab " + name), std::string::npos) << name;
    EXPECT_NE(r.out.find("--config"), std::string::npos) << name;
    EXPECT_TRUE(r.err.empty()) << name << ": " << r.err;
  }
}

TEST(Cli, Version) {
  auto r = run_cli({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("shiftlab "), std::string::npos);
  EXPECT_NE(r.out.find("libtorch 1."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cuda "), std::string::npos);
}

TEST(Cli, UnknownCommandIsUsageError) {
  auto r = run_cli({"lsit"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "shiftlab: error: unknown command 'lsit' — did you mean 'list'? (known: " +
                       r.err.substr(r.err.find("(known: ") + 8));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  auto none = run_cli({});
  EXPECT_EQ(none.exit_code, 2);
}

TEST(Cli, UnknownOptionIsOneLineUsageError) {
  auto r = run_cli({"list", "--bogus.key=1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "shiftlab: error: unknown option 'bogus.key'\n");
}

TEST(Cli, ListRegistries) {
  auto r = run_cli({"list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // backbones with their native input (models::BackboneInfo)
  auto bb = run_cli({"list", "backbones"});
  EXPECT_EQ(bb.exit_code, 0) << bb.err;
  for (auto s : {"efficientnet_b4", "densenet121", "mobilenet_v3_large", "380 px; eval: resize 384 bicubic, crop 380"})
    EXPECT_NE(bb.out.find(s), std::string::npos) << s << "\n" << bb.out;
  auto bad = run_cli({"list", "backbonez"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("unknown registry 'backbonez'"), std::string::npos) << bad.err;
}
