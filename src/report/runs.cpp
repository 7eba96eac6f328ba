#include "report/runs.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>

#include "core/format.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/options.h"
#include "core/registry.h"
#include "report/svg.h"

namespace shiftlab::report {

namespace fs = std::filesystem;

namespace {
const double kNaN = std::numeric_limits<double>::quiet_NaN();

double num(const nlohmann::json& j, const char* a, const char* b) {
  if (!j.is_object() || !j.contains(a) || !j[a].is_object() || !j[a].contains(b) || !j[a][b].is_number()) return kNaN;
  return j[a][b].get<double>();
}

// The resolved configuration, read with the configs' own INI reader (the last of repeated keys
// wins); a missing file is an empty configuration.
std::map<std::string, std::string> read_ini(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path, std::ios::binary);
  if (!in) return out;
  std::ostringstream text;
  text << in.rdbuf();
  try {
    for (auto& e : core::parse_ini_text(text.str(), path)) out[e.key] = e.value;
  } catch (const core::UsageError& e) {
    throw core::Error(core::str("unreadable run configuration: ", e.what()));  // names the file and line
  }
  return out;
}

std::string fmt(double v, int prec = 2) { return core::fixed(v, prec); }

std::string pm(const Stat& s, int prec = 2) {
  if (s.n == 0) return "–";
  if (s.n == 1) return fmt(s.mean, prec);
  return fmt(s.mean, prec) + " ± " + fmt(s.std, prec);
}

// 11175370 -> "11,175,370"
std::string thousands(double v) {
  if (!std::isfinite(v)) return "–";
  std::string d = std::to_string(std::llround(std::fabs(v))), o;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0) o += ',';
    o += d[i];
  }
  return (v < 0 ? "-" : "") + o;
}

// 3 significant digits, as printf's %.3g ("0.0459", "9.35", "100")
std::string sig3(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

// The digits at s[pos...] as a number (false when there are none); pos moves past them.
bool read_count(const std::string& s, size_t& pos, double* out) {
  size_t end = pos;
  while (end < s.size() && s[end] >= '0' && s[end] <= '9') ++end;
  if (end == pos) return false;
  *out = std::stod(s.substr(pos, end - pos));
  pos = end;
  return true;
}

// The last "trainable parameters: model T of N (...), method M" line of a run's log.txt (no
// <regex>: it alone cost this file 10 s of compilation).
bool params_from_log(const std::string& path, double* trainable, double* model, double* method) {
  std::ifstream in(path);
  if (!in) return false;
  static const std::string head = "trainable parameters: model ", of = " of ", meth = "method ";
  std::string line;
  bool found = false;
  while (std::getline(in, line)) {
    size_t p = line.find(head);
    if (p == std::string::npos) continue;
    p += head.size();
    double t = 0, n = 0, m = 0;
    if (!read_count(line, p, &t) || line.compare(p, of.size(), of) != 0) continue;
    p += of.size();
    if (!read_count(line, p, &n)) continue;
    size_t q = line.rfind(meth);  // the last "method M" (a greedy ".*method (\d+)")
    if (q == std::string::npos || q < p) continue;
    q += meth.size();
    if (!read_count(line, q, &m)) continue;
    *trainable = t;
    *model = n;
    *method = m;
    found = true;
  }
  return found;
}

double json_num(const nlohmann::json& j, const char* k) {
  return j.is_object() && j.contains(k) && j[k].is_number() ? j[k].get<double>() : kNaN;
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}
}  // namespace

RunRecord read_run(const std::string& dir) {
  RunRecord r;
  r.dir = dir;
  auto sp = (fs::path(dir) / "summary.json").string();
  if (!fs::exists(sp)) throw core::Error(core::str(dir, ": not a run directory (no summary.json)"));
  try {
    r.summary = nlohmann::json::parse(core::read_file(sp));
  } catch (const nlohmann::json::exception& e) {
    throw core::Error(core::str(sp, ": unreadable summary (", e.what(), ")"));
  }
  r.config = read_ini((fs::path(dir) / "config.resolved.ini").string());
  r.status = r.summary.value("status", "unknown");
  r.selected_acc = num(r.summary, "selected", "target_test_acc");
  r.oracle_acc = num(r.summary, "oracle", "target_test_acc");
  r.last_acc = num(r.summary, "last", "target_test_acc");
  r.source_val_acc = num(r.summary, "selected", "source_val_acc");
  r.mean_class_acc = num(r.summary, "selected", "target_test_mean_class_acc");
  r.seconds = r.summary.contains("train_seconds") && r.summary["train_seconds"].is_number()
                  ? r.summary["train_seconds"].get<double>()
                  : kNaN;
  r.oracle_selected = r.summary.value("oracle_selected", false);
  r.model_params = r.trainable_params = r.method_params = kNaN;
  if (r.summary.contains("parameters") && r.summary["parameters"].is_object()) {
    const auto& p = r.summary["parameters"];
    r.model_params = json_num(p, "model");
    r.trainable_params = json_num(p, "trainable");
    r.method_params = json_num(p, "method");
  } else {
    params_from_log((fs::path(dir) / "log.txt").string(), &r.trainable_params, &r.model_params, &r.method_params);
  }
  return r;
}

