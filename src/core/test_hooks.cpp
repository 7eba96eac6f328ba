#include "core/test_hooks.h"

#include <cerrno>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace shiftlab::core {

namespace {

int64_t test_hook_from_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return -1;
  errno = 0;
  char* end = nullptr;
  long long x = std::strtoll(v, &end, 10);
  check_usage(errno == 0 && end && *end == '\0' && x >= -1, "environment variable ", name, "='", v,
              "': expected an integer >= -1");
  return x;
}

}  // namespace

const TestHooks& test_hooks() {
  static const TestHooks hooks = [] {
    TestHooks h;
    h.fail_at_step = test_hook_from_env("SHIFTLAB_TEST_FAIL_AT_STEP");
    h.fail_rank = test_hook_from_env("SHIFTLAB_TEST_FAIL_RANK");
    h.kill_in_write = test_hook_from_env("SHIFTLAB_TEST_KILL_IN_WRITE");
    return h;
  }();
  return hooks;
}

}  // namespace shiftlab::core
