// Test-only fault injection, read once from the environment (never from options, so --help shows
// users only their options):
//   SHIFTLAB_TEST_FAIL_AT_STEP=N     train: SIGKILL the process at step N (crash-safety / resume tests)
//   SHIFTLAB_TEST_FAIL_RANK=R        with FAIL_AT_STEP in a distributed job: only rank R dies
//   SHIFTLAB_TEST_KILL_IN_WRITE=K    extract: SIGKILL inside the K-th block write of the feature cache
// Unset = -1 = never. A value that is not an integer >= -1 is a UsageError naming the variable.
#pragma once

#include <cstdint>

namespace shiftlab::core {

struct TestHooks {
  int64_t fail_at_step = -1;
  int64_t fail_rank = -1;
  int64_t kill_in_write = -1;
};

/// The hooks of this process (read from the environment on first use).
const TestHooks& test_hooks();

}  // namespace shiftlab::core
