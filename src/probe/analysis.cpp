#include "probe/analysis.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "core/format.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "features/cache.h"
#include "report/svg.h"
#include "probe/transferability.h"

namespace shiftlab::probe {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// options

const core::OptionTable<ProbeOptions>& probe_option_table() {
  static const auto table = [] {
    using O = ProbeOptions;
    core::OptionTable<O> t("probe::ProbeOptions");
    t.field("probe.taps", &O::taps, "taps to analyse (default: every tap of the cache), e.g. layer3,pooled");
    t.field("probe.source", &O::source, "domain group of the labelled source rows");
    t.field("probe.target", &O::target, "domain group of the target rows");
    t.field("probe.train_split", &O::train_split, "split the probes are trained on");
    t.field("probe.val_split", &O::val_split, "split C is chosen on (else a val_fraction carved from train)");
    t.field("probe.test_split", &O::test_split, "split the probes are tested on");
    t.field("probe.val_fraction", &O::val_fraction, "fraction of the training rows carved off when a split is missing")
        .range(0.01, 0.9);
    t.field("probe.max_train_rows", &O::max_train_rows, "subsample the probe's training rows to this many (0 = all)")
        .range(0, 1e12);
    t.field("probe.Cs", [](O& o) -> auto& { return o.linear.Cs; },
            "inverse L2 strengths tried by the linear probe, increasing (one value = no sweep)")
        .check([](std::vector<double>& cs, const std::string& key) {
          for (double C : cs)
            core::check_usage(C > 0, "option '", key, "': '", core::format_number(C),
                              "' is not a positive number (expected e.g. 0.01,0.1,1,10)");
          core::check_usage(!cs.empty(), "option '", key, "': give at least one C value (e.g. 1)");
          std::sort(cs.begin(), cs.end());
          cs.erase(std::unique(cs.begin(), cs.end()), cs.end());
        });
    t.field("probe.patience", [](O& o) -> auto& { return o.linear.patience; },
            "stop the C sweep after this many values without improvement")
        .range(1, 1000);
    t.field("probe.solver", [](O& o) -> auto& { return o.linear.fit.solver; },
            "linear-probe solver: lbfgs or newton (sub-sampled Newton-CG)")
        .choices({"lbfgs", "newton"});
    t.field("probe.precondition", [](O& o) -> auto& { return o.linear.fit.precondition; },
            "L-BFGS on whitened features (same minimiser, fewer iterations); false = plain L-BFGS");
    t.field("probe.max_iter", [](O& o) -> auto& { return o.linear.fit.max_iter; },
            "solver iterations per fit (Newton steps or L-BFGS iterations)")
        .range(1, 1e7);
    t.field("probe.tol", [](O& o) -> auto& { return o.linear.fit.tol; },
            "gradient-norm tolerance of the fit (mean-form objective)")
        .range(0, 1);
    t.field("probe.max_cg", [](O& o) -> auto& { return o.linear.fit.max_cg; },
            "Newton: conjugate-gradient steps per iteration")
        .range(1, 1e6);
    t.field("probe.hessian_rows", [](O& o) -> auto& { return o.linear.fit.hessian_rows; },
            "rows of the Newton Hessian and of the preconditioner's feature moments (0 = all)")
        .range(0, 1e12);
    t.field("probe.warmup_rows", [](O& o) -> auto& { return o.linear.fit.warmup_rows; },
            "warm-start each fit on this many random rows first (0 = off)")
        .range(0, 1e12);
    t.field("probe.knn_k", &O::knn_k, "neighbours of the cosine kNN probe (0 = no kNN probe)").range(0, 100000);
    t.field("probe.distances", &O::distances, "proxy A-distance, MK-MMD² and CORAL distance between the domains");
    t.field("probe.a_distance_rows", [](O& o) -> auto& { return o.a_distance.max_rows; },
            "rows per domain for the A-distance (0 = all)")
        .range(0, 1e12);
    t.field("probe.mmd_rows", [](O& o) -> auto& { return o.mmd.max_rows; }, "rows per domain for MK-MMD² (0 = all)")
        .range(0, 1e12);
    t.field("probe.coral_rows", &O::coral_rows, "rows per domain for the CORAL distance (0 = all)").range(0, 1e12);
    t.field("probe.scores", &O::scores, "transferability scores: LogME, H-score (per tap), LEEP and NCE (logits tap)");
    t.field("probe.score_rows", &O::score_rows, "rows used by LogME / H-score / LEEP / NCE (subsampled; 0 = all)")
        .range(0, 1e12);
    t.field("probe.logits_tap", &O::logits_tap, "tap holding the source model's class scores (for LEEP / NCE)");
    t.field("probe.tsne", &O::tsne, "t-SNE of source vs target features (tsne_domain.svg, tsne_class.svg)");
    t.field("probe.tsne_tap", &O::tsne_tap, "tap embedded by t-SNE (default: the deepest tap other than logits)");
    t.field("probe.tsne_rows", &O::tsne_rows, "source + target rows embedded (exact t-SNE: O(N²) per iteration)")
        .range(4, 20000);
    t.field("probe.perplexity", [](O& o) -> auto& { return o.tsne_opts.perplexity; },
            "t-SNE perplexity (lowered for small sets)")
        .range(1, 1000);
    t.field("probe.tsne_iters", [](O& o) -> auto& { return o.tsne_opts.iterations; }, "t-SNE iterations")
        .range(1, 100000);
    t.field("probe.seed", &O::seed, "seed of every split and subsample").range(0, 9.0e18);
    t.on_read([](O& o) {
      o.a_distance.fit = o.linear.fit;
      o.a_distance.seed = o.mmd.seed = o.tsne_opts.seed = o.seed;
    });
    return t;
  }();
  return table;
}

// ---------------------------------------------------------------------------------------------
// tap order

namespace {

/// input/stem first, then everything else naturally sorted, then pooled, features, logits.
int tap_rank(const std::string& t) {
  if (t == "input" || t == "stem") return 0;
  if (t == "pooled") return 2;
  if (t == "features") return 3;
  if (t == "logits") return 4;
  return 1;
}

}  // namespace

std::vector<std::string> order_taps(std::vector<std::string> taps) {
  std::sort(taps.begin(), taps.end(), [](const std::string& a, const std::string& b) {
    int ra = tap_rank(a), rb = tap_rank(b);
    if (ra != rb) return ra < rb;
    return core::natural_compare(a, b) < 0;
  });
  taps.erase(std::unique(taps.begin(), taps.end()), taps.end());
  return taps;
}

// ---------------------------------------------------------------------------------------------
// probe_cache

namespace {

/// Labelled rows of a block (label ≥ 0), as probe inputs.
struct Rows {
  MatrixF X;
  std::vector<int> y;
  std::string what;  ///< "source/test", "carved from source/train", ...
  int64_t size() const { return X.rows(); }
};

/// Labelled rows of `a` whose image is not in `excluded` (by item_hash; all of them without hashes).
std::vector<int64_t> labelled_indices_except(const features::FeatureBlock& a, const std::set<int64_t>& excluded) {
  std::vector<int64_t> idx;
  for (size_t i = 0; i < a.labels.size(); ++i)
    if (a.labels[i] >= 0 && (a.item_hash.empty() || !excluded.count(a.item_hash[i]))) idx.push_back(static_cast<int64_t>(i));
  return idx;
}

std::vector<int64_t> labelled_indices(const features::FeatureBlock& b) { return labelled_indices_except(b, {}); }

Rows labelled_rows(const features::FeatureBlock& b, const std::vector<int64_t>& idx, std::string what) {
  Rows r;
  r.X = take_rows(b.X, idx);
  r.y.reserve(idx.size());
  for (auto i : idx) r.y.push_back(static_cast<int>(b.labels[static_cast<size_t>(i)]));
  r.what = std::move(what);
  return r;
}

Rows labelled_rows(const features::FeatureBlock& b, std::string what) {
  return labelled_rows(b, labelled_indices(b), std::move(what));
}

/// Splits `r` into (kept, carved) parts: about `fraction` of each class carved off.
std::pair<Rows, Rows> carve(const Rows& r, double fraction, uint64_t seed, const std::string& carved_name) {
  auto s = stratified_split(r.y, fraction, seed);
  Rows a{take_rows(r.X, s.first), take(r.y, s.first), r.what};
  Rows b{take_rows(r.X, s.second), take(r.y, s.second), carved_name};
  return {std::move(a), std::move(b)};
}

/// A probe trained on `train` (C chosen on `sel` when the sweep has several values), tested on `test`.
struct ProbeRun {
  LinearProbe probe;
  double test_acc = 0;
};

std::set<int64_t> hashes(const features::FeatureBlock& b) { return {b.item_hash.begin(), b.item_hash.end()}; }

bool have_hashes(const features::FeatureBlock& a, const features::FeatureBlock& b) {
  return !a.item_hash.empty() && !b.item_hash.empty();
}

/// Rows of `a` whose image is also in `b` (by item_hash; 0 when either block lacks the hashes).
int64_t shared_rows(const features::FeatureBlock& a, const features::FeatureBlock& b) {
  if (!have_hashes(a, b)) return 0;
  const auto hb = hashes(b);
  return std::count_if(a.item_hash.begin(), a.item_hash.end(), [&](int64_t h) { return hb.count(h) > 0; });
}

/// Whether two blocks hold the same images: by the rows' image identities when both caches recorded
/// them, else row for row by the dataset description (extract records the dataset, its split and
/// subset), the rows and the labels. The transductive protocol (target split = test split) extracts
/// its images twice; a probe fitted on one block and tested on the other would report its training
/// accuracy.
bool same_images(const features::FeatureBlock& a, const features::FeatureBlock& b) {
  if (have_hashes(a, b)) return a.X.rows() > 0 && hashes(a) == hashes(b);
  return !a.dataset.empty() && a.dataset == b.dataset && a.X.rows() == b.X.rows() && a.labels == b.labels;
}

/// Cache access by (domain, split, tap) for the blocks that hold at least one row.
class Blocks {
 public:
  Blocks(const features::CacheReader& r) : reader_(r) {
    for (auto& e : r.list()) {
      entries_[key(e.domain, e.split, e.tap)] = e;
      if (e.rows_done < e.rows)
        core::log_warn("probe: block ", e.domain, "/", e.split, "/", e.tap, " is incomplete (", e.rows_done, " of ",
                       e.rows, " rows written); using the written rows");
    }
  }
  bool has(const std::string& d, const std::string& s, const std::string& t) const {
    auto it = entries_.find(key(d, s, t));
    return it != entries_.end() && it->second.rows_done > 0;
  }
  const features::CacheEntry* entry(const std::string& d, const std::string& s, const std::string& t) const {
    auto it = entries_.find(key(d, s, t));
    return it == entries_.end() ? nullptr : &it->second;
  }
  features::FeatureBlock read(const std::string& d, const std::string& s, const std::string& t) const {
    return reader_.read(d, s, t);
  }
  std::vector<std::string> taps() const {
    std::set<std::string> t;
    for (auto& [k, e] : entries_) t.insert(e.tap);
    return {t.begin(), t.end()};
  }
  std::string listing() const {
    std::string s;
    for (auto& [k, e] : entries_) s += (s.empty() ? "" : ", ") + k;
    return s;
  }

