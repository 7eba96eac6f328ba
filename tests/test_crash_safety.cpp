// Crash safety and determinism of `shiftlab train`, on a tiny synthetic npy experiment (LeNet):
//  * SIGTERM and SIGINT sent from outside while it trains: it stops after the current step with a
//    clean checkpoint, summary status "interrupted", exit 1 and a one-line error with the resume
//    command; `train --resume` then ends with exactly the metrics of an uninterrupted run.
//  * The same seed twice gives an identical metrics.jsonl — every field but images_per_s and rss_mib,
//    the wall-clock and memory fields — with and without run.deterministic; another seed gives
//    other numbers.
// SIGKILL during training is tested in test_train.cpp (Train.ResumeAfterSigkillEqualsUninterrupted),
// during extraction in test_features.cpp (Features.ResumeAfterSigkillEqualsUninterrupted).
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "core/fs.h"
#include "data/npy.h"
#include "support/testing.h"
#include "train/checkpoint.h"

using namespace shiftlab;
namespace fs = std::filesystem;

namespace {

std::string data_dir() {
  static std::string d = [] {
    auto dir = testutil::fresh_dir("crash_safety_data");
    for (const char* name : {"src", "tgt"}) {
      const int64_t n = 64, h = 14, w = 14;
      std::vector<uint8_t> px(static_cast<size_t>(n * h * w));
      std::vector<int64_t> labels(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        labels[static_cast<size_t>(i)] = i % 4;
        for (int64_t p = 0; p < h * w; ++p)  // a bright bar whose row depends on the class, plus noise
          px[static_cast<size_t>(i * h * w + p)] =
              static_cast<uint8_t>(((p / w) / 3 == i % 4 ? 200 : 30) + ((p * 13 + i * 7 + (name[0] == 't') * 5) % 40));
      }
      data::write_npy(dir + "/" + name + ".npy", "u1", {n, h, w}, px.data(), px.size());
      data::write_npy(dir + "/" + name + "_labels.npy", "i8", {n}, labels.data(), labels.size() * 8);
    }
    return dir;
  }();
  return d;
}

std::vector<std::string> train_args(const std::string& runs, int64_t steps, const std::string& method = "dann") {
  auto d = data_dir();
  return {"train",
          "--run.root=" + runs,
          "--run.name=t",
          "--run.threads=1",
          "--run.log_level=error",
          "--data.source.dataset=npy",
          "--data.source.root=" + d + "/src.npy",
          "--data.source.labels=" + d + "/src_labels.npy",
          "--data.source.transform=resize(28), random_crop(28, padding=2), normalize(0.5, 0.5)",
          "--data.source.batch_size=8",
          "--data.source.workers=1",
          "--data.target.dataset=npy",
          "--data.target.root=" + d + "/tgt.npy",
          "--data.target.labels=" + d + "/tgt_labels.npy",
          "--data.target.transform=resize(28), normalize(0.5, 0.5)",
          "--data.target.batch_size=8",
          "--data.target.workers=0",
          "--data.source.val_fraction=0.25",  // npy has no splits: held-out roles (data/roles.h)
          "--data.target.test_fraction=0.25",
          "--model.backbone=lenet",
          "--model.in_channels=1",
          "--method=" + method,
          "--train.steps=" + std::to_string(steps),
          "--train.eval_every=" + std::to_string(std::max<int64_t>(1, steps / 4)),
          "--train.log_every=1",
          "--eval.workers=0",
          "--optim.lr=0.01"};
}

size_t lines_in(const std::string& path) {
  std::ifstream in(path);
  return static_cast<size_t>(std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

constexpr int64_t kSteps = 120;

// Starts a run, sends `sig` once it has logged a few steps (`twice`: two at once, as a terminal's
// Ctrl-C to a sweep's process group plus the sweep's forwarded one), and checks the clean stop.
std::string interrupted_run(const std::string& runs, int sig, bool twice = false) {
  auto p = testutil::start_cli(train_args(runs, kSteps));
  auto t0 = std::chrono::steady_clock::now();
  std::string run;
  for (;;) {  // wait for the run directory and 3 logged steps, then signal
    if (run.empty() && fs::exists(runs + "/t"))
      for (auto& e : fs::directory_iterator(runs + "/t")) run = e.path().string();
    if (!run.empty() && lines_in(run + "/metrics.jsonl") >= 3) break;
    if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(120)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(p.pid, sig);
  if (twice) {  // the second once the first has been handled (two pending signals would merge into one)
    auto t1 = std::chrono::steady_clock::now();
    while (core::read_file(p.err_path).find("stopping after the current step") == std::string::npos &&
           std::chrono::steady_clock::now() - t1 < std::chrono::seconds(5))
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    ::kill(p.pid, sig);
  }
  auto r = testutil::wait_cli(p);
  EXPECT_EQ(r.signal, 0) << r.err;
  EXPECT_EQ(r.exit_code, 1) << "the run ended before the signal landed? " << r.err;
  EXPECT_NE(r.err.find("shiftlab: error: interrupted by signal " + std::to_string(sig) + " at step "), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("resume with: shiftlab train --resume " + run), std::string::npos) << r.err;
  auto s = testutil::run_summary(run);
  EXPECT_EQ(s["status"], "interrupted") << s.dump();
  EXPECT_LT(s["step"].get<int64_t>(), kSteps);
  EXPECT_GE(s["step"].get<int64_t>(), 3);
  // the checkpoint is whole and at the step the summary names; no temp file is left
  EXPECT_TRUE(fs::exists(run + "/latest.pt"));
  train::CheckpointParts none;
  auto meta = train::load_checkpoint(run + "/latest.pt", none, false);
  EXPECT_EQ(meta["step"], s["step"]);
  for (auto& e : fs::directory_iterator(run)) EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  return run;
}

}  // namespace

TEST(CrashSafety, SigtermAndSigintStopWithACheckpointAndResumeEqualsUninterrupted) {
  auto straight_runs = testutil::fresh_dir("crash_straight");
  auto straight = testutil::run_cli(train_args(straight_runs, kSteps));
  ASSERT_EQ(straight.exit_code, 0) << straight.err;
  auto want = testutil::run_metrics(testutil::only_run(straight_runs));
  ASSERT_EQ(want.size(), static_cast<size_t>(kSteps + 4));
  auto want_summary = testutil::run_summary(testutil::only_run(straight_runs));

  for (int sig : {SIGTERM, SIGINT}) {
    auto runs = testutil::fresh_dir("crash_signal_" + std::to_string(sig));
    auto run = interrupted_run(runs, sig, sig == SIGINT);  // SIGINT twice at once: still one clean stop
    auto resumed = testutil::run_cli({"train", "--resume", run, "--run.log_level=error"});
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_EQ(testutil::run_metrics(run), want) << "signal " << sig;
    auto s = testutil::run_summary(run);
    EXPECT_EQ(s["status"], "completed");
    EXPECT_EQ(s["selected"], want_summary["selected"]) << "signal " << sig;
    EXPECT_EQ(s["last"], want_summary["last"]) << "signal " << sig;
  }
}

TEST(Determinism, SameSeedTwiceGivesIdenticalMetrics) {
  std::vector<std::vector<nlohmann::json>> got;
  for (auto extra : {"--run.seed=3", "--run.seed=3", "--run.seed=3 --run.deterministic=true", "--run.seed=4"}) {
    auto runs = testutil::fresh_dir("determinism_" + std::to_string(got.size()));
    auto args = train_args(runs, 24, "dann + 0.1*entropy");
    std::istringstream ss(extra);
    for (std::string a; ss >> a;) args.push_back(a);
    auto r = testutil::run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    got.push_back(testutil::run_metrics(testutil::only_run(runs)));
    ASSERT_EQ(got.back().size(), 24u + 4u);
  }
  EXPECT_EQ(got[0], got[1]) << "the same seed twice";
  EXPECT_EQ(got[0], got[2]) << "run.deterministic changes nothing on CPU";
  EXPECT_NE(got[0], got[3]) << "another seed, other numbers";
  // the rows hold the loss terms of both methods, and evaluations
  EXPECT_TRUE(got[0][0].contains("ce") && got[0][0].contains("loss")) << got[0][0].dump();
}
