// Trainer end to end on real (tiny) data: UCI digits prepared from Debian's python3-sklearn,
// LeNet, a few steps. Smoke run and run-directory contents, resolved config re-running to itself,
// exact resume after SIGKILL, the NaN guard, oracle selection flagged, LR schedules; the
// trainer's steps one at a time (an SGD step against p - lr·grad, an evaluation against a hand
// count, the selection rule and its ties).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "core/fs.h"
#include "core/run_dir.h"
#include "core/runtime.h"
#include "data/loader.h"
#include "data/npy.h"
#include "support/testing.h"
#include "core/options.h"
#include "train/checkpoint.h"
#include "train/experiment.h"
#include "train/optimizers.h"
#include "train/options.h"
#include "train/schedule.h"
#include "train/trainer.h"

using namespace shiftlab;
namespace fs = std::filesystem;
using testutil::run_cli;

namespace {

std::vector<std::string> base_args(const std::string& runs, const std::string& method) {
  auto root = testutil::prepared_digits_root();
  return {"train",
          "--run.root=" + runs,
          "--run.name=t",
          "--run.threads=1",
          "--run.log_level=warn",
          "--data.source.dataset=uci-digits",
          "--data.source.root=" + root,
          "--data.source.transform=resize(28), normalize(0.5, 0.5)",
          "--data.source.batch_size=16",
          "--data.source.workers=1",
          "--data.target.dataset=uci-digits",
          "--data.target.root=" + root,
          "--data.target.split=val",
          "--data.target.transform=resize(28), normalize(0.5, 0.5)",
          "--data.target.batch_size=16",
          "--data.target.workers=2",
          "--model.backbone=lenet",
          "--model.in_channels=1",
          "--method=" + method,
          "--train.steps=12",
          "--train.eval_every=4",
          "--train.log_every=2",
          "--eval.workers=1",
          "--optim.lr=0.01"};
}

}  // namespace

