// Config layering (defaults < files in order < command line), unknown / ill-typed / out-of-range
// keys, INI sections as dotted keys, and the resolved config re-parsing to itself. Option tables:
// every table of the program (experiment schema and every command's schema) has schema defaults
// equal to its struct's defaults and keys that read into their member and write back.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <set>

#include "apps/command.h"
#include "core/error.h"
#include "core/format.h"
#include "core/options.h"
#include "core/registry.h"
#include "support/testing.h"
#include "train/options.h"

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

// ---------------------------------------------------------------- option tables

namespace {

std::string joined_keys(const std::vector<std::string>& v) {
  std::string out;
  for (auto& x : v) out += (out.empty() ? "" : ", ") + x;
  return out;
}

// A valid value of the option other than its default (keys whose strings are checked when read
// get a known-good example).
std::string non_default_value(const core::OptionSpec& s) {
  static const std::map<std::string, std::string> examples = {
      {"run.device", "cpu"},
      {"model.freeze", "top:2"},
      {"method", "dann + 0.1*entropy"},
      {"model.adapters", "lora(r=4,alpha=8)@layer4.*.conv1"},
      {"optim.group_lr", "head=0.5,layer4=0.25"},
  };
  if (examples.count(s.key)) return examples.at(s.key);
  switch (s.type) {
    case core::OptType::Bool:
      return s.default_value == "true" ? "false" : "true";
    case core::OptType::Int: {
      long long d = std::stoll(s.default_value);
      if (d + 1 <= s.max) return std::to_string(d + 1);
      if (d - 1 >= s.min) return std::to_string(d - 1);
      return "";
    }
    case core::OptType::Float: {
      double d = std::stod(s.default_value);
      std::vector<double> tries = {d + 0.5, d * 0.5, d - 0.5};
      if (std::isfinite(s.min) && std::isfinite(s.max)) tries.push_back((s.min + s.max) / 2);
      for (double v : tries)
        if (v >= s.min && v <= s.max && v != d) return core::format_number(v);
      return "";
    }
    case core::OptType::Choice:
      for (auto& c : s.all_choices())
        if (c != s.default_value) return c;
      return "";
    case core::OptType::List:
      return s.default_value == "1,2" ? "2,3" : "1,2";
    case core::OptType::String:
    case core::OptType::Path:
      return s.default_value + "_other";
  }
  return "";
}

// Every problem of the option tables bound in `schema`: a schema default that does not read back
// as the member's value in the defaults instance, a key whose non-default value changes another
// member (or none), a struct that does not write back to the same values.
std::vector<std::string> option_table_problems(const core::Schema& schema) {
  std::vector<std::string> problems;
  const core::Config defaults(schema);
  for (auto& b : schema.bindings()) {
    const std::string where = b->table_name() + (b->prefix().empty() ? "" : " under '" + b->prefix() + "'");
    try {
      for (auto& k : b->differences(defaults, nullptr))
        problems.push_back(where + ": the default of '" + k + "' ('" + schema.spec(k).default_value +
                           "') is not the struct's default");
    } catch (const std::exception& e) {
      problems.push_back(where + ": the defaults do not read: " + e.what());
      continue;
    }
    for (auto& k : b->keys()) {
      const std::string v = non_default_value(schema.spec(k));
      if (v.empty()) {
        problems.push_back(where + ": no non-default value of '" + k + "' to try");
        continue;
      }
      try {
        core::Config c(schema);
        c.set(k, v);
        auto changed = b->differences(c, &defaults);
        if (changed != std::vector<std::string>{k}) {
          problems.push_back(where + ": '" + k + "' = '" + v + "' changed the members of [" + joined_keys(changed) + "]");
          continue;
        }
        core::Config back(schema);
        b->write_back(c, back);
        auto lost = b->differences(back, &c);
        if (!lost.empty())
          problems.push_back(where + ": '" + k + "' = '" + v + "' written back as '" + back.get_string(k) +
                             "' reads differently in [" + joined_keys(lost) + "]");
      } catch (const std::exception& e) {
        problems.push_back(where + ": '" + k + "' = '" + v + "': " + e.what());
      }
    }
  }
  return problems;
}

// The keys of `schema` no table declares.
std::set<std::string> unbound_keys(const core::Schema& schema) {
  std::set<std::string> keys(schema.keys().begin(), schema.keys().end());
  for (auto& b : schema.bindings())
    for (auto& k : b->keys()) keys.erase(k);
  return keys;
}

struct Toy {
  int64_t steps = 100;
  int workers = 2;
  double lr = 0.1;
  bool amp = false;
  std::string mode = "fast";
  std::vector<std::string> taps{"a", "b"};
  std::vector<double> scales{0.5, 2};
  uint64_t seed = 7;
  struct Inner {
    int64_t width = 16;
  } inner;
  int64_t derived = 0;  ///< not a key: on_read sets it
};

core::OptionTable<Toy> toy_table() {
  core::OptionTable<Toy> t("Toy");
  t.field("steps", &Toy::steps, "steps").range(1, 1e9);
  t.field("workers", &Toy::workers, "threads");
  t.field("lr", &Toy::lr, "learning rate").range(0, 10);
  t.field("amp", &Toy::amp, "mixed precision");
  t.field("mode", &Toy::mode, "mode").choices({"fast", "slow"});
  t.field("taps", &Toy::taps, "taps").command_flag();
  t.field("scales", &Toy::scales, "positive scales").range(0, 100).check([](std::vector<double>& v, const std::string& k) {
    core::check_usage(!v.empty(), "option '", k, "': at least one");
  });
  t.field("seed", &Toy::seed, "seed").range(0, 9e18);
  t.field("inner.width", [](Toy& o) -> auto& { return o.inner.width; }, "nested member").alias('w');
  t.on_read([](Toy& o) { o.derived = o.steps * 2; });
  return t;
}

}  // namespace

