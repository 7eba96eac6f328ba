// Results of many runs: find run directories (training runs, and linear probes' probe.json), read
// their configs and summaries, group them by the options that differ (seeds pooled) or by chosen
// keys (options, or "path:N" = the N-th directory below the root), and aggregate target accuracy as
// mean ± std over seeds (source-val-selected, oracle and last side by side, trainable parameters)
// as Markdown and CSV tables, a pivot table (one column per value of a key, differences to a
// baseline row) with its chart, and learning-curve SVGs. Used by `shiftlab report` and at the end
// of `shiftlab sweep`.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace shiftlab::report {

/// One run directory (has summary.json and config.resolved.ini), or one linear probe's output
/// directory (probe.json of `shiftlab probe`; its configuration is the feature cache's).
struct RunRecord {
  std::string dir;
  std::string rel;  ///< dir relative to the root it was found under ("" for the root itself)
  std::map<std::string, std::string> config;  ///< every resolved option, "section.key" -> value
  nlohmann::json summary;
  std::string kind = "train";  ///< train | probe
  std::string status;  ///< running | completed | failed | interrupted
  double selected_acc = 0, oracle_acc = 0, last_acc = 0;  ///< target-test accuracy (NaN when absent)
  double source_val_acc = 0, mean_class_acc = 0;
  double seconds = 0;
  /// Parameter counts (NaN when unknown): the model's, its trainable ones (a probe: the linear
  /// classifier's weights and biases), the method's (e.g. a domain discriminator).
  double model_params = 0, trainable_params = 0, method_params = 0;
  bool oracle_selected = false;
};

/// Reads one run directory (Error naming it when summary.json is missing or unreadable). Parameter
/// counts come from summary.json ("parameters") or, for runs written before it had them, from the
/// last "trainable parameters: model T of N ..., method M" line of log.txt.
RunRecord read_run(const std::string& dir);
/// Reads one probe directory (probe.json): selected = the first tap's linear-probe target
/// accuracy, source-val = its source accuracy, trainable = dim·K + K.
RunRecord read_probe_run(const std::string& dir);
/// Every run directory at or below each root (a directory holding summary.json, or probe.json
/// without one), sorted by path. A root that does not exist is an Error naming it.
std::vector<RunRecord> find_runs(const std::vector<std::string>& roots);

/// The value of a grouping key for one run: "path:N" = the N-th directory of r.rel (0-based; ""
/// when shallower), any other key the run's option ("" when absent).
std::string key_value(const RunRecord& r, const std::string& key);

/// Options excluded when deciding what differs between runs (seed, names, paths, threads, ...).
bool is_incidental_key(const std::string& key);
/// The option keys whose values differ between the runs (incidental keys excluded, except a
/// data.*.root whose domain's dataset is a kind — a file or folder, not a prepared name; an option
/// equal to run.seed in every run, as `sweep --seed_keys` sets, is pooled like the seed), sorted.
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
  int completed = 0;  ///< completed runs counted (one per seed)
  int same_seed = 0;  ///< completed runs not counted: an earlier run of a seed another run of the group has
  std::vector<const RunRecord*> counted;  ///< the completed runs the statistics are over
  Stat selected, oracle, last, source_val, mean_class, seconds;
  Stat model_params, trainable_params, method_params;
  std::string label() const;  ///< "method=dann, optim.lr=0.01" ("all runs" when no key)
  std::string values() const;  ///< the key values alone: "dann, 0.01"
};
/// Groups `runs` by `keys` (first-seen order); statistics over completed runs only, one run per
/// configuration and seed: of completed runs with the same options (incidental keys aside) and run.seed
/// only the last (by path) counts (same_seed counts the others).
std::vector<Group> group_runs(const std::vector<RunRecord>& runs, const std::vector<std::string>& keys);

/// Columns of the tables (`shiftlab report --columns`), each over a group's completed runs:
///   selected     target-test accuracy (%) of the checkpoint selected by train.select, mean ± std
///   oracle       best target-test accuracy seen during training (target labels), mean ± std
///   last         target-test accuracy at the last evaluation, mean ± std
///   source_val   source-val accuracy of the selected checkpoint, mean ± std
///   mean_class   target-test mean per-class accuracy of the selected checkpoint, mean ± std
///   seconds      training seconds per run (mean)
///   trainable    trainable model parameters (and their share of the model's)
///   method_params  parameters of the DA method (e.g. a domain discriminator)
const std::vector<std::string>& table_columns();
/// selected, oracle, source_val, mean_class, seconds.
std::vector<std::string> default_columns();
/// UsageError naming --columns and the known names for an unknown column.
void check_columns(const std::vector<std::string>& columns);

/// Markdown table: one row per group; columns: the keys, runs (completed/total), then `columns`.
/// With a `baseline` (a group's values(), e.g. "source_only"), the first accuracy column's cells
/// of the other rows also show the difference of means to the baseline's ("+2.10").
std::string markdown_table(const std::vector<Group>& groups, const std::vector<std::string>& keys,
                           const std::vector<std::string>& columns = default_columns(),
                           const std::string& baseline = "");
/// CSV with separate mean/std columns of every statistic (whatever the Markdown columns).
std::string csv_table(const std::vector<Group>& groups, const std::vector<std::string>& keys);

