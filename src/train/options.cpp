#include "train/options.h"

#include <algorithm>

#include "adapters/adapter.h"
#include "adapters/input_conv.h"
#include "core/runtime.h"
#include "data/options.h"
#include "losses/methods.h"
#include "models/classifier.h"
#include "models/param_groups.h"
#include "train/dist.h"
#include "train/optimizers.h"
#include "train/schedule.h"

namespace shiftlab::train {

const core::OptionTable<TrainOptions>& train_option_table() {
  static const auto table = [] {
    using O = TrainOptions;
    core::OptionTable<O> t("train::TrainOptions");
    t.field("train.steps", &O::steps, "optimisation steps").range(0, 1e12);
    t.field("train.eval_every", &O::eval_every, "evaluate (and checkpoint) every N steps; 0 = only at the end")
        .range(0, 1e12);
    t.field("train.log_every", &O::log_every, "log averaged loss terms every N steps").range(1, 1e12);
    t.field("train.keep", &O::keep, "periodic step-N checkpoints to keep besides latest and best").range(0, 1e6);
    t.field("train.select", &O::select,
            "model selection: source-val accuracy (honest), target prediction entropy (unsupervised), "
            "or target-test accuracy (oracle, flagged in the summary)")
        .choices({"source_val", "target_entropy", "oracle"});
    t.field("train.label_smoothing", &O::label_smoothing, "label smoothing of the source cross-entropy").range(0, 1);
    t.field("train.together", &O::together, "source and target batches go through the backbone together");
    t.field("train.early_stop", &O::early_stop, "stop after N evaluations without improvement; 0 = off")
        .range(0, 1e6);
    t.field("train.amp", &O::amp, "CUDA autocast precision").choices({"none", "bf16", "fp16"});
    t.field("train.channels_last", &O::channels_last, "CUDA: channels_last memory format");
    t.field("train.phase1_steps", &O::phase1_steps,
            "two-phase recipe: first train the head alone (backbone frozen) for N steps, reload the best "
            "phase-1 checkpoint, then train with model.freeze for train.steps")
        .range(0, 1e12);
    t.field("train.phase1_lr", &O::phase1_lr, "head learning rate in phase 1; 0 = optim.lr").range(0, 100);
    t.field("train.save", &O::save,
            "checkpoint contents: full model, or trainable tensors + buffers only (adapters, head; small files) "
            "with a reference (path + SHA-256) to model.weights, which rebuilds the rest on load")
        .choices({"full", "trainable"});
    t.field("eval.batch_size", &O::eval_batch_size,
            "evaluation batch size; 0 = auto: the source batch size on CPU (no memory peak beyond training), 256 on CUDA")
        .range(0, 1e6);
    t.field("eval.workers", &O::eval_workers, "evaluation loader threads").range(0, 256);
    return t;
  }();
  return table;
}

const core::OptionTable<OptimOptions>& optim_option_table() {
  static const auto table = [] {
    using O = OptimOptions;
    core::OptionTable<O> t("train::OptimOptions");
    t.field("optim.name", &O::name, "optimizer").choices_from([] { return optimizer_registry().names(); });
    t.field("optim.momentum", &O::momentum, "SGD momentum").range(0, 1);
    t.field("optim.nesterov", &O::nesterov, "SGD Nesterov momentum");
    t.field("optim.beta1", &O::beta1, "Adam beta1").range(0, 1);
    t.field("optim.beta2", &O::beta2, "Adam beta2").range(0, 1);
    t.field("optim.eps", &O::eps, "Adam epsilon").range(0, 1);
    t.field("optim.grad_clip", &O::grad_clip, "clip the global gradient norm to this value; 0 = off").range(0, 1e9);
    return t;
  }();
  return table;
}

core::Schema experiment_schema() {
  core::Schema s;
  s.add_path("run.root", "runs", "directory holding run directories");
  s.add_string("run.name", "default", "experiment name: runs go to <run.root>/<run.name>/<time>-<id>/");
  core::declare_runtime_options(s);
  data::DomainOptions src;
  src.dataset = "mnist";
  src.split = "train";
  data::declare_domain_options(s, "data.source", src);
  data::DomainOptions tgt;
  tgt.dataset = "uci-digits";
  tgt.split = "train";
  tgt.labelled = false;
  data::declare_domain_options(s, "data.target", tgt);
  s.add_string("data.source.val_split", "val", "source split used for validation / model selection (kinds with splits: prepared, idx directory, list_file)");
  s.add_string("data.target.test_split", "test", "target split used for the reported test accuracy (kinds with splits: prepared, idx directory, list_file)");
  s.add_string("data.source.eval_transform", "", "transform for evaluation on the source; empty = data.source.transform");
  s.add_string("data.target.eval_transform", "", "transform for evaluation on the target; empty = data.target.transform");
  data::declare_role_options(s);  // hold-outs, [data.source_val], [data.target_test], protocol, class matching
  data::declare_loader_options(s, "data.source");
  data::declare_loader_options(s, "data.target");
  models::declare_model_options(s);
  adapters::declare_input_conv_options(s);
  adapters::declare_adapter_options(s);
  losses::declare_method_options(s);
  models::declare_param_group_options(s);
  declare_schedule_options(s);
  declare_train_options(s);
  declare_dist_options(s);
  return s;
}

int64_t eval_batch_size(const TrainOptions& o, int64_t source_batch, bool cuda) {
  if (o.eval_batch_size > 0) return o.eval_batch_size;
  return cuda ? 256 : std::max<int64_t>(1, source_batch);
}

}  // namespace shiftlab::train
