// The training loop: each step takes a source batch (labelled) and a target batch (unlabelled),
// runs them through the backbone together (or separately), and minimises
//   CE(source) + method terms (e.g. λ(p)·DANN),
// with the LR schedule per parameter group, gradient clipping, periodic evaluation on source-val
// (selection) and target-test (reported), honest model selection (oracle only when asked, and
// flagged), atomic checkpoints (latest, best, keep-N) and exact resume.
#pragma once

#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/optim/optimizer.h>

#include <nlohmann/json.hpp>

#include "core/run_dir.h"
#include "train/evaluate.h"
#include "train/experiment.h"
#include "train/options.h"
#include "train/schedule.h"

namespace shiftlab::models {
struct ParamGroupOptions;
}

namespace shiftlab::train {

class Communicator;

/// Model selection over the evaluations of one training phase (saved in checkpoints). An
/// evaluation's score is, by train.select: source_val -> source-val accuracy, oracle -> target-test
/// accuracy, target_entropy -> minus the mean target prediction entropy. An evaluation becomes the
/// selected one only when its score is strictly greater than the best so far: on a tie the earlier
/// evaluation stays selected. The oracle (best target-test accuracy, earliest on ties) is tracked
/// beside it whatever the rule.
struct Selection {
  double best_score = -std::numeric_limits<double>::infinity();
  int64_t best_step = -1;
  nlohmann::json best_eval = nlohmann::json::object();
  double oracle_best = -std::numeric_limits<double>::infinity();
  int64_t oracle_step = -1;
  nlohmann::json last_eval = nlohmann::json::object();
  int64_t evals_since_best = 0;  ///< evaluations since the selected one (train.early_stop)

  /// The score of evaluation `r` (keys source_val_acc, target_test_acc, target_entropy) under `select`.
  static double score(const nlohmann::json& r, const std::string& select);
  /// Records evaluation `r` made after `step` steps; true when it becomes the selected one.
  bool update(const nlohmann::json& r, int64_t step, const std::string& select);
  /// A new phase: forgets the selected evaluation (the oracle and the last evaluation stay).
  void reset_best();
};

/// What one training step computed (terms averaged over the ranks when distributed).
struct StepResult {
  double loss = 0, ce = 0;
  std::vector<std::pair<std::string, double>> terms;  ///< the method's loss terms
  int64_t source_images = 0, target_images = 0;       ///< this process's batch sizes
};

/// Trains one experiment. fit() runs the named steps below in order; they are public so tests can
/// drive a run one step at a time (after setup(), in the order fit() uses them).
class Trainer {
 public:
  /// `comm` (may be null): this process is one rank of a data-parallel job (train/dist.h). Then
  /// every rank runs fit() in lockstep on its shard of the data; rank 0 alone writes metrics,
  /// checkpoints and the summary (`run` is rank 0's directory on the other ranks, never written).
  Trainer(Experiment& exp, const core::Config& cfg, const core::RunDir& run, Communicator* comm = nullptr);
  ~Trainer();
  /// Trains (continuing from latest.pt when `resume`), writes summary.json, returns it.
  /// Throws on failure after marking the summary failed; a SIGINT/SIGTERM stops after the
  /// current step with a checkpoint and status "interrupted".
  ///   setup -> per step: [stop check] train_step, log_progress (every train.log_every),
  ///   evaluate_and_select + checkpoint (every train.eval_every and at the end) -> [phase 1 ->
  ///   begin_phase2 -> phase 2 steps] -> finish
  nlohmann::json fit(bool resume);

  /// Set-up: data iterators (sharded when distributed), the phase (1 when train.phase1_steps > 0,
  /// with the backbone frozen), parameter groups and optimizer; with `resume`, everything from
  /// latest.pt (model, method, optimizer, iterators, selection, RNG). Rank 0's parameters go to
  /// every rank; summary.json gets status "running". Returns the step to continue from (0 fresh).
  int64_t setup(bool resume);
  /// Optimisation step `step` (0-based) of `total` in the current phase: learning rates
  /// base_lr · lr_factor(schedule, step, total), one source (and target) batch, forward, loss =
  /// CE(source) + the method's terms, backward, gradient all-reduce, clipping (optim.grad_clip),
  /// optimizer step. Accumulates the terms for log_progress. A non-finite loss marks the summary
  /// failed and throws core::Error naming the step and term (parameters not updated).
  StepResult train_step(int64_t step, int64_t total);
  /// Writes the averaged loss terms since the previous call as one metrics row for step `done`.
  void log_progress(int64_t done);
  /// Evaluates after `done` steps (source-val; target-test, with AdaBN when the method asks),
  /// updates selection(), logs the row (metrics.jsonl, with "selected") and returns the evaluation
  /// with "selected" = whether it became the selected one. Leaves model and method in train mode.
  nlohmann::json evaluate_and_select(int64_t done);
  /// Checkpoints after `done` steps: best.pt (best_phase1.pt in phase 1) when `selected`,
  /// latest.pt (with optimizer), step-<done>.pt keeping the newest train.keep of them.
  void checkpoint(int64_t done, bool selected);
  /// Phase 1 -> 2: reloads best_phase1.pt, unfreezes as model.freeze says, new optimizer, a fresh
  /// selection.
  void begin_phase2();
  /// Marks the run completed after `steps` steps of the last phase; writes and returns summary.json.
  nlohmann::json finish(int64_t steps);

  const Selection& selection() const;
  int phase() const;
  torch::optim::Optimizer& optimizer();

 private:
  struct State;
  std::unique_ptr<State> s_;
  /// Interrupt (stop requested: latest.pt, status "interrupted", throws) and the testing aid
  /// train.fail_at_step, checked before step `step`.
  void check_stop(int64_t step);
};

/// Re-estimates BatchNorm running statistics on `ds` (AdaBN): cumulative averages over up to
/// `max_batches` batches without gradients, the model in eval mode except its BatchNorm layers
/// (no dropout or stochastic depth: the statistics of the features evaluation sees).
void adabn_recompute(models::ClassifierImpl& model, const data::DatasetPtr& ds, int64_t batch_size, int workers,
                     const torch::Device& device, int64_t max_batches = 50);

/// Evaluates on `ds` (this process's shard of it, see evaluate()); when `adabn`, BatchNorm
/// statistics are first re-estimated on `adapt_on` (all of it) and restored afterwards, so the
/// model's own state is untouched.
EvalResult evaluate_adapted(models::ClassifierImpl& model, const data::DatasetPtr& ds, const data::DatasetPtr& adapt_on,
                            bool adabn, int64_t batch_size, int workers, const torch::Device& device,
                            int64_t num_classes, int64_t shard_rank = 0, int64_t shard_count = 1);

}  // namespace shiftlab::train
