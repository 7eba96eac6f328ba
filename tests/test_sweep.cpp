// Sweeps and reports: grid/random expansion and naming, resumable execution (completed runs
// skipped, interrupted runs resumed), and the report's aggregation against hand-computed values.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <tuple>
#include <regex>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/fs.h"
#include "report/runs.h"
#include "report/svg.h"
#include "sweep/sweep.h"
#include "support/svg_check.h"
#include "support/testing.h"

using namespace shiftlab;
using testutil::run_cli;
namespace fs = std::filesystem;

TEST(Sweep, GridExpansionAndNames) {
  sweep::Plan p;
  p.axes = {sweep::parse_axis("method=source_only,dann"), sweep::parse_axis("optim.lr=1e-3, 3e-3")};
  p.seeds = {0, 1, 2};
  auto jobs = sweep::expand(p);
  ASSERT_EQ(jobs.size(), 12u);
  // first axis slowest, seeds innermost
  EXPECT_EQ(jobs[0].name(), "method-source_only__optim.lr-1e-3/seed0");
  EXPECT_EQ(jobs[2].name(), "method-source_only__optim.lr-1e-3/seed2");
  EXPECT_EQ(jobs[3].values[1].second, "3e-3");
  EXPECT_EQ(jobs[6].values[0].second, "dann");
  EXPECT_EQ(jobs[11].name(), "method-dann__optim.lr-3e-3/seed2");
  std::set<std::string> names;
  for (auto& j : jobs) names.insert(j.name());
  EXPECT_EQ(names.size(), 12u);
  // '|' separates values holding commas; no axes -> one "base" combination
  auto a = sweep::parse_axis("data.target.transform=resize(20), pad(4)|resize(28)");
  ASSERT_EQ(a.values.size(), 2u);
  EXPECT_EQ(a.values[0], "resize(20), pad(4)");
  sweep::Plan q;
  q.seeds = {5};
  auto one = sweep::expand(q);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].name(), "base/seed5");
}

TEST(Sweep, BadAxesAreUsageErrors) {
  EXPECT_THROW(sweep::parse_axis("method"), core::UsageError);
  EXPECT_THROW(sweep::parse_axis("method="), core::UsageError);
  EXPECT_THROW(sweep::parse_axis("method=a,a"), core::UsageError);
  EXPECT_THROW(sweep::parse_axis("optim.lr=loguniform(0, 1)"), core::UsageError);
  sweep::Plan p;
  p.axes = {sweep::parse_axis("optim.lr=loguniform(1e-4, 1e-2)")};
  EXPECT_THROW(sweep::expand(p), core::UsageError);  // a distribution without --random
  p.axes = {sweep::parse_axis("method=a,b"), sweep::parse_axis("method=c")};
  EXPECT_THROW(sweep::expand(p), core::UsageError);  // swept twice
  p.axes = {sweep::parse_axis("method=a,b")};
  p.random = 3;
  EXPECT_THROW(sweep::expand(p), core::UsageError);  // more draws than combinations
}

TEST(Sweep, RandomSearchIsDistinctBoundedAndSeeded) {
  sweep::Plan p;
  p.axes = {sweep::parse_axis("method=source_only,dann,dan"), sweep::parse_axis("optim.lr=loguniform(1e-4, 1e-2)"),
            sweep::parse_axis("data.source.batch_size=randint(8, 16)")};
  p.seeds = {0, 1};
  p.random = 10;
  p.random_seed = 7;
  auto a = sweep::expand(p);
  ASSERT_EQ(a.size(), 20u);
  std::set<std::string> combos;
  for (size_t i = 0; i < a.size(); i += 2) {
    combos.insert(a[i].combo);
    EXPECT_EQ(a[i].combo, a[i + 1].combo);
    double lr = std::stod(a[i].values[1].second);
    EXPECT_GE(lr, 1e-4);
    EXPECT_LE(lr, 1e-2);
    long long bs = std::stoll(a[i].values[2].second);
    EXPECT_GE(bs, 8);
    EXPECT_LE(bs, 16);
  }
  EXPECT_EQ(combos.size(), 10u);
  auto b = sweep::expand(p);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].name(), b[i].name());
  p.random_seed = 8;
  auto c = sweep::expand(p);
  bool differ = false;
  for (size_t i = 0; i < a.size(); ++i) differ |= a[i].name() != c[i].name();
  EXPECT_TRUE(differ);
}

namespace {

// A fake run directory with a known summary and config.
void fake_run(const std::string& dir, const std::string& method, int seed, const char* status, double sel, double ora,
              double sv, double secs) {
  fs::create_directories(dir);
  std::ofstream(dir + "/config.resolved.ini") << "method = " << method << "\n[run]\nseed = " << seed
                                              << "\nroot = /somewhere/" << seed << "\n[optim]\nlr = 0.01\n";
  nlohmann::json s{{"status", status},
                   {"train_seconds", secs},
                   {"selected", {{"target_test_acc", sel}, {"source_val_acc", sv}, {"target_test_mean_class_acc", sel - 1}}},
                   {"oracle", {{"target_test_acc", ora}}}};
  std::ofstream(dir + "/summary.json") << s.dump();
  std::ofstream m(dir + "/metrics.jsonl");
  m << R"({"step":10,"ce":1.5,"loss":1.5})" << "\n" << R"({"step":20,"target_test_acc":)" << sel
    << R"(,"source_val_acc":)" << sv << "}\n";
}

}  // namespace