RunRecord read_probe_run(const std::string& dir) {
  RunRecord r;
  r.dir = dir;
  r.kind = "probe";
  auto pp = (fs::path(dir) / "probe.json").string();
  if (!fs::exists(pp)) throw core::Error(core::str(dir, ": not a probe directory (no probe.json)"));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(core::read_file(pp));
  } catch (const nlohmann::json::exception& e) {
    throw core::Error(core::str(pp, ": unreadable probe result (", e.what(), ")"));
  }
  if (!j.is_object() || j.value("format", "") != "shiftlab-probe" || !j.contains("taps") || !j["taps"].is_array() ||
      j["taps"].empty() || !j["taps"][0].is_object())
    throw core::Error(core::str(pp, ": not a shiftlab probe result (format shiftlab-probe with taps)"));
  r.summary = j;
  const auto& tap = j["taps"][0];
  const auto lin = tap.value("linear", nlohmann::json::object());
  r.status = "completed";
  r.selected_acc = json_num(lin, "target_acc");
  r.source_val_acc = json_num(lin, "source_acc");
  r.oracle_acc = r.last_acc = r.mean_class_acc = kNaN;
  r.seconds = json_num(lin, "seconds");
  const double dim = json_num(tap, "dim"), k = json_num(tap, "num_classes");
  r.trainable_params = dim * k + k;  // weights and biases of the linear classifier
  r.model_params = r.method_params = kNaN;
  const auto attrs = j.value("attributes", nlohmann::json::object());
  if (attrs.is_object() && attrs.contains("config") && attrs["config"].is_string()) {
    try {
      for (auto& e : core::parse_ini_text(attrs["config"].get<std::string>(), pp + " (the cache's configuration)"))
        r.config[e.key] = e.value;
    } catch (const core::UsageError& e) {
      throw core::Error(core::str("unreadable probe configuration: ", e.what()));
    }
  }
  return r;
}

std::vector<RunRecord> find_runs(const std::vector<std::string>& roots) {
  // (directory, its root); a run directory ends the descent
  std::vector<std::pair<std::string, std::string>> dirs;
  auto is_run = [](const fs::path& d) { return fs::exists(d / "summary.json") || fs::exists(d / "probe.json"); };
  for (auto& root : roots) {
    if (!fs::exists(root)) throw core::UsageError(core::str(root, ": no such directory"));
    if (is_run(root)) {
      dirs.emplace_back(root, root);
      continue;
    }
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied);
         it != fs::recursive_directory_iterator(); ++it) {
      if (it->is_directory() && is_run(it->path())) {
        dirs.emplace_back(it->path().string(), root);
        it.disable_recursion_pending();
      }
    }
  }
  std::sort(dirs.begin(), dirs.end());
  dirs.erase(std::unique(dirs.begin(), dirs.end(), [](auto& a, auto& b) { return a.first == b.first; }), dirs.end());
  std::vector<RunRecord> runs;
  for (auto& [d, root] : dirs) {
    runs.push_back(fs::exists(fs::path(d) / "summary.json") ? read_run(d) : read_probe_run(d));
    auto rel = fs::path(d).lexically_relative(root).generic_string();
    runs.back().rel = rel == "." ? "" : rel;
  }
  return runs;
}

std::string key_value(const RunRecord& r, const std::string& key) {
  if (key.rfind("path:", 0) == 0) {
    const std::string n = key.substr(5);
    core::check_usage(!n.empty() && n.size() < 4 && n.find_first_not_of("0123456789") == std::string::npos, "key '",
                      key, "': path:N takes a directory index N >= 0 (path:0 = the first directory below the root)");
    size_t want = std::stoul(n), i = 0;
    for (auto& part : fs::path(r.rel))
      if (i++ == want) return part.string();
    return "";
  }
  auto it = r.config.find(key);
  return it == r.config.end() ? "" : it->second;
}

bool is_incidental_key(const std::string& k) {
  static const std::set<std::string> keys = {"run.seed",   "run.name",      "run.root",      "run.threads",
                                             "run.device", "run.log_level", "eval.workers",  "eval.batch_size",
                                             "data.source.workers", "data.target.workers"};
  if (keys.count(k)) return true;
  // data roots are paths that differ between machines, not between experiments
  return k.size() > 5 && k.compare(k.size() - 5, 5, ".root") == 0 && k.rfind("data.", 0) == 0;
}

