// `shiftlab probe` as a library: every analysis of a feature cache (features/cache.h), tap by tap.
//
// Blocks used, per tap (domains and splits named by the options):
//   source train             -> probe training rows (subsampled to max_train_rows when > 0)
//   C selection              -> source val, else a stratified val_fraction carved from source train
//   source test accuracy     -> source test, else source val (then also C's selection split, like a
//                               training run's source-val), else a carved part of source train
//   source→target accuracy   -> target test, else target train (when the target block is labelled)
//   target→target accuracy   -> a probe trained on target train and tested on target test (both
//                               labelled), or on carved parts of the one labelled target split
//   A-distance, MMD, CORAL   -> source train vs the target features (test, else train)
//   LogME, H-score, LEEP/NCE -> the labelled target rows when there are, else source train;
//                               LEEP/NCE use the tap `logits_tap` (source-model class scores) of
//                               the same rows, and are skipped when the cache has no such tap
//   t-SNE                    -> `tsne_tap` (default: the deepest tap), source + target rows
// Taps are ordered shallow→deep by a natural sort that puts pooled/features/logits last.
// probe.json names the rows of each linear-probe figure (C_chosen_on, source_acc_on, target_acc_on).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/options.h"
#include "probe/distance.h"
#include "probe/knn.h"
#include "probe/logreg.h"
#include "probe/tsne.h"

namespace shiftlab::probe {

struct ProbeOptions {
  std::vector<std::string> taps;  ///< empty = every tap of the cache
  std::string source = "source", target = "target";
  std::string train_split = "train", val_split = "val", test_split = "test";
  double val_fraction = 0.2;
  int64_t max_train_rows = 0;  ///< 0 = all
  LinearProbeOptions linear;
  int knn_k = 20;  ///< 0 = no kNN probe
  bool distances = true;
  ADistanceOptions a_distance;
  MmdOptions mmd;
  int64_t coral_rows = 5000;
  bool scores = true;            ///< LogME, H-score, LEEP, NCE
  int64_t score_rows = 10000;    ///< rows used by LogME / H-score (subsampled)
  std::string logits_tap = "logits";
  bool tsne = true;
  std::string tsne_tap;          ///< "" = the deepest tap
  int64_t tsne_rows = 1000;      ///< source + target rows embedded
  TsneOptions tsne_opts;
  uint64_t seed = 0;
};

/// probe.* (taps, splits, sweep, kNN, distances, scores, t-SNE). Reading sorts probe.Cs and
/// copies the fit options and the seed into the distance and t-SNE options.
const core::OptionTable<ProbeOptions>& probe_option_table();
inline void declare_probe_options(core::Schema& s) { probe_option_table().declare(s); }
inline ProbeOptions probe_options_from(const core::Config& c) { return probe_option_table().read(c); }

/// Results for one tap; absent values were not computable (no labels, no such block).
struct TapReport {
  std::string tap;
  int64_t dim = 0;
  int64_t source_train_rows = 0, target_rows = 0;
  int num_classes = 0;
  std::optional<double> best_C;
  std::vector<SweepPoint> sweep;
  double linear_seconds = 0;     ///< standardise + sweep of the source probe
  int linear_iterations = 0;     ///< L-BFGS iterations of the chosen model
  int linear_evaluations = 0;    ///< its objective + gradient evaluations
  std::string linear_stop_reason;
  double linear_objective = 0;   ///< its final objective (mean form)
  std::optional<double> source_acc, target_acc, target_target_acc;  ///< linear probe, percent
  /// the rows each linear-probe figure comes from ("source/val", "carved from source/train", ...)
  std::string C_chosen_on, source_acc_on, target_acc_on, target_target_on;
  /// the rows each probe was fitted on ("source/train", "target/train minus its 21 images in target/test")
  std::string source_fit_on, target_target_fit_on;
  int64_t source_acc_rows = 0, target_acc_rows = 0, target_target_rows = 0;  ///< rows each accuracy is on
  std::optional<double> knn_source_acc, knn_target_acc;
  std::optional<ADistanceResult> a_distance;
  std::optional<double> mmd2, coral;
  std::optional<double> logme, h_score;
  std::string scores_on;  ///< "target" | "source"
  double seconds = 0;
};

struct ProbeReport {
  std::string cache;
  nlohmann::json attributes;  ///< the cache's root attributes
  std::vector<TapReport> taps;
  std::optional<double> leep, nce;
  std::string leep_note;  ///< why LEEP/NCE are missing, or the rows they used
  struct Tsne {
    std::string tap;
    MatrixD Y;
    std::vector<int> domain, label;  ///< domain 0 = source, 1 = target; label −1 = none
    std::vector<std::pair<int, double>> kl;
  };
  std::optional<Tsne> tsne;
  std::string source_name, target_name;

  nlohmann::json to_json() const;
  std::string markdown() const;
  std::string text_table() const;
};

/// Orders taps shallow→deep: natural sort (layer2 < layer10), then pooled, features, logits.
std::vector<std::string> order_taps(std::vector<std::string> taps);

/// Runs every enabled analysis on the cache (Error naming the file / missing block).
ProbeReport probe_cache(const std::string& cache, const ProbeOptions& o);

/// Writes probe.json, probe.md, transferability.svg and (with t-SNE) tsne_domain.svg,
/// tsne_class.svg into `dir` (created); returns the paths written.
std::vector<std::string> write_probe_report(const ProbeReport& r, const std::string& dir);

}  // namespace shiftlab::probe
