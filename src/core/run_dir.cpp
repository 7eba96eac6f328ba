#include "core/run_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"

namespace shiftlab::core {

namespace fs = std::filesystem;

static std::string stamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

RunDir RunDir::create(const std::string& root, const std::string& experiment) {
  check_usage(!experiment.empty() && experiment.find("..") == std::string::npos,
              "option 'run.name': bad experiment name '", experiment, "'");
  fs::path parent = fs::path(root) / experiment;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw Error(str("cannot create run directory under '", parent.string(), "': ", ec.message()));
  std::random_device rd;
  std::mt19937_64 rng(rd() ^ static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  for (int attempt = 0; attempt < 100; ++attempt) {
    char id[8];
    std::snprintf(id, sizeof id, "%06llx", static_cast<unsigned long long>(rng() & 0xffffff));
    fs::path p = parent / (stamp() + "-" + id);
    if (::mkdir(p.c_str(), 0755) == 0) return RunDir(p.string());
    if (errno != EEXIST) throw Error(str("cannot create run directory '", p.string(), "': ", std::strerror(errno)));
  }
  throw Error(str("cannot create a unique run directory under '", parent.string(), "'"));
}

RunDir RunDir::open(const std::string& path) {
  std::error_code ec;
  check_usage(fs::is_directory(path, ec), "run directory '", path, "' not found");
  check_usage(fs::exists(fs::path(path) / "config.resolved.ini", ec), "'", path,
              "' is not a run directory (no config.resolved.ini)");
  return RunDir(path);
}

std::string RunDir::file(const std::string& name) const { return (fs::path(path_) / name).string(); }

void RunDir::write_config(const Config& cfg, const std::string& command) const {
  atomic_write(file("config.resolved.ini"),
               cfg.to_ini(str("# shiftlab ", command, " — resolved configuration.\n# Re-run with: shiftlab ",
                              command, " --config config.resolved.ini\n")));
}

void RunDir::write_command(const std::vector<std::string>& argv) const {
  std::string line;
  for (auto& a : argv) {
    bool quote = a.find_first_of(" \t'\"*?$;&|<>()") != std::string::npos || a.empty();
    std::string q = a;
    if (quote) {
      q = "'";
      for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
      q += "'";
    }
    line += (line.empty() ? "" : " ") + q;
  }
  atomic_write(file("command.txt"), line + "\n");
}

void RunDir::write_env(const nlohmann::json& env) const { atomic_write(file("env.json"), env.dump(2) + "\n"); }

void RunDir::write_summary(const nlohmann::json& summary) const {
  atomic_write(file("summary.json"), summary.dump(2) + "\n");
}

nlohmann::json RunDir::read_summary() const {
  auto p = file("summary.json");
  if (!fs::exists(p)) return nlohmann::json::object();
  try {
    return nlohmann::json::parse(read_file(p));
  } catch (const nlohmann::json::exception& e) {
    throw Error(str("'", p, "' is not valid JSON: ", e.what()));
  }
}

void RunDir::open_log() const { set_log_file(file("log.txt")); }

// ---------------------------------------------------------------- metrics

MetricsWriter::MetricsWriter(const std::string& dir) : dir_(dir) {}

void MetricsWriter::resume_from(long long step) {
  rows_.clear();
  auto p = (fs::path(dir_) / "metrics.jsonl").string();
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    if (trim(line).empty()) continue;
    try {
      auto j = nlohmann::json::parse(line);
      if (j.contains("step") && j["step"].get<long long>() > step) continue;
      rows_.push_back(std::move(j));
    } catch (const nlohmann::json::exception&) {
      break;  // a torn last line from a kill: drop it and everything after
    }
  }
  rewrite_jsonl();
  flush();
}

void MetricsWriter::rewrite_jsonl() const {
  std::string all;
  for (auto& r : rows_) all += r.dump() + "\n";
  atomic_write((fs::path(dir_) / "metrics.jsonl").string(), all);
}

void MetricsWriter::log(const nlohmann::json& row) {
  // one write of the whole line; when it fails part-way (disk full, file size limit) the file is
  // cut back to where it was, so metrics.jsonl never ends in a torn line
  const std::string p = (fs::path(dir_) / "metrics.jsonl").string();
  const std::string line = row.dump() + "\n";
  int fd = ::open(p.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(str("cannot append to '", p, "': ", std::strerror(errno)));
  struct stat st {};
  const off_t before = ::fstat(fd, &st) == 0 ? st.st_size : -1;
  size_t done = 0;
  int err = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : ENOSPC;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (err && before >= 0) [[maybe_unused]] int rc = ::ftruncate(fd, before);
  ::close(fd);
  if (err) throw Error(str("cannot append to '", p, "': ", std::strerror(err)));
  rows_.push_back(row);
}

void MetricsWriter::flush() const {
  std::vector<std::string> cols;
  std::set<std::string> seen;
  for (auto& r : rows_)  // "step" leads when present (JSON objects sort their keys)
    if (r.contains("step") && seen.insert("step").second) cols.push_back("step");
  for (auto& r : rows_)
    for (auto it = r.begin(); it != r.end(); ++it)
      if (!it.value().is_structured() && seen.insert(it.key()).second) cols.push_back(it.key());
  std::ostringstream os;
  for (size_t i = 0; i < cols.size(); ++i) os << (i ? "," : "") << cols[i];
  os << "\n";
  for (auto& r : rows_) {
    for (size_t i = 0; i < cols.size(); ++i) {
      if (i) os << ",";
      auto it = r.find(cols[i]);
      if (it == r.end() || it->is_null()) continue;
      if (it->is_string()) os << it->get<std::string>();
      else os << it->dump();
    }
    os << "\n";
  }
  atomic_write((fs::path(dir_) / "metrics.csv").string(), os.str());
}

}  // namespace shiftlab::core