std::vector<std::string> varying_keys(const std::vector<RunRecord>& runs) {
  std::set<std::string> all;
  for (auto& r : runs)
    for (auto& kv : r.config) all.insert(kv.first);
  std::vector<std::string> out;
  // a data root is incidental for a prepared name (the data directory differs between machines) but
  // is the data set itself for a dataset kind (npy file, image folder, list-file root): runs on other
  // data are not seeds of one experiment
  static const std::set<std::string> kinds = {"prepared", "idx", "digits_csv", "npy", "hdf5", "image_folder", "list_file"};
  auto root_names_data = [&](const std::string& k) {
    if (k.size() <= 5 || k.compare(k.size() - 5, 5, ".root") != 0 || k.rfind("data.", 0) != 0) return false;
    const std::string ds = k.substr(0, k.size() - 5) + ".dataset";
    for (auto& r : runs) {
      auto it = r.config.find(ds);
      if (it != r.config.end() && kinds.count(it->second)) return true;
    }
    return false;
  };
  // an option that takes each run's seed (`sweep --seed_keys`, e.g. data.source.subset_seed) is
  // pooled like the seed: it equals run.seed in every run
  auto follows_seed = [&](const std::string& k) {
    for (auto& r : runs) {
      auto it = r.config.find(k), s = r.config.find("run.seed");
      if (it == r.config.end() || s == r.config.end() || it->second != s->second) return false;
    }
    return true;
  };
  for (auto& k : all) {
    if (is_incidental_key(k) && !root_names_data(k)) continue;
    if (follows_seed(k)) continue;
    std::set<std::string> values;
    for (auto& r : runs) {
      auto it = r.config.find(k);
      values.insert(it == r.config.end() ? std::string("\x01missing") : it->second);
    }
    if (values.size() > 1) out.push_back(k);
  }
  return out;
}

Stat mean_std(const std::vector<double>& v) {
  Stat s;
  double sum = 0;
  for (double x : v)
    if (std::isfinite(x)) sum += x, ++s.n;
  if (s.n == 0) {
    s.mean = kNaN;
    return s;
  }
  s.mean = sum / s.n;
  if (s.n > 1) {
    double ss = 0;
    for (double x : v)
      if (std::isfinite(x)) ss += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(ss / (s.n - 1));
  }
  return s;
}

std::string Group::label() const {
  if (key.empty()) return "all runs";
  std::string s;
  for (auto& kv : key) s += (s.empty() ? "" : ", ") + kv.first + "=" + kv.second;
  return s;
}

std::string Group::values() const {
  std::string s;
  for (auto& kv : key) s += (s.empty() ? "" : ", ") + kv.second;
  return s;
}

std::vector<Group> group_runs(const std::vector<RunRecord>& runs, const std::vector<std::string>& keys) {
  std::vector<Group> groups;
  for (auto& r : runs) {
    std::vector<std::pair<std::string, std::string>> key;
    for (auto& k : keys) key.emplace_back(k, key_value(r, k));
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) { return x.key == key; });
    if (g == groups.end()) {
      groups.emplace_back();
      groups.back().key = key;
      g = groups.end() - 1;
    }
    g->runs.push_back(&r);
  }
  for (auto& g : groups) {
    std::vector<double> sel, ora, last, sv, mc, sec, mp, tp, me;
    // runs of one configuration and one seed are one replicate: the latest completed one counts
    // (runs are sorted by path, run directories by start time), an earlier repeat does not. A
    // group that pools configurations (--by) keeps their runs of one seed apart.
    std::set<const RunRecord*> repeated;
    std::set<std::string> seen;
    for (auto it = g.runs.rbegin(); it != g.runs.rend(); ++it) {
      const RunRecord* r = *it;
      auto seed = r->config.find("run.seed");
      if (r->status != "completed" || r->kind != "train" || seed == r->config.end()) continue;
      std::string signature = seed->second;
      for (auto& [k, v] : r->config)
        if (!is_incidental_key(k)) signature += "\n" + k + "=" + v;
      if (!seen.insert(signature).second) repeated.insert(r);
    }
    g.same_seed = static_cast<int>(repeated.size());
    for (auto* r : g.runs) {
      if (r->status != "completed" || repeated.count(r)) continue;
      ++g.completed;
      g.counted.push_back(r);
      sel.push_back(r->selected_acc);
      ora.push_back(r->oracle_acc);
      last.push_back(r->last_acc);
      sv.push_back(r->source_val_acc);
      mc.push_back(r->mean_class_acc);
      sec.push_back(r->seconds);
      mp.push_back(r->model_params);
      tp.push_back(r->trainable_params);
      me.push_back(r->method_params);
    }
    g.selected = mean_std(sel);
    g.oracle = mean_std(ora);
    g.last = mean_std(last);
    g.source_val = mean_std(sv);
    g.mean_class = mean_std(mc);
    g.seconds = mean_std(sec);
    g.model_params = mean_std(mp);
    g.trainable_params = mean_std(tp);
    g.method_params = mean_std(me);
  }
  return groups;
}

// ---------------------------------------------------------------- columns and tables

