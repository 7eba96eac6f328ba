// Error types and message formatting for shiftlab.
//
// Library code throws; only apps/ turns exceptions into one-line messages and exit codes:
//   UsageError  -> exit 2 (bad option, unknown key, wrong command line)
//   Error       -> exit 1 (runtime failure: bad file, NaN loss, I/O error)
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace shiftlab::core {

/// Concatenates any streamable values into one string: str("step ", 3, ": ", 0.5).
template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

/// A runtime failure; the message names the culprit (file, key, step). Exit code 1.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A usage error: unknown option, ill-typed value, missing argument. Exit code 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

/// Throws Error(str(args...)) unless cond holds.
template <typename... Args>
void check(bool cond, const Args&... args) {
  if (!cond) throw Error(::shiftlab::core::str(args...));
}

/// Throws UsageError(str(args...)) unless cond holds.
template <typename... Args>
void check_usage(bool cond, const Args&... args) {
  if (!cond) throw UsageError(::shiftlab::core::str(args...));
}

}  // namespace shiftlab::core
