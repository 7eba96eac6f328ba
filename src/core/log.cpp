#include "core/log.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>

namespace shiftlab::core {

namespace {
struct LogState {
  std::mutex mu;
  LogLevel level = LogLevel::Info;
  std::ofstream file;
  bool progress_line_open = false;  // a \r progress bar is on screen
};
LogState& state() {
  static LogState s;
  return s;
}
std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  localtime_r(&t, &tm);
  std::ostringstream os;
  os << std::put_time(&tm, "%Y-%m-%d %H:%M:%S");
  return os.str();
}
const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warning";
    case LogLevel::Error: return "error";
    default: return "";
  }
}
}  // namespace

LogLevel parse_log_level(const std::string& s) {
  if (s == "debug") return LogLevel::Debug;
  if (s == "info") return LogLevel::Info;
  if (s == "warn" || s == "warning") return LogLevel::Warn;
  if (s == "error") return LogLevel::Error;
  if (s == "quiet") return LogLevel::Quiet;
  throw UsageError(str("unknown log level '", s, "' (expected debug, info, warn, error, quiet)"));
}

void set_log_level(LogLevel level) { state().level = level; }
LogLevel log_level() { return state().level; }

void set_log_file(const std::string& path) {
  auto& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  if (s.file.is_open()) s.file.close();
  if (!path.empty()) {
    s.file.open(path, std::ios::app);
    if (!s.file) throw Error(str("cannot open log file '", path, "'"));
  }
}

bool stderr_is_tty() {
  static bool tty = ::isatty(STDERR_FILENO) == 1;
  return tty;
}

void log_message(LogLevel level, const std::string& msg) {
  auto& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  if (s.file.is_open()) {
    s.file << timestamp() << " [" << level_name(level) << "] " << msg << "\n";
    s.file.flush();
  }
  if (level < s.level) return;
  if (s.progress_line_open) {
    std::cerr << "\r\033[K";
    s.progress_line_open = false;
  }
  if (level >= LogLevel::Warn) std::cerr << level_name(level) << ": ";
  std::cerr << msg << std::endl;
}

void log_to_file_only(const std::string& msg) {
  auto& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  if (s.file.is_open()) {
    s.file << timestamp() << " [detail] " << msg << "\n";
    s.file.flush();
  }
}

// ---------------------------------------------------------------- Progress

Progress::Progress(std::string label, long long total, double plain_interval_s)
    : label_(std::move(label)), total_(total), plain_interval_(plain_interval_s), tty_(stderr_is_tty()) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  if (!finished_ && tty_ && log_level() <= LogLevel::Info) {
    std::lock_guard<std::mutex> g(state().mu);
    if (state().progress_line_open) std::cerr << std::endl;
    state().progress_line_open = false;
  }
}

void Progress::update(long long done, const std::string& extra) {
  done_ = done;
  extra_ = extra;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  // plain lines: the last position is finish()'s line, not also a periodic one (printed twice)
  if (!tty_ && total_ > 0 && done >= total_) return;
  if ((tty_ && since >= 0.2) || (!tty_ && since >= plain_interval_)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish(const std::string& extra) {
  if (finished_) return;
  if (!extra.empty()) extra_ = extra;
  draw(true);
  finished_ = true;
}

static std::string fmt_secs(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  long long t = static_cast<long long>(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", t / 60, t % 60);
  return buf;
}

void Progress::draw(bool final) {
  if (log_level() > LogLevel::Info) return;
  double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = el > 0 ? done_ / el : 0;
  std::ostringstream os;
  os << label_ << " ";
  if (total_ > 0) {
    double frac = std::min(1.0, static_cast<double>(done_) / total_);
    if (tty_) {
      int w = 24, fill = static_cast<int>(frac * w);
      os << "[" << std::string(fill, '#') << std::string(w - fill, '.') << "] ";
    }
    os << done_ << "/" << total_ << " (" << static_cast<int>(frac * 100) << "%)";
  } else {
    os << done_;
  }
  os << std::fixed << std::setprecision(rate < 10 ? 2 : 1) << "  " << rate << "/s";
  os << "  " << fmt_secs(el);
  if (total_ > 0 && !final && rate > 0) os << " eta " << fmt_secs((total_ - done_) / rate);
  if (!extra_.empty()) os << "  " << extra_;
  auto& s = state();
  std::lock_guard<std::mutex> g(s.mu);
  if (tty_) {
    std::cerr << "\r\033[K" << os.str();
    if (final) std::cerr << std::endl;
    s.progress_line_open = !final;
    std::cerr.flush();
  } else {
    std::cerr << os.str() << std::endl;
  }
  if (s.file.is_open() && (final || !tty_)) s.file << timestamp() << " [progress] " << os.str() << "\n";
}

}  // namespace shiftlab::core
