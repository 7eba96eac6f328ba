// Run directories (uniqueness, contents), metrics writer, atomic writes and SHA-256.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <malloc.h>
#include <unistd.h>

#include <cstring>
#include <vector>
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/run_dir.h"
#include "core/runtime.h"
#include "support/testing.h"

using namespace shiftlab;
namespace fs = std::filesystem;

TEST(RunDir, NeverReusesADirectory) {
  auto root = testutil::fresh_dir("rundir_unique");
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    auto r = core::RunDir::create(root, "exp");
    EXPECT_TRUE(seen.insert(r.path()).second) << r.path();
    EXPECT_TRUE(fs::is_directory(r.path()));
    EXPECT_EQ(fs::path(r.path()).parent_path(), fs::path(root) / "exp");
  }
  EXPECT_THROW(core::RunDir::create(root, "../escape"), core::UsageError);
  EXPECT_THROW(core::RunDir::open(root + "/nope"), core::UsageError);
}

TEST(RunDir, WritesConfigCommandEnvSummary) {
  auto root = testutil::fresh_dir("rundir_files");
  auto r = core::RunDir::create(root, "exp");
  core::Schema s;
  s.add_float("train.lr", 0.1, "lr");
  core::Config c(s);
  c.set("train.lr", "0.5");
  r.write_config(c, "train");
  r.write_command({"shiftlab", "train", "--method=dann + 0.1*entropy"});
  r.write_env(core::environment_info(torch::Device(torch::kCPU)));
  r.write_summary({{"status", "completed"}});
  auto ini = core::read_file(r.file("config.resolved.ini"));
  EXPECT_NE(ini.find("[train]\n"), std::string::npos);
  EXPECT_NE(ini.find("lr = 0.5"), std::string::npos);
  EXPECT_EQ(core::read_file(r.file("command.txt")), "shiftlab train '--method=dann + 0.1*entropy'\n");
  auto env = nlohmann::json::parse(core::read_file(r.file("env.json")));
  EXPECT_EQ(env["libtorch_version"], core::torch_version());
  EXPECT_EQ(env["device"], "cpu");
  EXPECT_GE(env["intra_op_threads"].get<int>(), 1);
  EXPECT_EQ(r.read_summary()["status"], "completed");
  // opening it again works, and nothing temporary is left behind
  auto again = core::RunDir::open(r.path());
  for (auto& e : fs::directory_iterator(r.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST(Metrics, JsonlCsvAndResume) {
  auto dir = testutil::fresh_dir("metrics");
  {
    core::MetricsWriter m(dir);
    m.log({{"step", 1}, {"loss", 0.5}});
    m.log({{"step", 2}, {"loss", 0.25}, {"acc", 90.0}});
    m.log({{"step", 3}, {"loss", 0.125}});
    m.flush();
  }
  EXPECT_EQ(core::read_file(dir + "/metrics.csv"), "step,loss,acc\n1,0.5,\n2,0.25,90.0\n3,0.125,\n");
  core::MetricsWriter m2(dir);
  m2.resume_from(2);
  ASSERT_EQ(m2.rows().size(), 2u);
  m2.log({{"step", 3}, {"loss", 1.0}});
  m2.flush();
  EXPECT_EQ(core::read_file(dir + "/metrics.csv"), "step,loss,acc\n1,0.5,\n2,0.25,90.0\n3,1.0,\n");
  // a torn last line (kill during a write) is dropped on resume
  std::ofstream(dir + "/metrics.jsonl", std::ios::app) << "{\"step\": 4, \"lo";
  core::MetricsWriter m3(dir);
  m3.resume_from(100);
  EXPECT_EQ(m3.rows().size(), 3u);
}

TEST(Fs, AtomicWriteAndSha256) {
  auto dir = testutil::fresh_dir("fs");
  core::atomic_write(dir + "/a.txt", "abc");
  EXPECT_EQ(core::read_file(dir + "/a.txt"), "abc");
  // FIPS 180-2 test vector
  EXPECT_EQ(core::sha256_bytes("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(core::sha256_file(dir + "/a.txt"), core::sha256_bytes("abc"));
  // a writer that fails leaves the old file and no temp file
  EXPECT_THROW(core::atomic_write_with(dir + "/a.txt", [](const std::string& tmp) {
                 std::ofstream(tmp) << "partial";
                 throw core::Error("disk full");
               }),
               core::Error);
  EXPECT_EQ(core::read_file(dir + "/a.txt"), "abc");
  int n = 0;
  for (auto& e : fs::directory_iterator(dir)) n += e.path().filename() != "a.txt";
  EXPECT_EQ(n, 0);
  EXPECT_THROW(core::atomic_write("/nonexistent-dir/x", "y"), core::Error);
}

TEST(Runtime, DeviceResolution) {
  EXPECT_EQ(core::resolve_device("cpu").type(), torch::kCPU);
  if (!core::cuda_available()) {
    EXPECT_EQ(core::resolve_device("auto").type(), torch::kCPU);
    EXPECT_THROW(core::resolve_device("cuda"), core::UsageError);
  }
  EXPECT_THROW(core::resolve_device("tpu"), core::UsageError);
  EXPECT_THROW(core::resolve_device("cuda:x"), core::UsageError);
}

// resident_mib (statm) against VmRSS of /proc/self/status, and the growth of a touched 256 MiB block
TEST(Runtime, ResidentMemoryFollowsAllocations) {
  auto vmrss = [] {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
    return -1.0;
  };
  const double before = core::resident_mib();
  ASSERT_GT(before, 0);
  EXPECT_NEAR(before, vmrss(), 0.05 * before + 2);
  std::vector<char> block(256u << 20);
  std::memset(block.data(), 1, block.size());
  const double after = core::resident_mib();
  EXPECT_GT(after - before, 250) << before << " -> " << after;
  EXPECT_NEAR(after, vmrss(), 0.05 * after + 2);
  EXPECT_GE(core::peak_resident_mib(), after - 1);
  EXPECT_EQ(block[12345], 1);
}

// tune_malloc: blocks below 32 MiB come from the heap afterwards and stay there when freed (glibc's
// default maps anything over 128 KiB on its own and unmaps it on free); SHIFTLAB_MALLOC=default and
// GLIBC_TUNABLES opt out.
TEST(Runtime, TuneMallocKeepsMidSizedBlocksOnTheHeapAndCanBeTurnedOff) {
  ::setenv("SHIFTLAB_MALLOC", "default", 1);
  EXPECT_EQ(core::tune_malloc(), "default");
  ::unsetenv("SHIFTLAB_MALLOC");
  const char* tun = std::getenv("GLIBC_TUNABLES");
  if (tun && std::strstr(tun, "glibc.malloc.")) {
    EXPECT_EQ(core::tune_malloc(), "default");
    GTEST_SKIP() << "GLIBC_TUNABLES sets malloc parameters here: " << tun;
  }
  ASSERT_EQ(core::tune_malloc(), "tuned");
  EXPECT_EQ(core::malloc_mode(), "tuned");
  const auto mapped_before = ::mallinfo2().hblks;
  void* p = std::malloc(8u << 20);  // 8 MiB
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, 8u << 20);
  EXPECT_EQ(::mallinfo2().hblks, mapped_before) << "an 8 MiB block was mmapped on its own";
  const auto heap = ::mallinfo2().arena;
  std::free(p);
  EXPECT_GE(::mallinfo2().arena, heap) << "the freed block was trimmed off the heap";
}

// issue 18 §3.14: on a non-terminal the last position is printed once (finish), not also as a
// periodic line just before it
TEST(Progress, FinalLineIsPrintedOnce) {
  if (core::stderr_is_tty()) GTEST_SKIP() << "stderr is a terminal";
  testing::internal::CaptureStderr();
  {
    core::Progress p("steps", 3, /*plain_interval_s=*/0.0);
    for (int i = 1; i <= 3; ++i) p.update(i, "loss 1");
    p.finish();
  }
  auto err = testing::internal::GetCapturedStderr();
  size_t n = 0;
  for (size_t at = err.find("steps 3/3"); at != std::string::npos; at = err.find("steps 3/3", at + 1)) ++n;
  EXPECT_EQ(n, 1u) << err;
  EXPECT_NE(err.find("steps 2/3"), std::string::npos) << err;
}

// issue 18 §3.3: a FileLock is exclusive between processes and released with its object
TEST(FileLock, SecondHolderIsRefusedNamingThePid) {
  auto d = testutil::fresh_dir("file_lock");
  {
    auto a = core::FileLock::acquire(d + "/x.lock", "thing 'x'");
    auto r = testutil::run_shell("flock -n " + d + "/x.lock true");
    EXPECT_NE(r, 0) << "another process took the lock";
  }
  EXPECT_EQ(testutil::run_shell("flock -n " + d + "/x.lock true"), 0) << "the lock was not released";
  EXPECT_EQ(testutil::chomp(core::read_file(d + "/x.lock")), std::to_string(::getpid()));
}
