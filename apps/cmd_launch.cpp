// shiftlab launch: starts N local ranks of a distributed job, as torchrun does: each child runs
// `shiftlab <command> ...` with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK,
// MASTER_ADDR and MASTER_PORT set. SIGINT/SIGTERM are forwarded to every child (each child is in
// its own process group, so a terminal's Ctrl-C reaches it once, through here); when a child
// fails (non-zero exit or a signal), the others get SIGTERM and, after --grace seconds, SIGKILL,
// and launch exits with the first failure's code (128 + signal for a signal).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <torch/cuda.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <thread>

#include "apps/command.h"
#include "core/error.h"

namespace shiftlab::apps {

namespace {

std::atomic<int> g_signals{0}, g_last_signal{0};

extern "C" void on_launch_signal(int sig) {
  g_last_signal.store(sig);
  g_signals.fetch_add(1);
}

// A TCP port free on this machine now (bound to port 0, read back, released).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw core::Error(core::str("launch: socket(): ", std::strerror(errno)));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    int err = errno;
    ::close(fd);
    throw core::Error(core::str("launch: cannot find a free port: ", std::strerror(err)));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string self_exe(const std::string& argv0) {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) return std::string(buf, static_cast<size_t>(n));
  return argv0;
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return core::str("was killed by signal ", sig, name ? core::str(" (", name, ")") : std::string());
  }
  return core::str("exited with code ", WEXITSTATUS(status));
}

}  // namespace

namespace {
struct LaunchOptions {
  int nproc = 0;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  double grace = 10;
};

const core::OptionTable<LaunchOptions>& launch_option_table() {
  static const auto table = [] {
    using O = LaunchOptions;
    core::OptionTable<O> t("apps::LaunchOptions");
    t.field("nproc", &O::nproc, "processes (ranks) on this machine; 0 = one per visible GPU, or 1 without CUDA")
        .range(0, 4096)
        .alias('n');
    t.field("nnodes", &O::nnodes, "machines in the job (run launch on each with its --node_rank)").range(1, 1 << 20);
    t.field("node_rank", &O::node_rank, "this machine's index in [0, nnodes)").range(0, 1 << 20);
    t.field("master_addr", &O::master_addr, "address of the machine running rank 0 (node_rank 0)");
    t.field("master_port", &O::master_port, "rank 0's TCP port; 0 = a free local port (single machine only)")
        .range(0, 65535);
    t.field("grace", &O::grace, "seconds the other ranks get to stop after one failed, before SIGKILL").range(0, 3600);
    return t;
  }();
  return table;
}
}  // namespace

static core::Schema launch_schema() {
  core::Schema s;
  launch_option_table().declare(s);
  return s;
}