namespace {

struct Column {
  const char* name;
  const char* header;
  bool accuracy;  // a mean ± std statistic (baseline differences apply)
  const Stat Group::*stat;
  double RunRecord::*run;  // one run's value (null for parameter counts and seconds)
};

const Column kColumns[] = {
    {"selected", "target acc, source-val selected", true, &Group::selected, &RunRecord::selected_acc},
    {"oracle", "target acc, oracle", true, &Group::oracle, &RunRecord::oracle_acc},
    {"last", "target acc, last", true, &Group::last, &RunRecord::last_acc},
    {"source_val", "source-val acc", true, &Group::source_val, &RunRecord::source_val_acc},
    {"mean_class", "target mean-class acc", true, &Group::mean_class, &RunRecord::mean_class_acc},
    {"seconds", "s/run", false, &Group::seconds, nullptr},
    {"trainable", "trainable (model)", false, &Group::trainable_params, nullptr},
    {"method_params", "method params", false, &Group::method_params, nullptr},
};

const Column& column(const std::string& name) {
  for (auto& c : kColumns)
    if (name == c.name) return c;
  check_columns({name});
  throw core::Error("unreachable");
}

bool is_param_column(const std::string& name) { return name == "trainable" || name == "method_params"; }

// "11,175,370 (100 %)"; "5,130" when the model's size is unknown (a probe)
std::string trainable_cell(const Group& g) {
  if (g.trainable_params.n == 0) return "–";
  std::string s = thousands(g.trainable_params.mean);
  if (g.model_params.n > 0 && g.model_params.mean > 0)
    s += " (" + sig3(100.0 * g.trainable_params.mean / g.model_params.mean) + " %)";
  return s;
}

std::string delta(double v, double base) {
  if (!std::isfinite(v) || !std::isfinite(base)) return "";
  return " (" + std::string(v - base >= 0 ? "+" : "") + fmt(v - base) + ")";
}

std::string cell(const Group* g, const Column& c, const Group* base) {
  if (!g) return "–";
  if (c.stat == &Group::trainable_params) return trainable_cell(*g);
  const Stat& s = g->*c.stat;
  if (c.stat == &Group::method_params) return s.n ? thousands(s.mean) : "–";
  if (c.stat == &Group::seconds) return s.n ? fmt(s.mean, 0) : "–";
  std::string out = pm(s);
  if (base && base != g && s.n > 0 && (base->*c.stat).n > 0) out += delta(s.mean, (base->*c.stat).mean);
  return out;
}

// The first statistic (not a parameter count) of `columns`: what pivot cells and baselines show.
const Column& first_stat(const std::vector<std::string>& columns) {
  for (auto& c : columns)
    if (!is_param_column(c)) return column(c);
  return column("selected");
}

}  // namespace

const std::vector<std::string>& table_columns() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (auto& c : kColumns) v.push_back(c.name);
    return v;
  }();
  return names;
}

std::vector<std::string> default_columns() { return {"selected", "oracle", "source_val", "mean_class", "seconds"}; }

void check_columns(const std::vector<std::string>& columns) {
  for (auto& c : columns) {
    const auto& known = table_columns();
    if (std::find(known.begin(), known.end(), c) != known.end()) continue;
    std::string list;
    for (auto& k : known) list += (list.empty() ? "" : ", ") + k;
    std::string hint = core::nearest(c, known);
    throw core::UsageError(core::str("--columns: unknown column '", c, "'",
                                     hint.empty() ? "" : core::str(" — did you mean '", hint, "'?"), " (known: ", list,
                                     ")"));
  }
}

std::string markdown_table(const std::vector<Group>& groups, const std::vector<std::string>& keys,
                           const std::vector<std::string>& columns, const std::string& baseline) {
  check_columns(columns);
  const Group* base = nullptr;
  if (!baseline.empty()) {
    for (auto& g : groups)
      if (g.values() == baseline) base = &g;
    std::string rows;
    for (auto& g : groups) rows += (rows.empty() ? "" : "; ") + g.values();
    core::check_usage(base != nullptr, "--baseline '", baseline, "' is none of the rows (", rows, ")");
  }
  const Column* delta_col = base ? &first_stat(columns) : nullptr;
  std::ostringstream o;
  o << "|";
  for (auto& k : keys) o << " " << k << " |";
  if (keys.empty()) o << " runs of |";
  o << " runs |";
  for (auto& c : columns) o << " " << column(c).header << " |";
  o << "\n|";
  for (size_t i = 0; i < std::max<size_t>(1, keys.size()); ++i) o << "---|";
  o << "---:|";
  for (size_t i = 0; i < columns.size(); ++i) o << "---:|";
  o << "\n";
  for (auto& g : groups) {
    o << "|";
    for (auto& kv : g.key) o << " " << kv.second << " |";
    if (keys.empty()) o << " all |";
    o << " " << g.completed << "/" << g.runs.size();
    if (g.same_seed) o << " (" << g.same_seed << " same-seed run" << (g.same_seed > 1 ? "s" : "") << " not counted)";
    o << " |";
    for (auto& c : columns) {
      const auto& col = column(c);
      o << " " << cell(&g, col, &col == delta_col ? base : nullptr) << " |";
    }
    o << "\n";
  }
  return o.str();
}

