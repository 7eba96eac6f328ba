// Run directories: runs/<experiment>/<YYYYmmdd-HHMMSS>-<6 hex>/ holding
//   config.resolved.ini  every option and its final value (re-runnable with --config)
//   command.txt          the command line
//   env.json             versions, device, threads, BLAS, git commit
//   log.txt              the full log
//   metrics.jsonl/.csv   one row per logged step/evaluation
//   summary.json         final results and status (running | completed | failed | interrupted)
// A run never overwrites another: the directory is created exclusively.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/options.h"

namespace shiftlab::core {

class RunDir {
 public:
  /// Creates a fresh directory under root/experiment (never an existing one).
  static RunDir create(const std::string& root, const std::string& experiment);
  /// Opens an existing run directory (for --resume, eval, report).
  static RunDir open(const std::string& path);
  /// A handle on a directory another process writes (the other ranks of a distributed run name
  /// rank 0's directory with it); nothing is checked, and nothing must be written through it.
  static RunDir attach(const std::string& path) { return RunDir(path); }

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const;

  void write_config(const Config& cfg, const std::string& command) const;
  void write_command(const std::vector<std::string>& argv) const;
  void write_env(const nlohmann::json& env) const;
  /// Atomically replaces summary.json.
  void write_summary(const nlohmann::json& summary) const;
  nlohmann::json read_summary() const;
  /// Starts logging to log.txt in this directory.
  void open_log() const;

 private:
  explicit RunDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
};

/// Appends metric rows to metrics.jsonl (one JSON object per line, flushed) and keeps
/// metrics.csv (union of columns, rewritten atomically on flush()).
class MetricsWriter {
 public:
  explicit MetricsWriter(const std::string& dir);
  /// Loads existing rows (resume) and drops those with step > `step` (so a resumed run
  /// continues exactly where its checkpoint was taken).
  void resume_from(long long step);
  void log(const nlohmann::json& row);
  void flush() const;
  const std::vector<nlohmann::json>& rows() const { return rows_; }

 private:
  void rewrite_jsonl() const;
  std::string dir_;
  std::vector<nlohmann::json> rows_;
};

}  // namespace shiftlab::core
