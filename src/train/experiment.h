// One experiment assembled from a Config: the four domains (source train, target train,
// source val for selection, target test for the reported number), the classifier (backbone +
// pretrained weights + band adaptation + head + freezing) and the DA method.
#pragma once

#include <torch/types.h>

#include <map>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/options.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "losses/method.h"
#include "models/classifier.h"

namespace shiftlab::train {

struct Experiment {
  torch::Device device{torch::kCPU};
  data::DatasetPtr source, target, source_val, target_test;
  data::LoaderOptions source_loader, target_loader;
  models::Classifier model{nullptr};
  losses::MethodPtr method;
  int64_t num_classes = 0;
  std::vector<std::string> method_taps;  ///< extra backbone taps the method needs
  std::string weights_sha256;            ///< of model.weights, when given
  std::string protocol = "held_out";     ///< data.protocol: held_out | transductive
  /// What each role holds (data::Roles::to_json: protocol, classes, per role: definition,
  /// dataset, count, labelled, overlaps with the training roles) for the log and summary.json.
  nlohmann::json roles = nlohmann::json::object();
};

/// Builds the model alone (backbone, weights, band adaptation, head, freezing) for `num_classes`.
models::Classifier build_model(const core::Config& c, int64_t num_classes, std::string* weights_sha = nullptr);

/// Builds everything; errors name the culprit (dataset, weights file, class-count mismatch).
Experiment build_experiment(const core::Config& c, const torch::Device& device);

}  // namespace shiftlab::train