std::string csv_table(const std::vector<Group>& groups, const std::vector<std::string>& keys) {
  std::ostringstream o;
  for (auto& k : keys) o << csv_cell(k) << ",";
  o << "runs,completed";
  for (auto* m : {"selected", "oracle", "source_val", "mean_class", "seconds", "last", "trainable_params",
                  "model_params", "method_params"})
    o << "," << m << "_mean," << m << "_std";
  o << "\n";
  for (auto& g : groups) {
    for (auto& kv : g.key) o << csv_cell(kv.second) << ",";
    o << g.runs.size() << "," << g.completed;
    for (auto* s : {&g.selected, &g.oracle, &g.source_val, &g.mean_class, &g.seconds, &g.last, &g.trainable_params,
                    &g.model_params, &g.method_params})
      o << "," << fmt(s->mean, 4) << "," << (s->n ? fmt(s->std, 4) : "");
    o << "\n";
  }
  return o.str();
}

std::vector<RunRecord> tune_runs(const std::vector<RunRecord>& runs, const std::vector<std::string>& keys,
                                 const std::string& tune, std::vector<TuneChoice>* choices) {
  core::check_usage(std::find(keys.begin(), keys.end(), tune) == keys.end(), "--tune ", tune,
                    " is also a --by / --pivot key");
  core::check_usage(std::any_of(runs.begin(), runs.end(), [&](const RunRecord& r) { return r.config.count(tune) > 0; }),
                    "--tune ", tune, ": no run has this option");
  auto all = keys;
  all.push_back(tune);
  const auto groups = group_runs(runs, all);
  // per group: the seeds of its counted runs and their source-val accuracies
  std::map<const Group*, std::multimap<std::string, double>> by_seed;
  for (auto& g : groups)
    for (auto* r : g.counted) {
      auto seed = r->config.find("run.seed");
      by_seed[&g].emplace(seed == r->config.end() ? std::string() : seed->second, r->source_val_acc);
    }
  std::vector<std::string> cells;                         // first-seen order
  std::map<std::string, std::vector<const Group*>> members;  // cell -> its candidates
  std::map<std::string, TuneChoice> made;
  for (auto& g : groups) {
    Group cell_of;
    cell_of.key.assign(g.key.begin(), g.key.end() - 1);
    const std::string cell = cell_of.values();
    if (!made.count(cell)) {
      cells.push_back(cell);
      made[cell].cell = cell;
      for (auto& kv : cell_of.key) made[cell].cell_values.push_back(kv.second);
    }
    members[cell].push_back(&g);
  }
  std::map<std::string, const Group*> best;  // cell -> chosen group
  std::set<std::string> probes;               // cells of linear probes only: nothing to tune, all kept
  for (auto& cell : cells) {
    auto& ch = made[cell];
    if (std::all_of(members[cell].begin(), members[cell].end(), [](const Group* g) {
          return std::all_of(g->runs.begin(), g->runs.end(), [](const RunRecord* r) { return r->kind == "probe"; });
        })) {
      probes.insert(cell);
      best[cell] = nullptr;
      continue;
    }
    // the seeds every candidate with a completed run has
    std::set<std::string> common;
    bool first = true, differ = false;
    for (auto* g : members[cell]) {
      if (g->completed == 0) continue;
      std::set<std::string> s;
      for (auto& kv : by_seed[g]) s.insert(kv.first);
      if (first) {
        common = s;
        first = false;
        continue;
      }
      if (s != common) differ = true;
      std::set<std::string> both;
      std::set_intersection(common.begin(), common.end(), s.begin(), s.end(), std::inserter(both, both.end()));
      common = std::move(both);
    }
    const bool restrict = differ && !common.empty();
    if (restrict) ch.seeds.assign(common.begin(), common.end());
    const Group* b = nullptr;
    double b_mean = 0;
    for (auto* g : members[cell]) {
      Stat st = g->source_val;
      if (restrict && g->completed > 0) {
        std::vector<double> v;
        for (auto& [seed, acc] : by_seed[g])
          if (common.count(seed)) v.push_back(acc);
        st = mean_std(v);
      }
      ch.candidates.emplace_back(g->key.back().second, st);
      if (g->completed > 0 && (!b || st.mean > b_mean)) {
        b = g;
        b_mean = st.mean;
      }
    }
    best[cell] = b;
    ch.value = b ? b->key.back().second : "";
  }
  std::set<const RunRecord*> keep;
  for (auto& g : groups) {
    Group cell_of;
    cell_of.key.assign(g.key.begin(), g.key.end() - 1);
    const Group* b = best[cell_of.values()];
    if (!b || b == &g)
      for (auto* r : g.runs) keep.insert(r);
  }
  std::vector<RunRecord> out;
  for (auto& r : runs)
    if (keep.count(&r)) out.push_back(r);
  if (choices) {
    choices->clear();
    for (auto& c : cells)
      if (!probes.count(c)) choices->push_back(made[c]);
  }
  return out;
}

std::string tune_markdown(const std::vector<TuneChoice>& choices, const std::string& tune) {
  std::ostringstream os;
  os << "\n" << tune << " chosen per cell by the highest mean source-val accuracy (no target labels):\n";
  for (auto& c : choices) {
    os << "- " << (c.cell.empty() ? "all runs" : c.cell) << ": "
       << (c.value.empty() ? "no completed run" : tune + " = " + c.value) << " (source-val";
    for (auto& [v, st] : c.candidates)
      os << (&v == &c.candidates.front().first ? " " : ", ") << v << ": "
         << (st.n > 0 ? core::str(fmt(st.mean), " ± ", fmt(st.std)) : std::string("-"));
    if (!c.seeds.empty()) {
      os << "; compared on seed" << (c.seeds.size() > 1 ? "s " : " ");
      for (size_t i = 0; i < c.seeds.size(); ++i) os << (i ? "," : "") << c.seeds[i];
    }
    os << ")\n";
  }
  return os.str();
}

