// shiftlab train: one domain-adaptation experiment into a fresh run directory, or --resume one.
#include <iomanip>
#include <iostream>

#include "apps/command.h"
#include "apps/run_helpers.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/run_dir.h"
#include "core/runtime.h"
#include "train/dist.h"
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
  std::unique_ptr<core::FileLock> run_lock;  // one process writes a run directory (train, or one --resume)
  auto lock_run = [&] {
    run_lock = std::make_unique<core::FileLock>(
        core::FileLock::acquire(run->file("run.lock"), "run directory '" + run->path() + "'"));
  };
  if (resume) {
    run = std::make_unique<core::RunDir>(core::RunDir::open(resume_dir));
    cfg_holder = std::make_unique<core::Config>(
        config_of_run(*run, cli, {"run.threads", "run.log_level", "run.device", "eval.workers", "data.source.workers",
                                  "data.target.workers", "dist.env", "dist.backend", "dist.timeout",
                                  "dist.bucket_mb", "dist.overlap"}));
  } else {
    cfg_holder = std::make_unique<core::Config>(cli);
  }
  const core::Config& cfg = *cfg_holder;
  auto rt = core::runtime_options_from(cfg);

  // distributed: torchrun / shiftlab launch / srun environment -> one rank of a data-parallel job
  const auto dopt = train::dist_options_from(cfg);
  torch::Device device(torch::kCPU);
  auto comm = setup_runtime_maybe_distributed(cfg, rt, device);
  const bool main = !comm || comm->is_main();
  if (resume && main) lock_run();  // before anything is written: a second --resume of the run is refused
  if (!resume) {
    if (main) {
      run = std::make_unique<core::RunDir>(
          core::RunDir::create(cfg.get_string("run.root"), cfg.get_string("run.name")));
      lock_run();
      run->write_config(cfg, "train");
      run->write_command(argv);
    }
    if (comm) {
      auto path = comm->share(main ? run->path() : std::string(), "run directory");
      if (!main) run = std::make_unique<core::RunDir>(core::RunDir::attach(path));
    }
  }
  if (main) run->open_log();
  try {
    if (main) {
      auto env = core::environment_info(device);
      if (comm)
        env["distributed"] = {{"world_size", comm->world_size()}, {"backend", comm->backend()},
                              {"env", comm->env().describe()}, {"sync_bn", dopt.sync_bn},
                              {"bucket_mb", dopt.bucket_mb}, {"overlap", dopt.overlap}};
      run->write_env(env);
    }
    core::log_info("run directory: ", run->path());
    auto exp = train::build_experiment(cfg, device);
    if (comm) {
      // dropout masks differ between ranks (initial weights come from rank 0 anyway)
      if (comm->rank() > 0) core::seed_everything(rt.seed * 1000003 + static_cast<uint64_t>(comm->rank()));
      if (dopt.sync_bn) comm->enable_sync_batch_norm();
      core::log_info("distributed data parallel: ", comm->world_size(), " ranks (", comm->backend(),
                     "), global batch ", exp.source_loader.batch_size * comm->world_size(), " source + ",
                     exp.target_loader.batch_size * comm->world_size(), " target",
                     dopt.sync_bn ? ", SyncBatchNorm" : "");
    }
    core::log_info("source: ", exp.source->describe());
    core::log_info("target: ", exp.target->describe());
    core::log_info("method: ", exp.method->describe());
    train::Trainer trainer(exp, cfg, *run, comm.get());
    auto sum = trainer.fit(resume);
    if (!main) return 0;
    std::cout << "run: " << run->path() << "\n"
              << "method " << sum["method"].get<std::string>() << ": target-test accuracy"
              << (sum.value("protocol", "") == "transductive" ? " (TRANSDUCTIVE: on the target training images) " : " ")
              << pct(sum["selected"].value("target_test_acc", nlohmann::json())) << " (selected by "
              << sum["select"].get<std::string>() << " at step " << sum["selected"].value("step", -1)
              << ", source-val " << pct(sum["selected"].value("source_val_acc", nlohmann::json())) << ")"
              << "; oracle " << pct(sum["oracle"]["target_test_acc"]) << " (step " << sum["oracle"]["step"] << ")"
              << "; last " << pct(sum["last"].value("target_test_acc", nlohmann::json())) << "\n";
    return 0;
  } catch (const std::exception& e) {
    if (comm) comm->abandon();  // peers may be gone: exit without the orderly shutdown
    if (main) {
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
    }
    throw;
  }
}

SHIFTLAB_COMMAND("train", "train on labelled source + unlabelled target data (any DA method), or --resume a run",
                 train_schema, core::Positionals{"", 0, 0},
                 "Writes runs/<run.name>/<time>-<id>/ (config, log, metrics, summary.json, checkpoints) and prints\n"
                 "it. Methods combine with weights: --method='dann + 0.1*entropy'. See `shiftlab list methods`.\n"
                 "Distributed data parallel: run one process per rank under `shiftlab launch -n N -- train ...`,\n"
                 "torchrun or srun (RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT or SLURM_* variables); per-rank batch\n"
                 "sizes, rank 0 writes the run directory; see the dist.* options and README (Distributed).\n"
                 "\n"
                 "Examples:\n"
                 "  shiftlab data prepare mnist uci-digits\n"
                 "  shiftlab train --config configs/digits/mnist_to_uci.ini --method=dann --run.seed=1\n"
                 "  shiftlab train --config configs/digits/mnist_to_uci.ini --method='dann + 0.1*entropy' --optim.lr=0.02\n"
                 "  shiftlab train --resume runs/digits/<time>-<id>",
                 run_train);

}  // namespace shiftlab::apps
