// Training checkpoints (format version 1): model, DA-method modules, optimizer state, step,
// RNG state (of every rank in distributed training), loader positions and trainer bookkeeping
// (best metrics, phase) in one file, written
// atomically (temp file, fsync, rename). latest.pt is replaced at every save; best.pt when the
// selection criterion improves; step-N.pt files are kept up to train.keep.
// Adapter-only checkpoints (train.save = trainable): the model section holds only the trainable
// parameters and every buffer (BatchNorm statistics), plus a reference to the base weights
// (model.weights path + SHA-256) that rebuild the rest; loading needs a model built from a file
// with that SHA-256 (else an error naming both files).
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <string>

#include <nlohmann/json.hpp>

namespace shiftlab::train {

constexpr int64_t kCheckpointVersion = 1;

struct CheckpointParts {
  torch::nn::Module* model = nullptr;
  torch::nn::Module* method = nullptr;  ///< may be null
  torch::optim::Optimizer* optimizer = nullptr;  ///< may be null (best.pt for evaluation)
  nlohmann::json meta;  ///< step, iterator states, best metrics, ...
  /// Save: store only the model's trainable parameters (+ all buffers) and the base reference.
  bool trainable_only = false;
  /// Save: model.weights the model was built from; load: the file the loading model was built from.
  std::string base_weights = "";
  /// SHA-256 of base_weights ("" = none). Load: must equal the stored one for a trainable-only file.
  std::string base_sha256 = "";
  /// Save (distributed): every rank's CPU RNG state, W×S (cpu_rng_state() gathered); undefined = none.
  torch::Tensor rank_rng_states = {};
  /// Load (distributed): this process's rank, whose row of the saved rank RNG states it restores
  /// (-1: one process, the plain CPU RNG state).
  int rank = -1;
};

/// The default CPU generator's state (a byte tensor).
torch::Tensor cpu_rng_state();

/// Saves atomically; the CPU RNG state is stored too.
void save_checkpoint(const std::string& path, const CheckpointParts& parts);
/// Loads into the given parts (modules must have the same structure); returns meta. Restores the
/// CPU RNG state when `restore_rng`. Errors name the file and what does not match.
nlohmann::json load_checkpoint(const std::string& path, CheckpointParts& parts, bool restore_rng = true);

}  // namespace shiftlab::train