std::string tune_csv(const std::vector<TuneChoice>& choices, const std::vector<std::string>& keys,
                     const std::string& tune) {
  std::ostringstream o;
  for (auto& k : keys) o << csv_cell(k) << ",";
  o << csv_cell(tune) << ",source_val_mean,source_val_std,n,chosen,seeds\n";
  for (auto& c : choices) {
    std::string seeds;
    for (auto& s : c.seeds) seeds += (seeds.empty() ? "" : " ") + s;
    for (auto& [v, st] : c.candidates) {
      for (auto& cv : c.cell_values) o << csv_cell(cv) << ",";
      o << csv_cell(v) << "," << (st.n ? fmt(st.mean, 4) : "") << "," << (st.n ? fmt(st.std, 4) : "") << "," << st.n
        << "," << (v == c.value ? 1 : 0) << "," << csv_cell(seeds) << "\n";
    }
  }
  return o.str();
}

Pivot pivot_runs(const std::vector<RunRecord>& runs, const std::vector<std::string>& keys, const std::string& pivot,
                 const std::vector<std::string>& order) {
  core::check_usage(std::find(keys.begin(), keys.end(), pivot) == keys.end(), "--pivot ", pivot,
                    " is also a --by key");
  Pivot p;
  p.key = pivot;
  auto all = keys;
  all.push_back(pivot);
  p.groups = group_runs(runs, all);
  for (auto& g : p.groups) {
    const std::string col = g.key.back().second;
    Group row_of;
    row_of.key.assign(g.key.begin(), g.key.end() - 1);
    const std::string row = row_of.values();
    if (std::find(p.columns.begin(), p.columns.end(), col) == p.columns.end()) p.columns.push_back(col);
    if (std::find(p.rows.begin(), p.rows.end(), row) == p.rows.end()) p.rows.push_back(row);
  }
  // columns: `order` first, then ascending (numbers as numbers, else natural order)
  auto number = [](const std::string& v, double* x) {
    char* end = nullptr;
    *x = std::strtod(v.c_str(), &end);
    return !v.empty() && end == v.c_str() + v.size();
  };
  bool numeric = true;
  double x = 0, y = 0;
  for (auto& c : p.columns) numeric = numeric && number(c, &x);
  auto rank = [&](const std::string& c) {
    return static_cast<size_t>(std::find(order.begin(), order.end(), c) - order.begin());
  };
  std::stable_sort(p.columns.begin(), p.columns.end(), [&](const std::string& a, const std::string& b) {
    const size_t ra = rank(a), rb = rank(b);
    if (ra != rb) return ra < rb;
    if (ra < order.size()) return false;
    if (numeric) return number(a, &x) && number(b, &y) && x < y;
    return core::natural_compare(a, b) < 0;
  });
  p.cells.assign(p.rows.size(), std::vector<const Group*>(p.columns.size(), nullptr));
  for (auto& g : p.groups) {
    Group row_of;
    row_of.key.assign(g.key.begin(), g.key.end() - 1);
    size_t r = std::find(p.rows.begin(), p.rows.end(), row_of.values()) - p.rows.begin();
    size_t c = std::find(p.columns.begin(), p.columns.end(), g.key.back().second) - p.columns.begin();
    p.cells[r][c] = &g;
  }
  return p;
}

namespace {
// A pivot row's leading cells: its --by values, one cell each (" all |" without keys).
std::string row_key_cells(const Pivot& p, const Group& any, const std::vector<std::string>& keys) {
  if (keys.empty()) return " all |";
  std::string o;
  for (auto& kv : any.key)
    if (kv.first != p.key) o += " " + kv.second + " |";
  return o;
}
}  // namespace

