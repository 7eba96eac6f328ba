#include "report/runs.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "core/format.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/options.h"
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
  r.source_val_acc = num(r.summary, "selected", "source_val_acc");
  r.mean_class_acc = num(r.summary, "selected", "target_test_mean_class_acc");
  r.seconds = r.summary.contains("train_seconds") && r.summary["train_seconds"].is_number()
                  ? r.summary["train_seconds"].get<double>()
                  : kNaN;
  r.oracle_selected = r.summary.value("oracle_selected", false);
  return r;
}

std::vector<RunRecord> find_runs(const std::vector<std::string>& roots) {
  std::vector<std::string> dirs;
  for (auto& root : roots) {
    if (!fs::exists(root)) throw core::UsageError(core::str(root, ": no such directory"));
    if (fs::exists(fs::path(root) / "summary.json")) {
      dirs.push_back(root);
      continue;
    }
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied);
         it != fs::recursive_directory_iterator(); ++it) {
      if (it->is_directory() && fs::exists(it->path() / "summary.json")) {
        dirs.push_back(it->path().string());
        it.disable_recursion_pending();
      }
    }
  }
  std::sort(dirs.begin(), dirs.end());
  dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());
  std::vector<RunRecord> runs;
  for (auto& d : dirs) runs.push_back(read_run(d));
  return runs;
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
  for (auto& k : all) {
    if (is_incidental_key(k)) continue;
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

std::vector<Group> group_runs(const std::vector<RunRecord>& runs, const std::vector<std::string>& keys) {
  std::vector<Group> groups;
  for (auto& r : runs) {
    std::vector<std::pair<std::string, std::string>> key;
    for (auto& k : keys) {
      auto it = r.config.find(k);
      key.emplace_back(k, it == r.config.end() ? "" : it->second);
    }
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) { return x.key == key; });
    if (g == groups.end()) {
      groups.push_back(Group{key, {}, 0, {}, {}, {}, {}, {}});
      g = groups.end() - 1;
    }
    g->runs.push_back(&r);
  }
  for (auto& g : groups) {
    std::vector<double> sel, ora, sv, mc, sec;
    for (auto* r : g.runs) {
      if (r->status != "completed") continue;
      ++g.completed;
      sel.push_back(r->selected_acc);
      ora.push_back(r->oracle_acc);
      sv.push_back(r->source_val_acc);
      mc.push_back(r->mean_class_acc);
      sec.push_back(r->seconds);
    }
    g.selected = mean_std(sel);
    g.oracle = mean_std(ora);
    g.source_val = mean_std(sv);
    g.mean_class = mean_std(mc);
    g.seconds = mean_std(sec);
  }
  return groups;
}

std::string markdown_table(const std::vector<Group>& groups, const std::vector<std::string>& keys) {
  std::ostringstream o;
  o << "|";
  for (auto& k : keys) o << " " << k << " |";
  if (keys.empty()) o << " runs of |";
  o << " runs | target acc, source-val selected | target acc, oracle | source-val acc | target mean-class acc | s/run |\n|";
  for (size_t i = 0; i < std::max<size_t>(1, keys.size()); ++i) o << "---|";
  o << "---:|---:|---:|---:|---:|---:|\n";
  for (auto& g : groups) {
    o << "|";
    for (auto& kv : g.key) o << " " << kv.second << " |";
    if (keys.empty()) o << " all |";
    o << " " << g.completed << "/" << g.runs.size() << " | " << pm(g.selected) << " | " << pm(g.oracle) << " | "
      << pm(g.source_val) << " | " << pm(g.mean_class) << " | " << (g.seconds.n ? fmt(g.seconds.mean, 0) : "–")
      << " |\n";
  }
  return o.str();
}

std::string csv_table(const std::vector<Group>& groups, const std::vector<std::string>& keys) {
  std::ostringstream o;
  for (auto& k : keys) o << csv_cell(k) << ",";
  o << "runs,completed";
  for (auto* m : {"selected", "oracle", "source_val", "mean_class", "seconds"}) o << "," << m << "_mean," << m << "_std";
  o << "\n";
  for (auto& g : groups) {
    for (auto& kv : g.key) o << csv_cell(kv.second) << ",";
    o << g.runs.size() << "," << g.completed;
    for (auto* s : {&g.selected, &g.oracle, &g.source_val, &g.mean_class, &g.seconds})
      o << "," << fmt(s->mean, 4) << "," << (s->n ? fmt(s->std, 4) : "");
    o << "\n";
  }
  return o.str();
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
                     const std::string& title, bool curves) {
  fs::create_directories(out);
  core::atomic_write((fs::path(out) / "results.md").string(),
                     "# " + title + "\n\nTarget-test accuracy (%), mean ± std over seeds (std with n−1).\n\n" +
                         markdown_table(groups, keys));
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
  std::vector<Series> acc, loss, lam;
  std::set<std::string> skip = {"step",  "phase",         "lr",       "images_per_s", "selected",
                                "lambda", "source_val_acc", "target_test_acc", "target_test_mean_class_acc",
                                "target_entropy"};
  for (auto* r : g.runs) {
    std::string run_name = fs::path(r->dir).filename().string();
    auto seed = r->config.count("run.seed") ? "seed " + r->config.at("run.seed") : run_name;
    std::ifstream in((fs::path(r->dir) / "metrics.jsonl").string());
    std::map<std::string, Series> cols;
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
  if (!acc.empty())
    out.emplace_back("acc", line_chart_svg(acc, {title + " — accuracy", "step", "accuracy (%)", 760, 420, false}));
  if (!loss.empty())
    out.emplace_back("loss", line_chart_svg(loss, {title + " — loss terms", "step", "loss", 760, 420, false}));
  if (!lam.empty())
    out.emplace_back("lambda", line_chart_svg(lam, {title + " — DA weight λ", "step", "λ", 760, 420, false}));
  return out;
}

}  // namespace shiftlab::report