 private:
  static std::string key(const std::string& d, const std::string& s, const std::string& t) { return d + "/" + s + "/" + t; }
  const features::CacheReader& reader_;
  std::map<std::string, features::CacheEntry> entries_;
};

// A domain's name for titles: a prepared name as recorded ("mnist"); for a dataset kind (a file or
// folder of the user's) the name of its list file or root from the recorded extraction config
// ("photo", "sketch"), not "list_file → list_file".
std::string dataset_name(const nlohmann::json& attrs, const std::string& key, const std::string& fallback) {
  if (!(attrs.is_object() && attrs.contains(key) && attrs[key].is_string() && !attrs[key].get<std::string>().empty()))
    return fallback;
  const std::string ds = attrs[key].get<std::string>();
  static const std::set<std::string> kinds = {"prepared", "idx", "digits_csv", "npy", "hdf5", "image_folder", "list_file"};
  if (!kinds.count(ds) || !attrs.contains("config") || !attrs["config"].is_string()) return ds;
  const std::string prefix = "data." + key.substr(0, key.find('_')) + ".";  // source_dataset -> data.source.
  std::string root, split;
  try {
    for (auto& e : core::parse_ini_text(attrs["config"].get<std::string>(), "cache attribute config")) {
      if (e.key == prefix + "root") root = e.value;
      if (e.key == prefix + "split") split = e.value;
    }
  } catch (const core::Error&) {
    return ds;
  }
  auto stem_of = [](std::string f) {
    while (f.size() > 1 && f.back() == '/') f.pop_back();
    return std::filesystem::path(f).stem().string();
  };
  std::string stem = stem_of(ds == "list_file" ? split : root);
  static const std::set<std::string> generic = {"train", "val", "test", "all", "list", "labels", "images", "data"};
  if (ds == "list_file" && generic.count(stem)) stem = stem_of(root);
  if (stem.empty() || stem == "." || stem == "/") return ds;
  return stem;
}

}  // namespace

ProbeReport probe_cache(const std::string& cache, const ProbeOptions& o) {
  auto reader = features::CacheReader::open(cache);
  Blocks blocks(reader);
  ProbeReport rep;
  rep.cache = cache;
  rep.attributes = reader.attributes();
  rep.source_name = dataset_name(rep.attributes, "source_dataset", o.source);
  rep.target_name = dataset_name(rep.attributes, "target_dataset", o.target);
  const std::string S = o.source, T = o.target;

  const auto all_taps = order_taps(blocks.taps());
  core::check(!all_taps.empty(), "feature cache '", cache, "' holds no feature blocks");
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  std::vector<std::string> taps;
  if (o.taps.empty()) {
    taps = all_taps;
  } else {
    for (auto& t : o.taps)
      core::check_usage(std::find(all_taps.begin(), all_taps.end(), t) != all_taps.end(), "feature cache '", cache,
                        "' has no tap '", t, "' (taps: ", join(all_taps), ")");
    taps = order_taps(o.taps);
  }
  for (auto& t : taps)
    core::check(blocks.has(S, o.train_split, t), "feature cache '", cache, "' has no block ", S, "/", o.train_split,
                "/", t, " with rows (blocks: ", blocks.listing(), ")");
  const bool sweep = o.linear.Cs.size() > 1;

  core::log_info("probe ", cache, ": ", taps.size(), " tap(s): ", join(taps));
  // rows for LogME / H-score and LEEP / NCE (labelled target, else source train), set by the taps
  std::string score_dom, score_split;

  for (size_t ti = 0; ti < taps.size(); ++ti) {
    const std::string& tap = taps[ti];
    const auto tap_t0 = std::chrono::steady_clock::now();
    TapReport tr;
    tr.tap = tap;
    auto src = blocks.read(S, o.train_split, tap);
    tr.dim = src.X.cols();
    tr.num_classes = static_cast<int>(src.num_classes);
    auto is_labelled = [](const features::FeatureBlock& b) {
      return std::any_of(b.labels.begin(), b.labels.end(), [](int64_t v) { return v >= 0; });
    };
    const bool src_train_lab = is_labelled(src);
    if (!src_train_lab && ti == 0)
      core::log_warn("probe: ", S, "/", o.train_split, " has no labels: no linear or kNN probe");
    // source training rows (labelled, subsampled), without the images a source val / test block shares
    Rows train;
    auto make_train = [&](const std::set<int64_t>& excluded, const std::string& what) {
      auto idx = labelled_indices_except(src, excluded);
      if (o.max_train_rows > 0 && static_cast<int64_t>(idx.size()) > o.max_train_rows)
        idx = take(idx, subsample(static_cast<int64_t>(idx.size()), o.max_train_rows, o.seed + 11));
      train = labelled_rows(src, idx, what);
      tr.num_classes = std::max(tr.num_classes, num_classes_of(train.y));
    };
    if (src_train_lab) make_train({}, S + "/" + o.train_split);
    // source val / test (labelled ones only)
    std::optional<Rows> src_val, src_test;
    std::set<int64_t> excluded;  // images of source val / test blocks that are also training images
    std::string left_out;
    for (auto [split, out] : {std::pair{o.test_split, &src_test}, std::pair{o.val_split, &src_val}}) {
      if (!blocks.has(S, split, tap)) continue;
      if (split == o.val_split && src_test && !sweep) continue;  // not needed
      auto b = blocks.read(S, split, tap);
      if (same_images(b, src)) {
        // the same images as the training rows: testing (or choosing C) on them would report
        // training accuracy; held-out rows are carved from the training rows instead
        if (ti == 0)
          core::log_warn("probe: ", S, "/", split, " holds the same images as ", S, "/", o.train_split, " (", b.dataset,
                         "): not used to test or select the probe; rows are carved from ", S, "/", o.train_split);
        continue;
      }
      if (!is_labelled(b)) continue;
      if (const int64_t shared = shared_rows(src, b); shared > 0 && src_train_lab) {
        // a val / test drawn partly from the training images: those leave the training rows (unless
        // it holds nearly all of them: then it is not used, like a copy of the training split)
        auto more = excluded;
        more.insert(b.item_hash.begin(), b.item_hash.end());
        if (labelled_indices_except(src, more).size() < 2) {
          if (ti == 0)
            core::log_warn("probe: ", S, "/", split, " holds the training images of ", S, "/", o.train_split,
                           ": not used to test or select the probe; rows are carved from ", S, "/", o.train_split);
          continue;
        }
        if (ti == 0)
          core::log_warn("probe: ", S, "/", split, " shares ", shared, " images with ", S, "/", o.train_split,
                         ": they are left out of the rows the probe is fitted on");
        excluded = std::move(more);
        left_out += (left_out.empty() ? "" : ", ") + core::str(shared, " images in ", S, "/", split);
        make_train(excluded, core::str(S, "/", o.train_split, " minus its ", left_out));
      }
      *out = labelled_rows(b, S + "/" + split);
    }
    tr.source_train_rows = src_train_lab ? train.size() : src.X.rows();
    // target blocks
    std::optional<features::FeatureBlock> ttrain, ttest;
    if (blocks.has(T, o.train_split, tap)) ttrain = blocks.read(T, o.train_split, tap);
    if (blocks.has(T, o.test_split, tap)) ttest = blocks.read(T, o.test_split, tap);
    const bool tgt_train_lab = ttrain && is_labelled(*ttrain), tgt_test_lab = ttest && is_labelled(*ttest);
    tr.target_rows = ttrain ? ttrain->X.rows() : ttest ? ttest->X.rows() : 0;
    for (auto* b : {&ttrain, &ttest})
      if (*b) tr.num_classes = std::max<int>(tr.num_classes, static_cast<int>((*b)->num_classes));
    // labelled source→target evaluation rows: target test, else target train
    std::optional<Rows> target_eval;
    if (tgt_test_lab) target_eval = labelled_rows(*ttest, T + "/" + o.test_split);
    else if (tgt_train_lab) target_eval = labelled_rows(*ttrain, T + "/" + o.train_split);
    if (target_eval) tr.num_classes = std::max(tr.num_classes, num_classes_of(target_eval->y));
    if (ti == 0) {
      if (tgt_train_lab) score_dom = T, score_split = o.train_split;
      else if (tgt_test_lab) score_dom = T, score_split = o.test_split;
      else if (src_train_lab) score_dom = S, score_split = o.train_split;
    }

    // ---- linear probe source→source, source→target
    Rows src_eval;
    if (src_train_lab && train.size() >= 2) {
      Rows fit_rows = train, sel;
      if (src_test) src_eval = *src_test;
      else if (src_val) src_eval = *src_val;
      else std::tie(fit_rows, src_eval) = carve(fit_rows, o.val_fraction, o.seed + 21, "carved from " + train.what);
      if (sweep) {
        // C on the source's validation split when there is one (also the source accuracy when there
        // is no test split, as a training run's source-val is its selection split: every labelled
        // training row is fitted, which a 1-label-per-class split needs), else carved from training
        if (src_val) sel = *src_val;
        else std::tie(fit_rows, sel) = carve(fit_rows, o.val_fraction, o.seed + 22, "carved from " + train.what);
        core::check(sel.size() > 0, "linear probe: no rows to choose C on (", sel.what,
                    " is empty; give the source a val split or one C value with --probe.C)");
        tr.C_chosen_on = sel.what;
      }
      tr.source_fit_on = fit_rows.what;
      auto probe = fit_linear_probe(fit_rows.X, fit_rows.y, sel.X, sel.y, tr.num_classes, o.linear);
      tr.best_C = probe.best_C;
      tr.sweep = probe.sweep;
      tr.linear_seconds = probe.seconds;
      tr.linear_iterations = probe.model.iterations;
      tr.linear_evaluations = probe.model.evaluations;
      tr.linear_stop_reason = probe.model.stop_reason;
      tr.linear_objective = probe.model.objective;
      if (src_eval.size() > 0) {
        tr.source_acc = probe.accuracy(src_eval.X, src_eval.y);
        tr.source_acc_on = src_eval.what;
        tr.source_acc_rows = src_eval.size();
      }
      if (target_eval && target_eval->size() > 0) {
        tr.target_acc = probe.accuracy(target_eval->X, target_eval->y);
        tr.target_acc_on = target_eval->what;
        tr.target_acc_rows = target_eval->size();
      }
      core::log_debug("probe ", tap, ": linear probe trained on ", fit_rows.size(), " rows of ", fit_rows.what,
                      sweep ? ", C chosen on " + sel.what : std::string(), ", tested on ", src_eval.what);
    }

    // ---- target→target
    {
      std::optional<Rows> ttr, tte;
      // the transductive protocol (and any config whose target split equals its test split) extracts
      // the same images twice: a probe trained on one and tested on the other measures training accuracy
      const int64_t shared = ttrain && ttest ? shared_rows(*ttrain, *ttest) : 0;
      // a test split drawn from the target training images: those leave the rows fitted on
      const auto kept = shared > 0 ? labelled_indices_except(*ttrain, hashes(*ttest)) : std::vector<int64_t>{};
      // the same images, or a test split holding (nearly) all of the training ones: carve instead
      const bool same = ttrain && ttest && (same_images(*ttrain, *ttest) || (shared > 0 && kept.size() < 2));
      if (tgt_train_lab && tgt_test_lab && !same) {
        ttr = shared > 0 ? labelled_rows(*ttrain, kept,
                                         core::str(T, "/", o.train_split, " minus its ", shared, " images in ", T, "/",
                                                   o.test_split))
                         : labelled_rows(*ttrain, T + "/" + o.train_split);
        tte = target_eval;
      } else if (target_eval && target_eval->size() >= 10) {
        auto parts = carve(*target_eval, o.val_fraction, o.seed + 31,
                           "carved from " + target_eval->what +
                               (same ? " (" + T + "/" + o.train_split + " holds the same images)" : std::string()));
        ttr = std::move(parts.first);
        tte = std::move(parts.second);
      }
      if (ttr && tte && ttr->size() >= 2 && tte->size() > 0) {
        Rows fit_rows = *ttr, sel;
        if (sweep) std::tie(fit_rows, sel) = carve(fit_rows, o.val_fraction, o.seed + 32, "carved from " + ttr->what);
        if (!sweep || sel.size() > 0) {
          auto probe = fit_linear_probe(fit_rows.X, fit_rows.y, sel.X, sel.y, tr.num_classes, o.linear);
          tr.target_target_acc = probe.accuracy(tte->X, tte->y);
          tr.target_target_rows = tte->size();
          tr.target_target_on = tte->what;
          tr.target_target_fit_on = fit_rows.what;
        }
      }
    }

    // ---- kNN
    if (o.knn_k > 0 && src_train_lab && train.size() > 0) {
      KnnOptions ko;
      ko.k = std::min<int>(o.knn_k, static_cast<int>(train.size()));
      if (src_eval.size() > 0) tr.knn_source_acc = accuracy_pct(knn_predict(train.X, train.y, src_eval.X, ko), src_eval.y);
      if (target_eval && target_eval->size() > 0)
        tr.knn_target_acc = accuracy_pct(knn_predict(train.X, train.y, target_eval->X, ko), target_eval->y);
    }

    // ---- domain distances: source train vs target (test, else train)
    const features::FeatureBlock* tfeat = ttest ? &*ttest : ttrain ? &*ttrain : nullptr;
    if (o.distances && tfeat) {
      if (src.X.rows() >= 4 && tfeat->X.rows() >= 4) {
        tr.a_distance = proxy_a_distance(src.X, tfeat->X, o.a_distance);
        tr.mmd2 = mk_mmd2(src.X, tfeat->X, o.mmd);
        tr.coral = coral_distance(src.X, tfeat->X, o.coral_rows, o.seed + 41);
      } else {
        core::log_warn("probe ", tap, ": too few rows for the domain distances");
      }
    }

    // ---- LogME, H-score
    if (o.scores && !score_dom.empty()) {
      const features::FeatureBlock* sb = nullptr;
      std::optional<features::FeatureBlock> own;
      if (score_dom == S && score_split == o.train_split) sb = &src;
      else if (score_dom == T && score_split == o.train_split && ttrain) sb = &*ttrain;
      else if (score_dom == T && score_split == o.test_split && ttest) sb = &*ttest;
      if (sb) {
        auto idx = labelled_indices(*sb);
        if (o.score_rows > 0 && static_cast<int64_t>(idx.size()) > o.score_rows)
          idx = take(idx, subsample(static_cast<int64_t>(idx.size()), o.score_rows, o.seed + 51));
        if (idx.size() >= 2) {
          auto r = labelled_rows(*sb, idx, score_dom + "/" + score_split);
          tr.logme = logme(r.X, r.y);
          tr.h_score = h_score(r.X, r.y);
          tr.scores_on = score_dom == T ? "target" : "source";
        }
      }
    }
    tr.seconds = core::seconds_since(tap_t0);
    auto f1 = [](const std::optional<double>& v, const char* unit) {
      return v ? core::str(std::fixed, std::setprecision(1), *v, unit) : std::string("—");
    };
    core::log_info("probe: tap ", tap, " (", ti + 1, "/", taps.size(), ", D=", tr.dim, "): source ",
                   f1(tr.source_acc, " %"), ", target ", f1(tr.target_acc, " %"),
                   tr.a_distance ? core::str(", A-distance ", std::setprecision(3), tr.a_distance->a_distance) : "",
                   " in ", core::str(std::fixed, std::setprecision(1), tr.seconds), " s");
    rep.taps.push_back(std::move(tr));
  }

  // ---- LEEP / NCE from the source model's class scores on the score rows
  if (o.scores) {
    if (score_dom.empty()) {
      rep.leep_note = "no labelled rows";
    } else if (o.logits_tap.empty() || !blocks.has(score_dom, score_split, o.logits_tap)) {
      rep.leep_note = core::str("no tap '", o.logits_tap, "' (source-model class scores) in the cache");
    } else {
      auto b = blocks.read(score_dom, score_split, o.logits_tap);
      auto idx = labelled_indices(b);
      if (o.score_rows > 0 && static_cast<int64_t>(idx.size()) > o.score_rows)
        idx = take(idx, subsample(static_cast<int64_t>(idx.size()), o.score_rows, o.seed + 51));
      if (idx.size() >= 2) {
        auto r = labelled_rows(b, idx, score_dom + "/" + score_split);
        rep.leep = leep(r.X, r.y);
        rep.nce = nce(r.X, r.y);
        rep.leep_note = core::str(r.size(), " rows of ", r.what, ", tap ", o.logits_tap);
      } else {
        rep.leep_note = core::str("too few labelled rows in ", score_dom, "/", score_split);
      }
    }
  }

  // ---- t-SNE of source vs target
  if (o.tsne) {
    std::string tap = o.tsne_tap;
    if (tap.empty()) {
      for (auto it = taps.rbegin(); it != taps.rend(); ++it)
        if (*it != o.logits_tap) {
          tap = *it;
          break;
        }
      if (tap.empty()) tap = taps.back();
    }
    core::check_usage(std::find(all_taps.begin(), all_taps.end(), tap) != all_taps.end(), "option 'probe.tsne_tap': ",
                      "feature cache '", cache, "' has no tap '", tap, "' (taps: ", join(all_taps), ")");
    core::check(blocks.has(S, o.train_split, tap), "feature cache '", cache, "' has no block ", S, "/", o.train_split,
                "/", tap, " for t-SNE");
    const auto t_start = std::chrono::steady_clock::now();
    auto sb = blocks.read(S, o.train_split, tap);
    std::optional<features::FeatureBlock> tb;
    if (blocks.has(T, o.test_split, tap)) tb = blocks.read(T, o.test_split, tap);
    else if (blocks.has(T, o.train_split, tap)) tb = blocks.read(T, o.train_split, tap);
    int64_t n_t = tb ? std::min<int64_t>(tb->X.rows(), o.tsne_rows / 2) : 0;
    int64_t n_s = std::min<int64_t>(sb.X.rows(), o.tsne_rows - n_t);
    if (tb && n_s < o.tsne_rows - n_t) n_t = std::min<int64_t>(tb->X.rows(), o.tsne_rows - n_s);
    if (n_s + n_t >= 8) {
      auto is = subsample(sb.X.rows(), n_s, o.seed + 61);
      std::vector<int64_t> it = tb ? subsample(tb->X.rows(), n_t, o.seed + 62) : std::vector<int64_t>();
      MatrixF X(static_cast<Eigen::Index>(is.size() + it.size()), sb.X.cols());
      X.topRows(static_cast<Eigen::Index>(is.size())) = take_rows(sb.X, is);
      if (!it.empty()) X.bottomRows(static_cast<Eigen::Index>(it.size())) = take_rows(tb->X, it);
      ProbeReport::Tsne ts;
      ts.tap = tap;
      for (auto i : is) {
        ts.domain.push_back(0);
        ts.label.push_back(static_cast<int>(std::max<int64_t>(-1, sb.labels[static_cast<size_t>(i)])));
      }
      for (auto i : it) {
        ts.domain.push_back(1);
        ts.label.push_back(static_cast<int>(std::max<int64_t>(-1, tb->labels[static_cast<size_t>(i)])));
      }
      // standardised features (as the linear probe sees them)
      Standardizer::fit(X).apply(X);
      TsneOptions to = o.tsne_opts;
      to.perplexity = std::min(to.perplexity, std::max(1.0, (static_cast<double>(X.rows()) - 1) / 3.0));
      auto res = tsne(X, to);
      ts.Y = std::move(res.Y);
      ts.kl = std::move(res.kl);
      core::log_info("probe: t-SNE of ", is.size(), " source + ", it.size(), " target rows of tap ", tap, " in ",
                     core::str(std::fixed, std::setprecision(1), core::seconds_since(t_start)), " s",
                     ts.kl.empty() ? std::string() : core::str(", KL ", std::setprecision(3), ts.kl.back().second));
      rep.tsne = std::move(ts);
    } else {
      core::log_warn("probe: too few rows for t-SNE (", n_s + n_t, ")");
    }
  }
  return rep;
}

// ---------------------------------------------------------------------------------------------
// report output

namespace {

nlohmann::json opt(const std::optional<double>& v) {
  return v && std::isfinite(*v) ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

std::string fmt(const std::optional<double>& v, int prec, bool fixed = true) {
  if (!v || !std::isfinite(*v)) return "—";
  std::ostringstream os;
  if (fixed) os << std::fixed;
  os << std::setprecision(prec) << *v;
  return os.str();
}

std::string attr(const nlohmann::json& a, const std::string& k) {
  if (!a.is_object() || !a.contains(k)) return "";
  return a[k].is_string() ? a[k].get<std::string>() : a[k].dump();
}

struct Column {
  std::string head;
  std::function<std::string(const TapReport&)> cell;
};

std::vector<Column> columns(const ProbeReport& r) {
  auto any = [&](auto f) { return std::any_of(r.taps.begin(), r.taps.end(), f); };
  std::vector<Column> c;
  c.push_back({"tap", [](const TapReport& t) { return t.tap; }});
  c.push_back({"D", [](const TapReport& t) { return std::to_string(t.dim); }});
  c.push_back({"C", [](const TapReport& t) { return t.best_C ? fmt(t.best_C, 3, false) : "—"; }});
  c.push_back({"src %", [](const TapReport& t) { return fmt(t.source_acc, 1); }});
  c.push_back({"src→tgt %", [](const TapReport& t) { return fmt(t.target_acc, 1); }});
  if (any([](const TapReport& t) { return t.target_target_acc.has_value(); }))
    c.push_back({"tgt→tgt %", [](const TapReport& t) { return fmt(t.target_target_acc, 1); }});
  if (any([](const TapReport& t) { return t.knn_source_acc || t.knn_target_acc; })) {
    c.push_back({"kNN src %", [](const TapReport& t) { return fmt(t.knn_source_acc, 1); }});
    c.push_back({"kNN tgt %", [](const TapReport& t) { return fmt(t.knn_target_acc, 1); }});
  }
  if (any([](const TapReport& t) { return t.a_distance.has_value(); })) {
    c.push_back({"A-dist", [](const TapReport& t) {
                   return t.a_distance ? fmt(t.a_distance->a_distance, 3) : std::string("—");
                 }});
    c.push_back({"MMD²", [](const TapReport& t) { return fmt(t.mmd2, 4); }});
    c.push_back({"CORAL", [](const TapReport& t) { return fmt(t.coral, 3, false); }});
  }
  if (any([](const TapReport& t) { return t.logme.has_value(); })) {
    c.push_back({"LogME", [](const TapReport& t) { return fmt(t.logme, 3); }});
    c.push_back({"H-score", [](const TapReport& t) { return fmt(t.h_score, 3); }});
  }
  c.push_back({"s", [](const TapReport& t) { return fmt(t.seconds, 1); }});
  return c;
}

/// Display width in code points (the table has a few multi-byte characters: —, →, ²).
size_t width(const std::string& s) {
  size_t n = 0;
  for (unsigned char ch : s)
    if ((ch & 0xC0) != 0x80) ++n;
  return n;
}

std::string pad(const std::string& s, size_t w, bool right) {
  size_t n = width(s);
  std::string sp(w > n ? w - n : 0, ' ');
  return right ? sp + s : s + sp;
}

}  // namespace

nlohmann::json ProbeReport::to_json() const {
  nlohmann::json j;
  j["format"] = "shiftlab-probe";
  j["format_version"] = 1;
  j["cache"] = cache;
  j["attributes"] = attributes;
  j["source"] = source_name;
  j["target"] = target_name;
  j["taps"] = nlohmann::json::array();
  for (auto& t : taps) {
    nlohmann::json tj;
    tj["tap"] = t.tap;
    tj["dim"] = t.dim;
    tj["source_train_rows"] = t.source_train_rows;
    tj["target_rows"] = t.target_rows;
    tj["num_classes"] = t.num_classes;
    nlohmann::json lin;
    lin["best_C"] = opt(t.best_C);
    lin["sweep"] = nlohmann::json::array();
    for (auto& p : t.sweep)
      lin["sweep"].push_back({{"C", p.C},
                              {"val_acc", p.val_acc},
                              {"iterations", p.iterations},
                              {"evaluations", p.evaluations},
                              {"stop_reason", p.stop_reason},
                              {"seconds", p.seconds}});
    lin["seconds"] = t.linear_seconds;
    lin["iterations"] = t.linear_iterations;
    lin["evaluations"] = t.linear_evaluations;
    lin["stop_reason"] = t.linear_stop_reason;
    lin["objective"] = t.linear_objective;
    lin["C_chosen_on"] = t.C_chosen_on;
    lin["source_acc"] = opt(t.source_acc);
    lin["source_acc_on"] = t.source_acc_on;
    lin["target_acc"] = opt(t.target_acc);
    lin["target_acc_on"] = t.target_acc_on;
    lin["target_target_acc"] = opt(t.target_target_acc);
    lin["source_acc_rows"] = t.source_acc_rows;
    lin["target_acc_rows"] = t.target_acc_rows;
    lin["target_target_rows"] = t.target_target_rows;
    lin["target_target_on"] = t.target_target_on;
    lin["target_target_fit_on"] = t.target_target_fit_on;
    lin["source_fit_on"] = t.source_fit_on;
    tj["linear"] = lin;
    tj["knn"] = {{"source_acc", opt(t.knn_source_acc)}, {"target_acc", opt(t.knn_target_acc)}};
    if (t.a_distance)
      tj["a_distance"] = {{"a_distance", t.a_distance->a_distance},
                          {"raw", t.a_distance->a_distance_raw},
                          {"error", t.a_distance->error},
                          {"C", t.a_distance->C},
                          {"rows_per_domain", t.a_distance->rows_per_domain},
                          {"test_rows", t.a_distance->test_rows}};
    else
      tj["a_distance"] = nullptr;
    tj["mmd2"] = opt(t.mmd2);
    tj["coral"] = opt(t.coral);
    tj["logme"] = opt(t.logme);
    tj["h_score"] = opt(t.h_score);
    tj["scores_on"] = t.scores_on;
    tj["seconds"] = t.seconds;
    j["taps"].push_back(tj);
  }
  j["leep"] = opt(leep);
  j["nce"] = opt(nce);
  j["leep_note"] = leep_note;
  if (tsne) {
    nlohmann::json k = nlohmann::json::array();
    for (auto& [it, v] : tsne->kl) k.push_back({it, v});
    int64_t ns = std::count(tsne->domain.begin(), tsne->domain.end(), 0);
    j["tsne"] = {{"tap", tsne->tap},
                 {"source_rows", ns},
                 {"target_rows", static_cast<int64_t>(tsne->domain.size()) - ns},
                 {"kl", k}};
  } else {
    j["tsne"] = nullptr;
  }
  return j;
}

std::string ProbeReport::text_table() const {
  auto cols = columns(*this);
  std::vector<size_t> w(cols.size());
  for (size_t c = 0; c < cols.size(); ++c) {
    w[c] = width(cols[c].head);
    for (auto& t : taps) w[c] = std::max(w[c], width(cols[c].cell(t)));
  }
  std::ostringstream os;
  for (size_t c = 0; c < cols.size(); ++c) os << (c ? "  " : "") << pad(cols[c].head, w[c], c > 0);
  os << "\n";
  for (size_t c = 0; c < cols.size(); ++c) os << (c ? "  " : "") << std::string(w[c], '-');
  os << "\n";
  for (auto& t : taps) {
    for (size_t c = 0; c < cols.size(); ++c) os << (c ? "  " : "") << pad(cols[c].cell(t), w[c], c > 0);
    os << "\n";
  }
  if (leep || nce) os << "LEEP " << fmt(leep, 4) << ", NCE " << fmt(nce, 4) << " (" << leep_note << ")\n";
  return os.str();
}

std::string ProbeReport::markdown() const {
  std::ostringstream os;
  os << "# Probe report\n\n";
  os << "- cache: `" << cache << "`\n";
  auto bb = attr(attributes, "backbone");
  if (!bb.empty()) os << "- backbone: " << bb << "\n";
  auto w = attr(attributes, "weights");
  if (!w.empty()) os << "- weights: " << w << "\n";
  auto ck = attr(attributes, "checkpoint");
  if (!ck.empty()) os << "- checkpoint: " << ck << "\n";
  os << "- source: " << source_name << ", target: " << target_name << "\n\n";
  auto cols = columns(*this);
  os << "|";
  for (auto& c : cols) os << " " << c.head << " |";
  os << "\n|";
  for (size_t i = 0; i < cols.size(); ++i) os << (i ? "---:|" : "---|");
  os << "\n";
  for (auto& t : taps) {
    os << "|";
    for (auto& c : cols) os << " " << c.cell(t) << " |";
    os << "\n";
  }
  os << "\nAccuracies in percent: linear probe (standardised multinomial logistic regression, C chosen on a "
        "validation split) trained on the source and tested on source and target; tgt→tgt trains on labelled "
        "target rows. A-distance: proxy 2(1 − 2ε) of a linear domain classifier (0 = indistinguishable, "
        "2 = separable).";
  if (std::any_of(taps.begin(), taps.end(), [](const TapReport& t) { return !t.scores_on.empty(); }))
    os << " LogME / H-score on the " << taps.front().scores_on << " rows (higher = more transferable).";
  if (!taps.empty() && (!taps.front().source_acc_on.empty() || !taps.front().target_acc_on.empty())) {
    auto& t = taps.front();
    os << " Linear probe rows:" << (t.C_chosen_on.empty() ? "" : " C chosen on " + t.C_chosen_on + ";")
       << (t.source_acc_on.empty() ? "" : " src % on " + t.source_acc_on + ";")
       << (t.target_acc_on.empty() ? "" : " tgt % on " + t.target_acc_on + ";")
       << (t.target_target_on.empty() ? "" : " tgt→tgt % on " + t.target_target_on + ".");
  }
  os << "\n\n";
  if (leep || nce) os << "LEEP " << fmt(leep, 4) << ", NCE " << fmt(nce, 4) << " (" << leep_note << ").\n\n";
  else if (!leep_note.empty()) os << "LEEP / NCE not computed: " << leep_note << ".\n\n";
  os << "![transferability per layer](transferability.svg)\n";
  if (tsne) {
    os << "\nt-SNE of tap " << tsne->tap << " (" << tsne->domain.size() << " rows";
    if (!tsne->kl.empty()) os << ", final KL " << fmt(tsne->kl.back().second, 3);
    os << "):\n\n![t-SNE by domain](tsne_domain.svg) ![t-SNE by class](tsne_class.svg)\n";
  }
  return os.str();
}

std::vector<std::string> write_probe_report(const ProbeReport& r, const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  core::check(!ec && fs::is_directory(dir), "cannot create the output directory '", dir, "': ", ec.message());
  std::vector<std::string> written;
  auto put = [&](const std::string& name, const std::string& content) {
    std::string p = (fs::path(dir) / name).string();
    core::atomic_write(p, content);
    written.push_back(p);
  };
  put("probe.json", r.to_json().dump(2) + "\n");
  put("probe.md", r.markdown());
  report::LineChart c;
  c.title = "Per-layer transferability: " + r.source_name + " → " + r.target_name;
  c.x_label = "tap";
  c.left_label = "linear probe accuracy (%)";
  c.right_label = "proxy A-distance";
  c.left_min = 0, c.left_max = 100, c.right_min = 0, c.right_max = 2;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  report::LineSeries s{"source → source", {}, false}, t{"source → target", {}, false},
      tt{"target → target", {}, false}, a{"A-distance", {}, true};
  for (auto* x : {&s, &t, &tt, &a}) x->markers = true;
  for (auto& tap : r.taps) {
    c.categories.push_back(tap.tap);
    s.y.push_back(tap.source_acc.value_or(nan));
    t.y.push_back(tap.target_acc.value_or(nan));
    tt.y.push_back(tap.target_target_acc.value_or(nan));
    a.y.push_back(tap.a_distance ? tap.a_distance->a_distance : nan);
  }
  auto has = [](const report::LineSeries& x) { return std::any_of(x.y.begin(), x.y.end(), [](double v) { return std::isfinite(v); }); };
  for (auto* x : {&s, &t, &tt, &a})
    if (has(*x) || x == &s) c.series.push_back(*x);
  put("transferability.svg", report::line_chart_svg(c));
  if (r.tsne) {
    const auto& ts = *r.tsne;
    put("tsne_domain.svg", report::scatter_svg("t-SNE of " + ts.tap + " by domain", ts.Y, ts.domain,
                                       {"source: " + r.source_name, "target: " + r.target_name}));
    int K = 0;
    bool unl = false;
    for (int l : ts.label) {
      K = std::max(K, l + 1);
      unl = unl || l < 0;
    }
    std::vector<std::string> names;
    for (int k = 0; k < K; ++k) names.push_back("class " + std::to_string(k));
    if (unl) names.push_back("unlabelled");
    std::vector<int> g;
    for (int l : ts.label) g.push_back(l < 0 ? K : l);
    put("tsne_class.svg", report::scatter_svg("t-SNE of " + ts.tap + " by class", ts.Y, g, names));
  }
  return written;
}

}  // namespace shiftlab::probe