std::string pivot_markdown(const Pivot& p, const std::vector<std::string>& keys, const std::vector<std::string>& columns,
                           const std::string& baseline) {
  check_columns(columns);
  const Column& stat = first_stat(columns);
  size_t base = p.rows.size();
  if (!baseline.empty()) {
    base = std::find(p.rows.begin(), p.rows.end(), baseline) - p.rows.begin();
    std::string rows;
    for (auto& r : p.rows) rows += (rows.empty() ? "" : "; ") + r;
    core::check_usage(base < p.rows.size(), "--baseline '", baseline, "' is none of the rows (", rows, ")");
  }
  std::vector<std::string> params;
  for (auto& c : columns)
    if (is_param_column(c)) params.push_back(c);
  std::ostringstream o;
  o << stat.header << " (%, mean ± std over seeds) by " << p.key
    << (base < p.rows.size() ? ", (difference to " + baseline + ")" : std::string()) << "\n\n|";
  for (auto& k : keys) o << " " << k << " |";
  if (keys.empty()) o << " runs of |";
  for (auto& c : params) o << " " << column(c).header << " |";
  for (auto& v : p.columns) o << " " << p.key << " = " << v << " |";
  o << "\n|";
  for (size_t i = 0; i < std::max<size_t>(1, keys.size()); ++i) o << "---|";
  for (size_t i = 0; i < params.size() + p.columns.size(); ++i) o << "---:|";
  o << "\n";
  // a cell with fewer completed runs than the fullest cell says how many (a partial sweep's cell
  // must not pass for a complete one)
  int most = 0;
  for (auto& row : p.cells)
    for (auto* g : row)
      if (g) most = std::max(most, g->completed);
  for (size_t r = 0; r < p.rows.size(); ++r) {
    const Group* any = nullptr;  // the row's parameter counts: from its first group with a count
    for (auto* g : p.cells[r])
      if (g && (!any || any->trainable_params.n == 0)) any = g;
    o << "|" << row_key_cells(p, *any, keys);
    for (auto& c : params) o << " " << cell(any, column(c), nullptr) << " |";
    for (size_t c = 0; c < p.columns.size(); ++c) {
      const Group* g = p.cells[r][c];
      o << " " << cell(g, stat, base < p.rows.size() ? p.cells[base][c] : nullptr);
      if (g && g->completed > 0 && g->completed < most) o << " (" << g->completed << " of " << most << " runs)";
      o << " |";
    }
    o << "\n";
  }
  return o.str();
}

PairedDiff paired_difference(const Group& row, const Group& base, const std::string& column_name) {
  const Column& c = column(column_name);
  core::check_usage(c.run != nullptr, "paired differences need an accuracy column, not '", column_name, "'");
  auto values = [&](const Group& g) {
    std::map<std::string, double> v;  // seed -> value (counted runs: one per seed)
    for (auto* r : g.counted) {
      auto s = r->config.find("run.seed");
      const double x = r->*c.run;
      if (s != r->config.end() && std::isfinite(x)) v[s->second] = x;
    }
    return v;
  };
  PairedDiff d;
  const auto a = values(row), b = values(base);
  std::vector<double> diffs;
  for (auto& [seed, x] : a)
    if (auto it = b.find(seed); it != b.end()) {
      d.seeds.push_back(seed);
      diffs.push_back(x - it->second);
    }
  d.diff = mean_std(diffs);
  // a difference equal on every seed (up to round-off) has no t
  const bool spread = d.diff.std > 1e-9 * std::max(1.0, std::abs(d.diff.mean));
  d.t = d.diff.n > 1 && spread ? d.diff.mean / (d.diff.std / std::sqrt(static_cast<double>(d.diff.n))) : kNaN;
  return d;
}

std::string paired_markdown(const Pivot& p, const std::vector<std::string>& keys, const std::vector<std::string>& columns,
                            const std::string& baseline) {
  const Column& stat = first_stat(columns);
  const size_t base = std::find(p.rows.begin(), p.rows.end(), baseline) - p.rows.begin();
  core::check_usage(base < p.rows.size(), "--baseline '", baseline, "' is none of the rows");
  std::ostringstream o;
  o << "\nPaired by seed: " << stat.header << " of each row minus " << baseline
    << "'s on the same seeds (the same labelled images), mean ± std over the seeds both completed, paired t = mean / "
       "(std / √n) with n − 1 degrees of freedom (|t| > 4.30 is significant at 5 % with n = 3, > 2.78 with n = 5)\n\n|";
  for (auto& k : keys) o << " " << k << " |";
  if (keys.empty()) o << " runs of |";
  for (auto& v : p.columns) o << " " << p.key << " = " << v << " |";
  o << "\n|";
  for (size_t i = 0; i < std::max<size_t>(1, keys.size()); ++i) o << "---|";
  for (size_t i = 0; i < p.columns.size(); ++i) o << "---:|";
  o << "\n";
  for (size_t r = 0; r < p.rows.size(); ++r) {
    const Group* any = nullptr;
    for (auto* g : p.cells[r])
      if (g && !any) any = g;
    o << "|" << row_key_cells(p, *any, keys);
    for (size_t c = 0; c < p.columns.size(); ++c) {
      const Group *g = p.cells[r][c], *b = p.cells[base][c];
      if (r == base) {
        o << " baseline |";
        continue;
      }
      if (!g || !b) {
        o << " – |";
        continue;
      }
      auto d = paired_difference(*g, *b, stat.name);
      if (d.diff.n == 0) o << " no common seed |";
      else if (d.diff.n == 1) o << " " << (d.diff.mean >= 0 ? "+" : "") << fmt(d.diff.mean) << " (1 seed) |";
      else if (!std::isfinite(d.t))
        o << " " << (d.diff.mean >= 0 ? "+" : "") << fmt(d.diff.mean) << " (the same on all " << d.diff.n << " seeds) |";
      else
        o << " " << (d.diff.mean >= 0 ? "+" : "") << fmt(d.diff.mean) << " ± " << fmt(d.diff.std) << " (t "
          << fmt(d.t, 1) << ", n " << d.diff.n << ") |";
    }
    o << "\n";
  }
  return o.str();
}

