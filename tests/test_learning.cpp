// End-to-end learning: a short seeded run of the digits experiment (LeNet, MNIST -> UCI digits,
// configs/digits/mnist_to_uci.ini on the prepared data sets) must learn the source, and DANN must
// transfer better than source-only: the target-test accuracy of each run's final checkpoint (the
// only evaluation, so also the one selected on source-val), read from its summary.json.
//
// Settings (600 steps of 32 + 32 images, SGD lr 0.02 with the config's annealing, DANN
// discriminator 256 wide; one thread, ~6 + ~12 CPU-seconds) measured over seeds 0-4, target-test %:
//   source-only 66.85 70.19 65.18 66.30 68.25   (source-val 96.0-96.6)
//   DANN        80.50 80.78 78.27 80.50 80.22   (source-val 96.0-96.7)
// a gain of 10.6-14.2 points; the test runs seed 0 and asks for 5 points and a 94 % source-val.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "support/testing.h"

using namespace shiftlab;
namespace fs = std::filesystem;

namespace {

constexpr int kLearningSteps = 600;
constexpr const char* kSeed = "0";
constexpr double kSourceValFloor = 94.0;  ///< % on MNIST val (999 digits)
constexpr double kMinGain = 5.0;          ///< DANN over source-only, target-test points (359 digits)

struct LearnResult {
  double target_test = 0, source_val = 0;
  std::string run;
};

LearnResult learn_digits(const std::string& method) {
  const auto data = testutil::prepared_data_root({"mnist", "uci-digits"});
  const auto runs = testutil::fresh_dir("learning_" + method);
  auto r = testutil::run_cli({"train",
                              "--config",
                              testutil::source_path("configs/digits/mnist_to_uci.ini"),
                              "--method=" + method,
                              "--run.root=" + runs,
                              "--run.seed=" + std::string(kSeed),
                              "--run.threads=1",
                              "--run.log_level=warn",
                              "--data.source.root=" + data,
                              "--data.target.root=" + data,
                              "--data.source.workers=1",
                              "--data.target.workers=1",
                              "--eval.workers=1",
                              "--data.source.batch_size=32",
                              "--data.target.batch_size=32",
                              "--optim.lr=0.02",
                              "--dann.hidden=256",
                              "--train.steps=" + std::to_string(kLearningSteps),
                              "--train.eval_every=0"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  LearnResult out;
  for (auto& e : fs::directory_iterator(runs + "/digits")) out.run = e.path().string();
  auto s = nlohmann::json::parse(core::read_file(out.run + "/summary.json"));
  EXPECT_EQ(s["status"], "completed");
  EXPECT_EQ(s["steps"], kLearningSteps);
  EXPECT_FALSE(s["oracle_selected"].get<bool>());
  out.target_test = s["selected"]["target_test_acc"].get<double>();
  out.source_val = s["selected"]["source_val_acc"].get<double>();
  std::cout << "[ info ] " << method << ": target-test " << out.target_test << " %, source-val " << out.source_val
            << " % (selected at step " << s["selected"]["step"] << ")\n";
  return out;
}

}  // namespace

TEST(Learning, DannBeatsSourceOnlyOnMnistToUciDigits) {
  auto so = learn_digits("source_only");
  auto dann = learn_digits("dann");
  EXPECT_GE(so.source_val, kSourceValFloor) << "source-only did not learn MNIST";
  EXPECT_GE(dann.source_val, kSourceValFloor) << "DANN did not learn MNIST";
  EXPECT_GE(dann.target_test, so.target_test + kMinGain)
      << "DANN " << dann.target_test << " % vs source-only " << so.target_test << " % on UCI digits";
}
