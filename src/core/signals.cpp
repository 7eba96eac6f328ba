#include "core/signals.h"

#include <atomic>
#include <csignal>
#include <cstdint>
#include <ctime>
#include <unistd.h>

namespace shiftlab::core {

namespace {
std::atomic<int> g_signal{0};
std::atomic<int64_t> g_first_ns{0};  // CLOCK_MONOTONIC time of the first signal

int64_t now_ns() {  // clock_gettime is async-signal-safe
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

extern "C" void on_signal(int sig) {
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, sig)) {
    // A second signal within a second is the same request delivered twice (a terminal's Ctrl-C
    // reaches the whole process group, and `shiftlab sweep` forwards it to its runs as well): the
    // stop goes on. Later, it means "give up at once".
    if (now_ns() - g_first_ns.load() < 1000000000) return;
    ::_exit(128 + sig);
  }
  g_first_ns.store(now_ns());
  static const char msg[] = "\nshiftlab: stopping after the current step (signal again to abort)\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
}
}  // namespace

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // over a file size limit (ulimit -f) a write fails with EFBIG instead of killing the process:
  // the atomic writers then remove their temp file and report the file they could not write
  std::signal(SIGXFSZ, SIG_IGN);
}

bool stop_requested() { return g_signal.load() != 0; }
int stop_signal() { return g_signal.load(); }
void reset_stop_request() { g_signal.store(0); }

}  // namespace shiftlab::core
