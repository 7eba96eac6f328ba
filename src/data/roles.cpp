#include "data/roles.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>
#include <unordered_set>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/options.h"
#include "core/registry.h"

namespace shiftlab::data {

namespace fs = std::filesystem;
using core::check;
using core::check_usage;
using core::str;

nlohmann::json RoleInfo::to_json() const {
  nlohmann::json j;
  j["definition"] = definition;
  j["dataset"] = dataset;
  j["count"] = count;
  j["labelled"] = labelled;
  j["overlap_source_train"] = overlap_source_train;
  j["overlap_target_train"] = overlap_target_train;
  if (!error.empty()) j["error"] = error;
  return j;
}

std::string RoleInfo::line() const {
  if (!error.empty()) return str(role, ": not available: ", error);
  std::string s = str(role, ": ", count, " images (", labelled, " labelled), ", definition, "; ", dataset);
  if (role != "source/train" && role != "target/train")
    s += str("; shares ", overlap_source_train, " with source/train, ", overlap_target_train, " with target/train");
  return s;
}

const RoleInfo& Roles::at(const std::string& role) const {
  for (auto& i : info)
    if (i.role == role) return i;
  throw core::Error(str("internal: no role '", role, "'"));
}

nlohmann::json Roles::to_json() const {
  nlohmann::json j;
  j["protocol"] = protocol;
  j["classes"] = class_names;
  nlohmann::json r = nlohmann::json::object();
  for (auto& i : info) r[i.role] = i.to_json();
  j["roles"] = r;
  return j;
}

bool kind_has_splits(const DomainOptions& o) {
  if (o.dataset == "prepared" || o.dataset == "list_file") return true;
  if (o.dataset == "idx") return fs::is_directory(o.root);
  return !dataset_registry().has(o.dataset);  // a prepared name
}

std::pair<std::vector<size_t>, std::vector<size_t>> stratified_holdout(const std::vector<int64_t>& labels,
                                                                       double fraction, uint64_t seed) {
  std::map<int64_t, std::vector<size_t>> by;
  for (size_t i = 0; i < labels.size(); ++i) by[labels[i] < 0 ? -1 : labels[i]].push_back(i);
  std::vector<size_t> keep, held;
  for (auto& [c, items] : by) {
    const size_t n = items.size();
    size_t k = static_cast<size_t>(std::llround(fraction * static_cast<double>(n)));
    if (n >= 2) k = std::min(std::max<size_t>(k, 1), n - 1);
    else k = 0;
    seeded_shuffle(items, seed * 1000003ULL + static_cast<uint64_t>(c + 1));
    held.insert(held.end(), items.begin(), items.begin() + static_cast<std::ptrdiff_t>(k));
    keep.insert(keep.end(), items.begin() + static_cast<std::ptrdiff_t>(k), items.end());
  }
  std::sort(keep.begin(), keep.end());
  std::sort(held.begin(), held.end());
  return {keep, held};
}

namespace {
std::string roles_lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}
std::string roles_join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "'" : ", '") + x + "'";
  return s;
}
}  // namespace

