// shiftlab advise: linear probe (+ A-distance) on one tap of a feature cache -> a transfer strategy
// (probe::advise, following the seeds' tables) printed with its evidence, and a ready train config.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "apps/command.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/runtime.h"
#include "features/cache.h"
#include "probe/advise.h"
#include "probe/analysis.h"

namespace shiftlab::apps {

namespace fs = std::filesystem;

static core::Schema advise_schema() {
  core::Schema s;
  probe::declare_probe_options(s);
  core::declare_runtime_options(s);
  s.add_path("out", "", "the train config written (default: next to the cache, CACHE_STEM_advice.ini)")
      .command_flag();
  return s;
}

static std::string pct(const std::optional<double>& v, int64_t rows = 0) {
  if (!v) return "—";
  std::ostringstream os;
  os << std::fixed << std::setprecision(1) << *v << " %";
  if (rows > 0) os << " (" << rows << " images)";
  return os.str();
}

/// The value of `key` ("data.target.labelled") in the configuration the cache records, "" if absent.
static std::string recorded_value(const nlohmann::json& attrs, const std::string& key) {
  std::string value;
  for (auto& e : probe::recorded_config(attrs))
    if (e.key == key) value = e.value;  // the last one wins, as when the INI is read
  return value;
}

static int run_advise(const core::Config& cfg, const std::vector<std::string>&) {
  const std::string cache = cfg.positional.at(0);
  auto po = probe::probe_options_from(cfg);
  core::setup_runtime(core::runtime_options_from(cfg));
  // the tap: --probe.taps (one), else the deepest one other than the logits
  std::vector<std::string> taps;
  {
    auto reader = features::CacheReader::open(cache);
    for (auto& e : reader.list()) taps.push_back(e.tap);
  }
  taps = probe::order_taps(taps);
  core::check(!taps.empty(), "feature cache '", cache, "' holds no feature blocks");
  std::string tap;
  if (!po.taps.empty()) {
    core::check_usage(po.taps.size() == 1, "advise works on one tap: give --probe.taps=TAP (got ", po.taps.size(), ")");
    tap = po.taps.front();
  } else {
    for (auto it = taps.rbegin(); it != taps.rend() && tap.empty(); ++it)
      if (*it != po.logits_tap) tap = *it;
    if (tap.empty()) tap = taps.back();
  }
  po.taps = {tap};
  po.knn_k = 0;
  po.scores = false;
  po.tsne = false;
  po.distances = true;
  std::string out = cfg.get_string("out");
  if (out.empty()) {
    fs::path p(cache);
    out = (p.parent_path() / (p.stem().string() + "_advice.ini")).string();
  }
  auto rep = probe::probe_cache(cache, po);
  const auto& t = rep.taps.at(0);
  // labelled target data to train on = a labelled target training split (test labels only evaluate),
  // unless the extraction's config declared the target unlabelled (extract keeps the labels for probes)
  bool target_train_labelled = false;
  {
    auto reader = features::CacheReader::open(cache);
    for (auto& e : reader.list())
      if (e.domain == po.target && e.split == po.train_split && e.tap == tap && e.rows_done > 0) {
        auto b = reader.read(e.domain, e.split, e.tap);
        for (auto l : b.labels) target_train_labelled = target_train_labelled || l >= 0;
      }
  }
  const bool declared_unlabelled = recorded_value(rep.attributes, "data." + po.target + ".labelled") == "false";
  const bool labels_for_eval_only = target_train_labelled && declared_unlabelled;
  if (labels_for_eval_only) target_train_labelled = false;
  probe::Evidence ev;
  ev.tap = tap;
  ev.num_classes = t.num_classes;
  ev.source_rows = t.source_train_rows;
  ev.target_rows = t.target_rows;
  ev.target_labelled = target_train_labelled;
  ev.source_acc = t.source_acc;
  ev.target_acc = t.target_acc;
  if (target_train_labelled) ev.target_target_acc = t.target_target_acc;
  if (t.a_distance) ev.a_distance = t.a_distance->a_distance;
  if (rep.attributes.is_object() && rep.attributes.contains("backbone") && rep.attributes["backbone"].is_string())
    ev.backbone = rep.attributes["backbone"].get<std::string>();
  ev.source_acc_rows = t.source_acc_rows;
  ev.target_target_rows = t.target_target_rows;
  if (t.a_distance) {
    ev.a_distance_test_rows = t.a_distance->test_rows;
    ev.a_distance_error = t.a_distance->error;
  }
  auto attr = [&](const char* k) {
    return rep.attributes.is_object() && rep.attributes.contains(k) && rep.attributes[k].is_string()
               ? rep.attributes[k].get<std::string>()
               : std::string();
  };
  const bool random_init = rep.attributes.is_object() && rep.attributes.contains("weights") && attr("weights").empty() &&
                           attr("checkpoint").empty();
  // where the backbone's weights come from decides whether the published weights' input size applies
  if (random_init) {
    ev.weights = probe::Evidence::Weights::Random;
  } else if (!attr("checkpoint").empty()) {
    ev.weights = probe::Evidence::Weights::Shiftlab;
    ev.weights_trained_by = attr("checkpoint");
  } else if (!attr("weights_trained_by").empty()) {
    ev.weights = probe::Evidence::Weights::Shiftlab;
    ev.weights_trained_by = attr("weights_trained_by");
  } else if (!attr("weights").empty()) {
    ev.weights = probe::Evidence::Weights::Imported;
  }
  auto advice = probe::advise(ev);

  std::ostringstream evs;
  evs << std::fixed;
  evs << "  backbone          " << (ev.backbone.empty() ? "(unknown)" : ev.backbone) << ", tap " << tap << " (D=" << t.dim
      << ")\n"
      << "  classes           " << ev.num_classes << "\n"
      << "  rows              source " << ev.source_rows << ", target " << ev.target_rows
      << (ev.target_labelled       ? " (labelled)"
          : labels_for_eval_only ? " (unlabelled: the extraction config sets data." + po.target + ".labelled = false)"
                                 : " (unlabelled training split)")
      << "\n"
      << "  linear probe      " << (t.best_C ? core::str("C = ", std::defaultfloat, *t.best_C, ": ") : std::string())
      << "source→source " << pct(t.source_acc, t.source_acc_rows) << ", source→target "
      << pct(t.target_acc, t.target_acc_rows) << ", target→target " << pct(t.target_target_acc, t.target_target_rows)
      << (t.target_target_acc && !ev.target_labelled ? " (labels for evaluation only; not used for the band)" : "")
      << "\n"
      << "  A-distance        "
      << (t.a_distance ? core::str(std::fixed, std::setprecision(3), t.a_distance->a_distance, " (domain classifier error ",
                                   std::setprecision(1), 100 * t.a_distance->error, " %)")
                       : std::string("— (no target features)"))
      << "\n";
  if (random_init)
    evs << "  note              the cache records no model.weights and no checkpoint: the probe measured a randomly\n"
           "                    initialised backbone, so the freezing advice says little about a trained one\n";
  std::cout << "evidence from " << cache << ":\n" << evs.str() << "\nadvice: " << advice.strategy << " (freeze "
            << advice.freeze << ", layer decay " << advice.layer_decay << ", method " << advice.method << ")\n";
  for (auto& r : advice.reasons) std::cout << "  - " << r << "\n";

  std::vector<std::string> header{"written by: shiftlab advise " + cache, "strategy: " + advice.strategy};
  for (auto& r : advice.reasons) header.push_back("  " + r);
  std::istringstream evlines(evs.str());
  header.push_back("evidence:");
  for (std::string line; std::getline(evlines, line);) header.push_back(line);
  header.push_back("train with: shiftlab train --config " + out);
  auto ini = probe::advice_ini(advice, rep.attributes, header);
  auto dir = fs::path(out).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    core::check(!ec, "cannot create the directory of '", out, "': ", ec.message());
  }
  core::atomic_write(out, ini);
  std::cout << "\nwrote " << out << " (shiftlab train --config " << out << ")\n";
  return 0;
}

