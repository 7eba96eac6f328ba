#include "sweep/sweep.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/options.h"
#include "core/signals.h"
#include "core/spec.h"
#include "report/runs.h"

extern char** environ;

namespace shiftlab::sweep {

namespace fs = std::filesystem;

Axis parse_axis(const std::string& item) {
  // the grammar is `axis` in core/spec.h: key=v1,v2 | key=v1|v2 | key=dist(lo, hi)
  core::SpecParser p("--grid", item);
  Axis a;
  a.key = p.name("an option name (key=value1,value2,... or key=loguniform(lo,hi) with --random)").text;
  p.expect('=', "'=' and the values");
  core::SpecToken first = p.peek();
  if (first.kind == core::SpecToken::Name) {
    core::SpecParser look(p);
    look.next();
    bool call = look.accept('(');
    for (auto* d : {"uniform", "loguniform", "randint"}) {
      if (!call || first.text != d) continue;
      core::SpecItem dist = p.item("a distribution");
      p.expect_end("the end");
      if (dist.args.size() != 2 || !dist.args[0].key.empty() || !dist.args[1].key.empty())
        p.fail(dist.paren_pos, core::str(d, " takes two bounds"), core::str(" (e.g. ", d, "(1e-4, 1e-2))"));
      for (auto& b : dist.args)
        if (!b.value.is_number()) p.fail(b.value.pos, core::str("bound '", b.value.str(), "' is not a number"));
      a.lo = dist.args[0].value.number;
      a.hi = dist.args[1].value.number;
      if (!(a.lo < a.hi)) p.fail(dist.args[0].value.pos, "bounds must be numbers with lo < hi");
      if (std::string(d) == "loguniform" && !(a.lo > 0)) p.fail(dist.args[0].value.pos, "loguniform needs lo > 0");
      a.dist = d;
      return a;
    }
  }
  // values: raw texts (each option's own syntax), split at '|' when there is one, else at ','
  const char sep = p.has_top_level('|') ? '|' : ',';
  std::set<std::string> seen;
  while (true) {
    core::SpecToken v = p.raw(std::string(1, sep));
    if (v.kind == core::SpecToken::End) p.fail_expected("a value");
    if (!seen.insert(v.text).second) p.fail(v.pos, core::str("value '", v.text, "' given twice"));
    a.values.push_back(v.text);
    if (!p.accept(sep)) break;
  }
  return a;
}

std::string combo_name(const std::vector<std::pair<std::string, std::string>>& values) {
  if (values.empty()) return "base";
  std::string label;
  for (auto& [k, v] : values) label += (label.empty() ? "" : ", ") + k + "=" + v;
  return report::slug(label);
}

static std::string fmt4(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

std::vector<Job> expand(const Plan& p) {
  std::vector<std::vector<std::pair<std::string, std::string>>> combos;
  std::set<std::string> keys;
  for (auto& a : p.axes) core::check_usage(keys.insert(a.key).second, "--grid: option '", a.key, "' swept twice");
  core::check_usage(!p.seeds.empty(), "--seeds: no seeds");
  if (p.random <= 0) {
    for (auto& a : p.axes)
      core::check_usage(a.dist.empty(), "--grid ", a.key, "=", a.dist, "(...): distributions need --random N");
    combos.push_back({});
    for (auto& a : p.axes) {
      std::vector<std::vector<std::pair<std::string, std::string>>> next;
      for (auto& c : combos)
        for (auto& v : a.values) {
          auto d = c;
          d.emplace_back(a.key, v);
          next.push_back(d);
        }
      combos.swap(next);
    }
  } else {
    double space = 1;
    bool finite = true;
    for (auto& a : p.axes) {
      if (a.dist.empty()) space *= static_cast<double>(a.values.size());
      else if (a.dist == "randint") space *= a.hi - a.lo + 1;
      else finite = false;
    }
    core::check_usage(!finite || static_cast<double>(p.random) <= space, "--random ", p.random, ": the grid has only ",
                      static_cast<long long>(space), " distinct combinations");
    std::mt19937_64 rng(static_cast<uint64_t>(p.random_seed));
    std::set<std::vector<std::pair<std::string, std::string>>> seen;
    long long attempts = 0;
    while (static_cast<long long>(combos.size()) < p.random) {
      core::check(++attempts < 1000000, "random search: could not draw ", p.random, " distinct combinations");
      std::vector<std::pair<std::string, std::string>> c;
      for (auto& a : p.axes) {
        std::uniform_real_distribution<double> u(0.0, 1.0);
        std::string v;
        if (a.dist.empty()) v = a.values[static_cast<size_t>(u(rng) * static_cast<double>(a.values.size())) % a.values.size()];
        else if (a.dist == "uniform") v = fmt4(a.lo + (a.hi - a.lo) * u(rng));
        else if (a.dist == "loguniform") v = fmt4(std::exp(std::log(a.lo) + (std::log(a.hi) - std::log(a.lo)) * u(rng)));
        else v = std::to_string(static_cast<long long>(a.lo) + static_cast<long long>(u(rng) * (a.hi - a.lo + 1)));
        c.emplace_back(a.key, v);
      }
      if (seen.insert(c).second) combos.push_back(c);
    }
  }
  std::vector<Job> jobs;
  for (auto& c : combos)
    for (auto s : p.seeds) jobs.push_back(Job{c, s, combo_name(c)});
  return jobs;
}

nlohmann::json plan_to_json(const Plan& p) {
  nlohmann::json j;
  j["configs"] = p.configs;
  j["overrides"] = nlohmann::json::array();
  for (auto& [k, v] : p.overrides) j["overrides"].push_back({k, v});
  j["axes"] = nlohmann::json::array();
  for (auto& a : p.axes) {
    nlohmann::json x{{"key", a.key}};
    if (a.dist.empty()) x["values"] = a.values;
    else x["dist"] = a.dist, x["lo"] = a.lo, x["hi"] = a.hi;
    j["axes"].push_back(x);
  }
  j["seeds"] = p.seeds;
  if (!p.seed_keys.empty()) j["seed_keys"] = p.seed_keys;
  j["random"] = p.random;
  j["random_seed"] = p.random_seed;
  return j;
}

JobState inspect_job(const std::string& sweep_dir, const Job& job) {
  JobState st;
  auto root = fs::path(sweep_dir) / "runs" / job.name();
  if (!fs::exists(root)) return st;
  std::vector<std::string> dirs;
  for (auto& e : fs::directory_iterator(root))
    if (e.is_directory()) dirs.push_back(e.path().string());
  if (dirs.empty()) return st;
  std::sort(dirs.begin(), dirs.end());
  st.dir = dirs.back();
  auto summary = fs::path(st.dir) / "summary.json";
  std::string status;
  if (fs::exists(summary)) {
    try {
      status = nlohmann::json::parse(core::read_file(summary.string())).value("status", "");
    } catch (...) {
      status = "";
    }
  }
  bool ckpt = fs::exists(fs::path(st.dir) / "latest.pt");
  if (status == "completed") st.kind = JobState::Completed;
  else if (status == "failed") st.kind = JobState::Failed;
  else if (ckpt) st.kind = JobState::Resumable;
  else st.kind = JobState::Restart;
  return st;
}

std::vector<std::string> child_args(const Plan& p, const Job& j, const std::string& sweep_dir) {
  std::vector<std::string> a{"train"};
  for (auto& c : p.configs) a.push_back("--config=" + c);
  for (auto& [k, v] : p.overrides) a.push_back("--" + k + "=" + v);
  for (auto& [k, v] : j.values) a.push_back("--" + k + "=" + v);
  a.push_back("--run.seed=" + std::to_string(j.seed));
  for (auto& k : p.seed_keys) a.push_back("--" + k + "=" + std::to_string(j.seed));
  a.push_back("--run.root=" + (fs::path(sweep_dir) / "runs").string());
  a.push_back("--run.name=" + j.name());
  return a;
}

namespace {

struct Child {
  pid_t pid = -1;
  size_t job = 0;
  std::chrono::steady_clock::time_point start;
  bool resumed = false;
  double earlier = 0;  // seconds an earlier invocation spent on a resumed run
};

pid_t spawn(const std::string& exe, const std::vector<std::string>& args, const std::string& log_path) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<std::string> all{exe};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : all) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  core::check(rc == 0, "could not start ", exe, ": ", std::strerror(rc));
  return pid;
}

std::string pct(const nlohmann::json& v) {
  if (!v.is_number()) return "n/a";
  char b[32];
  std::snprintf(b, sizeof b, "%.2f %%", v.get<double>());
  return b;
}

std::string last_line(const std::string& path) {
  std::string text;
  try {
    text = core::read_file(path);
  } catch (...) {
    return "";
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  auto nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

}  // namespace

int run_jobs(const Plan& p, const std::vector<Job>& jobs, const RunnerOptions& o) {
  fs::create_directories(fs::path(o.sweep_dir) / "logs");
  // one sweep at a time per directory: two would start the same runs twice and both rewrite sweep.json
  auto lock = core::FileLock::acquire((fs::path(o.sweep_dir) / "sweep.lock").string(),
                                      "sweep directory '" + o.sweep_dir + "'");
  auto state_path = (fs::path(o.sweep_dir) / "sweep.json").string();
  nlohmann::json state{{"plan", plan_to_json(p)}, {"jobs", nlohmann::json::array()}};
  for (auto& j : jobs) state["jobs"].push_back({{"name", j.name()}, {"status", "pending"}});
  // a resumed sweep keeps the run times an earlier invocation measured (a completed run is not timed
  // again; a run resumed from its checkpoint adds this invocation's time to the earlier part's)
  std::map<std::string, double> earlier_seconds;
  if (fs::exists(state_path)) {
    try {
      auto prev = nlohmann::json::parse(core::read_file(state_path));
      for (auto& j : prev.value("jobs", nlohmann::json::array()))
        if (j.contains("seconds") && j["seconds"].is_number() && j.contains("dir"))
          earlier_seconds[j.value("name", "") + "\n" + j.value("dir", "")] = j["seconds"].get<double>();
    } catch (...) {
      // an unreadable manifest only loses the earlier timings; the runs' own files decide what is done
    }
  }
  auto earlier = [&](size_t i, const std::string& dir) -> const double* {
    auto it = earlier_seconds.find(jobs[i].name() + "\n" + dir);
    return it == earlier_seconds.end() ? nullptr : &it->second;
  };
  auto save_state = [&] { core::atomic_write(state_path, state.dump(2) + "\n"); };

  std::vector<size_t> todo;
  size_t skipped = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    auto st = inspect_job(o.sweep_dir, jobs[i]);
    if (st.kind == JobState::Completed) {
      state["jobs"][i]["status"] = "completed";
      state["jobs"][i]["dir"] = st.dir;
      if (auto* t = earlier(i, st.dir)) state["jobs"][i]["seconds"] = *t;
      ++skipped;
    } else if (st.kind == JobState::Failed && !o.retry_failed) {
      state["jobs"][i]["status"] = "failed";
      state["jobs"][i]["dir"] = st.dir;
      if (auto* t = earlier(i, st.dir)) state["jobs"][i]["seconds"] = *t;
      std::cout << "skip " << jobs[i].name() << ": failed earlier (" << st.dir
                << "); --retry_failed runs it again\n";
    } else {
      todo.push_back(i);
    }
  }
  save_state();
  std::cout << "sweep " << o.sweep_dir << ": " << jobs.size() << " runs, " << skipped << " already completed, "
            << todo.size() << " to run, " << o.jobs << " at a time\n"
            << std::flush;

  std::vector<Child> running;
  size_t next = 0, done = 0;
  bool forwarded = false;
  auto t0 = std::chrono::steady_clock::now();
  // after SIGINT/SIGTERM no run starts: the loop ends when the running ones have stopped
  while ((next < todo.size() && !core::stop_requested()) || !running.empty()) {
    if (core::stop_requested() && !forwarded) {
      // forward the signal (children in our process group may have had a terminal's SIGINT too: a
      // run takes two within a second as one)
      for (auto& c : running) ::kill(c.pid, core::stop_signal() == SIGINT ? SIGINT : SIGTERM);
      forwarded = true;
      std::cout << "sweep: stopping — waiting for " << running.size() << " run(s) to checkpoint\n" << std::flush;
    }
    while (!core::stop_requested() && next < todo.size() && static_cast<int>(running.size()) < o.jobs) {
      size_t i = todo[next++];
      auto& job = jobs[i];
      auto st = inspect_job(o.sweep_dir, job);
      std::vector<std::string> args;
      bool resumed = false;
      if (st.kind == JobState::Resumable) {
        args = {"train", "--resume=" + st.dir};
        resumed = true;
      } else {
        args = child_args(p, job, o.sweep_dir);
      }
      args.insert(args.end(), o.child_extra.begin(), o.child_extra.end());
      auto log_path = (fs::path(o.sweep_dir) / "logs" / (job.combo + "__seed" + std::to_string(job.seed) + ".log")).string();
      Child c{spawn(o.exe, args, log_path), i, std::chrono::steady_clock::now(), resumed};
      if (const double* t = resumed ? earlier(i, st.dir) : nullptr) c.earlier = *t;
      running.push_back(c);
      state["jobs"][i]["status"] = "running";
      save_state();
      std::cout << (resumed ? "resume " : "start  ") << job.name() << (resumed ? " (" + st.dir + ")" : "") << "\n"
                << std::flush;
    }
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    auto it = std::find_if(running.begin(), running.end(), [&](const Child& c) { return c.pid == pid; });
    if (it == running.end()) continue;
    Child c = *it;
    running.erase(it);
    ++done;
    auto& job = jobs[c.job];
    auto st = inspect_job(o.sweep_dir, job);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - c.start).count();
    // a run stopped before it wrote summary.json (a signal during its start) has none: an empty
    // object, not null (value() on null throws and used to end the sweep with a JSON error)
    nlohmann::json summary = nlohmann::json::object();
    if (!st.dir.empty()) {
      try {
        summary = nlohmann::json::parse(core::read_file((fs::path(st.dir) / "summary.json").string()));
      } catch (...) {
      }
    }
    if (!summary.is_object()) summary = nlohmann::json::object();
    std::string s = summary.value("status", WIFEXITED(status) ? "failed" : "killed");
    state["jobs"][c.job]["status"] = s;
    state["jobs"][c.job]["dir"] = st.dir;
    state["jobs"][c.job]["seconds"] = c.earlier + secs;
    save_state();
    std::ostringstream line;
    line << "[" << done << "/" << todo.size() << "] " << job.name() << ": " << s;
    if (s == "completed") {
      line << " — target " << pct(summary["selected"].value("target_test_acc", nlohmann::json())) << " (selected), "
           << pct(summary["oracle"].value("target_test_acc", nlohmann::json())) << " (oracle)";
    } else {
      auto err = summary.value("error", last_line(
                                            (fs::path(o.sweep_dir) / "logs" /
                                             (job.combo + "__seed" + std::to_string(job.seed) + ".log"))
                                                .string()));
      if (!err.empty()) line << " — " << err;
    }
    char tb[64];
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::snprintf(tb, sizeof tb, ", %.0f s", secs);
    line << tb;
    size_t left = todo.size() - done;
    if (left > 0 && !core::stop_requested()) {
      std::snprintf(tb, sizeof tb, "; about %.0f min left", elapsed / static_cast<double>(done) * static_cast<double>(left) / 60.0);
      line << tb;
    }
    std::cout << line.str() << "\n" << std::flush;
  }
  if (next < todo.size())
    std::cout << "sweep: stopped; " << todo.size() - next << " run(s) not started (run the same command again to resume)\n"
              << std::flush;
  int not_completed = 0;
  for (auto& j : state["jobs"])
    if (j["status"] != "completed") ++not_completed;
  return not_completed;
}

}  // namespace shiftlab::sweep
