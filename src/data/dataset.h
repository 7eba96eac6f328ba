// Datasets and domains. A Dataset yields (C×H×W float tensor, label or −1, index); a domain is
// a dataset + split + transform chain, built from typed DomainOptions (see data/options.h).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/registry.h"

namespace shiftlab::data {

struct Sample {
  torch::Tensor image;  ///< C×H×W, float32 after the transform chain
  int64_t label = -1;   ///< −1 when unlabelled
  int64_t index = 0;    ///< position in the dataset (stable across runs)
};

/// Random-access dataset. get() must be thread-safe (the loader calls it from worker threads);
/// randomness in transforms comes from the `rng_seed` argument, so results are reproducible
/// whatever thread runs them.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual size_t size() const = 0;
  virtual Sample get(size_t i, uint64_t rng_seed) const = 0;
  /// Number of classes (0 when unlabelled / unknown).
  virtual int64_t num_classes() const = 0;
  /// All labels without decoding images (−1 entries when unlabelled); for samplers and checks.
  virtual std::vector<int64_t> labels() const = 0;
  /// One line for logs: name, root, split, size.
  virtual std::string describe() const = 0;
  /// Optional source path of item i (image files), "" otherwise; for HDF5 provenance.
  virtual std::string path(size_t) const { return ""; }
};

using DatasetPtr = std::shared_ptr<const Dataset>;

}  // namespace shiftlab::data