SHIFTLAB_COMMAND(
    "advise", "recommend a transfer strategy from a feature cache (linear probe + A-distance) and write a train config",
    advise_schema, core::Positionals{"CACHE.h5", 1, 1},
    "Runs the linear probe and the proxy A-distance on one tap (default: the deepest, logits excluded; or\n"
    "--probe.taps=TAP) and applies the seeds' tables: the probe accuracy band (> 85 %: feature extraction;\n"
    "70–85: fine-tune the top 1–2 groups; 50–70: 3–4 groups with discriminative learning rates; < 50: full\n"
    "fine-tune), shifted by the labelled rows per class and the domain gap, picks model.freeze,\n"
    "optim.layer_decay and the two-phase recipe; the A-distance (and the source→target probe drop) picks\n"
    "the DA method when the target is unlabelled. The band uses target→target accuracy when the target's\n"
    "training split is labelled, else source→source. Each figure says how many images it was measured on;\n"
    "when its 95 % interval spans a band edge (or the A-distance's 0.5 / 1 DA thresholds) the advice says the\n"
    "evidence cannot decide. The published weights' input size is advised only for imported weights (not\n"
    "for weights a shiftlab run trained, nor a random backbone). Prints the evidence and the reasons, and\n"
    "writes a train config (the cache's data/model settings + the advice) to --out.\n"
    "\n"
    "Examples:\n"
    "  shiftlab data prepare mnist uci-digits\n"
    "  shiftlab extract --config configs/digits/mnist_to_uci.ini --taps=conv2,pooled digits.h5\n"
    "  shiftlab advise digits.h5 --out=digits_advice.ini\n"
    "  shiftlab train --config digits_advice.ini",
    run_advise);

}  // namespace shiftlab::apps
