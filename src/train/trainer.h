// The training loop: each step takes a source batch (labelled) and a target batch (unlabelled),
// runs them through the backbone together (or separately), and minimises
//   CE(source) + method terms (e.g. λ(p)·DANN),
// with the LR schedule per parameter group, gradient clipping, periodic evaluation on source-val
// (selection) and target-test (reported), honest model selection (oracle only when asked, and
// flagged), atomic checkpoints (latest, best, keep-N) and exact resume.
#pragma once

#include <memory>
#include <string>

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
  nlohmann::json fit(bool resume);

 private:
  struct State;
  std::unique_ptr<State> s_;
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
