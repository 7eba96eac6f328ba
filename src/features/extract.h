// Feature extraction into the HDF5 cache: a classifier (backbone + weights or a run's
// checkpoint) in eval mode and without gradients, run over (domain, split) datasets, keeping the
// requested taps pooled to N×D, written block by block through CacheWriter (resumable).
//
// Tap pooling (pool_features): N×C×H×W -> avg: spatial mean (C); avgmax: [mean, max] (2C).
// N×T×D tokens (ViT) -> avg: the backbone's pooling (class token or token mean); avgmax:
// [that, max over tokens] (2D). N×D taps ("pooled") are stored unchanged. Besides the backbone's
// taps, "features" (after the head's bottleneck, what the classifier sees) and "logits" can be
// extracted.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/options.h"
#include "data/dataset.h"
#include "features/writer.h"
#include "models/classifier.h"

namespace shiftlab::features {

struct ExtractOptions {
  std::vector<std::string> taps{"pooled"};  ///< backbone taps, "features", "logits"
  std::string pool = "avg";                 ///< avg | avgmax
  std::string dtype = "float32";            ///< float32 | float16 (stored type)
  int64_t batch_size = 128;
  int workers = 2;                          ///< loader threads
  int64_t limit = 0;                        ///< rows per (domain, split); 0 = the whole split
  bool overwrite = false;                   ///< replace an existing output file
  bool forward_only = false;                ///< benchmark: same loop, nothing written
  /// Both empty: the four roles as train defines them (data/roles.h), blocks source/train,
  /// source/val, target/train, target/test. Otherwise these splits, blocks named by split.
  std::vector<std::string> source_splits;
  std::vector<std::string> target_splits;
};

/// Command flags of `shiftlab extract`: taps, pool, dtype, batch_size, workers, limit, overwrite,
/// forward_only, source_splits, target_splits. (The crash-test hook is SHIFTLAB_TEST_KILL_IN_WRITE,
/// core/test_hooks.h.)
const core::OptionTable<ExtractOptions>& extract_option_table();
inline void declare_extract_options(core::Schema& s) { extract_option_table().declare(s); }
inline ExtractOptions extract_options_from(const core::Config& c) { return extract_option_table().read(c); }

/// One (domain, split) to extract.
struct ExtractInput {
  std::string domain;     ///< "source" | "target"
  std::string group;      ///< group name: the split ("train"), or a list file's stem
  data::DatasetPtr ds;
  std::string transform;  ///< the chain applied (eval transform when the config has one)
  std::string origin;     ///< how the images were chosen (attr "origin": role definition or split)
};

/// The inputs a config describes: by default its four roles (data::make_roles, Extract mode: eval
/// transforms, labels kept when the data has them; an undefinable held-out role is left out with
/// a warning); with source_splits / target_splits, those splits (duplicates dropped).
std::vector<ExtractInput> extract_inputs(const core::Config& c, const ExtractOptions& o);

/// Root attributes of a cache made from this config: compared = backbone, model (architecture
/// keys), weights_sha256, checkpoint_sha256; info = weights, checkpoint, shiftlab_version,
/// created, config (resolved INI), source_dataset, target_dataset, num_classes.
Provenance make_provenance(const core::Config& c, int64_t num_classes, const std::string& weights_sha256,
                           const std::string& checkpoint, const std::string& checkpoint_sha256);

/// Pools one tap output to N×D (see the file comment).
torch::Tensor pool_features(const models::BackboneImpl& bb, const torch::Tensor& t, const std::string& pool);

/// The classifier's forward (input adapter, backbone, bottleneck, head) keeping `taps` pooled
/// per `pool`. The caller sets eval mode and no-grad.
std::map<std::string, torch::Tensor> forward_taps(models::ClassifierImpl& model, const torch::Tensor& x,
                                                  const std::vector<std::string>& taps, const std::string& pool);

struct ExtractReport {
  int64_t rows = 0;          ///< rows computed in this call
  int64_t rows_resumed = 0;  ///< rows already in the file (skipped)
  double seconds = 0;        ///< wall time of the extraction loop
  double images_per_s = 0;
  double write_seconds = 0;  ///< of `seconds`, spent writing the cache
  bool interrupted = false;  ///< SIGINT/SIGTERM: stopped after a complete batch
  std::vector<CacheTap> taps;
};

/// Distributed extraction (`shiftlab launch -n N -- extract ...`): rank `rank` of `count` computes
/// rows rank, rank + count, ... of every block (data::shard_order, padded so every rank has the
/// same batches); rank 0 gathers each batch from all ranks and alone writes the file, in row
/// order, so the file equals a one-process extraction (resume included). apps/cmd_extract.cpp
/// wires the collectives to train::Communicator.
struct ExtractRanks {
  int rank = 0;
  int count = 1;
  std::function<torch::Tensor(const torch::Tensor&)> allgather;  ///< count × t, every rank's t
  std::function<void(torch::Tensor&)> allreduce_sum;            ///< in place
};

/// Extracts every input into `out` (or, forward_only, runs the same loop and writes nothing).
ExtractReport extract(models::ClassifierImpl& model, const std::vector<ExtractInput>& inputs, const ExtractOptions& o,
                      const Provenance& prov, const std::string& out, const torch::Device& device,
                      const ExtractRanks& ranks = {});

}  // namespace shiftlab::features