TEST(OptionTables, DeclareReadWriteUnderAPrefixWithDefaults) {
  auto t = toy_table();
  core::Schema s;
  Toy d;
  d.steps = 5;
  d.mode = "slow";
  t.declare(s, "toy.a");
  t.declare(s, "toy.b", d);
  EXPECT_EQ(s.spec("toy.a.steps").default_value, "100");
  EXPECT_EQ(s.spec("toy.b.steps").default_value, "5");
  EXPECT_EQ(s.spec("toy.b.mode").default_value, "slow");
  EXPECT_EQ(s.spec("toy.a.mode").type, core::OptType::Choice);
  EXPECT_EQ(s.spec("toy.a.taps").default_value, "a,b");
  EXPECT_TRUE(s.spec("toy.a.taps").cli_only);
  EXPECT_EQ(s.spec("toy.a.scales").default_value, "0.5,2");
  EXPECT_EQ(s.spec("toy.a.lr").default_value, "0.1");
  EXPECT_EQ(s.spec("toy.a.inner.width").short_name, 'w');
  EXPECT_EQ(s.bindings().size(), 2u);
  auto c = core::parse_args(s, {"--toy.a.steps=9", "--toy.b.scales=1, 3", "--toy.a.inner.width=4", "--toy.b.amp"});
  auto a = t.read(c, "toy.a"), b = t.read(c, "toy.b");
  EXPECT_EQ(a.steps, 9);
  EXPECT_EQ(a.derived, 18);
  EXPECT_EQ(a.inner.width, 4);
  EXPECT_EQ(a.mode, "fast");
  EXPECT_EQ(b.steps, 5);
  EXPECT_EQ(b.mode, "slow");
  EXPECT_TRUE(b.amp);
  EXPECT_EQ(b.scales, (std::vector<double>{1, 3}));
  EXPECT_EQ(b.seed, 7u);
  // write is read's inverse
  core::Config w(s);
  a.lr = 0.1 + 0.2;  // 0.30000000000000004: needs 17 digits
  a.taps = {"x"};
  t.write(a, w, "toy.a");
  auto a2 = t.read(w, "toy.a");
  EXPECT_EQ(a2.lr, a.lr);
  EXPECT_EQ(a2.taps, (std::vector<std::string>{"x"}));
  EXPECT_EQ(a2.inner.width, 4);
  EXPECT_EQ(t.keys("p").front(), "p.steps");
}

