// `shiftlab advise`: a transfer strategy from probe evidence, following the seeds' tables.
//
// The band of the linear-probe accuracy p (target→target when the target has labels, else
// source→source) picks how much of the backbone trains (seed 004):
//   p > 85 %   feature extraction: frozen backbone (and BatchNorm), train the head
//   70–85 %    fine-tune the top 1–2 layer groups (top:1 when p ≥ 77.5), backbone lr × 0.1 per group
//   50–70 %    fine-tune 3–4 groups (top:3 when p ≥ 60) with discriminative learning rates (× 0.3 per group)
//   < 50 %     full fine-tune (× 0.5 per group)
// Dataset size, as issue 20's transfer study measured it (two pairs, 3 seeds; README): at least
// 100 labelled rows per class -> one band less frozen (there every frozen row trailed fine-tuning,
// also where the probe was above 85 %); fewer than 20 per class keeps the band but, when layers
// train, freezes BatchNorm's statistics. (The seeds' "few labels -> one band more frozen" and
// "1000 per class with A-distance >= 1 -> one band less" rules were replaced: the first made the far
// pair's 10-label cells feature extraction, 12 points under full fine-tuning.)
// Fine-tuning bands use the two-phase recipe (head first: LP-FT, Kumar et al. 2022).
// Domain adaptation (target unlabelled only): A-distance < 0.5 -> source_only; 0.5–1 -> mcc
// (light, no adversary); ≥ 1 or a source→target probe drop ≥ 15 points -> cdan+E. With a frozen
// backbone a bottleneck head gives the alignment something to train. Labelled target: train on it
// directly (no DA). A backbone with a recorded native input (models::BackboneInfo, e.g.
// efficientnet_b3: 300 px) adds its size and pretrained transforms (Advice::image_size, a reason
// line, and a comment in the INI) when its weights are imported ones; weights a shiftlab run
// trained (a `weights export` file, a run's checkpoint) keep that run's input, and a randomly
// initialised backbone gets no resolution advice. The data transforms are left as the cache had them.
// Evidence from few images is said to be so: the band's accuracy and the A-distance carry a 95 %
// Wilson interval (z = 2) over the rows they were measured on; when it spans a band edge (or the
// A-distance's 0.5 / 1 thresholds) the advice names the point estimate's choice and says the
// evidence cannot separate it from the neighbouring one (Advice::band_uncertain, gap_uncertain).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/options.h"

namespace shiftlab::probe {

struct Evidence {
  std::string tap;
  int num_classes = 0;
  int64_t source_rows = 0, target_rows = 0;  ///< training rows per domain
  bool target_labelled = false;
  std::optional<double> source_acc, target_acc, target_target_acc;  ///< linear probe, percent
  std::optional<double> a_distance;
  std::string backbone;  ///< registry name (the cache's "backbone" attribute); empty = unknown
  /// rows each figure was measured on (0 = unknown: no interval is given)
  int64_t source_acc_rows = 0, target_target_rows = 0, a_distance_test_rows = 0;
  std::optional<double> a_distance_error;  ///< the domain classifier's test error ε (raw, unclamped)
  enum class Weights { Unknown, Random, Imported, Shiftlab };
  Weights weights = Weights::Unknown;
  std::string weights_trained_by;  ///< Shiftlab: the run (or checkpoint) that trained them
};

/// 95 % Wilson score interval (z = 2) of a proportion q ∈ [0, 1] measured on n rows.
std::pair<double, double> wilson_interval(double q, int64_t n, double z = 2);

struct Advice {
  std::string strategy;         ///< feature extraction | fine-tune top groups | discriminative fine-tune | full fine-tune
  double probe_acc = 0;         ///< the accuracy that chose the band
  std::string probe_acc_on;     ///< "target→target" | "source→source"
  std::string freeze;           ///< model.freeze
  double layer_decay = 1;
  bool use_da = false;
  std::string method = "source_only";
  bool band_uncertain = false;  ///< the probe accuracy's interval spans a band edge
  bool gap_uncertain = false;   ///< the A-distance's interval spans a DA threshold
  std::vector<std::string> reasons;              ///< one line each, in order
  std::map<std::string, std::string> settings;   ///< train-config keys → values
  /// The backbone's native input (models::BackboneInfo; 0 / empty when unknown): the size and the
  /// transforms of its pretrained weights, to fine-tune at the resolution it was trained at.
  int64_t image_size = 0;
  std::string train_transform, eval_transform;
  nlohmann::json to_json() const;
};

/// The recommendation (UsageError when no probe accuracy is in the evidence).
Advice advise(const Evidence& e);

/// The entries of the INI a cache records as its root attribute "config" (the extraction's
/// resolved configuration); empty when there is none or it is not INI text.
std::vector<core::IniEntry> recorded_config(const nlohmann::json& cache_attributes);

/// A ready INI for `shiftlab train`: the data/model keys of the cache's extraction config (root
/// attribute "config", keys the train schema knows) overlaid with the advice's settings; every
/// value is validated by the train schema before it is written. `header` lines become comments.
std::string advice_ini(const Advice& a, const nlohmann::json& cache_attributes, const std::vector<std::string>& header);

}  // namespace shiftlab::probe
