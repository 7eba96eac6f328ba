// Shared test helpers: temp directories, running the shiftlab binary, and a finite-difference
// gradient checker (double precision, central differences) used by every loss and adapter.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace shiftlab::testutil {

/// A fresh empty directory under the build tree's test-tmp/, named <name>-<pid> (removed first if present).
std::string fresh_dir(const std::string& name);
/// A data root with the prepared uci-digits set, prepared once per test process (on first use).
std::string prepared_digits_root();
/// A data root with every listed prepared set (`shiftlab data prepare NAMES...`, MNIST from the
/// SHIFTLAB_DATA_MIRROR tarball), prepared once per test process and list (on first use).
std::string prepared_data_root(const std::vector<std::string>& names);
/// Path inside the source tree.
std::string source_path(const std::string& rel);

struct CliResult {
  int exit_code = -1;   ///< the exit status, or 128 + the signal that ended the process
  int signal = 0;       ///< the signal that ended the process (0: it exited)
  std::string out;  ///< stdout
  std::string err;  ///< stderr
};
/// Runs `shiftlab args...` (the built binary), capturing stdout, stderr and the exit code.
CliResult run_cli(const std::vector<std::string>& args, const std::string& cwd = "");

/// How to start the binary: working directory, a file size limit (RLIMIT_FSIZE, bytes; < 0 =
/// none) that makes writes beyond it fail as on a full disk, and environment variables set on top
/// of this process's (e.g. the test hooks of core/test_hooks.h, SHIFTLAB_TEST_FAIL_AT_STEP).
struct CliOptions {
  std::string cwd;
  long long file_size_limit = -1;
  std::map<std::string, std::string> env;
};
/// A started `shiftlab` process (see start_cli / wait_cli).
struct CliProcess {
  int pid = -1;
  std::string out_path, err_path;
};
/// Starts `shiftlab args...` without waiting (to signal it while it runs).
CliProcess start_cli(const std::vector<std::string>& args, const CliOptions& options = {});
/// Waits for a started process and collects its result.
CliResult wait_cli(CliProcess& p);
/// run_cli with options.
CliResult run_cli_with(const std::vector<std::string>& args, const CliOptions& options);
/// Runs a shell command, capturing stdout+stderr together; returns the exit code.
int run_shell(const std::string& cmd, std::string* output = nullptr);

/// Max error (|numeric - autograd| / max(1, |numeric|, |autograd|)) between autograd gradients of sum(f(inputs) * w) for a fixed random w and
/// central finite differences, over every element of every input that requires grad.
/// Inputs are converted to double; f must be deterministic.
struct GradCheckResult {
  double max_abs_err = 0;
  double max_rel_err = 0;
  std::string where;
};
GradCheckResult gradcheck(const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& f,
                          std::vector<torch::Tensor> inputs, double eps = 1e-6, uint64_t seed = 0);

/// The one run directory under <runs>/<name>/ (a test failure when there is not exactly one).
std::string only_run(const std::string& runs, const std::string& name = "t");
/// A run's summary.json.
nlohmann::json run_summary(const std::string& run);
/// A run's metrics.jsonl rows without the wall-clock field images_per_s.
std::vector<nlohmann::json> run_metrics(const std::string& run);
/// `s` without its trailing newlines.
std::string chomp(const std::string& s);

/// Writes a 2-d tensor as text, one row a line, 17 significant digits (for numpy.loadtxt).
void write_matrix(const std::string& path, const torch::Tensor& t);

/// True when python3 (Debian's /usr/bin/python3) can import every module listed.
bool python_has(const std::vector<std::string>& modules);

/// "" when /usr/bin/python3 imports every module listed, else why not ("/usr/bin/python3 cannot
/// import sklearn, h5py"). SHIFTLAB_TEST_MISSING_PYTHON=a,b (comma list) makes those modules count
/// as missing, to check what a test does without them.
std::string python_missing(const std::vector<std::string>& modules);

/// True under CI (CI set, and not "", "0" or "false"), as .ci/run runs the suite.
bool under_ci();

/// What REQUIRE_PYTHON does: run, skip (outside CI) or fail (under CI), and why.
struct PythonRequirement {
  bool met = true;
  bool fail = false;
  std::string why;
};
PythonRequirement require_python(const std::vector<std::string>& modules);

}  // namespace shiftlab::testutil

/// A test that compares against a Python reference starts with REQUIRE_PYTHON({"torch", "numpy"}):
/// when /usr/bin/python3 cannot import a listed module the test FAILS under CI (a reference that
/// is not there must not pass as a skip) and is skipped with the reason otherwise. Use it in a
/// TEST body or a fixture's SetUp (it returns from the function).
#define REQUIRE_PYTHON(...)                                                               \
  do {                                                                                  \
    const auto shiftlab_req_ = ::shiftlab::testutil::require_python(__VA_ARGS__);        \
    if (shiftlab_req_.fail) FAIL() << shiftlab_req_.why;                                 \
    if (!shiftlab_req_.met) GTEST_SKIP() << shiftlab_req_.why;                           \
  } while (0)

/// Asserts the gradcheck's scaled error is below tol.
#define EXPECT_GRADCHECK(res, tol)                                                      \
  EXPECT_LT((res).max_rel_err, (tol))                                                  \
      << "gradcheck failed at " << (res).where << ": abs " << (res).max_abs_err << " rel " \
      << (res).max_rel_err
