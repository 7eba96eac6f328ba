// End-to-end checks of the `shiftlab` binary: help of every subcommand, version, list, exit codes
// and one-line errors; every example in the help texts runs as written.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <regex>
#include <sstream>

#include <torch/version.h>

#include "support/testing.h"

using namespace shiftlab;
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
  EXPECT_NE(r.out.find(std::string("libtorch ") + TORCH_VERSION + "\n"), std::string::npos) << r.out;  // the one linked
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

// ------------------------------------------------------------------ help examples run as written
//
// Convention (every subcommand follows it): the help text (`shiftlab <cmd> --help`) has an
// "Examples:" section — a line starting with "Examples" and ending with ':' — followed by lines
// indented by two spaces, up to the first line that is not. Each is a shell command line, run as
// written from a working directory holding configs/ (the checkout's); a line ending in '\'
// continues on the next, "# ..." is a comment. runs/<name>/<time>-<id> stands for a run directory
// (train prints it): it is replaced by the newest completed run under runs/<name>/. To keep it
// quick, train / sweep lines get --train.steps=2 (and --train.phase1_steps=2 when their config
// has a phase 1; nothing for a --resume, which keeps the run's options) and extract lines
// --limit=300 appended.

namespace {

/// Splits a command name ("data prepare") into argv words.
std::vector<std::string> cli_words(const std::string& s) {
  std::vector<std::string> w;
  std::istringstream in(s);
  for (std::string x; in >> x;) w.push_back(x);
  return w;
}

/// The command line without a trailing shell comment ('#' starting a word outside quotes).
std::string cli_strip_comment(const std::string& line) {
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      std::string s = line.substr(0, i);
      while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
      return s;
    }
  }
  return line;
}

/// The example command lines of a help text (continuations joined, comments dropped).
std::vector<std::string> help_examples(const std::string& help) {
  std::vector<std::string> out;
  std::istringstream in(help);
  std::string line;
  bool in_section = false;
  std::string pending;
  while (std::getline(in, line)) {
    if (!in_section) {
      in_section = line.rfind("Examples", 0) == 0 && !line.empty() && line.back() == ':';
      continue;
    }
    if (line.rfind("  ", 0) != 0) {
      in_section = false;
      continue;
    }
    std::string cmd = line.substr(line.find_first_not_of(' '));
    if (!pending.empty()) cmd = pending + " " + cmd;
    pending.clear();
    if (!cmd.empty() && cmd.back() == '\\') {
      cmd.pop_back();
      while (!cmd.empty() && cmd.back() == ' ') cmd.pop_back();
      pending = cmd;
      continue;
    }
    cmd = cli_strip_comment(cmd);
    if (!cmd.empty()) out.push_back(cmd);
  }
  EXPECT_TRUE(pending.empty()) << "an example ends in '\\' with nothing after it";
  return out;
}

/// Replaces runs/<name>/<time>-<id> by the newest completed run directory under runs/<name>.
std::string with_run_dirs(const std::string& cmd, const std::string& cwd) {
  namespace fs = std::filesystem;
  static const std::regex placeholder("runs/([A-Za-z0-9_.-]+)/<time>-<id>");
  std::string out;
  auto begin = std::sregex_iterator(cmd.begin(), cmd.end(), placeholder);
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    std::string exp = (*it)[1], best;
    std::vector<std::string> runs;
    if (fs::is_directory(cwd + "/runs/" + exp))
      for (auto& e : fs::directory_iterator(cwd + "/runs/" + exp)) runs.push_back(e.path().filename().string());
    std::sort(runs.begin(), runs.end());  // <YYYYmmdd-HHMMSS>-<id>: by time
    for (auto& r : runs) {
      std::ifstream s(cwd + "/runs/" + exp + "/" + r + "/summary.json");
      std::stringstream ss;
      ss << s.rdbuf();
      if (ss.str().find("\"completed\"") != std::string::npos) best = "runs/" + exp + "/" + r;
    }
    EXPECT_FALSE(best.empty()) << "no completed run under runs/" << exp << " for: " << cmd;
    out += cmd.substr(last, static_cast<size_t>(it->position()) - last) + best;
    last = static_cast<size_t>(it->position() + it->length());
  }
  return out + cmd.substr(last);
}

}  // namespace

