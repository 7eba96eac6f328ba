#include "train/options.h"

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

void declare_train_options(core::Schema& s) {
  s.add_int("train.steps", 1000, "optimisation steps").range(0, 1e12);
  s.add_int("train.eval_every", 200, "evaluate (and checkpoint) every N steps; 0 = only at the end").range(0, 1e12);
  s.add_int("train.log_every", 50, "log averaged loss terms every N steps").range(1, 1e12);
  s.add_int("train.keep", 0, "periodic step-N checkpoints to keep besides latest and best").range(0, 1e6);
  s.add_choice("train.select", "source_val", {"source_val", "target_entropy", "oracle"},
               "model selection: source-val accuracy (honest), target prediction entropy (unsupervised), "
               "or target-test accuracy (oracle, flagged in the summary)");
  s.add_float("train.label_smoothing", 0, "label smoothing of the source cross-entropy").range(0, 1);
  s.add_bool("train.together", true, "source and target batches go through the backbone together");
  s.add_int("train.early_stop", 0, "stop after N evaluations without improvement; 0 = off").range(0, 1e6);
  s.add_choice("train.amp", "none", {"none", "bf16", "fp16"}, "CUDA autocast precision");
  s.add_bool("train.channels_last", false, "CUDA: channels_last memory format");
  s.add_int("train.phase1_steps", 0,
            "two-phase recipe: first train the head alone (backbone frozen) for N steps, reload the best "
            "phase-1 checkpoint, then train with model.freeze for train.steps").range(0, 1e12);
  s.add_float("train.phase1_lr", 0, "head learning rate in phase 1; 0 = optim.lr").range(0, 100);
  s.add_choice("train.save", "full", {"full", "trainable"},
               "checkpoint contents: full model, or trainable tensors + buffers only (adapters, head; small files) "
               "with a reference (path + SHA-256) to model.weights, which rebuilds the rest on load");
  s.add_int("train.fail_at_step", -1, "testing aid: kill the process with SIGKILL at this step (-1 = never)")
      .range(-1, 1e12)
      .command_flag();
  s.add_int("train.fail_rank", -1, "testing aid: with train.fail_at_step, only this rank of a distributed job dies")
      .range(-1, 1e6)
      .command_flag();
  s.add_int("eval.batch_size", 256, "evaluation batch size").range(1, 1e6);
  s.add_int("eval.workers", 2, "evaluation loader threads").range(0, 256);
  s.add_registry_choice("optim.name", "sgd", [] { return optimizer_registry().names(); }, "optimizer");
  s.add_float("optim.momentum", 0.9, "SGD momentum").range(0, 1);
  s.add_bool("optim.nesterov", true, "SGD Nesterov momentum");
  s.add_float("optim.beta1", 0.9, "Adam beta1").range(0, 1);
  s.add_float("optim.beta2", 0.999, "Adam beta2").range(0, 1);
  s.add_float("optim.eps", 1e-8, "Adam epsilon").range(0, 1);
  s.add_float("optim.grad_clip", 0, "clip the global gradient norm to this value; 0 = off").range(0, 1e9);
  s.add_path("model.weights", "", "pretrained backbone weights (.safetensors or .pth); empty = random init");
  s.add_bool("model.strict", true, "weights must match the backbone exactly (head keys are always skipped)");
}

TrainOptions train_options_from(const core::Config& c) {
  TrainOptions o;
  o.steps = c.get_int("train.steps");
  o.eval_every = c.get_int("train.eval_every");
  o.log_every = c.get_int("train.log_every");
  o.keep = c.get_int("train.keep");
  o.select = c.get_string("train.select");
  o.label_smoothing = c.get_float("train.label_smoothing");
  o.together = c.get_bool("train.together");
  o.early_stop = c.get_int("train.early_stop");
  o.amp = c.get_string("train.amp");
  o.channels_last = c.get_bool("train.channels_last");
  o.eval_batch_size = c.get_int("eval.batch_size");
  o.eval_workers = static_cast<int>(c.get_int("eval.workers"));
  o.fail_at_step = c.get_int("train.fail_at_step");
  o.fail_rank = c.get_int("train.fail_rank");
  o.phase1_steps = c.get_int("train.phase1_steps");
  o.phase1_lr = c.get_float("train.phase1_lr");
  o.save = c.get_string("train.save");
  return o;
}

OptimOptions optim_options_from(const core::Config& c) {
  OptimOptions o;
  o.name = c.get_string("optim.name");
  o.momentum = c.get_float("optim.momentum");
  o.nesterov = c.get_bool("optim.nesterov");
  o.beta1 = c.get_float("optim.beta1");
  o.beta2 = c.get_float("optim.beta2");
  o.eps = c.get_float("optim.eps");
  o.grad_clip = c.get_float("optim.grad_clip");
  return o;
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
  s.add_string("data.source.val_split", "val", "source split used for validation / model selection");
  s.add_string("data.target.test_split", "test", "target split used for the reported test accuracy");
  s.add_string("data.source.eval_transform", "", "transform for evaluation on the source; empty = data.source.transform");
  s.add_string("data.target.eval_transform", "", "transform for evaluation on the target; empty = data.target.transform");
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

}  // namespace shiftlab::train
