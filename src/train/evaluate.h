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

/// Runs the model in eval mode without gradients over `ds` (in order).
EvalResult evaluate(models::ClassifierImpl& model, const data::DatasetPtr& ds, int64_t batch_size,
                    int workers, const torch::Device& device, int64_t num_classes);

/// Per-sample predictions and probabilities (for tests and tools).
EvalResult summarize(const torch::Tensor& logits, const torch::Tensor& labels, int64_t num_classes);

}  // namespace shiftlab::train
