// Config layering (defaults < files in order < command line), unknown / ill-typed / out-of-range
// keys, INI sections as dotted keys, and the resolved config re-parsing to itself.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include "core/error.h"
#include "core/options.h"
#include "core/registry.h"
#include "support/testing.h"

using namespace shiftlab;
using core::Config;
using core::Schema;

static Schema demo_schema() {
  Schema s;
  s.add_string("method", "source_only", "DA method");
  s.add_float("train.lr", 1e-3, "learning rate").range(0, 10);
  s.add_int("train.steps", 100, "steps").range(1, 1e9);
  s.add_bool("train.amp", false, "mixed precision");
  s.add_choice("model.bn", "train", {"train", "frozen"}, "BatchNorm mode");
  s.add_list("data.taps", "layer3,pooled", "taps");
  s.add_string("data.source.name", "mnist", "source dataset");
  s.add_path("run.resume", "", "resume").command_flag();
  return s;
}

static std::string write(const std::string& dir, const std::string& name, const std::string& text) {
  std::string p = dir + "/" + name;
  std::ofstream(p) << text;
  return p;
}

TEST(Options, DefaultsWhenNothingGiven) {
  auto c = core::parse_args(demo_schema(), {});
  EXPECT_DOUBLE_EQ(c.get_float("train.lr"), 1e-3);
  EXPECT_EQ(c.get_int("train.steps"), 100);
  EXPECT_FALSE(c.get_bool("train.amp"));
  EXPECT_EQ(c.get_list("data.taps"), (std::vector<std::string>{"layer3", "pooled"}));
  EXPECT_FALSE(c.is_set("train.lr"));
}

TEST(Options, FilesLayerInOrderAndCommandLineWins) {
  auto d = testutil::fresh_dir("options_layer");
  auto a = write(d, "a.ini", "method = dann\n[train]\nlr = 0.1\nsteps = 5\n[data.source]\nname = uci\n");
  auto b = write(d, "b.ini", "[train]\nlr = 0.2\n");
  auto c = core::parse_args(demo_schema(), {"--config", a, "--config", b, "--train.steps=7"});
  EXPECT_EQ(c.get_string("method"), "dann");
  EXPECT_DOUBLE_EQ(c.get_float("train.lr"), 0.2);  // b after a
  EXPECT_EQ(c.get_int("train.steps"), 7);          // command line over files
  EXPECT_EQ(c.get_string("data.source.name"), "uci");
  // command line wins even when given before the files on the command line
  auto c2 = core::parse_args(demo_schema(), {"--train.lr", "0.5", "--config", a});
  EXPECT_DOUBLE_EQ(c2.get_float("train.lr"), 0.5);
  // a bare boolean flag means true
  auto c3 = core::parse_args(demo_schema(), {"--train.amp"});
  EXPECT_TRUE(c3.get_bool("train.amp"));
}

