// shiftlab sweep: a grid or random search over options × seeds, one `shiftlab train` child per
// run, resumable, ending with a results table (see src/sweep/sweep.h for the layout).
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include "apps/command.h"
#include "core/error.h"
#include "core/fs.h"
#include "report/runs.h"
#include "sweep/sweep.h"
#include "train/options.h"

namespace shiftlab::apps {

namespace fs = std::filesystem;

namespace {
// The command flags of `shiftlab sweep`. --grid is repeatable: run_sweep reads every one from argv
// (the struct holds the last).
struct SweepFlags {
  std::string grid;
  std::vector<int64_t> seeds{0};
  std::vector<std::string> seed_keys;
  int jobs = 1;
  std::string name;
  std::string out;
  int64_t random = 0;
  int64_t random_seed = 0;
  bool retry_failed = false;
  bool dry_run = false;
};

const core::OptionTable<SweepFlags>& sweep_flag_table() {
  static const auto table = [] {
    using O = SweepFlags;
    core::OptionTable<O> t("apps::SweepFlags");
    t.field("grid", &O::grid,
            "KEY=V1,V2,... one swept option (repeat --grid for more; '|' separates values that "
            "contain commas; with --random also uniform(lo,hi), loguniform(lo,hi), randint(lo,hi))")
        .command_flag();
    t.field("seeds", &O::seeds, "seeds run for every combination, e.g. 0,1,2")
        .range(0, 9.2e18)
        .command_flag()
        .check([](std::vector<int64_t>& v, const std::string&) { core::check_usage(!v.empty(), "--seeds: no seeds given"); });
    t.field("seed_keys", &O::seed_keys,
            "options that also take each run's seed, besides run.seed (e.g. data.source.subset_seed: every seed "
            "draws its own labelled subset)")
        .command_flag();
    t.field("jobs", &O::jobs, "runs at a time (each gets cores/jobs threads unless run.threads is given)")
        .range(1, 256)
        .command_flag();
    t.field("name", &O::name,
            "sweep name: the directory is <run.root>/sweeps/<name> (default: the first config's name)")
        .command_flag();
    t.field("out", &O::out, "sweep directory (overrides --name)").path().command_flag();
    t.field("random", &O::random, "random search: this many combinations drawn from the grid (0 = full grid)")
        .range(0, 1e6)
        .command_flag();
    t.field("random_seed", &O::random_seed, "seed of the random search").range(0, 9e18).command_flag();
    t.field("retry_failed", &O::retry_failed, "run again the combinations whose run failed").command_flag();
    t.field("dry_run", &O::dry_run, "print the runs (and their commands) without starting them").command_flag();
    return t;
  }();
  return table;
}
}  // namespace

static core::Schema sweep_schema() {
  auto s = train::experiment_schema();
  sweep_flag_table().declare(s);
  return s;
}

static std::string self_exe() {
  char buf[4096];
  auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  core::check(n > 0, "cannot locate the shiftlab executable (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

static std::string value_text(const core::Config& c, const std::string& key) {
  const auto& spec = c.schema().spec(key);
  switch (spec.type) {
    case core::OptType::Bool: return c.get_bool(key) ? "true" : "false";
    case core::OptType::Int: return std::to_string(c.get_int(key));
    // the shortest text that reads back as the same double (0.03, not 0.0299…)
    case core::OptType::Float: return core::format_number(c.get_float(key));
    default: return c.get_string(key);
  }
}

static int run_sweep(const core::Config& cli, const std::vector<std::string>& argv) {
  const auto flags = sweep_flag_table().read(cli);
  sweep::Plan plan;
  for (auto& f : cli.config_files) plan.configs.push_back(fs::absolute(f).lexically_normal().string());
  // Every --grid (repeatable), and the experiment options given on the command line (fixed for all runs).
  std::set<std::string> sweep_flags = {"config", "c", "help", "h"};
  for (auto& k : sweep_flag_table().keys()) sweep_flags.insert(k);
  std::set<std::string> fixed;
  for (size_t i = 0; i < argv.size(); ++i) {
    const auto& a = argv[i];
    if (a.rfind("--", 0) != 0) continue;
    auto key = a.substr(2, a.find('=') == std::string::npos ? std::string::npos : a.find('=') - 2);
    if (key == "grid") {
      std::string item = a.find('=') != std::string::npos ? a.substr(a.find('=') + 1) : (i + 1 < argv.size() ? argv[i + 1] : "");
      plan.axes.push_back(sweep::parse_axis(item));
    } else if (!sweep_flags.count(key) && cli.schema().has(key) && !cli.schema().spec(key).cli_only) {
      fixed.insert(key);
    }
  }
  for (auto& a : plan.axes) {
    core::check_usage(cli.schema().has(a.key) && !cli.schema().spec(a.key).cli_only, "--grid: unknown option '", a.key,
                      "'", [&] {
                        auto h = core::nearest(a.key, cli.schema().keys());
                        return h.empty() ? std::string() : " — did you mean '" + h + "'?";
                      }());
    core::check_usage(a.key != "run.seed", "--grid run.seed: use --seeds");
    core::check_usage(!fixed.count(a.key), "option '", a.key, "' is both swept (--grid) and fixed (--", a.key, ")");
  }
  for (auto& k : fixed)
    if (k != "run.root") plan.overrides.emplace_back(k, value_text(cli, k));
  plan.seeds.assign(flags.seeds.begin(), flags.seeds.end());
  for (auto& k : flags.seed_keys) {
    core::check_usage(cli.schema().has(k) && !cli.schema().spec(k).cli_only, "--seed_keys: unknown option '", k, "'",
                      [&] {
                        auto h = core::nearest(k, cli.schema().keys());
                        return h.empty() ? std::string() : " — did you mean '" + h + "'?";
                      }());
    core::check_usage(k != "run.seed", "--seed_keys: run.seed always takes the seed");
    core::check_usage(!fixed.count(k), "option '", k, "' is both fixed (--", k, ") and in --seed_keys");
    for (auto& a : plan.axes) core::check_usage(a.key != k, "option '", k, "' is both swept (--grid) and in --seed_keys");
    plan.seed_keys.push_back(k);
  }
  plan.random = flags.random;
  plan.random_seed = flags.random_seed;
  auto jobs = sweep::expand(plan);

  std::string name = flags.name;
  if (name.empty()) name = plan.configs.empty() ? "sweep" : fs::path(plan.configs.front()).stem().string();
  std::string dir = flags.out;
  if (dir.empty()) dir = (fs::path(cli.get_string("run.root")) / "sweeps" / name).string();

  // Validate every child's options before starting anything: a typo fails now, not after hours.
  auto train_schema = train::experiment_schema();
  for (auto& j : jobs) {
    auto args = sweep::child_args(plan, j, dir);
    args.erase(args.begin());
    try {
      core::parse_args(train_schema, args);
    } catch (const core::UsageError& e) {
      throw core::UsageError(core::str("run ", j.name(), ": ", e.what()));
    }
  }

  auto plan_json = sweep::plan_to_json(plan);
  auto state_path = (fs::path(dir) / "sweep.json").string();
  if (fs::exists(state_path)) {
    nlohmann::json old;
    try {
      old = nlohmann::json::parse(core::read_file(state_path));
    } catch (const std::exception& e) {
      throw core::Error(core::str(state_path, ": unreadable (", e.what(), ")"));
    }
    if (old.value("plan", nlohmann::json()) != plan_json) {
      std::string what;
      for (auto& [k, v] : plan_json.items())
        if (old["plan"].value(k, nlohmann::json()) != v) what += (what.empty() ? "" : ", ") + k;
      // other seeds of the same runs (e.g. seed 0 first, then 1,2): the runs of every seed in both
      // plans are reused, the others start
      if (what == "seeds")
        std::cout << "sweep " << dir << ": seeds " << old["plan"]["seeds"].dump() << " -> " << plan_json["seeds"].dump()
                  << " (the runs of seeds in both are kept)\n";
      else
        throw core::UsageError(core::str("sweep directory ", dir, " holds a different sweep (differs in: ", what,
                                         "); give another --name or --out"));
    }
  }

  if (flags.dry_run) {
    std::cout << jobs.size() << " runs into " << dir << ":\n";
    for (auto& j : jobs) {
      std::cout << "  " << j.name() << ":";
      for (auto& a : sweep::child_args(plan, j, dir)) std::cout << " " << a;
      std::cout << "\n";
    }
    return 0;
  }

  sweep::RunnerOptions ro;
  ro.exe = self_exe();
  ro.sweep_dir = dir;
  ro.jobs = flags.jobs;
  ro.retry_failed = flags.retry_failed;
  if (!cli.is_set("run.threads")) {  // given on the command line or by a --config file: the children keep it
    int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    ro.child_extra.push_back("--run.threads=" + std::to_string(std::max(1, hw / ro.jobs)));
  }
  int left = sweep::run_jobs(plan, jobs, ro);

  // Results table over every run of the sweep, grouped by the swept options.
  std::vector<std::string> keys;
  for (auto& a : plan.axes) keys.push_back(a.key);
  auto runs = report::find_runs({(fs::path(dir) / "runs").string()});
  auto groups = report::group_runs(runs, keys);
  auto md = report::markdown_table(groups, keys);
  report::write_results(dir, groups, keys, "Sweep " + dir, true);
  std::cout << "\n" << md << "\nresults: " << dir << "/results.md, results.csv, curves/\n";
  if (left > 0)
    throw core::Error(core::str(left, " of ", jobs.size(), " runs did not complete (see ", state_path,
                                "; run the same command again to resume)"));
  return 0;
}

SHIFTLAB_COMMAND("sweep", "run a grid / random search over options × seeds (resumable), then a results table",
                 sweep_schema, core::Positionals{"", 0, 0},
                 "Each run is `shiftlab train` with the base configs, the fixed --key=value options, one value of\n"
                 "every --grid option and one seed, in <sweep dir>/runs/<combination>/seed<S>/. Running the same\n"
                 "command again skips completed runs and resumes interrupted ones from their latest checkpoint.\n"
                 "The table (results.md, results.csv) reports target-test accuracy selected on source-val and the\n"
                 "oracle (target-label) choice in separate columns; curves/ holds learning curves (SVG).\n"
                 "\n"
                 "Examples:\n"
                 "  shiftlab sweep --config configs/digits/mnist_to_uci.ini --grid method=source_only,dann \\\n"
                 "      --grid optim.lr=1e-3,1e-2 --seeds 0,1 --jobs 2 --train.steps=1500\n"
                 "  shiftlab report runs/sweeps/mnist_to_uci",
                 run_sweep);

}  // namespace shiftlab::apps
