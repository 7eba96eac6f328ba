// Results of many runs: find run directories, read their configs and summaries, group them by
// the options that differ (seeds pooled), and aggregate target accuracy as mean ± std over seeds
// (source-val-selected and oracle side by side), as Markdown and CSV tables and learning-curve
// SVGs. Used by `shiftlab report` and at the end of `shiftlab sweep`.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace shiftlab::report {

/// One run directory (has summary.json and config.resolved.ini).
struct RunRecord {
  std::string dir;
  std::map<std::string, std::string> config;  ///< every resolved option, "section.key" -> value
  nlohmann::json summary;
  std::string status;  ///< running | completed | failed | interrupted
  double selected_acc = 0, oracle_acc = 0;  ///< target-test accuracy (NaN when absent)
  double source_val_acc = 0, mean_class_acc = 0;
  double seconds = 0;
  bool oracle_selected = false;
};

/// Reads one run directory (Error naming it when summary.json is missing or unreadable).
RunRecord read_run(const std::string& dir);
/// Every run directory at or below each root (a directory holding summary.json), sorted by path.
/// A root that does not exist is an Error naming it.
std::vector<RunRecord> find_runs(const std::vector<std::string>& roots);

/// Options excluded when deciding what differs between runs (seed, names, paths, threads, ...).
bool is_incidental_key(const std::string& key);
/// The option keys whose values differ between the runs (incidental keys excluded), sorted.
std::vector<std::string> varying_keys(const std::vector<RunRecord>& runs);

struct Stat {
  int n = 0;
  double mean = 0, std = 0;  ///< std with n-1 in the denominator (0 for n = 1); NaN mean when n = 0
};
Stat mean_std(const std::vector<double>& v);

/// Runs sharing the values of `keys`.
struct Group {
  std::vector<std::pair<std::string, std::string>> key;  ///< (option, value), in `keys` order
  std::vector<const RunRecord*> runs;
  int completed = 0;
  Stat selected, oracle, source_val, mean_class, seconds;
  std::string label() const;  ///< "method=dann, optim.lr=0.01" ("all runs" when no key)
};
/// Groups `runs` by `keys` (first-seen order); statistics over completed runs only.
std::vector<Group> group_runs(const std::vector<RunRecord>& runs, const std::vector<std::string>& keys);

/// Markdown table: one row per group; columns: the keys, runs (completed/total), target acc
/// selected (mean ± std), target acc oracle, source-val acc, target mean per-class acc, s/run.
std::string markdown_table(const std::vector<Group>& groups, const std::vector<std::string>& keys);
/// The same as CSV with separate mean/std/n columns.
std::string csv_table(const std::vector<Group>& groups, const std::vector<std::string>& keys);

/// Learning curves of one group (every run's metrics.jsonl): accuracies, loss terms, lambda.
/// Returns {file suffix, SVG} pairs, e.g. {"acc", ...}, {"loss", ...}, {"lambda", ...}.
std::vector<std::pair<std::string, std::string>> learning_curve_svgs(const Group& g);

/// Writes <out>/results.md (with `title`), results.csv and, when `curves`, curves/<group>_<kind>.svg
/// (atomically, creating `out`). Returns the number of curve files written.
size_t write_results(const std::string& out, const std::vector<Group>& groups, const std::vector<std::string>& keys,
                     const std::string& title, bool curves);

/// A file-name-safe slug of a group label ("method-dann__optim.lr-0.01").
std::string slug(const std::string& s);

}  // namespace shiftlab::report