static std::string usage_error(const std::vector<std::string>& args) {
  try {
    core::parse_args(demo_schema(), args);
  } catch (const core::UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(Options, UnknownKeySuggestsNearest) {
  EXPECT_EQ(usage_error({"--train.lrr=3e-4"}), "unknown option 'train.lrr' — did you mean 'train.lr'?");
  EXPECT_EQ(usage_error({"--lr=3"}), "unknown option 'lr' — did you mean 'train.lr'?");
  EXPECT_EQ(usage_error({"--zzzzzzzzzz=1"}), "unknown option 'zzzzzzzzzz'");
  auto d = testutil::fresh_dir("options_unknown");
  auto a = write(d, "a.ini", "[train]\nsteppes = 3\n");
  auto msg = usage_error({"--config", a});
  EXPECT_NE(msg.find("unknown option 'train.steppes'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("a.ini"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'train.steps'"), std::string::npos) << msg;
}

// The program's own keys: the learning rate is optim.lr (there is no train.lr), and train.amp is
// as many edits from "train.lrr" as a full-key comparison can tell; the right name in the wrong
// section is the better suggestion.
TEST(Options, UnknownKeySuggestsTheRightNameInAnotherSection) {
  Schema s;
  s.add_float("optim.lr", 1e-2, "learning rate");
  s.add_float("optim.momentum", 0.9, "momentum");
  s.add_int("train.steps", 100, "steps");
  s.add_choice("train.amp", "none", {"none", "bf16"}, "autocast");
  s.add_string("model.bn", "train", "BatchNorm mode");
  auto err = [&](const std::string& arg) {
    try {
      core::parse_args(s, {arg});
    } catch (const core::UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(err("--train.lrr=3e-4"), "unknown option 'train.lrr' — did you mean 'optim.lr'?");
  EXPECT_EQ(err("--train.lr=3e-4"), "unknown option 'train.lr' — did you mean 'optim.lr'?");
  EXPECT_EQ(err("--lr=3"), "unknown option 'lr' — did you mean 'optim.lr'?");
  EXPECT_EQ(err("--train.ampp=bf16"), "unknown option 'train.ampp' — did you mean 'train.amp'?");
  EXPECT_EQ(err("--train.stpes=3"), "unknown option 'train.stpes' — did you mean 'train.steps'?");
  EXPECT_EQ(err("--optim.momentun=0.5"), "unknown option 'optim.momentun' — did you mean 'optim.momentum'?");
  EXPECT_EQ(err("--train.bn=frozen"), "unknown option 'train.bn' — did you mean 'model.bn'?");
  EXPECT_EQ(err("--zzzz.qqqqqq=1"), "unknown option 'zzzz.qqqqqq'");
  // a megabyte-long key is refused quickly, without a suggestion
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(err("--" + std::string(1 << 20, 'x') + "=1").rfind("unknown option", 0), 0u);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
}

TEST(Options, IllTypedAndOutOfRange) {
  EXPECT_EQ(usage_error({"--train.lr=abc"}), "option 'train.lr' (command line): expected a number, got 'abc'");
  EXPECT_NE(usage_error({"--train.steps=1.5"}).find("expected an integer"), std::string::npos);
  EXPECT_NE(usage_error({"--train.steps=0"}).find("in [1, 1000000000]"), std::string::npos);
  EXPECT_NE(usage_error({"--train.lr=-1"}).find("'train.lr'"), std::string::npos);
  EXPECT_NE(usage_error({"--train.amp=maybe"}).find("true or false"), std::string::npos);
  auto m = usage_error({"--model.bn=froze"});
  EXPECT_NE(m.find("did you mean 'frozen'"), std::string::npos) << m;
  EXPECT_NE(usage_error({"--config", "/nonexistent/x.ini"}).find("'/nonexistent/x.ini' not found"),
            std::string::npos);
}

TEST(Options, PositionalCounts) {
  Schema s;
  EXPECT_THROW(core::parse_args(s, {"x"}), core::UsageError);
  auto c = core::parse_args(s, {"x", "y"}, {"A B", 2, 2});
  EXPECT_EQ(c.positional, (std::vector<std::string>{"x", "y"}));
  EXPECT_THROW(core::parse_args(s, {"x"}, {"A B", 2, 2}), core::UsageError);
}

TEST(Options, ResolvedConfigRerunsToItself) {
  auto d = testutil::fresh_dir("options_resolved");
  auto a = write(d, "a.ini", "method = dann + 0.1*entropy\n[train]\nlr = 0.1\n");
  auto c = core::parse_args(demo_schema(), {"--config", a, "--data.taps=layer1, layer2", "--run.resume=x"});
  auto ini = c.to_ini();
  EXPECT_EQ(ini.find("resume"), std::string::npos);  // command flags are not configuration
  auto r = write(d, "resolved.ini", ini);
  auto c2 = core::parse_args(demo_schema(), {"--config", r});
  EXPECT_EQ(c2.to_ini(), ini);
  auto schema = demo_schema();
  for (auto& k : schema.keys()) {
    if (k == "run.resume") continue;
    EXPECT_EQ(c2.get_string(k), c.get_string(k)) << k;
  }
  EXPECT_EQ(c2.get_string("method"), "dann + 0.1*entropy");
}

TEST(Options, HelpListsEveryOptionWithTypeAndDefault) {
  auto schema = demo_schema();
  auto h = schema.help();
  for (auto& k : schema.keys()) EXPECT_NE(h.find("--" + k), std::string::npos) << k;
  EXPECT_NE(h.find("train|frozen"), std::string::npos);
  EXPECT_NE(h.find("(default: 100)"), std::string::npos);
}

TEST(Registry, LookupListingAndErrors) {
  core::Registry<int> r("widgets", "test widgets");
  r.add("alpha", "first", 1);
  r.add("beta", "second", 2);
  EXPECT_EQ(r.get("beta"), 2);
  EXPECT_THROW(r.add("alpha", "dup", 3), core::Error);
  try {
    r.get("alpah");
    FAIL();
  } catch (const core::UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "unknown widget 'alpah' — did you mean 'alpha'? (known: alpha, beta)");
  }
  ASSERT_TRUE(core::registry_kinds().count("widgets"));
  auto entries = core::registry_kinds().at("widgets").entries();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].name, "alpha");
  EXPECT_EQ(entries[0].doc, "first");
  core::registry_kinds().erase("widgets");
}

TEST(Registry, EditDistance) {
  EXPECT_EQ(core::edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(core::edit_distance("", "abc"), 3u);
  EXPECT_EQ(core::nearest("resnt18", {"resnet18", "vit_b_16"}), "resnet18");
}

// The INI syntax the configs are written in (shiftlab's own line parser, boost's syntax): '#'
// comments anywhere, blanks and CRLF, sections as prefixes, the first '=' splits; a bad line is
// a usage error naming file and line — also when it holds text like boost's "%invalid_line%"
// placeholders, on which boost's own error message looped forever (found by fuzz_ini).
TEST(Options, IniSyntaxAndLineErrors) {
  Config c(demo_schema());
  core::apply_ini_text(c,
                       "  # leading comment\r\nmethod = dann + 0.1*entropy   # trailing comment\r\n\n"
                       "[ train ]\n\tlr=0.25\nsteps = 1e3\n[data.source.]\nname = a = b\n",
                       "mem.ini");
  EXPECT_EQ(c.get_string("method"), "dann + 0.1*entropy");
  EXPECT_DOUBLE_EQ(c.get_float("train.lr"), 0.25);
  EXPECT_EQ(c.get_int("train.steps"), 1000);
  EXPECT_EQ(c.get_string("data.source.name"), "a = b");
  auto error_of = [](const std::string& text) {
    Config cfg(demo_schema());
    try {
      core::apply_ini_text(cfg, text, "x.ini");
    } catch (const core::UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of("method = a\n[train]\nlr 0.1\n"),
            "config file 'x.ini' line 3: cannot read 'lr 0.1' (expected [section] or key = value)");
  EXPECT_EQ(error_of("[tt%prefix%x]4e%invalid_line%sp 9\n"),
            "config file 'x.ini' line 1: cannot read '[tt%prefix%x]4e%invalid_line%sp 9' (expected [section] or key = value)");
  EXPECT_EQ(error_of("[]\nx = 1\n"), "config file 'x.ini' line 1: empty section name '[]'");
  EXPECT_EQ(error_of("= 3\n"), "config file 'x.ini' line 1: no key before '='");
  EXPECT_EQ(error_of("[run]\nresume = /tmp/r\n"),
            "config file 'x.ini' line 2: 'run.resume' is a command-line option, not a config key");
  EXPECT_NE(error_of(std::string("method = a\0b\n", 13)).find("NUL byte at offset 10"), std::string::npos);
  EXPECT_NE(error_of("[train]\nlrr = 1\n").find("unknown option 'train.lrr' (x.ini) — did you mean 'train.lr'?"),
            std::string::npos);
  // a megabyte-long unknown key is refused at once (no quadratic nearest-key search)
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(error_of(std::string(1 << 20, 'k') + " = 1\n").find("unknown option"), std::string::npos);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
}
