// Evaluation of a classifier on a labelled domain: accuracy, mean per-class accuracy (VisDA's
// metric), per-class accuracy, confusion matrix, mean prediction entropy (usable without labels).
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "models/classifier.h"

namespace shiftlab::train {

struct EvalResult {
  int64_t n = 0;
  int64_t n_labelled = 0;
  double accuracy = 0;             ///< over labelled samples, in %
  double mean_class_accuracy = 0;  ///< mean over classes present, in %
  double entropy = 0;              ///< mean prediction entropy (nats), all samples
  std::vector<double> per_class;   ///< accuracy per class, % (NaN when absent)
  std::vector<std::vector<int64_t>> confusion;  ///< [true][pred]
  nlohmann::json to_json(bool with_matrix = false) const;
};

/// Runs the model in eval mode without gradients over `ds` (in order), or over its shard
/// `shard_rank` of `shard_count` (items shard_rank, shard_rank + shard_count, ...; distributed
/// evaluation, combined with combine_results).
EvalResult evaluate(models::ClassifierImpl& model, const data::DatasetPtr& ds, int64_t batch_size,
                    int workers, const torch::Device& device, int64_t num_classes, int64_t shard_rank = 0,
                    int64_t shard_count = 1);

/// Every metric from the confusion matrix ([true][pred], K×K), the number of samples (labelled or
/// not) and the sum of their prediction entropies: how the results of disjoint shards combine
/// (sum the three, then call this).
EvalResult result_from_counts(std::vector<std::vector<int64_t>> confusion, int64_t n, double entropy_sum);

/// Per-sample predictions and probabilities (for tests and tools).
EvalResult summarize(const torch::Tensor& logits, const torch::Tensor& labels, int64_t num_classes);

}  // namespace shiftlab::train