TEST(OptionTables, ReadingChecksTypesRangesAndChecks) {
  auto t = toy_table();
  core::Schema s;
  t.declare(s);
  auto error_of = [&](const std::vector<std::string>& args) {
    try {
      t.read(core::parse_args(s, args));
    } catch (const core::UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // an int member: a value beyond its type is refused, naming the key
  EXPECT_NE(error_of({"--workers=3000000000"}).find("option 'workers'"), std::string::npos);
  EXPECT_EQ(error_of({"--workers=-3"}), "no error");
  EXPECT_EQ(error_of({"--scales=1,x"}), "option 'scales': 'x' is not a number");
  EXPECT_EQ(error_of({"--scales=1,200"}), "option 'scales': '200' is outside [0, 100]");
  core::Config empty(s);
  empty.set("scales", "");
  try {
    t.read(empty);
    ADD_FAILURE() << "an empty list was read";
  } catch (const core::UsageError& e) {
    EXPECT_STREQ(e.what(), "option 'scales': at least one");  // the field's check()
  }
  EXPECT_THROW(core::parse_args(s, {"--mode=medium"}), core::UsageError);  // choices checked when set
}

TEST(OptionTables, TheCheckCatchesAWrongDefaultAndALossyRoundTrip) {
  auto t = toy_table();
  core::Schema good;
  t.declare(good, "toy");
  EXPECT_EQ(option_table_problems(good), std::vector<std::string>{});
  // the same schema with one default edited behind the table's back
  core::Schema bad;
  for (auto& k : good.keys()) {
    auto spec = good.spec(k);
    if (k == "toy.lr") spec.default_value = "0.2";
    bad.add(spec);
  }
  for (auto& b : good.bindings()) bad.bind(b);
  auto p = option_table_problems(bad);
  ASSERT_EQ(p.size(), 1u) << joined_keys(p);
  EXPECT_NE(p[0].find("the default of 'toy.lr' ('0.2') is not the struct's default"), std::string::npos) << p[0];
  // two keys bound to one member; a text form that loses digits (std::to_string: 6 decimals)
  core::OptionTable<Toy> wrong("Wrong");
  wrong.field("steps", &Toy::steps, "steps");
  wrong.field("also_steps", &Toy::steps, "steps again");
  wrong.field_as(
      "lr", &Toy::lr, core::OptType::Float, [](const std::string& v, const std::string&) { return std::stod(v); },
      [](const double& v) { return std::to_string(v); }, "lr with 6 decimals");
  core::Schema ws;
  Toy third;
  third.lr = 1.0 / 3;
  wrong.declare(ws, "", third);
  p = option_table_problems(ws);
  ASSERT_EQ(p.size(), 3u) << joined_keys(p);
  EXPECT_NE(p[0].find("the default of 'lr' ('0.333333') is not the struct's default"), std::string::npos) << p[0];
  // the later key overwrites the member: setting the first one changes nothing
  EXPECT_NE(p[1].find("'steps' = '101' changed the members of []"), std::string::npos) << p[1];
  EXPECT_NE(p[2].find("'also_steps' = '101' changed the members of [steps, also_steps]"), std::string::npos) << p[2];
}

TEST(OptionTables, EveryTableOfTheExperimentSchema) {
  auto s = train::experiment_schema();
  EXPECT_EQ(option_table_problems(s), std::vector<std::string>{});
  std::set<std::string> tables;
  for (auto& b : s.bindings()) tables.insert(b->table_name() + "@" + b->prefix());
  EXPECT_EQ(tables, (std::set<std::string>{
                        "core::RuntimeOptions@", "data::DomainOptions@data.source", "data::DomainOptions@data.target",
                        "data::LoaderOptions@data.source", "data::LoaderOptions@data.target", "models::ModelOptions@",
                        "adapters::InputConvOptions@", "adapters::AdapterOptions@", "losses::MethodOptions@",
                        "models::ParamGroupOptions@", "train::ScheduleOptions@", "train::TrainOptions@",
                        "train::OptimOptions@", "train::DistOptions@", "data::HoldoutOptions@",
                        "data::EvalDomainKeys@data.source_val", "data::EvalDomainKeys@data.target_test"}));
  // the experiment keys no struct holds (read directly from the Config)
  EXPECT_EQ(unbound_keys(s), (std::set<std::string>{"run.root", "run.name", "data.source.val_split",
                                                     "data.target.test_split", "data.source.eval_transform",
                                                     "data.target.eval_transform"}));
  // test hooks are environment variables, not options
  for (auto& k : {"train.fail_at_step", "train.fail_rank"}) EXPECT_FALSE(s.has(k)) << k;
  // the struct defaults seen by the rest of the code are the ones users get
  EXPECT_EQ(s.spec("model.backbone").default_value, "resnet50");
  EXPECT_EQ(s.spec("model.bands").default_value, "0");
  EXPECT_EQ(s.spec("model.band_mode").default_value, "auto");
  EXPECT_EQ(s.spec("data.target.labelled").default_value, "false");
  EXPECT_EQ(s.spec("data.source.dataset").default_value, "mnist");
}

TEST(OptionTables, EvalBatchSizeAutoFollowsTheSourceBatchOnCpu) {
  train::TrainOptions o;
  EXPECT_EQ(o.eval_batch_size, 0);                         // the default is auto
  EXPECT_EQ(train::eval_batch_size(o, 64, false), 64);     // CPU: the training batch, no extra memory peak
  EXPECT_EQ(train::eval_batch_size(o, 32, false), 32);
  EXPECT_EQ(train::eval_batch_size(o, 64, true), 256);     // CUDA: large batches
  o.eval_batch_size = 500;                                 // an explicit value wins everywhere
  EXPECT_EQ(train::eval_batch_size(o, 64, false), 500);
  EXPECT_EQ(train::eval_batch_size(o, 64, true), 500);
}

TEST(OptionTables, EveryTableOfEveryCommand) {
  std::set<std::string> plain;  // keys no table declares, beyond the experiment's own
  const auto exp_unbound = unbound_keys(train::experiment_schema());
  size_t tables = 0;
  for (auto& name : apps::commands().names()) {
    SCOPED_TRACE(name);
    auto s = apps::commands().get(name).schema();
    tables += s.bindings().size();
    EXPECT_EQ(option_table_problems(s), std::vector<std::string>{});
    for (auto& k : unbound_keys(s))
      if (!exp_unbound.count(k)) plain.insert(name + ": " + k);
    EXPECT_FALSE(s.has("kill_in_write"));
    EXPECT_FALSE(s.has("train.fail_at_step"));
    // --help lists every option with its type, default and doc
    auto h = s.help();
    for (auto& k : s.keys()) {
      const auto& spec = s.spec(k);
      EXPECT_NE(h.find("--" + k + (spec.type == core::OptType::Bool && spec.cli_only ? "" : "=<")), std::string::npos) << k;
      EXPECT_NE(h.find(spec.doc), std::string::npos) << k;
      if (!spec.cli_only) {
        EXPECT_NE(h.find(spec.doc + " (default: "), std::string::npos) << k;
      }
    }
  }
  EXPECT_GT(tables, 50u);
  EXPECT_EQ(plain, (std::set<std::string>{"advise: out", "probe: out", "train: resume"}));
}

// issue 18 §3.10: a UTF-8 BOM (Windows editors) is not part of line 1; `--key=` sets the empty
// string, clearing what a config file gave; --config DIR says it is a directory; a key given twice
// in one file warns (the last value wins, as before)
TEST(Options, BomEmptyValueDirectoryAndDuplicateKeys) {
  auto d = testutil::fresh_dir("options_bom");
  auto bom = write(d, "bom.ini", "\xEF\xBB\xBF[train]\nsteps = 3\n[data.source]\nname = usps\n");
  auto c = core::parse_args(demo_schema(), {"--config", bom});
  EXPECT_EQ(c.get_int("train.steps"), 3);
  EXPECT_EQ(c.get_string("data.source.name"), "usps");
  auto cleared = core::parse_args(demo_schema(), {"--config", bom, "--data.source.name="});
  EXPECT_EQ(cleared.get_string("data.source.name"), "");
  EXPECT_TRUE(cleared.is_set("data.source.name"));
  EXPECT_EQ(core::parse_args(demo_schema(), {"--data.taps=", "--method=dann"}).get_list("data.taps"),
            std::vector<std::string>{});
  try {  // an empty value where a number is needed names the key
    core::parse_args(demo_schema(), {"--train.steps="});
    ADD_FAILURE() << "no error";
  } catch (const core::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("option 'train.steps' (command line): expected an integer, got ''"),
              std::string::npos)
        << e.what();
  }
  try {
    core::parse_args(demo_schema(), {"--config", d});
    ADD_FAILURE() << "no error";
  } catch (const core::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("config file '" + d + "' is a directory"), std::string::npos) << e.what();
  }
  auto dup = write(d, "dup.ini", "[train]\nsteps = 4\nlr = 0.1\nsteps = 5\n");
  testing::internal::CaptureStderr();
  auto c2 = core::parse_args(demo_schema(), {"--config", dup});
  auto err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(c2.get_int("train.steps"), 5);
  EXPECT_NE(err.find("config file '" + dup + "' line 4: 'train.steps' is also set on line 2; the later value '5' wins"),
            std::string::npos)
      << err;
  // the same key in two files is layering, not a mistake: no warning
  auto other = write(d, "other.ini", "[train]\nsteps = 6\n");
  testing::internal::CaptureStderr();
  core::parse_args(demo_schema(), {"--config", bom, "--config", other});
  err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("also set"), std::string::npos) << err;
}