TEST(Report, AggregatesKnownRunsLikeHandComputation) {
  auto root = testutil::fresh_dir("report_fixture");
  fake_run(root + "/a/r1", "dann", 0, "completed", 80, 82, 97, 100);
  fake_run(root + "/a/r2", "dann", 1, "completed", 84, 85, 98, 110);
  fake_run(root + "/a/r3", "dann", 2, "completed", 88, 90, 96, 120);
  fake_run(root + "/b/r1", "source_only", 0, "completed", 70, 71, 99, 50);
  fake_run(root + "/b/r2", "source_only", 1, "failed", 10, 10, 10, 5);  // not counted
  auto runs = report::find_runs({root});
  ASSERT_EQ(runs.size(), 5u);
  // seeds and data roots are incidental; only `method` differs
  auto keys = report::varying_keys(runs);
  ASSERT_EQ(keys, std::vector<std::string>{"method"});
  auto groups = report::group_runs(runs, keys);
  ASSERT_EQ(groups.size(), 2u);
  auto& d = groups[0];
  EXPECT_EQ(d.key[0].second, "dann");
  EXPECT_EQ(d.completed, 3);
  EXPECT_DOUBLE_EQ(d.selected.mean, 84.0);
  EXPECT_NEAR(d.selected.std, 4.0, 1e-12);  // sqrt(((-4)^2 + 0 + 4^2) / 2)
  EXPECT_NEAR(d.oracle.mean, 257.0 / 3, 1e-12);
  double om = 257.0 / 3;
  EXPECT_NEAR(d.oracle.std, std::sqrt(((82 - om) * (82 - om) + (85 - om) * (85 - om) + (90 - om) * (90 - om)) / 2), 1e-12);
  EXPECT_DOUBLE_EQ(d.seconds.mean, 110.0);
  auto& s = groups[1];
  EXPECT_EQ(s.runs.size(), 2u);
  EXPECT_EQ(s.completed, 1);
  EXPECT_DOUBLE_EQ(s.selected.mean, 70.0);
  EXPECT_DOUBLE_EQ(s.selected.std, 0.0);
  auto md = report::markdown_table(groups, keys);
  EXPECT_NE(md.find("| dann | 3/3 | 84.00 ± 4.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| source_only | 1/2 | 70.00 |"), std::string::npos) << md;
  auto csv = report::csv_table(groups, keys);
  EXPECT_NE(csv.find("dann,3,3,84.0000,4.0000"), std::string::npos) << csv;

  // the command writes the same table and the curves
  auto r = run_cli({"report", root, "--by=method"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(core::read_file(root + "/results.md").find("| dann | 3/3 | 84.00 ± 4.00 |"), std::string::npos);
  EXPECT_TRUE(fs::exists(root + "/curves/method-dann_acc.svg"));
  EXPECT_TRUE(fs::exists(root + "/curves/method-dann_loss.svg"));
  for (auto f : {"method-dann_acc.svg", "method-dann_loss.svg"}) {
    std::string why;
    EXPECT_TRUE(testutil::svg_well_formed(core::read_file(root + "/curves/" + f), &why)) << f << ": " << why;
  }
  // a missing directory is a one-line usage error
  auto bad = run_cli({"report", root + "/nope"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("nope"), std::string::npos);
}

TEST(Report, ReadsRunConfigurationsWithTheConfigsOwnIniReader) {
  auto root = testutil::fresh_dir("report_ini");
  fake_run(root + "/a", "dann", 0, "completed", 80, 82, 97, 100);
  // comments after values, the last of repeated keys wins, sections prefix keys
  std::ofstream(root + "/a/config.resolved.ini") << "method = dann  # the method\nmethod = mcc\n[optim]\nlr = 0.1\n";
  auto r = report::read_run(root + "/a");
  EXPECT_EQ(r.config.at("method"), "mcc");
  EXPECT_EQ(r.config.at("optim.lr"), "0.1");
  // a malformed line is a one-line error naming the file and line (boost's reader looped on '%...%')
  std::ofstream(root + "/a/config.resolved.ini") << "method = dann\n%x% %y%\n";
  try {
    report::read_run(root + "/a");
    ADD_FAILURE() << "no error";
  } catch (const core::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("config.resolved.ini' line 2"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

namespace {

// A run of the study layout <root>/n<N>/<strategy>/seed<S>/run: labels per class N, selected and last
// target accuracy, parameter counts in summary.json or (older runs) only in log.txt.
void study_run(const std::string& dir, int per_class, int seed, double sel, double last, int64_t trainable,
               int64_t total, bool counts_in_summary) {
  fs::create_directories(dir);
  std::ofstream(dir + "/config.resolved.ini") << "[run]\nseed = " << seed << "\n[data.source]\nper_class = " << per_class
                                              << "  # labels per class\n";
  nlohmann::json s{{"status", "completed"},
                   {"train_seconds", 10},
                   {"selected", {{"target_test_acc", sel}, {"source_val_acc", 90}}},
                   {"oracle", {{"target_test_acc", sel + 1}}},
                   {"last", {{"target_test_acc", last}}}};
  if (counts_in_summary)
    s["parameters"] = {{"model", total}, {"trainable", trainable}, {"adapters", 0}, {"method", 0}};
  else
    std::ofstream(dir + "/log.txt") << "[info] trainable parameters: model " << trainable << " of " << total
                                    << " (0.05 %), method 0\n";
  std::ofstream(dir + "/summary.json") << s.dump();
}

// A linear probe's output directory: probe.json with the feature cache's configuration.
void study_probe(const std::string& dir, int per_class, double target_acc) {
  fs::create_directories(dir);
  nlohmann::json j{{"format", "shiftlab-probe"},
                   {"attributes", {{"config", "[data.source]\nper_class = " + std::to_string(per_class) + "\n"}}},
                   {"taps", {{{"tap", "pooled"}, {"dim", 512}, {"num_classes", 10},
                              {"linear", {{"target_acc", target_acc}, {"source_acc", 95.0}}}}}}};
  std::ofstream(dir + "/probe.json") << j.dump();
}

}  // namespace

namespace {
// <root>/<strategy>/lr<LR>/seed<S>/r with per_class N: source-val and target accuracy given.
void tune_run(const std::string& dir, int per_class, double lr, int seed, const char* status, double sv, double tt) {
  fs::create_directories(dir);
  std::ofstream(dir + "/config.resolved.ini") << "[run]\nseed = " << seed << "\n[optim]\nlr = " << lr
                                              << "\n[data.source]\nper_class = " << per_class << "\n";
  nlohmann::json s{{"status", status},
                   {"train_seconds", 10},
                   {"selected", {{"target_test_acc", tt}, {"source_val_acc", sv}}},
                   {"oracle", {{"target_test_acc", tt + 1}}}};
  std::ofstream(dir + "/summary.json") << s.dump();
}
}  // namespace

// --tune picks the value with the best mean source-val per cell, whatever the target accuracy says.
TEST(Report, TuneChoosesTheLearningRateOnSourceValPerCell) {
  auto root = testutil::fresh_dir("report_tune");
  const std::string a = root + "/full";
  // 10 labels: lr 0.1 has the better source-val (94 vs 91) and the worse target (61 vs 71): chosen
  tune_run(a + "/lr0.01/seed0/r", 10, 0.01, 0, "completed", 90, 70);
  tune_run(a + "/lr0.01/seed1/r", 10, 0.01, 1, "completed", 92, 72);
  tune_run(a + "/lr0.1/seed0/r", 10, 0.1, 0, "completed", 95, 60);
  tune_run(a + "/lr0.1/seed1/r", 10, 0.1, 1, "completed", 93, 62);
  // 100 labels: lr 0.01 (97) over 0.1 (96); a failed run with a high source-val does not count
  tune_run(a + "/lr0.01/seed0/s", 100, 0.01, 0, "completed", 97, 80);
  tune_run(a + "/lr0.1/seed0/s", 100, 0.1, 0, "completed", 96, 90);
  tune_run(a + "/lr1/seed0/s", 100, 1, 0, "failed", 99, 10);
  auto runs = report::find_runs({root});
  ASSERT_EQ(runs.size(), 7u);
  std::vector<report::TuneChoice> choices;
  auto kept = report::tune_runs(runs, {"path:0", "data.source.per_class"}, "optim.lr", &choices);
  ASSERT_EQ(choices.size(), 2u);
  EXPECT_EQ(choices[0].cell, "full, 10");
  EXPECT_EQ(choices[0].value, "0.1");
  EXPECT_EQ(choices[1].cell, "full, 100");
  EXPECT_EQ(choices[1].value, "0.01");
  ASSERT_EQ(choices[0].candidates.size(), 2u);
  EXPECT_DOUBLE_EQ(choices[0].candidates[0].second.mean, 91);
  EXPECT_EQ(choices[1].candidates.size(), 3u);  // the failed lr is listed, without a mean
  EXPECT_EQ(choices[1].candidates[2].second.n, 0);
  ASSERT_EQ(kept.size(), 3u);
  auto p = report::pivot_runs(kept, {"path:0"}, "data.source.per_class");
  auto md = report::pivot_markdown(p, {"path:0"}, {"selected"});  // columns ascending: 10, 100
  EXPECT_NE(md.find("| full | 61.00 ± 1.41 | 80.00 (1 of 2 runs) |"), std::string::npos) << md;
  auto text = report::tune_markdown(choices, "optim.lr");
  EXPECT_NE(text.find("- full, 10: optim.lr = 0.1 (source-val 0.01: 91.00 ± 1.41, 0.1: 94.00 ± 1.41)"),
            std::string::npos) << text;
  EXPECT_THROW(report::tune_runs(runs, {"optim.lr"}, "optim.lr"), core::UsageError);
  EXPECT_THROW(report::tune_runs(runs, {"path:0"}, "optim.lrr"), core::UsageError);  // no run has it
  // the command
  auto r = run_cli({"report", root, "--by=path:0", "--pivot=data.source.per_class", "--tune=optim.lr",
                    "--out=" + root + "/out", "--curves=false"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| full | 61.00 ± 1.41 | 80.00 (1 of 2 runs) |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("- full, 100: optim.lr = 0.01"), std::string::npos) << r.out;
  auto bad = run_cli({"report", root, "--by=optim.lr", "--tune=optim.lr"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
}

// --paired: row − baseline seed by seed (the same labelled images), against the formula by hand.
TEST(Report, PairedDifferencesAreTakenSeedBySeed) {
  auto root = testutil::fresh_dir("report_paired");
  // 10 labels: head 80 / 85 / 90, full 83 / 86 / 95 on seeds 0 / 1 / 2: differences 3, 1, 5
  // (mean 3, std 2, t = 3 / (2 / √3) = 2.598); the unpaired means differ by 3 too, but a seed only
  // one row has must not enter: 100 labels: full on seeds 0, 1 (+2, +4 against head's), head also on seed 2
  const double head10[] = {80, 85, 90}, full10[] = {83, 86, 95};
  for (int s = 0; s < 3; ++s) {
    study_run(root + "/head/seed" + std::to_string(s) + "/n10", 10, s, head10[s], head10[s], 5130, 11175370, true);
    study_run(root + "/full/seed" + std::to_string(s) + "/n10", 10, s, full10[s], full10[s], 11175370, 11175370, true);
    study_run(root + "/head/seed" + std::to_string(s) + "/n100", 100, s, 90 + s, 90, 5130, 11175370, true);
  }
  study_run(root + "/full/seed0/n100", 100, 0, 92, 92, 11175370, 11175370, true);
  study_run(root + "/full/seed1/n100", 100, 1, 95, 95, 11175370, 11175370, true);
  auto runs = report::find_runs({root});
  auto p = report::pivot_runs(runs, {"path:0"}, "data.source.per_class");
  ASSERT_EQ(p.rows, (std::vector<std::string>{"full", "head"}));
  auto d = report::paired_difference(*p.cells[0][0], *p.cells[1][0], "selected");
  EXPECT_EQ(d.seeds, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_DOUBLE_EQ(d.diff.mean, 3);
  EXPECT_DOUBLE_EQ(d.diff.std, 2);
  EXPECT_NEAR(d.t, 3 / (2 / std::sqrt(3.0)), 1e-12);
  auto e = report::paired_difference(*p.cells[0][1], *p.cells[1][1], "selected");
  EXPECT_EQ(e.seeds, (std::vector<std::string>{"0", "1"}));
  EXPECT_DOUBLE_EQ(e.diff.mean, 3);  // (92 − 90 + 95 − 91) / 2; unpaired: 93.5 − 91 = 2.5
  EXPECT_THROW(report::paired_difference(*p.cells[0][0], *p.cells[1][0], "seconds"), core::UsageError);
  // the same difference on every seed (a row against itself): no t
  auto q = report::paired_difference(*p.cells[1][0], *p.cells[1][0], "selected");
  EXPECT_EQ(q.diff.n, 3);
  EXPECT_TRUE(std::isnan(q.t));
  auto md = report::paired_markdown(p, {"path:0"}, {"selected"}, "head");
  EXPECT_NE(md.find("| full | +3.00 ± 2.00 (t 2.6, n 3) | +3.00 ± 1.41 (t 3.0, n 2) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| head | baseline | baseline |"), std::string::npos) << md;
  // two row keys: one cell each, as in the pivot table above it
  auto p2 = report::pivot_runs(runs, {"path:0", "path:2"}, "data.source.per_class");
  auto md2 = report::paired_markdown(p2, {"path:0", "path:2"}, {"selected"}, "head, n10");
  EXPECT_NE(md2.find("| path:0 | path:2 | data.source.per_class = 10 |"), std::string::npos) << md2;
  EXPECT_NE(md2.find("| full | n10 | +3.00 ± 2.00 (t 2.6, n 3) | – |"), std::string::npos) << md2;
  auto r = run_cli({"report", root, "--by=path:0", "--pivot=data.source.per_class", "--baseline=head", "--paired",
                    "--out=" + root + "/out", "--curves=false"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("+3.00 ± 2.00 (t 2.6, n 3)"), std::string::npos) << r.out;
  EXPECT_NE(core::read_file(root + "/out/results.md").find("Paired by seed"), std::string::npos);
  auto bad = run_cli({"report", root, "--by=path:0", "--pivot=data.source.per_class", "--paired"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--baseline"), std::string::npos) << bad.err;
}

// A grid tuned on seed 0 and the chosen value then run on seeds 0,1,2: candidates are compared on
// seed 0 only (over all runs the extra seeds would decide), and tune.csv lists every candidate.
TEST(Report, TuneComparesCandidatesOnTheSeedsTheyShare) {
  auto root = testutil::fresh_dir("report_tune_seeds");
  const std::string a = root + "/full";
  // 5 labels: lr 0.01 has seeds 0,1,2 (80, 99, 99: mean 92.7), lr 0.1 seed 0 only (85): on seed 0, 0.1
  tune_run(a + "/seed0/lr0.01", 5, 0.01, 0, "completed", 80, 50);
  tune_run(a + "/seed0/lr0.1", 5, 0.1, 0, "completed", 85, 40);
  tune_run(a + "/seed1/lr0.01", 5, 0.01, 1, "completed", 99, 55);
  tune_run(a + "/seed2/lr0.01", 5, 0.01, 2, "completed", 99, 56);
  // 50 labels: no seed in common (0.01 on seed 1: 90, 0.1 on seed 2: 91): every run compared
  tune_run(a + "/seed1/n50lr0.01", 50, 0.01, 1, "completed", 90, 70);
  tune_run(a + "/seed2/n50lr0.1", 50, 0.1, 2, "completed", 91, 71);
  // a linear probe (its cache's config has the study's optim.lr): nothing to tune, kept, not listed
  fs::create_directories(root + "/probe/n5");
  std::ofstream(root + "/probe/n5/probe.json")
      << nlohmann::json{{"format", "shiftlab-probe"},
                        {"attributes", {{"config", "[run]\nseed = 0\n[optim]\nlr = 0.01\n[data.source]\nper_class = 5\n"}}},
                        {"taps", {{{"tap", "pooled"}, {"dim", 512}, {"num_classes", 10},
                                   {"linear", {{"target_acc", 77.0}, {"source_acc", 95.0}}}}}}}
             .dump();
  auto runs = report::find_runs({root});
  ASSERT_EQ(runs.size(), 7u);
  std::vector<report::TuneChoice> choices;
  auto kept = report::tune_runs(runs, {"path:0", "data.source.per_class"}, "optim.lr", &choices);
  ASSERT_EQ(choices.size(), 2u);
  EXPECT_EQ(choices[0].cell, "full, 5");
  EXPECT_EQ(choices[0].value, "0.1");
  EXPECT_EQ(choices[0].seeds, std::vector<std::string>{"0"});
  ASSERT_EQ(choices[0].candidates.size(), 2u);
  EXPECT_DOUBLE_EQ(choices[0].candidates[0].second.mean, 80);  // lr 0.01 on seed 0 alone
  EXPECT_EQ(choices[0].candidates[0].second.n, 1);
  EXPECT_EQ(choices[1].value, "0.1");
  EXPECT_TRUE(choices[1].seeds.empty());
  ASSERT_EQ(kept.size(), 3u);  // the chosen runs and the probe
  EXPECT_EQ(kept[2].kind, "probe");
  auto text = report::tune_markdown(choices, "optim.lr");
  EXPECT_NE(text.find("- full, 5: optim.lr = 0.1 (source-val 0.01: 80.00 ± 0.00, 0.1: 85.00 ± 0.00; compared on seed 0)"),
            std::string::npos) << text;
  auto r = run_cli({"report", a, "--by=data.source.per_class", "--tune=optim.lr", "--out=" + root + "/out",
                    "--curves=false"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(root + "/out/tune.csv");
  std::stringstream csv;
  csv << in.rdbuf();
  EXPECT_EQ(csv.str(),
            "data.source.per_class,optim.lr,source_val_mean,source_val_std,n,chosen,seeds\n"
            "5,0.01,80.0000,0.0000,1,0,0\n"
            "5,0.1,85.0000,0.0000,1,1,0\n"
            "50,0.01,90.0000,0.0000,1,0,\n"
            "50,0.1,91.0000,0.0000,1,1,\n");
}

TEST(Report, PivotTableBaselineParametersAndProbes) {
  auto root = testutil::fresh_dir("report_pivot");
  for (int n : {10, 100}) {
    const std::string d = root + "/n" + std::to_string(n);
    // scratch: counts in summary.json; head: only in log.txt; probe: probe.json
    study_run(d + "/scratch/seed0/r", n, 0, n == 10 ? 80 : 90, 79, 11175370, 11175370, true);
    study_run(d + "/scratch/seed1/r", n, 1, n == 10 ? 84 : 92, 83, 11175370, 11175370, true);
    study_run(d + "/head/seed0/r", n, 0, n == 10 ? 60 : 70, 61, 5130, 11175370, false);
    study_run(d + "/head/seed1/r", n, 1, n == 10 ? 64 : 74, 65, 5130, 11175370, false);
    study_probe(d + "/probe/seed0/probe", n, n == 10 ? 55.5 : 86.5);
  }
  auto runs = report::find_runs({root + "/n10", root + "/n100"});
  ASSERT_EQ(runs.size(), 10u);
  EXPECT_EQ(runs[0].rel, "head/seed0/r");
  EXPECT_EQ(report::key_value(runs[0], "path:0"), "head");
  EXPECT_EQ(report::key_value(runs[0], "path:1"), "seed0");
  EXPECT_EQ(report::key_value(runs[0], "path:7"), "");
  EXPECT_EQ(report::key_value(runs[0], "data.source.per_class"), "10");
  EXPECT_DOUBLE_EQ(runs[0].trainable_params, 5130);  // from log.txt
  EXPECT_DOUBLE_EQ(runs[0].model_params, 11175370);
  EXPECT_DOUBLE_EQ(runs[0].last_acc, 61);
  EXPECT_EQ(runs[2].kind, "probe");
  EXPECT_DOUBLE_EQ(runs[2].selected_acc, 55.5);
  EXPECT_DOUBLE_EQ(runs[2].trainable_params, 512 * 10 + 10);
  EXPECT_EQ(runs[2].config.at("data.source.per_class"), "10");
  EXPECT_THROW(report::key_value(runs[0], "path:x"), core::UsageError);

  auto p = report::pivot_runs(runs, {"path:0"}, "data.source.per_class");
  EXPECT_EQ(p.columns, (std::vector<std::string>{"10", "100"}));
  EXPECT_EQ(p.rows, (std::vector<std::string>{"head", "probe", "scratch"}));
  auto md = report::pivot_markdown(p, {"path:0"}, {"trainable", "selected"}, "scratch");
  // head at 10 labels: mean 62, std sqrt(8) = 2.83, scratch's mean 82: -20.00; at 100: 72 vs 91
  EXPECT_NE(md.find("| head | 5,130 (0.0459 %) | 62.00 ± 2.83 (-20.00) | 72.00 ± 2.83 (-19.00) |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| probe | 5,130 | 55.50 (-26.50) (1 of 2 runs) | 86.50 (-4.50) (1 of 2 runs) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| scratch | 11,175,370 (100 %) | 82.00 ± 2.83 | 91.00 ± 1.41 |"), std::string::npos) << md;
  EXPECT_THROW(report::pivot_markdown(p, {"path:0"}, {"selected"}, "nope"), core::UsageError);
  // the chart: the pivot values on x, one line per row, std error bars for the two-seed rows
  auto svg = report::pivot_chart_svg(p, {"selected"}, "t");
  for (auto s : {">10<", ">100<", ">head<", ">probe<", ">scratch<"}) EXPECT_NE(svg.find(s), std::string::npos) << s;
  // the last column, and a baseline in the plain table
  auto groups = report::group_runs(runs, {"path:0"});
  auto plain = report::markdown_table(groups, {"path:0"}, {"selected", "last"}, "scratch");
  EXPECT_NE(plain.find("| head | 4/4 | 67.00 ± 6.22 (-19.50) | 63.00 ± 2.31 |"), std::string::npos) << plain;
  EXPECT_THROW(report::markdown_table(groups, {"path:0"}, {"selectd"}), core::UsageError);

  // the command: table, results.md / results.csv and the chart
  auto r = run_cli({"report", root + "/n10", root + "/n100", "--by=path:0", "--pivot=data.source.per_class",
                    "--columns=trainable,selected", "--baseline=scratch", "--chart=" + root + "/study.svg",
                    "--out=" + root, "--curves=false"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| head | 5,130 (0.0459 %) | 62.00 ± 2.83 (-20.00) |"), std::string::npos) << r.out;
  EXPECT_NE(core::read_file(root + "/results.md").find("| probe | 5,130 | 55.50 (-26.50) (1 of 2 runs) |"), std::string::npos);
  EXPECT_NE(core::read_file(root + "/results.csv").find("head,10,2,2,62.0000,2.8284"), std::string::npos)
      << core::read_file(root + "/results.csv");
  EXPECT_EQ(core::read_file(root + "/study.svg").rfind("<svg", 0), 0u);
  auto bad = run_cli({"report", root + "/n10", "--columns=selectd"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("did you mean 'selected'"), std::string::npos) << bad.err;
  auto no_pivot = run_cli({"report", root + "/n10", "--chart=" + root + "/x.svg"});
  EXPECT_EQ(no_pivot.exit_code, 2);
}

// Pivot columns ascend whatever order the run directories sort in: numbers as numbers (0.003 <
// 0.01, 5 < 10), other values naturally (15/train < 100/train); --pivot_order puts values first.
TEST(Report, PivotColumnsAscendNumericallyNaturallyOrAsGiven) {
  auto columns = [](std::vector<std::string> values, std::vector<std::string> order = {}) {
    std::vector<report::RunRecord> runs;
    for (auto& v : values) {
      report::RunRecord r;
      r.dir = r.rel = v;
      r.status = "completed";
      r.config = {{"run.seed", "0"}, {"k", v}, {"method", "m"}};
      runs.push_back(r);
    }
    return report::pivot_runs(runs, {"method"}, "k", order).columns;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(columns({"100", "10", "0", "5"}), (V{"0", "5", "10", "100"}));  // path order would be 0, 10, 100, 5
  EXPECT_EQ(columns({"0.01", "0.1", "0.003", "1e-4"}), (V{"1e-4", "0.003", "0.01", "0.1"}));
  EXPECT_EQ(columns({"75/train", "15/train", "100/train", "30/train"}), (V{"15/train", "30/train", "75/train", "100/train"}));
  EXPECT_EQ(columns({"100", "10", "0", "5"}, {"1", "5", "10", "0"}), (V{"5", "10", "0", "100"}));
  EXPECT_EQ(columns({"b", "a10", "a9"}), (V{"a9", "a10", "b"}));
  // a partial cell says how many runs it has: seeds 0,1 at k = 2, seed 0 alone at k = 1
  std::vector<report::RunRecord> runs;
  for (auto [k, seed, acc] : std::vector<std::tuple<const char*, const char*, double>>{
           {"1", "0", 50}, {"1", "1", 60}, {"2", "0", 70}}) {
    report::RunRecord r;
    r.dir = r.rel = std::string(k) + "/" + seed;
    r.status = "completed";
    r.selected_acc = acc;
    r.config = {{"run.seed", seed}, {"k", k}, {"method", "m"}};
    runs.push_back(r);
  }
  auto md = report::pivot_markdown(report::pivot_runs(runs, {"method"}, "k"), {"method"}, {"selected"});
  EXPECT_NE(md.find("| m | 55.00 ± 7.07 | 70.00 (1 of 2 runs) |"), std::string::npos) << md;
  // the command checks --pivot_order has a --pivot
  auto bad = run_cli({"report", testutil::fresh_dir("report_pivot_order"), "--pivot_order=1,2"});
  EXPECT_EQ(bad.exit_code, 2);
}

TEST(Report, NiceTicksCoverRange) {
  struct Range {
    double lo, hi;
    int n;
  };
  std::vector<Range> ranges{{0.3, 9.7, 6}, {0, 100, 6}, {-3.2, 7.9, 5}, {-250, -13, 6}, {0.000123, 0.000871, 4},
                            {12345, 98765, 8}, {0.999, 1.001, 6}, {-1e-3, 1e-3, 3}, {60, 61, 2}, {0, 1, 11}};
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(-4, 4);
  for (int i = 0; i < 40; ++i) {  // random spans over eight decades, anywhere around zero
    double span = std::pow(10.0, u(rng)), lo = u(rng) * span;
    ranges.push_back({lo, lo + span, 2 + i % 9});
  }
  for (const auto& r : ranges) {
    SCOPED_TRACE(testing::Message() << "[" << r.lo << ", " << r.hi << "] n " << r.n);
    auto t = report::nice_ticks(r.lo, r.hi, r.n);
    ASSERT_GE(t.size(), 2u);
    const double step = t[1] - t[0];
    ASSERT_GT(step, 0);
    // covers the range, and tightly: no tick beyond the first one outside it on either side
    EXPECT_LE(t.front(), r.lo);
    EXPECT_GE(t.back(), r.hi);
    EXPECT_GT(t.front(), r.lo - step * (1 + 1e-9));
    EXPECT_LT(t.back(), r.hi + step * (1 + 1e-9));
    // evenly spaced, at multiples of the step
    for (size_t k = 1; k < t.size(); ++k) EXPECT_NEAR(t[k] - t[k - 1], step, 1e-9 * step) << k;
    for (double v : t) EXPECT_NEAR(v / step, std::round(v / step), 1e-6) << v;
    // a nice step: 1, 2, 2.5 or 5 times a power of ten, and about n ticks (at most n + 1)
    const double mag = std::pow(10.0, std::floor(std::log10(step) + 1e-9)), m = step / mag;
    EXPECT_TRUE(std::fabs(m - 1) < 1e-9 || std::fabs(m - 2) < 1e-9 || std::fabs(m - 2.5) < 1e-9 ||
                std::fabs(m - 5) < 1e-9)
        << "step " << step;
    EXPECT_LE(t.size(), static_cast<size_t>(r.n) + 1);
    // the smallest nice step that gives at most n - 1 intervals over the span (no coarser than needed)
    const double raw = (r.hi - r.lo) / std::max(1, r.n - 1);
    const double finer = m < 1.5 ? 0.5 * mag : m < 2.25 ? mag : m < 3 ? 2 * mag : 2.5 * mag;
    EXPECT_LE(raw, step * (1 + 1e-9));
    EXPECT_LT(finer, raw * (1 + 1e-9)) << "step " << step << " is coarser than needed";
  }
  // an empty range is its one value
  EXPECT_EQ(report::nice_ticks(3, 3, 6), std::vector<double>{3});
  // exact ends stay ticks: [0, 100] in steps of 20
  EXPECT_EQ(report::nice_ticks(0, 100, 6), (std::vector<double>{0, 20, 40, 60, 80, 100}));
}

namespace {
std::vector<std::string> sweep_args(const std::string& out, const std::string& steps) {
  auto root = testutil::prepared_digits_root();
  return {"sweep", "--out=" + out, "--grid", "method=source_only,dann", "--seeds=0,1", "--run.threads=1",
          "--data.source.dataset=uci-digits", "--data.source.root=" + root,
          "--data.source.transform=resize(28), normalize(0.5, 0.5)", "--data.source.batch_size=16",
          "--data.source.workers=1", "--data.target.dataset=uci-digits", "--data.target.root=" + root,
          "--data.target.split=val", "--data.target.transform=resize(28), normalize(0.5, 0.5)",
          "--data.target.batch_size=16", "--data.target.workers=1", "--model.backbone=lenet",
          "--model.in_channels=1", "--train.steps=" + steps, "--train.eval_every=3", "--eval.workers=1"};
}

int count_matches(const std::string& text, const std::string& re) {
  std::regex r(re);
  return static_cast<int>(std::distance(std::sregex_iterator(text.begin(), text.end(), r), std::sregex_iterator()));
}
}  // namespace

TEST(Sweep, RunsSkipsCompletedAndResumesInterrupted) {
  auto out = testutil::fresh_dir("sweep_run");
  auto args = sweep_args(out, "6");
  auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(count_matches(r.out, "start  "), 4) << r.out;
  EXPECT_NE(r.out.find("| source_only | 2/2 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| dann | 2/2 |"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(out + "/results.md"));
  EXPECT_TRUE(fs::exists(out + "/results.csv"));
  auto state = nlohmann::json::parse(core::read_file(out + "/sweep.json"));
  ASSERT_EQ(state["jobs"].size(), 4u);
  for (auto& j : state["jobs"]) EXPECT_EQ(j["status"], "completed");
  auto seconds = [&](const std::string& text) {  // run name -> the seconds sweep.json records for it
    std::map<std::string, double> m;
    auto state = nlohmann::json::parse(text);
    for (auto& j : state["jobs"])
      if (j.contains("seconds")) m[j["name"].get<std::string>()] = j["seconds"].get<double>();
    return m;
  };
  auto t1 = seconds(core::read_file(out + "/sweep.json"));
  ASSERT_EQ(t1.size(), 4u);
  for (auto& [name, t] : t1) EXPECT_GT(t, 0) << name;

  // Interrupt one run: mark it as a killed run would be (status running, checkpoint kept) and
  // drop its final metrics; the rerun resumes exactly that one and skips the other three.
  auto job = sweep::Job{{{"method", "dann"}}, 1, sweep::combo_name({{"method", "dann"}})};
  auto st = sweep::inspect_job(out, job);
  ASSERT_EQ(st.kind, sweep::JobState::Completed);
  auto summary = nlohmann::json::parse(core::read_file(st.dir + "/summary.json"));
  summary["status"] = "running";
  std::ofstream(st.dir + "/summary.json") << summary.dump();
  EXPECT_EQ(sweep::inspect_job(out, job).kind, sweep::JobState::Resumable);
  auto r2 = run_cli(args);
  ASSERT_EQ(r2.exit_code, 0) << r2.out << r2.err;
  EXPECT_NE(r2.out.find("3 already completed, 1 to run"), std::string::npos) << r2.out;
  EXPECT_EQ(count_matches(r2.out, "resume "), 1) << r2.out;
  EXPECT_EQ(count_matches(r2.out, "start  "), 0) << r2.out;
  EXPECT_EQ(sweep::inspect_job(out, job).kind, sweep::JobState::Completed);
  // no new run directory was made for the resumed job
  int dirs = 0;
  for (auto& e : fs::directory_iterator(out + "/runs/" + job.name())) dirs += e.is_directory();
  EXPECT_EQ(dirs, 1);
  // the skipped runs keep the time the first call measured; the resumed one adds its second part
  auto t2 = seconds(core::read_file(out + "/sweep.json"));
  ASSERT_EQ(t2.size(), 4u);
  for (auto& [name, t] : t1) {
    if (name == job.name()) EXPECT_GT(t2[name], t) << name;
    else EXPECT_EQ(t2[name], t) << name;
  }

  // a third call has nothing to do; a different plan in the same directory is refused
  auto r3 = run_cli(args);
  ASSERT_EQ(r3.exit_code, 0) << r3.err;
  EXPECT_NE(r3.out.find("4 already completed, 0 to run"), std::string::npos) << r3.out;
  EXPECT_EQ(seconds(core::read_file(out + "/sweep.json")), t2);
  auto other = sweep_args(out, "7");
  auto r4 = run_cli(other);
  EXPECT_EQ(r4.exit_code, 2);
  EXPECT_NE(r4.err.find("different sweep"), std::string::npos) << r4.err;
  EXPECT_NE(r4.err.find("overrides"), std::string::npos) << r4.err;
  // more seeds of the same sweep: the four runs are kept, the new seed's two start
  auto more = sweep_args(out, "6");
  std::replace(more.begin(), more.end(), std::string("--seeds=0,1"), std::string("--seeds=0,1,2"));
  auto r5 = run_cli(more);
  ASSERT_EQ(r5.exit_code, 0) << r5.err;
  EXPECT_NE(r5.out.find("4 already completed, 2 to run"), std::string::npos) << r5.out;
  EXPECT_NE(r5.out.find("| dann | 3/3 |"), std::string::npos) << r5.out;
}

TEST(Sweep, BadGridValueFailsBeforeAnyRun) {
  auto out = testutil::fresh_dir("sweep_bad");
  auto args = sweep_args(out, "2");
  args.push_back("--grid");
  args.push_back("optim.lr=0.01,fast");
  auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("optim.lr"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out + "/runs"));
  auto r2 = run_cli({"sweep", "--grid", "optim.lrr=1,2"});
  EXPECT_EQ(r2.exit_code, 2);
  EXPECT_NE(r2.err.find("did you mean 'optim.lr'"), std::string::npos) << r2.err;
}

// --seed_keys: the listed options take each run's seed (every seed its own labelled subset); the
// report pools them like the seed.
TEST(Sweep, SeedKeysTakeTheSeedAndArePooledLikeIt) {
  sweep::Plan p;
  p.seeds = {0, 3};
  p.seed_keys = {"data.source.subset_seed"};
  auto jobs = sweep::expand(p);
  ASSERT_EQ(jobs.size(), 2u);
  auto a = sweep::child_args(p, jobs[1], "/tmp/s");
  EXPECT_NE(std::find(a.begin(), a.end(), "--run.seed=3"), a.end());
  EXPECT_NE(std::find(a.begin(), a.end(), "--data.source.subset_seed=3"), a.end());
  EXPECT_EQ(sweep::plan_to_json(p)["seed_keys"][0], "data.source.subset_seed");
  auto out = testutil::fresh_dir("sweep_seed_keys");
  auto args = sweep_args(out, "2");
  args.push_back("--seed_keys=data.source.subset_seed");
  args.push_back("--dry_run=true");
  args.push_back("--optim.momentum=0.03");  // a fixed float option passes on as written, not 0.0299…
  auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("--data.source.subset_seed=1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--optim.momentum=0.03 "), std::string::npos) << r.out;
  for (auto bad : {"--seed_keys=data.source.subset_sed", "--seed_keys=run.seed", "--seed_keys=method"}) {
    auto b = sweep_args(out, "2");
    b.push_back(bad);
    auto rb = run_cli(b);
    EXPECT_EQ(rb.exit_code, 2) << bad;
  }
  // the report pools an option that equals run.seed in every run
  auto root = testutil::fresh_dir("report_seed_keys");
  for (int s : {0, 1}) {
    fs::create_directories(root + "/r" + std::to_string(s));
    std::ofstream(root + "/r" + std::to_string(s) + "/config.resolved.ini")
        << "method = dann\n[run]\nseed = " << s << "\n[data.source]\nsubset_seed = " << s << "\n";
    std::ofstream(root + "/r" + std::to_string(s) + "/summary.json")
        << nlohmann::json{{"status", "completed"}, {"selected", {{"target_test_acc", 50 + s}}}}.dump();
  }
  EXPECT_TRUE(report::varying_keys(report::find_runs({root})).empty());
}

TEST(DataCheck, ExperimentConfigFindsMissingUndecodableAndOutOfRange) {
  auto d = testutil::fresh_dir("data_check_layout");
  // 3 classes × 3 PNG images written by PIL; list files in the TLlib "path label" layout
  std::string py = "import sys, numpy as np\nfrom PIL import Image\nd=sys.argv[1]\nimport os\n"
                   "os.makedirs(d+'/img', exist_ok=True)\n"
                   "for c in range(3):\n  for i in range(3):\n"
                   "    Image.fromarray((np.random.RandomState(c*10+i).rand(12,12,3)*255).astype('uint8')).save(f'{d}/img/{c}_{i}.png')\n";
  std::ofstream(d + "/make.py") << py;
  ASSERT_EQ(testutil::run_shell("/usr/bin/python3 " + d + "/make.py " + d), 0);
  std::ofstream(d + "/img/broken.png") << "this is not a png";
  {
    std::ofstream tr(d + "/train.txt"), ok(d + "/val_ok.txt"), bad(d + "/val_bad.txt");
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 3; ++i) {
        tr << "img/" << c << "_" << i << ".png " << c << "\n";
        ok << "img/" << c << "_" << i << ".png " << c << "\n";
      }
    bad << "img/0_0.png 0\nimg/missing.png 1\nimg/broken.png 2\nimg/1_1.png 7\n";
  }
  auto ini = [&](const std::string& val) {
    std::ofstream(d + "/exp_" + val + ".ini") << "[data.source]\ndataset = list_file\nroot = " << d
                                              << "\nsplit = train.txt\nval_split = " << val
                                              << ".txt\n[data.target]\ndataset = list_file\nroot = " << d
                                              << "\nsplit = train.txt\ntest_split = " << val << ".txt\nlabelled = false\n";
    return d + "/exp_" + val + ".ini";
  };
  auto good = run_cli({"data", "check", ini("val_ok")});
  EXPECT_EQ(good.exit_code, 0) << good.out << good.err;
  EXPECT_NE(good.out.find("source train (list_file, train.txt): 9 items, 0 unreadable, 0 labels out of range, 3 of 3"),
            std::string::npos)
      << good.out;
  auto bad = run_cli({"data", "check", ini("val_bad"), "--check.workers=1"});
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.out.find("missing.png"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("broken.png"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("label 7 out of range [0, 3)"), std::string::npos) << bad.out;
  EXPECT_NE(bad.err.find("problem(s) found"), std::string::npos) << bad.err;
}

// ------------------------------------------------------------------ issue 18 §3

namespace {
// A fake completed run of `dataset` at `root` with one seed.
void fake_data_run(const std::string& dir, const std::string& dataset, const std::string& root, int seed, double acc) {
  fs::create_directories(dir);
  std::ofstream(dir + "/config.resolved.ini") << "method = dann\n[run]\nseed = " << seed
                                              << "\n[data.source]\ndataset = " << dataset << "\nroot = " << root
                                              << "\n[data.target]\ndataset = mnist\nroot = /machine" << seed << "/data\n";
  nlohmann::json s{{"status", "completed"}, {"selected", {{"target_test_acc", acc}}}, {"oracle", {{"target_test_acc", acc}}}};
  std::ofstream(dir + "/summary.json") << s.dump();
  std::ofstream(dir + "/metrics.jsonl") << R"({"step":2,"ce":1.5,"loss":1.5})" << "\n";
}
}  // namespace

// 4: runs on other data (a dataset kind's root) are other experiments, not seeds; two runs of one
// seed are one replicate (the later counts). The root of a prepared name stays incidental.
TEST(Report, DataRootsOfDatasetKindsSplitGroupsAndOneSeedIsOneReplicate) {
  auto root = testutil::fresh_dir("report_roots");
  fake_data_run(root + "/a/20260101-000000-000001", "npy", "/data/photos.npy", 0, 80);
  fake_data_run(root + "/a/20260101-000000-000002", "npy", "/data/photos.npy", 1, 82);
  fake_data_run(root + "/b/20260101-000000-000001", "npy", "/data/sketches.npy", 0, 40);
  fake_data_run(root + "/b/20260101-000000-000002", "npy", "/data/sketches.npy", 0, 50);  // seed 0 again
  auto runs = report::find_runs({root});
  ASSERT_EQ(runs.size(), 4u);
  auto keys = report::varying_keys(runs);
  ASSERT_EQ(keys, std::vector<std::string>{"data.source.root"});  // not data.target.root (prepared name)
  auto groups = report::group_runs(runs, keys);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].completed, 2);
  EXPECT_DOUBLE_EQ(groups[0].selected.mean, 81.0);
  EXPECT_EQ(groups[1].completed, 1);
  EXPECT_EQ(groups[1].same_seed, 1);
  EXPECT_DOUBLE_EQ(groups[1].selected.mean, 50.0);  // the later run of seed 0
  EXPECT_DOUBLE_EQ(groups[1].selected.std, 0.0);
  auto md = report::markdown_table(groups, keys);
  EXPECT_NE(md.find("| /data/sketches.npy | 1/2 (1 same-seed run not counted) | 50.00 |"), std::string::npos) << md;
  // 14: one logged step (train.steps < train.log_every) still draws the loss curve
  bool loss_drawn = false;
  for (auto& [suffix, svg] : report::learning_curve_svgs(groups[0]))
    if (suffix == "loss") loss_drawn = svg.find("<circle") != std::string::npos;
  EXPECT_TRUE(loss_drawn);
  // 14: report takes --run.threads like every command
  auto r = run_cli({"report", root, "--run.threads=1", "--curves=false"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// 3: a second sweep into a directory another sweep holds is refused before it starts anything
TEST(Sweep, SecondSweepIntoOneDirectoryIsRefused) {
  auto out = testutil::fresh_dir("sweep_locked");
  auto lock = core::FileLock::acquire(out + "/sweep.lock", "test");  // this process plays the first sweep
  auto r = run_cli(sweep_args(out, "2"));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("sweep directory '" + out + "' is in use by another process (pid " + std::to_string(::getpid())),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out + "/runs"));
  EXPECT_FALSE(fs::exists(out + "/sweep.json"));
}

// 2: SIGTERM (Slurm pre-emption) while runs are queued: the running one checkpoints, no other starts,
// and the sweep exits instead of waiting forever for starts it has blocked
TEST(Sweep, SigtermWithQueuedRunsStopsAfterTheRunningOne) {
  auto out = testutil::fresh_dir("sweep_sigterm");
  auto p = testutil::start_cli(sweep_args(out, "3000"));
  std::atomic<bool> done{false};
  std::thread watchdog([&] {  // a hang ends the test as a failure, not the suite
    for (int i = 0; i < 1800 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!done) ::kill(p.pid, SIGKILL);
  });
  bool started = false;
  for (int i = 0; i < 600 && !started; ++i) {  // wait for the first run to be under way
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream in(p.out_path);
    std::stringstream ss;
    ss << in.rdbuf();
    started = ss.str().find("start  ") != std::string::npos;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ::kill(p.pid, SIGTERM);
  auto r = testutil::wait_cli(p);
  done = true;
  watchdog.join();
  ASSERT_TRUE(started);
  EXPECT_EQ(r.signal, 0) << "the sweep hung after SIGTERM (killed by the watchdog)\n" << r.out << r.err;
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("run(s) not started"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(count_matches(r.out, "start  "), 1) << r.out;
}

// 6: run.threads from a --config file reaches the runs (the sweep's own default used to replace it)
TEST(Sweep, ConfigRunThreadsReachTheRuns) {
  auto out = testutil::fresh_dir("sweep_threads");
  std::ofstream(out + "/base.ini") << "[run]\nthreads = 3\n";
  auto args = sweep_args(out + "/s", "1");
  args.erase(std::remove(args.begin(), args.end(), std::string("--run.threads=1")), args.end());
  args.push_back("--config=" + out + "/base.ini");
  for (auto& a : args)
    if (a == "--seeds=0,1") a = "--seeds=0";
  auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto job = sweep::Job{{{"method", "dann"}}, 0, sweep::combo_name({{"method", "dann"}})};
  auto st = sweep::inspect_job(out + "/s", job);
  ASSERT_FALSE(st.dir.empty());
  auto ini = core::read_file(st.dir + "/config.resolved.ini");
  EXPECT_NE(ini.find("\nthreads = 3\n"), std::string::npos) << ini;
}