static int run_launch(const core::Config& cfg, const std::vector<std::string>& argv) {
  const auto& cmd = cfg.positional;
  core::check_usage(!cmd.empty(), "launch: no command; usage: shiftlab launch -n N -- train [options]");
  const auto lo = launch_option_table().read(cfg);
  int nproc = lo.nproc;
  if (nproc == 0) nproc = std::max<int>(1, static_cast<int>(torch::cuda::device_count()));
  const int nnodes = lo.nnodes;
  const int node_rank = lo.node_rank;
  core::check_usage(node_rank < nnodes, "option 'node_rank' = ", node_rank, " must be below nnodes = ", nnodes);
  int port = lo.master_port;
  core::check_usage(port != 0 || nnodes == 1,
                    "option 'master_port': with nnodes > 1 give the same port on every machine");
  if (port == 0) port = free_port();
  const std::string addr = lo.master_addr;
  const double grace = lo.grace;
  const int world = nproc * nnodes;
  const std::string exe = self_exe(argv.empty() ? "shiftlab" : argv[0]);

  // our own handlers: every signal is forwarded (the core handler would exit on the second)
  struct sigaction sa {};
  sa.sa_handler = on_launch_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  struct Child {
    pid_t pid;
    int rank;
    bool done = false;
    int status = 0;
  };
  std::vector<Child> kids;
  for (int r = 0; r < nproc; ++r) {
    const int rank = node_rank * nproc + r;
    pid_t pid = ::fork();
    if (pid < 0) {
      for (auto& k : kids) ::kill(k.pid, SIGKILL);
      throw core::Error(core::str("launch: fork failed: ", std::strerror(errno)));
    }
    if (pid == 0) {
      ::setpgid(0, 0);  // a terminal's Ctrl-C reaches the launcher only, which forwards it once
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("GROUP_RANK", std::to_string(node_rank).c_str(), 1);
      ::setenv("MASTER_ADDR", addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<std::string> args{exe};
      args.insert(args.end(), cmd.begin(), cmd.end());
      std::vector<char*> cargs;
      for (auto& a : args) cargs.push_back(a.data());
      cargs.push_back(nullptr);
      ::execv(exe.c_str(), cargs.data());
      std::fprintf(stderr, "shiftlab launch: cannot run %s: %s\n", exe.c_str(), std::strerror(errno));
      ::_exit(127);
    }
    kids.push_back({pid, rank});
  }
  std::cerr << "shiftlab launch: " << nproc << " rank(s) on this machine (world size " << world << ", master " << addr
            << ":" << port << ")\n";

  int forwarded = 0, first_failure = -1;
  auto fail_time = std::chrono::steady_clock::time_point::max();
  bool killed = false;
  size_t alive = kids.size();
  while (alive > 0) {
    int sigs = g_signals.load();
    for (; forwarded < sigs; ++forwarded)
      for (auto& k : kids)
        if (!k.done) ::kill(k.pid, g_last_signal.load());
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      for (size_t i = 0; i < kids.size(); ++i) {
        auto& k = kids[i];
        if (k.pid != pid) continue;
        k.done = true;
        k.status = status;
        --alive;
        bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!ok && first_failure < 0) {
          first_failure = static_cast<int>(i);
          fail_time = std::chrono::steady_clock::now();
          // after a forwarded SIGINT/SIGTERM every rank is stopping on its own (rank 0 may still be
          // writing its checkpoint): wait for them instead of stopping them
          if (alive > 0 && forwarded == 0) {
            std::cerr << "shiftlab launch: rank " << k.rank << " (pid " << k.pid << ") " << describe_status(status)
                      << "; stopping the other " << alive << " rank(s)\n";
            for (auto& o : kids)
              if (!o.done) ::kill(o.pid, SIGTERM);
          }
        }
      }
      continue;
    }
    if (first_failure >= 0 && !killed && forwarded == 0 &&
        std::chrono::steady_clock::now() - fail_time > std::chrono::duration<double>(grace)) {
      for (auto& o : kids)
        if (!o.done) ::kill(o.pid, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (first_failure < 0) return 0;
  const auto& f = kids[static_cast<size_t>(first_failure)];
  std::cerr << "shiftlab launch: failed: rank " << f.rank << " " << describe_status(f.status) << "\n";
  return WIFSIGNALED(f.status) ? 128 + WTERMSIG(f.status) : WEXITSTATUS(f.status);
}

SHIFTLAB_COMMAND("launch", "start N local ranks of a distributed job: shiftlab launch -n N -- train ...",
                 launch_schema, (core::Positionals{"-- COMMAND [ARGS...]", 1, SIZE_MAX}),
                 "Runs `shiftlab COMMAND ARGS...` N times with the torchrun variables set (RANK, LOCAL_RANK,\n"
                 "WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Signals are forwarded; when one rank\n"
                 "fails the others are stopped and launch exits with its code. Several machines: run launch on\n"
                 "each with --nnodes, its --node_rank and the first one's --master_addr / --master_port, e.g.\n"
                 "4 ranks on each of two: -n 4 --nnodes=2 --node_rank=0|1 --master_addr=HOST --master_port=29500.\n"
                 "\n"
                 "Examples:\n"
                 "  shiftlab launch -n 2 -- train --config configs/digits/mnist_to_uci.ini --method=dann",
                 run_launch);

}  // namespace shiftlab::apps