std::string pivot_chart_svg(const Pivot& p, const std::vector<std::string>& columns, const std::string& title) {
  const Column& stat = first_stat(columns);
  LineChart c;
  c.title = title;
  c.categories = p.columns;
  c.x_label = p.key;
  c.left_label = std::string(stat.header) + (stat.accuracy ? " (%)" : "");
  c.width = 820;
  for (size_t r = 0; r < p.rows.size(); ++r) {
    LineSeries s;
    s.name = p.rows[r];
    s.markers = true;
    for (auto* g : p.cells[r]) {
      const Stat* st = g ? &(g->*stat.stat) : nullptr;
      s.y.push_back(st && st->n ? st->mean : kNaN);
      s.err.push_back(st && st->n > 1 ? st->std : 0.0);
    }
    c.series.push_back(std::move(s));
  }
  return line_chart_svg(c);
}

std::string slug(const std::string& s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') o += c;
    else if (c == '=') o += '-';
    else if (c == ',' && i + 1 < s.size() && s[i + 1] == ' ') o += "__", ++i;
    else if (!o.empty() && o.back() != '_') o += '_';
  }
  if (o.size() > 120) o = o.substr(0, 100) + "_" + core::sha256_bytes(s).substr(0, 8);
  return o.empty() ? "run" : o;
}

size_t write_results(const std::string& out, const std::vector<Group>& groups, const std::vector<std::string>& keys,
                     const std::string& title, bool curves, const std::string& table) {
  fs::create_directories(out);
  core::atomic_write((fs::path(out) / "results.md").string(),
                     "# " + title + "\n\nTarget-test accuracy (%), mean ± std over seeds (std with n−1).\n\n" +
                         (table.empty() ? markdown_table(groups, keys) : table));
  core::atomic_write((fs::path(out) / "results.csv").string(), csv_table(groups, keys));
  size_t n = 0;
  if (!curves) return n;
  fs::create_directories(fs::path(out) / "curves");
  for (auto& g : groups)
    for (auto& [suffix, svg] : learning_curve_svgs(g)) {
      core::atomic_write((fs::path(out) / "curves" / (slug(g.label()) + "_" + suffix + ".svg")).string(), svg);
      ++n;
    }
  return n;
}

std::vector<std::pair<std::string, std::string>> learning_curve_svgs(const Group& g) {
  // Columns: accuracies logged at evaluations; loss terms and lambda at log steps.
  std::vector<LineSeries> acc, loss, lam;
  std::set<std::string> skip = {"step",  "phase",         "lr",       "images_per_s", "rss_mib", "selected",
                                "lambda", "source_val_acc", "target_test_acc", "target_test_mean_class_acc",
                                "target_entropy"};
  for (auto* r : g.runs) {
    std::string run_name = fs::path(r->dir).filename().string();
    auto seed = r->config.count("run.seed") ? "seed " + r->config.at("run.seed") : run_name;
    std::ifstream in((fs::path(r->dir) / "metrics.jsonl").string());
    std::map<std::string, LineSeries> cols;
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (...) {
        continue;  // a torn last line of a killed run
      }
      if (!j.contains("step") || !j["step"].is_number()) continue;
      double step = j["step"].get<double>();
      for (auto& [k, v] : j.items()) {
        if (!v.is_number() || k == "step") continue;
        auto& s = cols[k];
        s.x.push_back(step);
        s.y.push_back(v.get<double>());
      }
    }
    for (auto* k : {"source_val_acc", "target_test_acc"})
      if (cols.count(k)) {
        auto s = cols[k];
        s.name = std::string(k == std::string("source_val_acc") ? "source-val" : "target-test") + " (" + seed + ")";
        s.markers = true;
        acc.push_back(s);
      }
    for (auto& [k, s] : cols) {
      if (skip.count(k) || (k.size() > 4 && k.compare(k.size() - 4, 4, "_acc") == 0)) continue;
      auto c = s;
      c.name = k + " (" + seed + ")";
      loss.push_back(c);
    }
    if (cols.count("lambda")) {
      auto s = cols["lambda"];
      s.name = "lambda (" + seed + ")";
      lam.push_back(s);
    }
  }
  std::vector<std::pair<std::string, std::string>> out;
  auto title = g.label();
  auto chart = [&](std::vector<LineSeries> series, const std::string& what, const std::string& y_label) {
    LineChart c;
    c.title = title + " — " + what;
    c.x_label = "step";
    c.left_label = y_label;
    c.width = 760;
    c.series = std::move(series);
    return line_chart_svg(c);
  };
  if (!acc.empty()) out.emplace_back("acc", chart(acc, "accuracy", "accuracy (%)"));
  if (!loss.empty()) out.emplace_back("loss", chart(loss, "loss terms", "loss"));
  if (!lam.empty()) out.emplace_back("lambda", chart(lam, "DA weight λ", "λ"));
  return out;
}

}  // namespace shiftlab::report
