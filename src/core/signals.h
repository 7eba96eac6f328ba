// SIGINT/SIGTERM handling: the first signal sets a flag that long loops poll (training saves a
// checkpoint and marks the run interrupted; extraction closes its file); a second one exits, unless
// it comes within a second of the first (the same Ctrl-C from the terminal and from a sweep).
#pragma once

namespace shiftlab::core {

/// SIGINT/SIGTERM set the stop flag (a second one a second or more later exits at once; one within
/// the second is taken as the same request); SIGXFSZ is ignored so that
/// writes beyond a file size limit fail with EFBIG (reported like a full disk) instead of killing.
void install_signal_handlers();
/// True once SIGINT or SIGTERM arrived.
bool stop_requested();
/// Returns the signal number that requested the stop (0 if none).
int stop_signal();
/// For tests.
void reset_stop_request();

}  // namespace shiftlab::core
