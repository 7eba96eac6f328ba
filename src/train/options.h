// Options of a training run: [train], [optim] (optimizer kind; learning rates and groups are
// models::ParamGroupOptions), [eval], plus the experiment schema that composes every module's
// options (data domains, model, method, schedule, runtime, run directory).
#pragma once

#include <cstdint>
#include <string>

#include "core/options.h"

namespace shiftlab::train {

struct OptimOptions {
  std::string name = "sgd";  ///< a name in optimizer_registry() (train/optimizers.h): sgd | adam | adamw
  double momentum = 0.9;
  bool nesterov = true;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double grad_clip = 0;  ///< max global gradient norm; 0 = off
};

struct TrainOptions {
  int64_t steps = 1000;
  int64_t eval_every = 200;
  int64_t log_every = 50;
  int64_t keep = 0;                ///< periodic step-N checkpoints kept (0: only latest and best)
  std::string select = "source_val";  ///< source_val | target_entropy | oracle
  double label_smoothing = 0;
  bool together = true;            ///< source and target through the backbone in one batch
  int64_t early_stop = 0;          ///< stop after this many evaluations without improvement (0 = off)
  std::string amp = "none";        ///< none | bf16 | fp16 (CUDA only)
  bool channels_last = false;      ///< CUDA: channels_last memory format
  /// 0 = auto (eval_batch_size()): the source batch size on CPU, 256 on CUDA.
  int64_t eval_batch_size = 0;
  int eval_workers = 2;
  int64_t phase1_steps = 0;        ///< two-phase recipe: head-only steps before phase 2
  double phase1_lr = 0;            ///< head lr in phase 1 (0: optim.lr)
  std::string save = "full";       ///< checkpoints: full | trainable (trainable tensors + base weights reference)
};

/// The evaluation batch size of `o` (on CUDA when `cuda`) for a run whose source batches hold `source_batch`
/// images: o.eval_batch_size when set, else 256 on CUDA and the source batch size on CPU — the
/// training step already holds that many images' activations, so evaluation adds no memory peak
/// (ResNet-18 DANN 112 px: eval batch 256 raised the run's peak from 1,251 to 2,043 MiB and was
/// slower on 2 cores, 32-41 s vs 26-29 s per run).
int64_t eval_batch_size(const TrainOptions& o, int64_t source_batch, bool cuda);

/// train.*, eval.batch_size, eval.workers.
const core::OptionTable<TrainOptions>& train_option_table();
/// optim.name, optim.momentum, optim.nesterov, optim.beta1, optim.beta2, optim.eps, optim.grad_clip.
const core::OptionTable<OptimOptions>& optim_option_table();

/// Declares both tables.
inline void declare_train_options(core::Schema& s) {
  train_option_table().declare(s);
  optim_option_table().declare(s);
}
inline TrainOptions train_options_from(const core::Config& c) { return train_option_table().read(c); }
inline OptimOptions optim_options_from(const core::Config& c) { return optim_option_table().read(c); }

/// Every option of an experiment (train, eval, sweep): run.*, data.*, model.*, method, optim.*,
/// schedule.*, train.*.
core::Schema experiment_schema();

}  // namespace shiftlab::train
