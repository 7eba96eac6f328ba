#include "core/signals.h"

#include <atomic>
#include <csignal>
#include <unistd.h>

namespace shiftlab::core {

namespace {
std::atomic<int> g_signal{0};

extern "C" void on_signal(int sig) {
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, sig)) {
    // second signal: give up at once
    ::_exit(128 + sig);
  }
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