std::vector<int64_t> match_class_names(const std::vector<std::string>& source, const std::vector<std::string>& other,
                                       const std::string& what, bool case_insensitive,
                                       const std::map<std::string, std::string>& class_map) {
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < source.size(); ++i) {
    std::string k = case_insensitive ? roles_lower(source[i]) : source[i];
    check_usage(index.emplace(k, static_cast<int64_t>(i)).second, "source class names '", source[i],
                "' collide", case_insensitive ? " when case is ignored (data.class_match = case_insensitive)" : "");
  }
  std::vector<int64_t> out;
  std::vector<std::string> unmatched;
  std::set<int64_t> used;
  for (auto& name : other) {
    auto it_map = class_map.find(name);
    std::string target = it_map == class_map.end() ? name : it_map->second;
    auto it = index.find(case_insensitive ? roles_lower(target) : target);
    if (it == index.end()) {
      std::string hint;
      for (auto& s : source)
        if (roles_lower(s) == roles_lower(target)) hint = s;
      if (hint.empty()) hint = core::nearest(target, source);
      unmatched.push_back(str("'", name, "'", target != name ? " (mapped to '" + target + "')" : "",
                              hint.empty() ? "" : " — did you mean '" + hint + "'?"));
      out.push_back(-1);
      continue;
    }
    check_usage(used.insert(it->second).second, what, ": two classes map onto the source class '",
                source[static_cast<size_t>(it->second)], "' (check data.class_map / data.class_match)");
    out.push_back(it->second);
  }
  if (!unmatched.empty()) {
    std::vector<std::string> missing;
    for (size_t i = 0; i < source.size(); ++i)
      if (!used.count(static_cast<int64_t>(i))) missing.push_back(source[i]);
    std::string list;
    for (auto& u : unmatched) list += (list.empty() ? "" : ", ") + u;
    throw core::UsageError(str(what, ": class name(s) not among the source's classes: ", list,
                               missing.empty() ? std::string() : "; source classes absent here: " + roles_join(missing),
                               " — rename the folders, or set data.class_match = case_insensitive or data.class_map = "
                               "FILE ('name = source_name' lines)"));
  }
  return out;
}

std::map<std::string, std::string> read_class_map(const std::string& path) {
  check_usage(fs::is_regular_file(path), "class map '", path, "' (data.class_map) not found");
  std::istringstream in(core::read_file(path));
  std::map<std::string, std::string> m;
  std::string line;
  for (int row = 1; std::getline(in, line); ++row) {
    std::string t = core::trim(line);
    if (t.empty() || t[0] == '#') continue;
    auto eq = t.find('=');
    check_usage(eq != std::string::npos, "class map '", path, "' line ", row, ": expected 'name = source_name', got '",
                t, "'");
    std::string a = core::trim(t.substr(0, eq)), b = core::trim(t.substr(eq + 1));
    check_usage(!a.empty() && !b.empty(), "class map '", path, "' line ", row, ": empty name");
    check_usage(m.emplace(a, b).second, "class map '", path, "' line ", row, ": '", a, "' mapped twice");
  }
  return m;
}

int64_t count_overlap(const RawDataset& a, const RawDataset& b) {
  std::unordered_set<std::string> ids;
  ids.reserve(b.size());
  for (size_t i = 0; i < b.size(); ++i) ids.insert(b.item_id(i));
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += ids.count(a.item_id(i)) ? 1 : 0;
  return n;
}

namespace {

using DomainPtr = std::shared_ptr<const DomainDataset>;

std::string roles_pct(double f) {
  std::ostringstream os;
  os << f * 100 << " %";
  return os.str();
}

// A training domain split by a seeded stratified hold-out: what stays for training and what is held
// out, each described by how it was made. `key` names the option, `train_role`/`held_role` the roles.
struct RolesHoldOut {
  RawDatasetPtr train, held;
  std::string how;
};
RolesHoldOut roles_hold_out(const RawDatasetPtr& raw, double fraction, uint64_t seed, uint64_t seed_shown,
                            const char* key, const char* train_role, const char* held_role) {
  auto [keep, held] = stratified_holdout(raw->labels(), fraction, seed);
  check_usage(!held.empty() && !keep.empty(), key, " = ", fraction, " holds out ", held.size(), " of ", raw->size(),
              " images of ", raw->describe(), "; nothing would be left for ", held.empty() ? held_role : train_role);
  const std::string how = str("stratified hold-out of ", roles_pct(fraction), ", data.holdout_seed ", seed_shown);
  return {pick_items(raw, keep, str(train_role, " minus the ", held_role, " ", how)),
          pick_items(raw, held, str(held_role, ": ", how)), how};
}

// true when a [data.source_val] / [data.target_test] section names its own images
bool section_names_images(const std::map<std::string, std::string>& keys) {
  for (auto k : {"dataset", "root", "labels", "images_key", "labels_key"})
    if (keys.count(k)) return true;
  return false;
}

// Builds a domain from a raw dataset; emptiness is refused naming the full description.
DomainPtr roles_domain(RawDatasetPtr raw, const DomainOptions& o) {
  return std::make_shared<DomainDataset>(std::move(raw), parse_transforms(o.transform), o);
}

struct RolesBuilder {
  const RoleOptions& o;
  RoleMode mode;
  bool oracle;
  std::map<std::string, std::string> class_map;
  std::vector<std::string> names;  // the source's class names

