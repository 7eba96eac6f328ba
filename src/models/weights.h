// Weight files and state dicts: load .safetensors / .pth / .pt into name -> tensor maps, take a
// module's state dict (Python names: "layer1.0.conv1.weight", "bn1.running_mean", ...), and load a
// map into a module strictly (one error listing every problem) or partially (a report).
#pragma once

#include <torch/nn/module.h>

#include <string>
#include <vector>

#include "models/safetensors.h"

namespace shiftlab::models {

/// Loads a PyTorch checkpoint written by torch.save: the zip format (torch >= 1.6) and the legacy
/// pickle-then-storages format. Holds a dict or collections.OrderedDict of tensors (torchvision's
/// state dicts with their `_metadata`), optionally nested under "state_dict" / "model" /
/// "model_state_dict" / "state". The pickle is read by a restricted unpickler that knows only the
/// objects a state dict contains (no arbitrary code runs); anything else fails with a message that
/// points to scripts/convert_weights.py. Non-tensor entries are dropped with a warning.
TensorMap load_pth(const std::string& path);

/// Loads .safetensors, .pth/.pt/.bin/.ckpt (by magic bytes first, then extension).
TensorMap load_weights_file(const std::string& path);

/// named_parameters + named_buffers (recursive; names as in Python). Tensors are shared with the
/// module (not copies).
TensorMap state_dict(const torch::nn::Module& m);

/// What load_state_dict did. `shape_mismatch` holds names; `mismatch_details` says
/// "name: model [a, b] vs file [c, d]" for each.
struct LoadReport {
  std::vector<std::string> missing;     ///< in the module, not in the file (left as initialised)
  std::vector<std::string> unexpected;  ///< in the file, not in the module (ignored)
  std::vector<std::string> shape_mismatch;
  std::vector<std::string> skipped;     ///< matched a skip prefix (either side), left as initialised
  std::vector<std::string> mismatch_details;
  int64_t loaded = 0;                   ///< tensors copied
  int64_t total = 0;                    ///< tensors in the module's state dict
  bool ok() const { return missing.empty() && unexpected.empty() && shape_mismatch.empty(); }
  /// One paragraph: counts, then the first few names of each list.
  std::string summary() const;
};

/// Copies `w` into the module's parameters and buffers by name (dtype converted, device kept).
/// Keys starting with any of `skip_prefixes` (e.g. "fc." when the class count differs) are skipped
/// on both sides. strict: any missing / unexpected / shape-mismatched key -> one core::Error listing
/// them all (first few of each + counts), and nothing is copied. Non-strict: copies what matches.
LoadReport load_state_dict(torch::nn::Module& m, const TensorMap& w, bool strict = true,
                           const std::vector<std::string>& skip_prefixes = {});

}  // namespace shiftlab::models
