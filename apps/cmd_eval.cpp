// shiftlab eval: evaluate a run's checkpoint (best or latest) on its source-val and target-test
// domains, or on other data given as overrides (e.g. --data.target.dataset=mnist).
#include <iomanip>
#include <iostream>

#include "apps/command.h"
#include "apps/run_helpers.h"
#include "core/log.h"
#include "core/run_dir.h"
#include "core/runtime.h"
#include "data/options.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/experiment.h"
#include "train/options.h"
#include "train/trainer.h"

namespace shiftlab::apps {

namespace {
struct EvalFlags {
  std::string run;
  std::string checkpoint = "best";
  bool confusion = false;
};

const core::OptionTable<EvalFlags>& eval_flag_table() {
  static const auto table = [] {
    using O = EvalFlags;
    core::OptionTable<O> t("apps::EvalFlags");
    t.field("run", &O::run, "the run directory to evaluate (required)").path().command_flag();
    t.field("checkpoint", &O::checkpoint, "which checkpoint to evaluate").choices({"best", "latest"}).command_flag();
    t.field("confusion", &O::confusion, "print the confusion matrix").command_flag();
    return t;
  }();
  return table;
}
}  // namespace

static core::Schema eval_schema() {
  auto s = train::experiment_schema();
  eval_flag_table().declare(s);
  return s;
}

static int run_eval(const core::Config& cli, const std::vector<std::string>&) {
  const auto flags = eval_flag_table().read(cli);
  core::check_usage(!flags.run.empty(), "missing --run=DIR (the run directory to evaluate)");
  auto run = core::RunDir::open(flags.run);
  auto cfg = config_of_run(run, cli, {"data.", "eval.", "run.threads", "run.device", "run.log_level"});
  auto device = core::setup_runtime(core::runtime_options_from(cfg));
  auto exp = train::build_experiment(cfg, device);
  std::string ck = run.file(flags.checkpoint + ".pt");
  train::CheckpointParts parts{exp.model.ptr().get(), exp.method.get(), nullptr, {}};
  parts.base_weights = cfg.get_string("model.weights");
  parts.base_sha256 = exp.weights_sha256;
  auto meta = train::load_checkpoint(ck, parts, false);
  auto to = train::train_options_from(cfg);
  to.eval_batch_size = train::eval_batch_size(to, exp.source_loader.batch_size, device.is_cuda());
  std::cout << "checkpoint " << ck << " (step " << meta.value("step", -1) << ")\n";
  struct Dom {
    const char* name;
    data::DatasetPtr ds;
  };
  for (auto& d : {Dom{"source-val", exp.source_val}, Dom{"target-test", exp.target_test}}) {
    bool target = std::string(d.name) == "target-test";
    auto r = train::evaluate_adapted(*exp.model, d.ds, exp.target, target && exp.method->adabn(), to.eval_batch_size,
                                     to.eval_workers, device, exp.num_classes);
    std::cout << std::fixed << std::setprecision(2) << d.name << " (" << d.ds->describe() << "): accuracy "
              << r.accuracy << " %, mean per-class " << r.mean_class_accuracy << " %, entropy "
              << std::setprecision(4) << r.entropy << "\n  per class:";
    for (size_t c = 0; c < r.per_class.size(); ++c) std::cout << " " << c << ":" << std::setprecision(1) << r.per_class[c];
    std::cout << "\n";
    if (flags.confusion) {
      std::cout << "  confusion (rows true, columns predicted):\n";
      for (auto& row : r.confusion) {
        std::cout << "   ";
        for (auto v : row) std::cout << " " << std::setw(5) << v;
        std::cout << "\n";
      }
    }
  }
  return 0;
}

SHIFTLAB_COMMAND("eval", "evaluate a run's best or latest checkpoint on its domains or on other data", eval_schema,
                 core::Positionals{"", 0, 0},
                 "Prints accuracy, mean per-class accuracy, entropy and per-class accuracies on source-val and\n"
                 "target-test (--data.* overrides evaluate on other data); --confusion adds the confusion\n"
                 "matrices. runs/digits/<time>-<id> stands for a run directory (train prints it).\n"
                 "\n"
                 "Examples:\n"
                 "  shiftlab train --config configs/digits/mnist_to_uci.ini --method=dann\n"
                 "  shiftlab eval --run runs/digits/<time>-<id> --checkpoint=best\n"
                 "  shiftlab eval --run runs/digits/<time>-<id> --checkpoint=latest --confusion",
                 run_eval);

}  // namespace shiftlab::apps
