// Training checkpoints (format version 1): model, DA-method modules, optimizer state, step,
// RNG state, loader positions and trainer bookkeeping (best metrics, phase) in one file, written
// atomically (temp file, fsync, rename). latest.pt is replaced at every save; best.pt when the
// selection criterion improves; step-N.pt files are kept up to train.keep.
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
};

/// Saves atomically; the CPU RNG state is stored too.
void save_checkpoint(const std::string& path, const CheckpointParts& parts);
/// Loads into the given parts (modules must have the same structure); returns meta. Restores the
/// CPU RNG state when `restore_rng`. Errors name the file and what does not match.
nlohmann::json load_checkpoint(const std::string& path, CheckpointParts& parts, bool restore_rng = true);

}  // namespace shiftlab::train