/// Runs grouped by `keys` (rows) and by the values of `pivot` (columns, first-seen order).
struct Pivot {
  std::string key;                           ///< the pivot key
  std::vector<std::string> columns;          ///< its values
  std::vector<std::string> rows;             ///< row labels: the row keys' values ("scratch")
  std::vector<std::vector<const Group*>> cells;  ///< [row][column], null where no run
  std::vector<Group> groups;                 ///< grouped by keys + pivot (what cells point into)
};
/// Columns: the values named in `order` first, in that order, then the others ascending (as numbers
/// when every value is one: 0.003 < 0.01, 5 < 10; else naturally: 15/train < 30/train < 100/train).
/// Rows in first-seen order.
Pivot pivot_runs(const std::vector<RunRecord>& runs, const std::vector<std::string>& keys, const std::string& pivot,
                 const std::vector<std::string>& order = {});
/// Markdown: one row per row group; the parameter columns of `columns` (trainable, method_params),
/// then one column per pivot value holding the first statistic of `columns` (default selected)
/// as mean ± std, with the difference to the `baseline` row when given; a cell with fewer completed
/// runs than the fullest cell says "(k of n runs)".
std::string pivot_markdown(const Pivot& p, const std::vector<std::string>& keys, const std::vector<std::string>& columns,
                           const std::string& baseline = "");
/// A row's difference to a baseline row paired by run.seed (both groups' counted runs: one per seed).
struct PairedDiff {
  std::vector<std::string> seeds;  ///< the seeds both completed
  Stat diff;                       ///< row − baseline over those seeds (std with n−1)
  double t = 0;                    ///< paired t = mean / (std / √n); NaN when n < 2 or std = 0 (up to round-off)
};
/// `column_name`: an accuracy column (selected, oracle, last, source_val, mean_class); UsageError else.
PairedDiff paired_difference(const Group& row, const Group& base, const std::string& column_name);
/// Markdown: the pivot table's first statistic as paired differences to the `baseline` row, one
/// cell per row and pivot value: "−1.67 ± 0.31 (t 9.4, n 3)" (`shiftlab report --paired`).
std::string paired_markdown(const Pivot& p, const std::vector<std::string>& keys, const std::vector<std::string>& columns,
                            const std::string& baseline);

/// The same statistic as an SVG line chart: the pivot values on x (categories), one line per row
/// with ± std error bars.
std::string pivot_chart_svg(const Pivot& p, const std::vector<std::string>& columns, const std::string& title);

/// One cell's hyper-parameter choice (`shiftlab report --tune KEY`).
struct TuneChoice {
  std::string cell;                                   ///< the cell's key values ("scratch, 10")
  std::vector<std::string> cell_values;               ///< the same, one per key
  std::string value;                                  ///< the chosen value of the tuned key
  std::vector<std::pair<std::string, Stat>> candidates;  ///< every value tried: its compared source-val mean ± std
  /// The seeds the candidates were compared on: those every candidate with a completed run has,
  /// when some candidate has more (e.g. the grid ran on seed 0, the chosen value on seeds 0,1,2);
  /// empty = every completed run compared (the same seeds everywhere, or no seed in common).
  std::vector<std::string> seeds;
};
/// Model selection of a hyper-parameter without target labels: for every cell (the runs sharing
/// the values of `keys`), the value of `tune` (e.g. optim.lr) whose completed runs have the highest
/// mean source-val accuracy (the selected checkpoints'; ties: the first seen); returns only the runs
/// with each cell's chosen value, and the choices in `choices` when given. Candidates are compared
/// on the seeds they all completed (run.seed; a grid tuned on one seed and the chosen value then run
/// on more seeds compares like with like), on every completed run when they share none. A cell none
/// of whose runs completed keeps all its runs, a cell of linear probes (no training hyper-parameters) all
/// of them, unlisted. UsageError when `tune` is one of `keys` or no run has it.
std::vector<RunRecord> tune_runs(const std::vector<RunRecord>& runs, const std::vector<std::string>& keys,
                                 const std::string& tune, std::vector<TuneChoice>* choices = nullptr);
/// Markdown: one line per cell with the chosen value and every candidate's source-val accuracy.
std::string tune_markdown(const std::vector<TuneChoice>& choices, const std::string& tune);
/// CSV (tune.csv of `shiftlab report --tune`): one row per cell and candidate: the cell's `keys`,
/// the tuned key's value, source_val_mean, source_val_std, n (runs compared), chosen (1 / 0),
/// seeds (the compared seeds separated by spaces; empty = all).
std::string tune_csv(const std::vector<TuneChoice>& choices, const std::vector<std::string>& keys,
                     const std::string& tune);

/// Learning curves of one group (every run's metrics.jsonl): accuracies, loss terms, lambda.
/// Returns {file suffix, SVG} pairs, e.g. {"acc", ...}, {"loss", ...}, {"lambda", ...}.
std::vector<std::pair<std::string, std::string>> learning_curve_svgs(const Group& g);

/// Writes <out>/results.md (with `title`; `table`, or markdown_table(groups, keys) when empty),
/// results.csv and, when `curves`, curves/<group>_<kind>.svg (atomically, creating `out`). Returns
/// the number of curve files written.
size_t write_results(const std::string& out, const std::vector<Group>& groups, const std::vector<std::string>& keys,
                     const std::string& title, bool curves, const std::string& table = "");

/// A file-name-safe slug of a group label ("method-dann__optim.lr-0.01").
std::string slug(const std::string& s);

}  // namespace shiftlab::report
