// Ablation sweeps: a grid (or random search) over option values × seeds, one `shiftlab train`
// child process per combination and seed, each in its own run directory under one sweep
// directory, resumable (finished runs skipped, interrupted ones resumed from their checkpoint).
//
// Sweep directory layout:
//   sweep.json                 the plan (configs, overrides, axes, seeds) and each job's state
//   runs/<combo>/seed<S>/<run>  the run directories (`shiftlab train` layout)
//   logs/<combo>__seed<S>.log   each child's console output
//   results.md / results.csv   the table (report::markdown_table), curves/*.svg learning curves
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace shiftlab::sweep {

/// One swept option (`axis` in core/spec.h). Values are a list ("key=a,b,c", or "key=a|b|c" when
/// values contain commas outside brackets; a quoted value is taken without its quotes), or — in
/// random search only — a distribution: uniform(lo,hi), loguniform(lo,hi), randint(lo,hi) (inclusive).
struct Axis {
  std::string key;
  std::vector<std::string> values;  ///< list values (empty for a distribution)
  std::string dist;                 ///< "" | uniform | loguniform | randint
  double lo = 0, hi = 0;
};
/// Parses "key=values" (a core::SpecError naming --grid, the item and the column when malformed).
Axis parse_axis(const std::string& item);

struct Plan {
  std::vector<std::string> configs;  ///< base --config files (absolute paths)
  std::vector<std::pair<std::string, std::string>> overrides;  ///< fixed --key=value for every run
  std::vector<Axis> axes;
  std::vector<long long> seeds{0};
  std::vector<std::string> seed_keys;  ///< options set to the seed besides run.seed (e.g. data.source.subset_seed)
  long long random = 0;       ///< > 0: random search with this many combinations
  long long random_seed = 0;  ///< seed of the random search
};

/// One child run: the values of the swept options, a seed, names.
struct Job {
  std::vector<std::pair<std::string, std::string>> values;  ///< (key, value) in axis order
  long long seed = 0;
  std::string combo;  ///< directory-safe name of `values` ("method-dann__optim.lr-0.001"; "base")
  std::string name() const { return combo + "/seed" + std::to_string(seed); }
};

/// Grid: the Cartesian product of the axes (first axis slowest) × seeds (innermost). Random:
/// `random` distinct combinations drawn with random_seed (lists: uniform choice; distributions:
/// sampled, printed with 4 significant digits) × seeds. Errors name the offending axis.
std::vector<Job> expand(const Plan& p);
/// The directory-safe combination name.
std::string combo_name(const std::vector<std::pair<std::string, std::string>>& values);

nlohmann::json plan_to_json(const Plan& p);

/// State of a job's run directory (the latest under runs/<combo>/seed<S>/).
struct JobState {
  enum Kind { Missing, Completed, Resumable, Failed, Restart } kind = Missing;
  std::string dir;  ///< the run directory, when one exists
};
JobState inspect_job(const std::string& sweep_dir, const Job& job);

struct RunnerOptions {
  std::string exe;               ///< the shiftlab binary (children run `exe train ...`)
  std::string sweep_dir;
  int jobs = 1;                  ///< concurrent children
  bool retry_failed = false;     ///< rerun jobs whose run failed (else they are reported failed)
  std::vector<std::string> child_extra;  ///< appended to every child command (e.g. --run.threads=1)
};

/// Runs every job that is not completed (skip / resume / start), `jobs` at a time, printing
/// progress; SIGINT/SIGTERM are forwarded to the children (which checkpoint and stop) and the
/// sweep stops after them. Returns the number of jobs not completed at the end.
int run_jobs(const Plan& p, const std::vector<Job>& jobs, const RunnerOptions& o);

/// Command line of one fresh child run (without the executable).
std::vector<std::string> child_args(const Plan& p, const Job& j, const std::string& sweep_dir);

}  // namespace shiftlab::sweep
