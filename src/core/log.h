// Logging to stderr and, once a run directory is open, to its log.txt; plus progress reporting
// (a bar with rate and ETA on a terminal, plain periodic lines otherwise so CI logs stay readable).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "core/error.h"

namespace shiftlab::core {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3, Quiet = 4 };

LogLevel parse_log_level(const std::string& s);
void set_log_level(LogLevel level);
LogLevel log_level();
/// Also writes every message (all levels, timestamped) to this file; "" closes it.
void set_log_file(const std::string& path);
void log_message(LogLevel level, const std::string& msg);
/// Writes only to the log file (for full error context that stderr shows as one line).
void log_to_file_only(const std::string& msg);

template <typename... A> void log_debug(const A&... a) { if (log_level() <= LogLevel::Debug) log_message(LogLevel::Debug, str(a...)); }
// info always reaches log_message: the console filters by level, the run's log.txt keeps everything
template <typename... A> void log_info(const A&... a) { log_message(LogLevel::Info, str(a...)); }
template <typename... A> void log_warn(const A&... a) { log_message(LogLevel::Warn, str(a...)); }
template <typename... A> void log_error(const A&... a) { log_message(LogLevel::Error, str(a...)); }

/// True when stderr is a terminal.
bool stderr_is_tty();

/// Progress over `total` units (0 = unknown). update() is cheap; it draws at most every 0.2 s on a
/// terminal, and prints a plain line every `plain_interval_s` seconds otherwise.
class Progress {
 public:
  Progress(std::string label, long long total, double plain_interval_s = 10.0);
  ~Progress();
  /// Sets the position to `done` units; `extra` is shown after the rate (e.g. "loss 0.31").
  void update(long long done, const std::string& extra = "");
  void finish(const std::string& extra = "");

 private:
  void draw(bool final);
  std::string label_;
  long long total_, done_ = 0;
  std::string extra_;
  double plain_interval_;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace shiftlab::core
