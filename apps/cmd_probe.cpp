// shiftlab probe: every analysis of a feature cache (linear / kNN probes, domain distances,
// transferability scores, t-SNE) tap by tap -> a table on stdout and probe.json, probe.md and
// SVG pictures in the output directory. The analyses live in src/probe/analysis.h.
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "apps/command.h"
#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "probe/analysis.h"

namespace shiftlab::apps {

namespace fs = std::filesystem;

static core::Schema probe_schema() {
  core::Schema s;
  probe::declare_probe_options(s);
  core::declare_runtime_options(s);
  s.add_path("out", "", "output directory (default: next to the cache, CACHE_STEM_probe/)").command_flag();
  return s;
}

/// CACHE's directory / (stem + suffix): "feats/digits.h5" -> "feats/digits_probe".
static std::string beside_cache(const std::string& cache, const std::string& suffix) {
  fs::path p(cache);
  return (p.parent_path() / (p.stem().string() + suffix)).string();
}

static int run_probe(const core::Config& cfg, const std::vector<std::string>&) {
  const std::string cache = cfg.positional.at(0);
  auto po = probe::probe_options_from(cfg);
  core::setup_runtime(core::runtime_options_from(cfg));
  std::string out = cfg.get_string("out");
  if (out.empty()) out = beside_cache(cache, "_probe");
  const auto t0 = std::chrono::steady_clock::now();
  auto rep = probe::probe_cache(cache, po);
  auto files = probe::write_probe_report(rep, out);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string bb = rep.attributes.is_object() ? rep.attributes.value("backbone", std::string()) : std::string();
  std::cout << "probe of " << cache << (bb.empty() ? "" : " (backbone " + bb + ")") << ": " << rep.source_name
            << " → " << rep.target_name << ", " << rep.taps.size() << " tap(s)\n\n"
            << rep.text_table();
  if (rep.tsne)
    std::cout << "t-SNE of tap " << rep.tsne->tap << ": " << rep.tsne->domain.size() << " rows\n";
  std::cout << "\nwrote";
  for (size_t i = 0; i < files.size(); ++i) std::cout << (i ? ", " : " ") << files[i];
  std::cout << " (" << std::fixed << std::setprecision(1) << secs << " s)\n";
  return 0;
}

SHIFTLAB_COMMAND(
    "probe", "probe a feature cache per layer: linear/kNN probes, A-distance, MMD, CORAL, LogME/LEEP, t-SNE",
    probe_schema, core::Positionals{"CACHE.h5", 1, 1},
    "Reads a cache written by `shiftlab extract` and analyses every tap (or --probe.taps), shallow to deep:\n"
    "  linear probe   standardised multinomial logistic regression (L-BFGS), C swept over --probe.Cs and\n"
    "                 chosen on source val (or a carved part of source train); trained on source train,\n"
    "                 tested on source test, else source val (source→source), and the labelled target\n"
    "                 (source→target); probe.json names the rows of each figure;\n"
    "                 target→target when the target has labels\n"
    "  kNN probe      cosine, k = --probe.knn_k (0 = off)\n"
    "  distances      proxy A-distance 2(1 − 2ε) (0 = same distribution, 2 = separable), MK-MMD², CORAL\n"
    "  scores         LogME and H-score per tap; LEEP and NCE from the 'logits' tap when the cache has it\n"
    "  t-SNE          of the deepest tap (--probe.tsne_tap), coloured by domain and by class\n"
    "Prints the per-layer table; writes probe.json, probe.md, transferability.svg (probe accuracy per layer\n"
    "and A-distance), tsne_domain.svg and tsne_class.svg into --out (default CACHE_STEM_probe/ beside the\n"
    "cache). Progress lines go to stderr (--run.log_level=warn silences them).\n"
    "\n"
    "Examples:\n"
    "  shiftlab extract --config configs/digits/mnist_to_uci.ini --taps=conv1,conv2,pooled digits.h5\n"
    "  shiftlab probe digits.h5                      # -> digits_probe/probe.md, transferability.svg, ...\n"
    "  shiftlab probe digits.h5 --probe.taps=pooled --probe.Cs=1 --probe.tsne=false --out=digits_pooled",
    run_probe);

}  // namespace shiftlab::apps