  // The raw dataset of a non-source role with its class names mapped onto the source's.
  RawDatasetPtr matched(RawDatasetPtr raw, const std::string& role) const {
    const auto& own = raw->class_names();
    if (names.empty() || own.empty() || own == names) return raw;
    auto map = match_class_names(names, own, str(role, " (", raw->describe(), ")"), o.class_match == "case_insensitive",
                                 class_map);
    return relabel_dataset(raw, map, names, "classes matched by name to the source's");
  }

  std::string eval_transform(const DomainOptions& d, const std::string& eval) const {
    return eval.empty() ? d.transform : eval;
  }
};

}  // namespace

Roles make_roles(const RoleOptions& o, RoleMode mode, bool oracle) {
  check_usage(o.protocol == "held_out" || o.protocol == "transductive", "data.protocol must be held_out or transductive, got '",
              o.protocol, "'");
  RolesBuilder b{o, mode, oracle, {}, {}};
  if (!o.class_map.empty()) b.class_map = read_class_map(o.class_map);
  const bool extract = mode == RoleMode::Extract;
  Roles r;
  r.protocol = o.protocol;
  r.info.resize(4);
  r.info[0].role = "source/train";
  r.info[1].role = "source/val";
  r.info[2].role = "target/train";
  r.info[3].role = "target/test";

  // ---- source/train (and a source/val hold-out of it)
  DomainOptions src = o.source;
  src.labelled = true;
  if (extract) src.transform = b.eval_transform(src, o.source_eval_transform);
  auto src_raw = make_raw_dataset(src);
  if (src_raw->size() == 0) throw core::Error(str("dataset ", roles_domain(src_raw, src)->describe(), " is empty"));
  b.names = src_raw->class_names();
  r.class_names = b.names;
  r.num_classes = src_raw->num_classes();

  // Runs `fn` for one held-out role; Check / Extract record its failure instead of throwing.
  auto guarded = [&](RoleInfo& info, const std::function<void()>& fn) {
    if (mode == RoleMode::Train) return fn();
    try {
      fn();
    } catch (const core::Error& e) {
      info.error = e.what();
    }
  };

  DomainOptions val = src;
  val.labelled = true;
  val.transform = b.eval_transform(src, o.source_eval_transform);
  RawDatasetPtr src_train_raw = src_raw;
  if (o.val_fraction > 0) {
    check_usage(o.source_val.empty(), "data.source.val_fraction and [data.source_val] both define source/val; keep one");
    auto split = roles_hold_out(src_raw, o.val_fraction, o.holdout_seed, o.holdout_seed, "data.source.val_fraction",
                                "source/train", "source/val");
    const std::string& how = split.how;
    src_train_raw = split.train;
    val.per_class = val.limit = 0;
    r.source_val = roles_domain(split.held, val);
    r.info[1].definition = "data.source.val_fraction (" + how + ")";
  } else {
    guarded(r.info[1], [&] {
      val.split = o.val_split;
      apply_domain_keys(val, o.source_val);
      const bool section = section_names_images(o.source_val);
      if (!section && !kind_has_splits(val))
        throw core::UsageError(str("source/val: ", o.source.dataset, " data (", o.source.root,
                                   ") has no splits, so there are no held-out source images to select the model on; "
                                   "set data.source.val_fraction (e.g. 0.1: a seeded stratified hold-out of "
                                   "data.source) or [data.source_val] root = <held-out images>"));
      r.info[1].definition = !o.source_val.empty()
                                 ? "[data.source_val]" + std::string(kind_has_splits(val) ? " split " + val.split : "")
                                 : "data.source.val_split = " + val.split;
      auto raw = b.matched(make_raw_dataset(val), "source/val");
      r.source_val = roles_domain(subset_dataset(raw, val.per_class, val.limit, val.subset_seed), val);
    });
  }
  r.source_train = roles_domain(subset_dataset(src_train_raw, src.per_class, src.limit, src.subset_seed), src);
  r.info[0].definition = o.val_fraction > 0 ? "data.source minus the source/val hold-out" : "data.source";

  // ---- target/train (and a target/test hold-out of it)
  DomainOptions tgt = o.target;
  if (extract) {
    tgt.labelled = true;  // probes use target labels when the data has them
    tgt.transform = b.eval_transform(tgt, o.target_eval_transform);
  }
  auto tgt_raw0 = make_raw_dataset(tgt);
  if (tgt_raw0->size() == 0)
    throw core::Error(str("target dataset ", roles_domain(tgt_raw0, tgt)->describe(), " is empty"));
  auto tgt_raw = b.matched(tgt_raw0, "target/train");
  DomainOptions test = tgt;
  test.labelled = true;
  test.transform = b.eval_transform(tgt, o.target_eval_transform);
  RawDatasetPtr tgt_train_raw = tgt_raw;
  if (o.protocol == "transductive") {
    check_usage(o.test_fraction == 0 && o.target_test.empty(),
                "data.protocol = transductive evaluates on the target training images; remove ",
                o.test_fraction > 0 ? "data.target.test_fraction" : "[data.target_test]",
                " (or use data.protocol = held_out)");
  } else if (o.test_fraction > 0) {
    check_usage(o.target_test.empty(), "data.target.test_fraction and [data.target_test] both define target/test; keep one");
    auto split = roles_hold_out(tgt_raw, o.test_fraction, o.holdout_seed + 1, o.holdout_seed, "data.target.test_fraction",
                                "target/train", "target/test");
    const std::string& how = split.how;
    tgt_train_raw = split.train;
    test.per_class = test.limit = 0;
    r.target_test = roles_domain(split.held, test);
    r.info[3].definition = "data.target.test_fraction (" + how + ")";
  } else {
    guarded(r.info[3], [&] {
      test.split = o.test_split;
      apply_domain_keys(test, o.target_test);
      const bool section = section_names_images(o.target_test);
      if (!section && !kind_has_splits(test))
        throw core::UsageError(str("target/test: ", o.target.dataset, " data (", o.target.root,
                                   ") has no splits, so there are no held-out target images to report on; set "
                                   "[data.target_test] root = <labelled held-out target images>, or "
                                   "data.target.test_fraction (e.g. 0.2, with target labels), or data.protocol = "
                                   "transductive (accuracy on the target training images, with their labels)"));
      r.info[3].definition = !o.target_test.empty()
                                 ? "[data.target_test]" + std::string(kind_has_splits(test) ? " split " + test.split : "")
                                 : "data.target.test_split = " + test.split;
      auto raw = b.matched(make_raw_dataset(test), "target/test");
      r.target_test = roles_domain(subset_dataset(raw, test.per_class, test.limit, test.subset_seed), test);
    });
  }
  auto tgt_train = subset_dataset(tgt_train_raw, tgt.per_class, tgt.limit, tgt.subset_seed);
  r.target_train = roles_domain(tgt_train, tgt);
  r.info[2].definition = o.test_fraction > 0 && o.protocol != "transductive" ? "data.target minus the target/test hold-out"
                                                                             : "data.target";
  if (o.protocol == "transductive") {
    r.target_test = roles_domain(tgt_train, test);
    r.info[3].definition = "TRANSDUCTIVE (data.protocol = transductive): the target/train images with their labels";
  }

  // ---- what each role holds (item identities computed once per role)
  const DomainPtr all[4] = {r.source_train, r.source_val, r.target_train, r.target_test};
  std::vector<std::string> ids[4];
  for (size_t k = 0; k < 4; ++k)
    if (all[k]) {
      const auto& raw = all[k]->raw();
      ids[k].reserve(raw.size());
      for (size_t i = 0; i < raw.size(); ++i) ids[k].push_back(raw.item_id(i));
    }
  const std::unordered_set<std::string> src_ids(ids[0].begin(), ids[0].end()), tgt_ids(ids[2].begin(), ids[2].end());
  for (size_t k = 0; k < 4; ++k) {
    auto& info = r.info[k];
    if (!all[k]) continue;
    info.dataset = all[k]->describe();
    info.count = static_cast<int64_t>(all[k]->size());
    for (auto l : all[k]->labels()) info.labelled += l >= 0 ? 1 : 0;
    for (auto& id : ids[k]) {
      info.overlap_source_train += src_ids.count(id) ? 1 : 0;
      info.overlap_target_train += tgt_ids.count(id) ? 1 : 0;
    }
  }
  if (extract) return r;

  // ---- evaluation roles: labelled, and honest about overlaps
  auto problem = [&](RoleInfo& info, const std::string& msg) {
    if (mode == RoleMode::Train) throw core::UsageError(msg);
    if (info.error.empty()) info.error = msg;
  };
  auto& sv = r.info[1];
  auto& tt = r.info[3];
  if (r.source_val) {
    if (sv.count == 0) problem(sv, str("source/val (", sv.dataset, ") is empty"));
    else if (sv.labelled == 0)
      problem(sv, str("source/val (", sv.dataset, ") has no labels: give the source's labels (labels, labels_key or "
                      "class folders), or set data.source.val_fraction or [data.source_val] to labelled data"));
    else if (sv.overlap_source_train > 0)
      core::log_warn("source/val shares ", sv.overlap_source_train, " of ", sv.count,
                     " images with source/train: model selection sees training images (set data.source.val_fraction or "
                     "[data.source_val] for held-out source data)");
  }
  if (r.target_test) {
    if (tt.count == 0) problem(tt, str("target/test (", tt.dataset, ") is empty"));
    else if (tt.labelled == 0)
      problem(tt, str(oracle ? "train.select = oracle needs a labelled target/test, and " : "",
                      "target/test (", tt.dataset, ") has no labels: set [data.target_test] root (and labels) to "
                      "labelled target data, or data.target.test_fraction with target labels",
                      o.protocol == "transductive" ? "" : ", or data.protocol = transductive with target labels"));
    else if (mode == RoleMode::Check && o.protocol == "held_out" && tt.overlap_target_train > 0)
      core::log_warn("target/test shares ", tt.overlap_target_train, " of ", tt.count,
                     " images with target/train: train refuses this (data.protocol = held_out) unless the method "
                     "reads no target images");
    else if (tt.overlap_source_train > 0)
      core::log_warn("target/test shares ", tt.overlap_source_train, " of ", tt.count,
                     " images with source/train (labelled training images)");
  }
  return r;
}

void check_target_overlap(const Roles& r, bool target_used) {
  if (r.protocol != "held_out" || !target_used || !r.target_test) return;
  const auto& tt = r.at("target/test");
  check_usage(tt.overlap_target_train == 0, "target/test shares ", tt.overlap_target_train, " of ", tt.count,
              " images with target/train (", tt.dataset, "), which the method adapts on: that is the transductive "
              "protocol — set data.protocol = transductive to report it as such, or give held-out target images "
              "([data.target_test] root = ..., or data.target.test_fraction)");
}

}  // namespace shiftlab::data