TEST(Cli, HelpExamplesRunAsWritten) {
  namespace fs = std::filesystem;
  // the weights examples convert a torchvision state dict; extract's reads the cache with h5py
  REQUIRE_PYTHON({"torch", "torchvision", "h5py", "numpy"});
  // dependency order: data before training, a run before eval / export / extract, a cache before probe
  const std::vector<std::string> order{"version",        "list",         "data prepare",    "data stats",
                                       "data check",     "data bench",   "train",           "eval",
                                       "weights export", "weights info", "weights convert", "extract",
                                       "probe",          "advise",       "launch",          "sweep",
                                       "report"};
  auto names = command_names();
  {
    auto a = names, b = order;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    ASSERT_EQ(a, b) << "a command was added or removed: put it into `order` (after what its examples need)";
  }
  const auto dir = testutil::fresh_dir("cli_help_examples");
  fs::create_directories(dir + "/bin");
  fs::create_symlink(SHIFTLAB_BIN, dir + "/bin/shiftlab");
  fs::create_symlink("/usr/bin/python3", dir + "/bin/python3");  // Debian's, with h5py (another may be first on PATH)
  fs::create_symlink(testutil::source_path("configs"), dir + "/configs");
  // the one input no example makes: a torchvision state dict saved by torch.save
  std::string out;
  ASSERT_EQ(testutil::run_shell("cd " + dir + " && /usr/bin/python3 -c \"import torch, torchvision; "
                                "torch.save(torchvision.models.resnet18().state_dict(), 'resnet18.pth')\"",
                                &out),
            0)
      << out;
  int ran = 0;
  for (const auto& name : order) {
    std::vector<std::string> help_args = cli_words(name);
    help_args.push_back("--help");
    auto help = run_cli(help_args);
    ASSERT_EQ(help.exit_code, 0) << name << ": " << help.err;
    auto examples = help_examples(help.out);
    EXPECT_FALSE(examples.empty()) << "`shiftlab " << name << " --help` has no Examples section";
    for (const auto& example : examples) {
      std::string cmd = with_run_dirs(example, dir);
      // tiny: a 2-step run wherever the command (launch: the one after "--") trains, a small cache
      auto words = cli_words(cmd);
      auto dashdash = std::find(words.begin(), words.end(), "--");
      std::string target = dashdash != words.end() && dashdash + 1 != words.end() ? *(dashdash + 1)
                           : words.size() > 1 && words[0] == "shiftlab"      ? words[1]
                                                                              : "";
      const bool resume = cmd.find("--resume") != std::string::npos;  // a run keeps its own options
      if (target == "train" || target == "sweep") {
        if (!resume) cmd += " --train.steps=2 --train.eval_every=0";
        // a config with a head-only phase 1 (advise writes one) gets a 2-step phase 1
        for (size_t i = 0; !resume && i + 1 < words.size(); ++i) {
          if (words[i] != "--config") continue;
          std::ifstream cf(dir + "/" + words[i + 1]);
          std::stringstream ct;
          ct << cf.rdbuf();
          if (ct.str().find("phase1_steps") != std::string::npos) cmd += " --train.phase1_steps=2";
        }
      } else if (target == "extract") {
        cmd += " --limit=300";  // rows per block: the probes and advice on the cache stay quick
      }
      std::ofstream(dir + "/example.sh") << "set -e\nexport PATH=\"" << dir << "/bin:$PATH\"\n" << cmd << "\n";
      auto t0 = std::chrono::steady_clock::now();
      int rc = testutil::run_shell("cd " + dir + " && bash example.sh", &out);
      double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::cout << "[ example ] " << name << " (" << std::fixed << std::setprecision(1) << sec << " s): " << cmd << "\n";
      EXPECT_EQ(rc, 0) << "`shiftlab " << name << " --help` example failed:\n  " << example << "\nran as:\n  " << cmd
                       << "\n"
                       << out;
      ++ran;
    }
  }
  EXPECT_GE(ran, static_cast<int>(order.size()));
  // what the examples say they write is there
  for (auto f : {"data/mnist/manifest.json", "data/uci-digits/manifest.json", "prepared/uci-digits/manifest.json",
                 "digits.h5", "feats.h5", "digits_probe/probe.md", "digits_pooled/probe.json", "digits_advice.ini",
                 "lenet_mnist.safetensors", "resnet18.safetensors", "digits_report/results.md",
                 "runs/sweeps/mnist_to_uci/results.md"})
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  // advise's train config carries the extraction's model and data settings
  std::ifstream advice(dir + "/digits_advice.ini");
  std::stringstream advice_text;
  advice_text << advice.rdbuf();
  for (auto want : {"backbone = lenet", "in_channels = 1", "transform = resize(20), pad(4), normalize(0.5, 0.5)"})
    EXPECT_NE(advice_text.str().find(want), std::string::npos) << want << " not in\n" << advice_text.str();
}

// README.md shows what an unknown key prints; the program prints exactly that.
TEST(Cli, ReadmeUnknownKeyExampleIsWhatTheProgramSays) {
  auto r = run_cli({"train", "--train.lrr=3e-4"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "shiftlab: error: unknown option 'train.lrr' — did you mean 'optim.lr'?\n");
  std::ifstream in(testutil::source_path("README.md"));
  std::stringstream readme;
  readme << in.rdbuf();
  const std::string shown = r.err.substr(std::string("shiftlab: error: ").size(), r.err.size() - 18);
  EXPECT_NE(readme.str().find("`" + shown + "`"), std::string::npos) << "README.md should show: " << shown;
}

// issue 18 §3.14: data stats and data bench take the runtime options (run.threads, ...) as every
// command does (report: tests/test_sweep.cpp)
TEST(Cli, DataStatsAndBenchTakeRunThreads) {
  auto root = testutil::prepared_digits_root();
  auto s = testutil::run_cli({"data", "stats", "--data.dataset=uci-digits", "--data.root=" + root, "--run.threads=1",
                              "--stats.max_items=20", "--stats.workers=0"});
  EXPECT_EQ(s.exit_code, 0) << s.err;
  auto b = testutil::run_cli({"data", "bench", "--data.dataset=uci-digits", "--data.root=" + root, "--run.threads=1",
                              "--loader.workers=0", "--loader.batch_size=8", "--bench.batches=1", "--bench.warmup=0"});
  EXPECT_EQ(b.exit_code, 0) << b.err;
}
