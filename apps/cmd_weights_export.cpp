// shiftlab weights export RUN_DIR OUT.safetensors: a trained model (best or latest checkpoint)
// as a .safetensors file with the Python names, which torchvision/timm (backbone) or a TLlib-style
// classifier (model) load by name.
#include <iostream>

#include "adapters/lora.h"
#include "apps/command.h"
#include "apps/run_helpers.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/run_dir.h"
#include "models/adapter_hook.h"
#include "models/safetensors.h"
#include "models/weights.h"
#include "train/checkpoint.h"
#include "train/experiment.h"
#include "train/options.h"

namespace shiftlab::apps {

namespace {
struct ExportFlags {
  std::string checkpoint = "best";
  std::string part = "backbone";
  bool merge_lora = false;
};

const core::OptionTable<ExportFlags>& export_flag_table() {
  static const auto table = [] {
    using O = ExportFlags;
    core::OptionTable<O> t("apps::ExportFlags");
    t.field("checkpoint", &O::checkpoint, "which checkpoint of the run").choices({"best", "latest"}).command_flag();
    t.field("part", &O::part,
            "backbone: the backbone alone, torchvision/timm names; model: backbone.* + bottleneck.* + head.*")
        .choices({"backbone", "model"})
        .command_flag();
    t.field("merge_lora", &O::merge_lora,
            "fold LoRA adapters into the base weights first, so the file has the plain backbone's names")
        .command_flag();
    return t;
  }();
  return table;
}
}  // namespace

static core::Schema export_schema() {
  auto s = train::experiment_schema();
  export_flag_table().declare(s);
  return s;
}

static int run_export(const core::Config& cli, const std::vector<std::string>&) {
  auto run = core::RunDir::open(cli.positional.at(0));
  const std::string out = cli.positional.at(1);
  const auto flags = export_flag_table().read(cli);
  auto cfg = config_of_run(run, cli, {"run.log_level"});
  std::string ck = run.file(flags.checkpoint + ".pt");
  // the class count is in the checkpoint; read it before building the model
  train::CheckpointParts none;
  auto meta = train::load_checkpoint(ck, none, false);
  core::check(meta.contains("num_classes"), "checkpoint '", ck, "' does not record its class count");
  std::string base_sha;
  auto model = train::build_model(cfg, meta["num_classes"].get<int64_t>(), &base_sha);
  train::CheckpointParts parts{model.ptr().get(), nullptr, nullptr, {}};
  parts.base_weights = cfg.get_string("model.weights");
  parts.base_sha256 = base_sha;
  train::load_checkpoint(ck, parts, false);
  if (flags.merge_lora) {
    auto n = adapters::merge_lora(*model->backbone());
    std::cout << "merged " << n << " LoRA module" << (n == 1 ? "" : "s") << " into the base weights\n";
  }
  auto left = models::adapter_parameter_names(*model->backbone());
  if (!left.empty())
    core::log_warn("the export holds ", left.size(), " adapter tensors (e.g. '", *left.begin(),
                   "'): only shiftlab with the same model.adapters loads it", flags.merge_lora ? "" : "; --merge_lora folds LoRA in");
  models::TensorMap tensors;
  if (flags.part == "backbone") {
    tensors = models::state_dict(*model->backbone());
  } else {
    tensors = models::state_dict(*model);
  }
  for (auto& [k, v] : tensors) v = v.detach().to(torch::kCPU).contiguous();
  std::map<std::string, std::string> md{{"format", "pt"},
                                        {"shiftlab_run", run.path()},
                                        {"shiftlab_checkpoint", flags.checkpoint},
                                        {"shiftlab_step", std::to_string(meta.value("step", int64_t{-1}))},
                                        {"backbone", cfg.get_string("model.backbone")},
                                        {"part", flags.part}};
  models::save_safetensors(out, tensors, md);
  std::cout << "wrote " << out << ": " << tensors.size() << " tensors (" << flags.part << ", step "
            << meta.value("step", int64_t{-1}) << "), sha256 " << core::sha256_file(out) << "\n";
  return 0;
}

SHIFTLAB_COMMAND("weights export", "write a run's trained backbone (or whole model) to .safetensors", export_schema,
                 core::Positionals{"RUN_DIR OUT.safetensors", 2, 2},
                 "With LoRA adapters: --merge_lora writes W + (alpha/r)·B·A under the backbone's own names.\n"
                 "runs/digits/<time>-<id> stands for a run directory (train prints it).\n"
                 "\n"
                 "Examples:\n"
                 "  shiftlab train --config configs/digits/mnist_to_uci.ini --method=dann\n"
                 "  shiftlab weights export runs/digits/<time>-<id> lenet_mnist.safetensors\n"
                 "  shiftlab weights info lenet_mnist.safetensors\n"
                 "  shiftlab train --config configs/digits/mnist_to_uci.ini --model.weights=lenet_mnist.safetensors",
                 run_export);

}  // namespace shiftlab::apps
