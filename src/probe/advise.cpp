#include "probe/advise.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/options.h"
#include "models/backbones.h"
#include "train/options.h"

namespace shiftlab::probe {

namespace {

std::string pct(double v) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1) << v << " %";
  return os.str();
}

std::string g(double v) {
  std::ostringstream os;
  os << std::setprecision(3) << v;
  return os.str();
}

int band_of(double p) { return p > 85 ? 0 : p >= 70 ? 1 : p >= 50 ? 2 : 3; }

constexpr int kManyLabelsPerClass = 100, kFewLabelsPerClass = 20;

}  // namespace

std::pair<double, double> wilson_interval(double q, int64_t n, double z) {
  if (n <= 0) return {0, 1};
  const double nn = static_cast<double>(n), z2 = z * z;
  const double centre = (q + z2 / (2 * nn)) / (1 + z2 / nn);
  const double half = z * std::sqrt(q * (1 - q) / nn + z2 / (4 * nn * nn)) / (1 + z2 / nn);
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

nlohmann::json Advice::to_json() const {
  return {{"strategy", strategy},       {"probe_acc", probe_acc},   {"probe_acc_on", probe_acc_on},
          {"freeze", freeze},           {"layer_decay", layer_decay}, {"use_da", use_da},
          {"method", method},           {"reasons", reasons},         {"settings", settings},
          {"image_size", image_size},   {"train_transform", train_transform},
          {"eval_transform", eval_transform}, {"band_uncertain", band_uncertain},
          {"gap_uncertain", gap_uncertain}};
}

Advice advise(const Evidence& e) {
  Advice a;
  if (e.target_target_acc) {
    a.probe_acc = *e.target_target_acc;
    a.probe_acc_on = "target→target";
  } else if (e.source_acc) {
    a.probe_acc = *e.source_acc;
    a.probe_acc_on = "source→source";
  } else {
    throw core::UsageError("advise: no linear-probe accuracy in the evidence (the cache needs labelled source rows)");
  }
  // band 0 = feature extraction ... 3 = full fine-tune
  const double p = a.probe_acc;
  int band = band_of(p);
  const char* band_text[] = {"> 85 %: the frozen features may suffice", "70–85 %: fine-tune the top 1–2 groups",
                             "50–70 %: fine-tune 3–4 groups with discriminative learning rates",
                             "< 50 %: the features fit poorly, fine-tune everything"};
  const char* band_name[] = {"> 85 %", "70–85 %", "50–70 %", "< 50 %"};
  const int64_t acc_rows = e.target_target_acc ? e.target_target_rows : e.source_acc_rows;
  a.reasons.push_back(core::str("linear probe ", a.probe_acc_on, " on ", e.tap, ": ", pct(p),
                                acc_rows > 0 ? core::str(" (", acc_rows, " images)") : std::string(), " → band ",
                                band_text[band]));
  if (acc_rows > 0) {
    auto [lo, hi] = wilson_interval(p / 100, acc_rows);
    const int b_lo = band_of(100 * hi), b_hi = band_of(100 * lo);  // a higher accuracy = a lower band
    if (b_lo != b_hi) {
      a.band_uncertain = true;
      a.reasons.push_back(core::str("uncertain: on ", acc_rows, " images the 95 % interval of that accuracy is ",
                                    pct(100 * lo), " – ", pct(100 * hi), ", which spans the bands ", band_name[b_lo],
                                    " to ", band_name[b_hi], "; the band is the point estimate's (more labelled ",
                                    e.target_target_acc ? "target" : "source validation", " images would settle it)"));
    }
  }
  const int64_t train_rows = e.target_target_acc ? e.target_rows : e.source_rows;
  const double per_class = e.num_classes > 0 ? static_cast<double>(train_rows) / e.num_classes : 0;
  // The size rules as the transfer study measured them (README, issue 20 §3; both pairs, 3 seeds):
  // with >= 100 labelled rows per class every frozen row trailed the full-model rows (near pair, all
  // ~126 labels/class: -1.7 points on every seed; far pair, 100 and ~700/class: -7.1 and -10.4), though
  // the probe band said > 85 %; with < 20 per class the old "one band more frozen" rule made the far
  // pair's 10-label cells feature extraction, 12 points under full fine-tuning, while on the near
  // pair the frozen rows only tied. Few labels instead freeze BatchNorm's statistics (10 images per
  // batch set them): the best full fine-tune with 1 label/class near (+3.3 over BN trained), a tie far.
  if (per_class >= kManyLabelsPerClass && band < 3) {
    ++band;
    a.reasons.push_back(core::str(g(per_class), " labelled rows per class (>= ", kManyLabelsPerClass,
                                  "): one band less frozen (in the transfer study frozen features trailed fine-tuning "
                                  "at every such cell, even with a probe above 85 %)"));
  }
  const bool few_labels = per_class > 0 && per_class < kFewLabelsPerClass;
  auto& s = a.settings;
  switch (band) {
    case 0:
      a.strategy = "feature extraction";
      a.freeze = "backbone";
      s["model.bn"] = "frozen";
      break;
    case 1:
      a.strategy = "fine-tune top groups";
      a.freeze = p >= 77.5 ? "top:1" : "top:2";
      a.layer_decay = 0.1;
      break;
    case 2:
      a.strategy = "discriminative fine-tune";
      a.freeze = p >= 60 ? "top:3" : "top:4";
      a.layer_decay = 0.3;
      break;
    default:
      a.strategy = "full fine-tune";
      a.freeze = "none";
      a.layer_decay = 0.5;
  }
  if (few_labels && band > 0) {
    s["model.bn"] = "frozen";
    a.reasons.push_back(core::str("only ", g(per_class), " labelled rows per class: keep BatchNorm's statistics frozen "
                                  "while fine-tuning (batches of so few images would set them; in the transfer study +3.3 "
                                  "points with 1 label per class, a tie or -1 with 10)"));
  }
  s["model.freeze"] = a.freeze;
  s["optim.lr"] = "0.01";
  s["optim.layer_decay"] = g(a.layer_decay);
  if (band > 0) {
    s["train.phase1_steps"] = "200";
    a.reasons.push_back("fine-tuning: train the head alone first (train.phase1_steps), then unfreeze (LP-FT)");
  }
  // domain adaptation
  const bool drop = e.source_acc && e.target_acc && *e.source_acc - *e.target_acc >= 15;
  // the A-distance's interval (from the domain classifier's error on its test rows)
  std::string gap_note;
  if (!e.target_labelled && e.a_distance && e.a_distance_error && e.a_distance_test_rows > 0) {
    auto [lo, hi] = wilson_interval(std::clamp(*e.a_distance_error, 0.0, 1.0), e.a_distance_test_rows);
    const double d_lo = std::clamp(2 * (1 - 2 * hi), 0.0, 2.0), d_hi = std::clamp(2 * (1 - 2 * lo), 0.0, 2.0);
    auto zone = [](double d) { return d < 0.5 ? 0 : d < 1.0 ? 1 : 2; };
    if (zone(d_lo) != zone(d_hi)) {
      a.gap_uncertain = true;
      gap_note = core::str(" — uncertain: from ", e.a_distance_test_rows, " test rows its 95 % interval is ", g(d_lo),
                           " – ", g(d_hi), ", across the DA thresholds 0.5 / 1, so the domain gap is not measured "
                           "well enough to choose a DA method (more rows per domain would)");
    }
  }
  if (e.target_labelled && e.target_target_acc) {
    a.method = "source_only";
    a.reasons.push_back("the target is labelled: train on it directly (point data.source at the target data); no DA needed");
  } else if (!e.a_distance) {
    a.reasons.push_back("no target features in the cache: cannot judge the domain gap; no DA");
  } else if (*e.a_distance < 0.5 && !drop) {
    a.reasons.push_back(core::str("A-distance ", g(*e.a_distance), " < 0.5: the domains are close; source_only", gap_note));
  } else if (*e.a_distance < 1.0 && !drop) {
    a.use_da = true;
    a.method = "mcc";
    a.reasons.push_back(core::str("A-distance ", g(*e.a_distance), " in [0.5, 1): moderate gap; light DA (mcc)", gap_note));
  } else {
    a.use_da = true;
    a.method = "cdan+E";
    a.reasons.push_back(core::str("A-distance ", g(*e.a_distance),
                                  drop ? core::str(" and a source→target probe drop of ", g(*e.source_acc - *e.target_acc), " points")
                                       : std::string(""),
                                  ": DA is worth it (cdan+E)", drop ? std::string() : gap_note));
  }
  s["method"] = a.method;
  if (a.use_da && band == 0) {
    s["model.head"] = "bottleneck";
    a.reasons.push_back("frozen backbone + DA: a bottleneck head gives the alignment trainable features");
  }
  const auto* info = e.backbone.empty() ? nullptr : models::backbone_info(e.backbone);
  if (info && e.weights == Evidence::Weights::Shiftlab) {
    // not the published weights: their input is the one the training run used (the cache's, kept below)
    a.reasons.push_back(core::str("the weights were trained by shiftlab",
                                  e.weights_trained_by.empty() ? std::string() : " (" + e.weights_trained_by + ")",
                                  ", not the published ", e.backbone, " ones: keep the input size and transforms that "
                                  "run used, not the ", info->image_size, " px ImageNet recipe"));
  } else if (info && e.weights != Evidence::Weights::Random) {
    a.image_size = info->image_size;
    a.train_transform = info->train_transform();
    a.eval_transform = info->eval_transform();
    a.reasons.push_back(core::str(e.backbone, " was pretrained at ", info->image_size, " px: feed it that resolution (train: ",
                                  a.train_transform, "; eval: ", a.eval_transform, ")"));
  }
  return a;
}

std::vector<core::IniEntry> recorded_config(const nlohmann::json& attrs) {
  if (!attrs.is_object() || !attrs.contains("config") || !attrs["config"].is_string()) return {};
  try {
    return core::parse_ini_text(attrs["config"].get<std::string>(), "cache attribute config");
  } catch (const core::UsageError& e) {
    // said aloud: a train config written without the extraction's data/model settings fails later
    core::log_warn("the cache's recorded configuration is not readable (", e.what(),
                   "): its data and model settings are not carried over");
    return {};
  }
}

std::string advice_ini(const Advice& a, const nlohmann::json& attrs, const std::vector<std::string>& header) {
  core::Config cfg(train::experiment_schema());
  // the extraction's own data/model settings, as far as train knows them
  for (auto& e : recorded_config(attrs)) {
    const std::string &key = e.key, &value = e.value;
    bool wanted = key.rfind("data.", 0) == 0 || key.rfind("model.", 0) == 0;
    if (!wanted || !cfg.schema().has(key) || cfg.schema().spec(key).cli_only) continue;
    if (value == cfg.schema().spec(key).default_value) continue;  // keep the written config short
    try {
      cfg.set(key, value, "cache config");
    } catch (const core::UsageError&) {
      continue;  // a value train would not accept (e.g. an extraction-only form): keep the default
    }
  }
  for (auto& [k, v] : a.settings) cfg.set(k, v, "advise");  // must all be valid train keys
  std::ostringstream os;
  for (auto& h : header) os << "# " << h << "\n";
  if (!a.train_transform.empty())
    os << "# Native input " << a.image_size << " px; the pretrained weights' transforms: data.*.transform = "
       << a.train_transform << ", data.*.eval_transform = " << a.eval_transform << "\n";
  os << "# Keys not listed keep their defaults (shiftlab train --help).\n";
  std::map<std::string, std::vector<std::string>> by;
  std::vector<std::string> order;
  for (auto& k : cfg.schema().keys()) {
    if (!cfg.is_set(k)) continue;
    auto dot = k.rfind('.');
    std::string sec = dot == std::string::npos ? "" : k.substr(0, dot);
    if (!by.count(sec)) order.push_back(sec);
    by[sec].push_back(k);
  }
  std::stable_sort(order.begin(), order.end(), [](auto& x, auto& y) { return x.empty() && !y.empty(); });
  for (auto& sec : order) {
    if (!sec.empty()) os << "\n[" << sec << "]\n";
    for (auto& k : by[sec]) {
      os << k.substr(sec.empty() ? 0 : sec.size() + 1) << " = " << cfg.get_string(k) << "\n";  // raw, as to_ini
    }
  }
  return os.str();
}

}  // namespace shiftlab::probe
