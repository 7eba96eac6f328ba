// shiftlab train: one domain-adaptation experiment into a fresh run directory, or --resume one.
#include <iomanip>
#include <iostream>

#include "apps/command.h"
#include "apps/run_helpers.h"
#include "core/log.h"
#include "core/run_dir.h"
#include "core/runtime.h"
#include "train/experiment.h"
#include "train/options.h"
#include "train/trainer.h"

namespace shiftlab::apps {

static core::Schema train_schema() {
  auto s = train::experiment_schema();
  s.add_path("resume", "", "continue the run in this directory from its latest checkpoint").command_flag();
  return s;
}

static std::string pct(const nlohmann::json& v) {
  if (!v.is_number()) return "n/a";
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << v.get<double>() << " %";
  return os.str();
}

static int run_train(const core::Config& cli, const std::vector<std::string>& argv) {
  const auto resume_dir = cli.get_string("resume");
  bool resume = !resume_dir.empty();
  core::check_usage(!(resume && !cli.config_files.empty()), "--resume takes the run's own configuration; do not pass --config");
  std::unique_ptr<core::RunDir> run;
  std::unique_ptr<core::Config> cfg_holder;
  if (resume) {
    run = std::make_unique<core::RunDir>(core::RunDir::open(resume_dir));
    cfg_holder = std::make_unique<core::Config>(
        config_of_run(*run, cli, {"run.threads", "run.log_level", "run.device", "eval.workers", "data.source.workers",
                                  "data.target.workers"}));
  } else {
    cfg_holder = std::make_unique<core::Config>(cli);
  }
  const core::Config& cfg = *cfg_holder;
  auto rt = core::runtime_options_from(cfg);
  if (!resume) {
    run = std::make_unique<core::RunDir>(core::RunDir::create(cfg.get_string("run.root"), cfg.get_string("run.name")));
    run->write_config(cfg, "train");
    run->write_command(argv);
  }
  run->open_log();
  try {
    auto device = core::setup_runtime(rt);
    run->write_env(core::environment_info(device));
    core::log_info("run directory: ", run->path());
    auto exp = train::build_experiment(cfg, device);
    core::log_info("source: ", exp.source->describe());
    core::log_info("target: ", exp.target->describe());
    core::log_info("method: ", exp.method->describe());
    train::Trainer trainer(exp, cfg, *run);
    auto sum = trainer.fit(resume);
    std::cout << "run: " << run->path() << "\n"
              << "method " << sum["method"].get<std::string>() << ": target-test accuracy "
              << pct(sum["selected"].value("target_test_acc", nlohmann::json())) << " (selected by "
              << sum["select"].get<std::string>() << " at step " << sum["selected"].value("step", -1)
              << ", source-val " << pct(sum["selected"].value("source_val_acc", nlohmann::json())) << ")"
              << "; oracle " << pct(sum["oracle"]["target_test_acc"]) << " (step " << sum["oracle"]["step"] << ")"
              << "; last " << pct(sum["last"].value("target_test_acc", nlohmann::json())) << "\n";
    return 0;
  } catch (const std::exception& e) {
    // mark the run failed; when even that cannot be written (a full disk), the original error is
    // the one to report, and summary.json keeps its last complete version (atomic writes)
    try {
      auto s = run->read_summary();
      if (s.value("status", "") != "interrupted") {
        s["status"] = "failed";
        if (!s.contains("error")) s["error"] = e.what();
        run->write_summary(s);
      }
    } catch (const std::exception& e2) {
      core::log_to_file_only(core::str("could not mark the run failed: ", e2.what()));
    }
    throw;
  }
}

SHIFTLAB_COMMAND("train", "train on labelled source + unlabelled target data (any DA method), or --resume a run",
                 train_schema, core::Positionals{"", 0, 0},
                 "Example:\n  shiftlab train --config configs/digits/mnist_to_uci_dann.ini --run.seed=1\n"
                 "Methods combine with weights: --method='dann + 0.1*entropy'. See `shiftlab list methods`.",
                 run_train);

}  // namespace shiftlab::apps