TEST(Train, SmokeRunWritesAFullRunDirectory) {
  auto runs = testutil::fresh_dir("train_smoke");
  auto r = run_cli(base_args(runs, "dann"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto run = testutil::only_run(runs);
  for (auto f : {"config.resolved.ini", "command.txt", "env.json", "log.txt", "metrics.jsonl", "metrics.csv",
                 "summary.json", "latest.pt", "best.pt"})
    EXPECT_TRUE(fs::exists(run + "/" + f)) << f;
  auto s = testutil::run_summary(run);
  EXPECT_EQ(s["status"], "completed");
  EXPECT_EQ(s["steps"], 12);
  EXPECT_FALSE(s["oracle_selected"].get<bool>());
  EXPECT_TRUE(s["selected"]["target_test_acc"].is_number());
  EXPECT_TRUE(s["oracle"]["target_test_acc"].is_number());
  EXPECT_GE(s["oracle"]["target_test_acc"].get<double>(), s["selected"]["target_test_acc"].get<double>());
  // every loss term of DANN is logged
  auto rows = testutil::run_metrics(run);
  ASSERT_FALSE(rows.empty());
  EXPECT_TRUE(rows[0].contains("ce"));
  EXPECT_TRUE(rows[0].contains("loss"));
  bool has_dann = false;
  for (auto it = rows[0].begin(); it != rows[0].end(); ++it) has_dann = has_dann || it.key().find("dann") != std::string::npos;
  EXPECT_TRUE(has_dann) << rows[0].dump();
  EXPECT_NE(r.out.find("target-test accuracy"), std::string::npos) << r.out;
  // host memory: every progress row has the resident size, the summary the peak (≥ each row)
  double max_rss = 0;
  std::ifstream jsonl(run + "/metrics.jsonl");
  for (std::string line; std::getline(jsonl, line);)
    if (auto row = nlohmann::json::parse(line); row.contains("images_per_s")) {
      ASSERT_TRUE(row.contains("rss_mib")) << row.dump();
      EXPECT_GT(row["rss_mib"].get<double>(), 10) << row.dump();
      max_rss = std::max(max_rss, row["rss_mib"].get<double>());
    }
  EXPECT_GT(max_rss, 0);
  EXPECT_GE(s["peak_rss_mib"].get<double>(), max_rss - 1);

  // the resolved config re-runs to the same resolved config
  auto runs2 = testutil::fresh_dir("train_rerun");
  auto r2 = run_cli({"train", "--config", run + "/config.resolved.ini", "--run.root=" + runs2});
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  auto run2 = testutil::only_run(runs2);
  auto a = core::read_file(run + "/config.resolved.ini");
  auto b = core::read_file(run2 + "/config.resolved.ini");
  auto strip_root = [](std::string s) {
    auto p = s.find("[run]");
    auto q = s.find("\n[", p + 1);
    return s.substr(0, p) + s.substr(q);
  };
  EXPECT_EQ(strip_root(a), strip_root(b));
  // and, being the same experiment with the same seed, gives the same result
  EXPECT_EQ(testutil::run_summary(run2)["selected"], s["selected"]);
}

TEST(Train, ResumeAfterSigkillEqualsUninterrupted) {
  auto runs_a = testutil::fresh_dir("train_resume_a");
  auto args = base_args(runs_a, "dann");
  testutil::CliOptions kill_at_6;
  kill_at_6.env["SHIFTLAB_TEST_FAIL_AT_STEP"] = "6";
  auto killed = testutil::run_cli_with(args, kill_at_6);
  EXPECT_EQ(killed.exit_code, 128 + 9) << killed.err;
  auto run = testutil::only_run(runs_a);
  EXPECT_EQ(testutil::run_summary(run)["status"], "running");
  auto resumed = run_cli({"train", "--resume", run, "--run.log_level=warn"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;

  auto runs_b = testutil::fresh_dir("train_resume_b");
  auto straight = run_cli(base_args(runs_b, "dann"));
  ASSERT_EQ(straight.exit_code, 0) << straight.err;
  auto run_b = testutil::only_run(runs_b);
  EXPECT_EQ(testutil::run_metrics(run), testutil::run_metrics(run_b));
  auto sa = testutil::run_summary(run), sb = testutil::run_summary(run_b);
  EXPECT_EQ(sa["selected"], sb["selected"]);
  EXPECT_EQ(sa["last"], sb["last"]);
  EXPECT_EQ(sa["oracle"], sb["oracle"]);
}

TEST(Train, NanLossStopsWithAnErrorNamingTheStep) {
  auto runs = testutil::fresh_dir("train_nan");
  auto args = base_args(runs, "source_only");
  args.push_back("--optim.lr=1000");
  args.push_back("--optim.momentum=0");
  auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("non-finite loss at step"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(testutil::run_summary(testutil::only_run(runs))["status"], "failed");
}

TEST(Train, OracleSelectionIsFlagged) {
  auto runs = testutil::fresh_dir("train_oracle");
  auto args = base_args(runs, "source_only");
  args.push_back("--train.select=oracle");
  args.push_back("--train.steps=4");
  auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto s = testutil::run_summary(testutil::only_run(runs));
  EXPECT_TRUE(s["oracle_selected"].get<bool>());
  EXPECT_NE(s["selected_note"].get<std::string>().find("ORACLE"), std::string::npos);
  EXPECT_EQ(s["selected"]["target_test_acc"], s["oracle"]["target_test_acc"]);
}

TEST(Train, BadInputsAreOneLineErrors) {
  auto runs = testutil::fresh_dir("train_bad");
  auto args = base_args(runs, "dannn");
  auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("dannn"), std::string::npos) << r.err;
  args = base_args(runs, "dann");
  args.push_back("--data.target.root=/nonexistent");
  r = run_cli(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;  // data not prepared there: a usage error that says what to run
  EXPECT_NE(r.err.find("/nonexistent"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(Schedule, Formulas) {
  train::ScheduleOptions o;
  o.name = "annealing";
  EXPECT_DOUBLE_EQ(train::lr_factor(o, 0, 100), 1.0);
  EXPECT_NEAR(train::lr_factor(o, 50, 100), std::pow(1 + 10 * 0.5, -0.75), 1e-12);
  o.name = "cosine";
  EXPECT_NEAR(train::lr_factor(o, 50, 100), 0.5, 1e-12);
  EXPECT_NEAR(train::lr_factor(o, 100, 100), 0.0, 1e-12);
  o.name = "step";
  o.step_size = 10;
  o.gamma = 0.5;
  EXPECT_DOUBLE_EQ(train::lr_factor(o, 25, 100), 0.25);
  o.name = "warmup_cosine";
  o.warmup = 10;
  EXPECT_DOUBLE_EQ(train::lr_factor(o, 4, 110), 0.5);
  EXPECT_NEAR(train::lr_factor(o, 60, 110), 0.5, 1e-12);
  o.name = "nope";
  EXPECT_THROW(train::lr_factor(o, 60, 110), core::UsageError);
}

TEST(Train, WeightsExportRoundTrip) {
  auto runs = testutil::fresh_dir("train_export");
  auto args = base_args(runs, "source_only");
  args.push_back("--train.steps=4");
  ASSERT_EQ(run_cli(args).exit_code, 0);
  auto run = testutil::only_run(runs);
  auto out = runs + "/lenet.safetensors";
  auto r = run_cli({"weights", "export", run, out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // a fresh run that starts from the exported weights has the trained backbone exactly: its first
  // evaluation before any step equals... we check more directly: Python reads the file (its own
  // parser) and finds LeNet's TLlib names with the trained values' shapes
  std::string py;
  int rc = testutil::run_shell("/usr/bin/python3 " + testutil::source_path("scripts/safetensors_np.py") + " dump " + out, &py);
  ASSERT_EQ(rc, 0) << py;
  for (auto name : {"0.weight", "0.bias", "3.weight", "8.weight", "8.bias"}) EXPECT_NE(py.find(name), std::string::npos) << py;
  // the exported backbone loads strictly as pretrained weights of a new run, whose own export
  // (before any step) then holds exactly the same tensors
  auto runs2 = testutil::fresh_dir("train_export_load");
  auto args2 = base_args(runs2, "source_only");
  args2.push_back("--train.steps=0");
  args2.push_back("--model.weights=" + out);
  auto r2 = run_cli(args2);
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  auto out2 = runs2 + "/again.safetensors";
  auto r3 = run_cli({"weights", "export", testutil::only_run(runs2), out2, "--checkpoint=latest"});
  ASSERT_EQ(r3.exit_code, 0) << r3.err;
  std::string cmp;
  rc = testutil::run_shell("cd " + testutil::source_path("scripts") +
                               " && /usr/bin/python3 -c 'import sys, numpy as np, safetensors_np as s; "
                               "a, _ = s.load(sys.argv[1]); b, _ = s.load(sys.argv[2]); "
                               "assert sorted(a) == sorted(b), (sorted(a), sorted(b)); "
                               "assert all(np.array_equal(a[k], b[k]) for k in a); print(len(a))' " +
                               out + " " + out2,
                           &cmp);
  EXPECT_EQ(rc, 0) << cmp;
}

TEST(Train, TwoPhaseRecipe) {
  auto runs = testutil::fresh_dir("train_two_phase");
  auto args = base_args(runs, "source_only");
  for (auto a : {"--train.phase1_steps=4", "--train.steps=4", "--model.freeze=top:1", "--schedule.warmup=2"})
    args.push_back(a);
  auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto run = testutil::only_run(runs);
  EXPECT_TRUE(fs::exists(run + "/best_phase1.pt"));
  EXPECT_TRUE(fs::exists(run + "/best.pt"));
  // both phases logged, phase 1 first; the selected checkpoint is a phase-2 one
  std::vector<int> phases;
  for (auto& row : testutil::run_metrics(run))
    if (row.contains("phase")) phases.push_back(row["phase"].get<int>());
  ASSERT_FALSE(phases.empty());
  EXPECT_EQ(phases.front(), 1);
  EXPECT_EQ(phases.back(), 2);
  EXPECT_TRUE(std::is_sorted(phases.begin(), phases.end()));
  EXPECT_EQ(testutil::run_summary(run)["selected"]["phase"], 2);
  auto log = core::read_file(run + "/log.txt");
  EXPECT_NE(log.find("phase 1 done"), std::string::npos);

  // phase 1 trains the head alone. The starting model is that of a 0-step run of the same
  // experiment and seed; against it, after phase 1 (best_phase1.pt, step 4) every backbone tensor
  // is bit-identical and every head parameter changed. Phase 2 (model.freeze = top:1) then trains
  // LeNet's deepest group (fc, "8.") with the head, and conv1/conv2 stay as they started.
  auto runs0 = testutil::fresh_dir("train_two_phase_start");
  auto args0 = base_args(runs0, "source_only");
  args0.push_back("--train.steps=0");
  auto r0 = run_cli(args0);
  ASSERT_EQ(r0.exit_code, 0) << r0.err;
  auto run0 = testutil::only_run(runs0);
  core::Config cfg(train::experiment_schema());
  core::apply_ini_file(cfg, run + "/config.resolved.ini");
  auto tensors_of = [&](const std::string& ckpt) {
    torch::manual_seed(1234);  // another initialisation than the run's: every value comes from the file
    auto m = train::build_model(cfg, 10);
    train::CheckpointParts parts{m.ptr().get(), nullptr, nullptr, {}};
    train::load_checkpoint(ckpt, parts, false);
    std::map<std::string, torch::Tensor> t;
    for (auto& kv : m->named_parameters(true)) t[kv.key()] = kv.value().detach().clone();
    for (auto& kv : m->named_buffers(true)) t[kv.key()] = kv.value().detach().clone();
    return t;
  };
  auto start = tensors_of(run0 + "/latest.pt");
  auto phase1 = tensors_of(run + "/best_phase1.pt");
  auto phase2 = tensors_of(run + "/best.pt");
  ASSERT_EQ(start.size(), phase1.size());
  int backbone = 0, head = 0;
  for (auto& [name, t0] : start) {
    ASSERT_TRUE(phase1.count(name)) << name;
    const bool in_backbone = name.rfind("backbone.", 0) == 0;
    if (in_backbone) {
      ++backbone;
      EXPECT_TRUE(torch::equal(phase1[name], t0)) << name << " changed in the head-only phase 1";
      const bool top_group = name.rfind("backbone.8.", 0) == 0;
      EXPECT_EQ(!torch::equal(phase2[name], t0), top_group)
          << name << (top_group ? " did not train in phase 2 (freeze top:1)" : " changed though frozen in phase 2");
    } else {
      ++head;
      EXPECT_FALSE(torch::equal(phase1[name], t0)) << name << " did not train in phase 1";
      EXPECT_FALSE(torch::equal(phase2[name], phase1[name])) << name << " did not train in phase 2";
    }
  }
  EXPECT_EQ(backbone, 6);  // LeNet: 0, 3, 8 weight + bias
  EXPECT_EQ(head, 2);      // head.weight, head.bias
}

// ---------------------------------------------------------------- the trainer's steps, one at a time

namespace {

// The experiment of base_args (LeNet on UCI digits) built in this process, with its run directory.
struct TinyRun {
  core::Config cfg;
  train::Experiment exp;
  core::RunDir run;
};

TinyRun tiny_run(const std::string& runs, const std::string& method, const std::vector<std::string>& extra) {
  auto args = base_args(runs, method);
  args.erase(args.begin());  // the command name
  args.insert(args.end(), extra.begin(), extra.end());
  auto cfg = core::parse_args(train::experiment_schema(), args);
  core::seed_everything(0);
  auto exp = train::build_experiment(cfg, torch::Device(torch::kCPU));
  auto run = core::RunDir::create(runs, "t");
  return {std::move(cfg), std::move(exp), std::move(run)};
}

// Accuracy (%) of `model` on `ds` counted here: eval mode, argmax of the logits against the labels.
double hand_accuracy(models::ClassifierImpl& model, const data::DatasetPtr& ds) {
  torch::NoGradGuard ng;
  const bool was = model.is_training();
  model.train(false);
  data::LoaderOptions lo;
  lo.batch_size = 64;
  lo.workers = 1;
  lo.shuffle = false;
  lo.drop_last = false;
  data::Loader loader(ds, lo);
  loader.start_epoch(0);
  data::Batch b;
  int64_t right = 0, n = 0;
  while (loader.next(b)) {
    auto pred = model.forward(b.images).logits.argmax(1);
    right += pred.eq(b.labels).sum().item<int64_t>();
    n += b.labels.size(0);
  }
  model.train(was);
  return 100.0 * static_cast<double>(right) / static_cast<double>(n);
}

void set_cpu_rng_state(const torch::Tensor& st) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(st);
}

}  // namespace

TEST(TrainerSteps, OneSgdStepIsParameterMinusLrTimesGradient) {
  auto runs = testutil::fresh_dir("trainer_sgd_step");
  auto t = tiny_run(runs, "source_only", {"--optim.momentum=0", "--optim.weight_decay=0", "--optim.lr=0.05"});
  train::Trainer trainer(t.exp, t.cfg, t.run);
  ASSERT_EQ(trainer.setup(false), 0);
  auto& model = *t.exp.model;
  // the batch the step takes (the same loader options give the same order) and, with the same
  // dropout masks (the RNG state restored), the gradient of the source cross-entropy computed here
  data::ForeverIterator it(t.exp.source, t.exp.source_loader);
  auto b = it.next();
  const auto rng = train::cpu_rng_state();
  model.train(true);
  model.zero_grad();
  auto ce = torch::nn::functional::cross_entropy(model.forward(b.images).logits, b.labels);
  ce.backward();
  std::vector<torch::Tensor> params, before, grad;
  for (auto& p : model.parameters()) {
    if (!p.requires_grad()) continue;
    params.push_back(p);
    before.push_back(p.detach().clone());
    grad.push_back(p.grad().detach().clone());
  }
  model.zero_grad();
  set_cpu_rng_state(rng);

  auto r = trainer.train_step(0, 12);
  EXPECT_NEAR(r.ce, ce.item<double>(), 1e-6);
  EXPECT_EQ(r.loss, r.ce);  // source only: no other term
  EXPECT_EQ(r.source_images, 16);
  EXPECT_EQ(r.target_images, 0);
  ASSERT_FALSE(params.empty());
  double moved = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    auto want = before[i] - 0.05 * grad[i];  // constant schedule: lr_factor = 1
    EXPECT_TRUE(torch::allclose(params[i].detach(), want, 1e-5, 1e-7))
        << "parameter " << i << ": max diff " << (params[i].detach() - want).abs().max().item<double>();
    moved = std::max(moved, (params[i].detach() - before[i]).abs().max().item<double>());
  }
  EXPECT_GT(moved, 0.0);
  // the head's learning rate is the one the optimizer used
  EXPECT_DOUBLE_EQ(trainer.optimizer().param_groups().back().options().get_lr(), 0.05);
}

TEST(TrainerSteps, EvaluationMatchesAHandCountAndSelectionKeepsTheBest) {
  auto runs = testutil::fresh_dir("trainer_eval_select");
  auto t = tiny_run(runs, "source_only", {"--train.steps=8"});
  train::Trainer trainer(t.exp, t.cfg, t.run);
  ASSERT_EQ(trainer.setup(false), 0);
  std::vector<double> source_val;
  for (int64_t done : {0, 4, 8}) {
    for (int64_t step = done - 4; done > 0 && step < done; ++step) trainer.train_step(step, 8);
    const double before_best = trainer.selection().best_score;
    auto ev = trainer.evaluate_and_select(done);
    EXPECT_EQ(ev["step"], done);
    EXPECT_NEAR(ev["source_val_acc"].get<double>(), hand_accuracy(*t.exp.model, t.exp.source_val), 1e-9);
    EXPECT_NEAR(ev["target_test_acc"].get<double>(), hand_accuracy(*t.exp.model, t.exp.target_test), 1e-9);
    EXPECT_TRUE(t.exp.model->is_training());
    // selected exactly when strictly better than every earlier evaluation
    const double sv = ev["source_val_acc"].get<double>();
    EXPECT_EQ(ev["selected"].get<bool>(), sv > before_best) << done;
    source_val.push_back(sv);
    trainer.checkpoint(done, ev["selected"].get<bool>());
  }
  const auto& sel = trainer.selection();
  const auto best = std::max_element(source_val.begin(), source_val.end());  // the first of equal maxima
  EXPECT_EQ(sel.best_step, 4 * (best - source_val.begin()));
  EXPECT_EQ(sel.best_eval["source_val_acc"].get<double>(), *best);
  EXPECT_EQ(sel.last_eval["step"], 8);
  // the checkpoints hold the step they were written at
  train::CheckpointParts none;
  EXPECT_EQ(train::load_checkpoint(t.run.file("latest.pt"), none, false)["step"], 8);
  EXPECT_EQ(train::load_checkpoint(t.run.file("best.pt"), none, false)["step"], sel.best_step);
}

TEST(TrainerSteps, SelectionRulesAndTies) {
  auto ev = [](double sv, double tt, double ent) {
    return nlohmann::json{{"source_val_acc", sv}, {"target_test_acc", tt}, {"target_entropy", ent}};
  };
  train::Selection s;
  // source_val: 50, 70, 70 (a tie: the earlier stays), 60
  EXPECT_TRUE(s.update(ev(50, 30, 1.0), 10, "source_val"));
  EXPECT_TRUE(s.update(ev(70, 20, 0.9), 20, "source_val"));
  EXPECT_FALSE(s.update(ev(70, 40, 0.8), 30, "source_val"));
  EXPECT_FALSE(s.update(ev(60, 40, 0.7), 40, "source_val"));
  EXPECT_EQ(s.best_step, 20);
  EXPECT_EQ(s.best_score, 70);
  EXPECT_EQ(s.best_eval["target_test_acc"], 20);
  EXPECT_EQ(s.evals_since_best, 2);
  EXPECT_EQ(s.oracle_step, 30);  // the oracle's tie (40 at steps 30 and 40) keeps the earlier too
  EXPECT_EQ(s.oracle_best, 40);
  EXPECT_EQ(s.last_eval["source_val_acc"], 60);
  // the other rules: minus the target entropy, the target-test accuracy
  EXPECT_EQ(train::Selection::score(ev(50, 30, 0.25), "target_entropy"), -0.25);
  EXPECT_EQ(train::Selection::score(ev(50, 30, 0.25), "oracle"), 30);
  train::Selection e;
  EXPECT_TRUE(e.update(ev(90, 10, 0.5), 1, "target_entropy"));
  EXPECT_TRUE(e.update(ev(10, 10, 0.2), 2, "target_entropy"));
  EXPECT_FALSE(e.update(ev(99, 10, 0.3), 3, "target_entropy"));
  EXPECT_EQ(e.best_step, 2);
  // a new phase: the next evaluation is selected whatever its score
  e.reset_best();
  EXPECT_EQ(e.evals_since_best, 0);
  EXPECT_TRUE(e.update(ev(0, 0, 9.0), 1, "target_entropy"));
  EXPECT_EQ(e.best_step, 1);
  EXPECT_EQ(e.oracle_step, 1);  // the oracle spans the phases: 10 at step 1 of phase 1 is not beaten by 0
}

TEST(Optimizers, RegistryBuildsTheNamedAlgorithm) {
  // optim.name takes its choices from the registry
  auto schema = train::experiment_schema();
  EXPECT_EQ(schema.spec("optim.name").all_choices(), train::optimizer_registry().names());
  for (auto n : {"sgd", "adam", "adamw"}) EXPECT_TRUE(train::optimizer_registry().has(n)) << n;
  // one step on f(p) = sum(g * p) (gradient g) from p0, against each algorithm's first-step formula
  const auto p0 = torch::tensor({1.0, -2.0, 0.5}, torch::kDouble), g = torch::tensor({0.3, -0.1, 2.0}, torch::kDouble);
  const double lr = 0.1, wd = 0.01;
  auto step = [&](const std::string& name) {
    auto p = p0.clone().requires_grad_(true);
    train::OptimOptions o;
    o.name = name;
    o.momentum = 0;
    auto opt = train::make_optimizer({{{p}, lr, wd}}, o, 1.0);
    (p * g).sum().backward();
    opt->step();
    return p.detach();
  };
  const double eps = 1e-8;
  EXPECT_TRUE(torch::allclose(step("sgd"), p0 - lr * (g + wd * p0), 1e-12, 1e-14));  // L2 decay in the gradient
  auto ga = g + wd * p0;                                                            // Adam: L2 decay too
  EXPECT_TRUE(torch::allclose(step("adam"), p0 - lr * ga / (ga.abs() + eps), 1e-9, 1e-12));
  // AdamW: decoupled decay p (1 - lr wd), then the step on the plain gradient
  EXPECT_TRUE(torch::allclose(step("adamw"), p0 * (1 - lr * wd) - lr * g / (g.abs() + eps), 1e-9, 1e-12));
  train::OptimOptions bad;
  bad.name = "adamm";
  try {
    train::make_optimizer({}, bad, 1.0);
    ADD_FAILURE() << "no error";
  } catch (const core::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'adam'"), std::string::npos) << e.what();
  }
}

// issue 18 §3.12: the NaN guard names a checkpoint only when one exists (at an early step none
// does, and the message used to promise one anyway)
TEST(Train, NanLossMessageNamesOnlyACheckpointThatExists) {
  auto runs = testutil::fresh_dir("train_nan_ckpt");
  auto args = base_args(runs, "source_only");
  args.push_back("--optim.lr=1000");
  args.push_back("--optim.momentum=0");
  args.push_back("--train.eval_every=1000");  // no evaluation, hence no best.pt, before the loss blows up
  args.push_back("--train.steps=200");
  auto r = run_cli(args);
  ASSERT_EQ(r.exit_code, 1) << r.err;
  ASSERT_NE(r.err.find("non-finite loss at step"), std::string::npos) << r.err;
  auto run = testutil::only_run(runs);
  auto at = r.err.find("the last good checkpoint stays in ");
  if (at != std::string::npos) {
    auto path = testutil::chomp(r.err.substr(at + std::string("the last good checkpoint stays in ").size()));
    EXPECT_TRUE(fs::exists(path)) << "promised a checkpoint that does not exist: " << r.err;
  } else {
    EXPECT_NE(r.err.find("no checkpoint was written before it"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(run + "/latest.pt"));
    EXPECT_FALSE(fs::exists(run + "/best.pt"));
  }
}

// issue 18 §3.5: model.band_mode = learned_1x1 with 4-band data and a 3-band backbone trains (the
// band check compared the data with the backbone's conv, not with the mixer's input)
TEST(Train, LearnedBandMixerTakesTheDataBands) {
  auto d = testutil::fresh_dir("train_learned_1x1");
  std::vector<uint8_t> px(16 * 12 * 12 * 4);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i * 13) % 251);
  std::vector<int64_t> lab(16);
  for (size_t i = 0; i < lab.size(); ++i) lab[i] = static_cast<int64_t>(i % 2);
  data::write_npy(d + "/x.npy", "u1", {16, 12, 12, 4}, px.data(), px.size());
  data::write_npy(d + "/y.npy", "i8", {16}, lab.data(), lab.size() * 8);
  std::vector<std::string> args = {"train", "--run.root=" + d + "/runs", "--run.name=t", "--run.threads=1",
                                   "--run.log_level=error"};
  for (auto dom : {"source", "target"})
    for (auto kv : std::vector<std::string>{"dataset=npy", "root=" + d + "/x.npy", "labels=" + d + "/y.npy",
                                            "transform=resize(28)", "batch_size=8", "workers=0"})
      args.push_back(std::string("--data.") + dom + "." + kv);
  for (auto a : {"--model.backbone=lenet", "--model.in_channels=3", "--model.bands=4", "--model.band_mode=learned_1x1",
                 "--train.steps=2", "--train.eval_every=2", "--eval.workers=0", "--data.source.val_fraction=0.25",
                 "--data.target.test_fraction=0.25"})
    args.push_back(a);
  auto r = run_cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("bands"), std::string::npos) << r.err;
}
