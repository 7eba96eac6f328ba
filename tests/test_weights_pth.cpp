// torch.save files written by Python torch 1.13 (scripts/weights_fixtures.py pth): plain dicts,
// OrderedDict state dicts with _metadata (torchvision's format), the legacy non-zip format, nested
// checkpoints, Parameters, views sharing a storage — each compared with the same tensors written by
// the independent numpy safetensors writer. Whole pickled modules are refused with a pointer to
// scripts/convert_weights.py, a malicious object in the pickle is never executed. Also the
// `shiftlab weights info / convert` commands.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs.h"
#include "models/weights.h"
#include "support/testing.h"

using namespace shiftlab;
using models::TensorMap;

namespace {

class Pth : public ::testing::Test {
 protected:
  // ctest runs every test in its own process: the fixtures are generated once per version of the
  // fixture script (directory named by its hash), into a temp directory renamed into place.
  static void SetUpTestSuite() {
    auto script = testutil::source_path("scripts/weights_fixtures.py");
    auto parent = std::filesystem::path(testutil::fresh_dir("pth_fixtures_tmp")).parent_path();
    dir_ = (parent / ("pth_fixtures_" + core::sha256_file(script).substr(0, 12))).string();
    if (std::filesystem::exists(dir_ + "/done")) {
      rc_ = 0;
      return;
    }
    auto tmp = testutil::fresh_dir("pth_fixtures_tmp");
    std::string out;
    rc_ = testutil::run_shell("/usr/bin/python3 " + script + " pth " + tmp, &out);
    log_ = out;
    if (rc_ != 0) return;
    std::ofstream(tmp + "/done") << "ok\n";
    std::error_code ec;
    std::filesystem::rename(tmp, dir_, ec);  // loses the race harmlessly when another process won
    if (ec) std::filesystem::remove_all(tmp, ec);
  }
  void SetUp() override { ASSERT_EQ(rc_, 0) << "fixture script failed: " << log_; }
  static std::string f(const std::string& name) { return dir_ + "/" + name; }
  // outputs of one test go to its own directory (the fixture directory is shared)
  static std::string o(const std::string& name) {
    static std::string d =
        testutil::fresh_dir(std::string("pth_out_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    return d + "/" + name;
  }
  static void expect_matches_expected(const std::string& name) {
    auto got = models::load_pth(f(name + ".pth"));
    auto want = models::load_safetensors(f(name + ".expected.safetensors"));
    ASSERT_EQ(got.size(), want.size()) << name;
    for (auto& [k, w] : want) {
      ASSERT_TRUE(got.count(k)) << name << ": missing " << k;
      const auto& g = got.at(k);
      EXPECT_EQ(g.scalar_type(), w.scalar_type()) << name << ":" << k;
      EXPECT_EQ(g.sizes(), w.sizes()) << name << ":" << k;
      EXPECT_TRUE(torch::equal(g.contiguous(), w)) << name << ":" << k;
    }
  }
  static std::string error_of(const std::string& path) {
    try {
      models::load_pth(path);
    } catch (const core::Error& e) {
      return e.what();
    } catch (const std::exception& e) {
      return std::string("WRONG EXCEPTION TYPE: ") + e.what();
    }
    return "NO ERROR";
  }
  static std::string dir_, log_;
  static int rc_;
};
std::string Pth::dir_, Pth::log_;
int Pth::rc_ = -1;

}  // namespace

TEST_F(Pth, PlainDictEveryDtypeViewsAndSharedStorage) {
  expect_matches_expected("plain");
  auto t = models::load_pth(f("plain.pth"));
  // two views of one storage stay views of one storage (as torch.load gives them)
  EXPECT_EQ(t.at("part_a").storage().data(), t.at("part_b").storage().data());
  EXPECT_FALSE(t.at("wt").is_contiguous());
}

TEST_F(Pth, TorchvisionStyleOrderedDictWithMetadata) { expect_matches_expected("ordered"); }

TEST_F(Pth, LegacyNonZipFormat) { expect_matches_expected("legacy"); }

TEST_F(Pth, CheckpointWithNestedStateDict) { expect_matches_expected("nested"); }

TEST_F(Pth, ParametersInsteadOfTensors) { expect_matches_expected("params"); }

TEST_F(Pth, WholePickledModuleIsRefusedWithPointerToScript) {
  auto msg = error_of(f("module.pth"));
  EXPECT_NE(msg.find("not a state dict"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Sequential"), std::string::npos) << msg;
  EXPECT_NE(msg.find("scripts/convert_weights.py"), std::string::npos) << msg;
  EXPECT_NE(msg.find(f("module.pth")), std::string::npos) << msg;
}

TEST_F(Pth, MaliciousObjectIsNeverExecuted) {
  // (Python's torch.load of this file runs `touch "$SHIFTLAB_PWNED"`)
  auto marker = o("PWNED");
  ::setenv("SHIFTLAB_PWNED", marker.c_str(), 1);
  auto t = models::load_pth(f("evil.pth"));
  EXPECT_EQ(t.size(), 1u);
  EXPECT_TRUE(t.count("w"));
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the pickle's os.system call ran";
  expect_matches_expected("evil");
}

TEST_F(Pth, GarbageAndTruncatedFilesAreRefused) {
  auto msg = error_of(f("garbage.pth"));
  EXPECT_NE(msg.find("garbage.pth"), std::string::npos) << msg;
  EXPECT_NE(msg.find("convert_weights.py"), std::string::npos) << msg;
  auto bytes = core::read_file(f("legacy.pth"));
  for (size_t cut : {bytes.size() / 3, bytes.size() - 5}) {
    auto p = o("legacy_cut" + std::to_string(cut) + ".pth");
    std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(cut));
    msg = error_of(p);
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_EQ(msg.find("WRONG EXCEPTION"), std::string::npos) << msg;
  }
  auto zbytes = core::read_file(f("ordered.pth"));
  auto zp = o("zip_cut.pth");
  std::ofstream(zp, std::ios::binary).write(zbytes.data(), static_cast<std::streamsize>(zbytes.size() / 2));
  msg = error_of(zp);
  EXPECT_NE(msg.find(zp), std::string::npos) << msg;
  EXPECT_EQ(msg.find("WRONG EXCEPTION"), std::string::npos) << msg;
}

TEST_F(Pth, LoadWeightsFileDispatchesOnContent) {
  auto a = models::load_weights_file(f("ordered.pth"));
  auto b = models::load_weights_file(f("ordered.expected.safetensors"));
  ASSERT_EQ(a.size(), b.size());
  // a .pth renamed to .safetensors is still recognised by its magic bytes
  std::filesystem::copy_file(f("ordered.pth"), o("renamed.safetensors"), std::filesystem::copy_options::overwrite_existing);
  EXPECT_EQ(models::load_weights_file(o("renamed.safetensors")).size(), a.size());
  // a safetensors file whose header is 640 bytes long starts with 0x80 0x02, a pickle's first two
  // bytes: it is still read as safetensors, whatever its name (the CI failure of the 2.11 build)
  for (int pad = 0; pad < 1000; ++pad) {
    models::TensorMap t{{"w", torch::arange(6, torch::kFloat32).reshape({2, 3})}};
    std::map<std::string, std::string> meta{{"pad", std::string(pad, 'x')}};
    auto img = models::safetensors_bytes(t, meta);
    if (static_cast<unsigned char>(img[0]) != 0x80 || img[1] != 2) continue;
    for (auto name : {"pickle_like.safetensors", "pickle_like.bin"}) {
      models::save_safetensors(o(name), t, meta);
      auto back = models::load_weights_file(o(name));
      ASSERT_EQ(back.size(), 1u) << name;
      EXPECT_TRUE(torch::equal(back.at("w"), t.at("w"))) << name;
    }
    return;
  }
  FAIL() << "no padding gave a 640-byte header";
}

TEST_F(Pth, CliInfoAndConvert) {
  auto out = o("converted.safetensors");
  auto r = testutil::run_cli({"weights", "convert", f("ordered.pth"), out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Python's hand-parser reads what C++ converted, with the values Python saved
  std::string dump;
  ASSERT_EQ(testutil::run_shell("/usr/bin/python3 " + testutil::source_path("scripts/safetensors_np.py") + " dump " + out, &dump), 0)
      << dump;
  auto j = nlohmann::json::parse(dump);
  auto want = models::load_safetensors(f("ordered.expected.safetensors"));
  for (auto& [k, w] : want) {
    ASSERT_TRUE(j.contains(k)) << k;
    auto flat = w.reshape({-1}).to(torch::kFloat64);
    ASSERT_EQ(j[k]["values"].size(), static_cast<size_t>(flat.numel()));
    for (int64_t i = 0; i < flat.numel(); ++i)
      EXPECT_EQ(j[k]["values"][static_cast<size_t>(i)].get<double>(), flat[i].item<double>()) << k;
  }
  EXPECT_EQ(j["__metadata__"]["source"], "ordered.pth");

  r = testutil::run_cli({"weights", "info", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("conv1.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[4, 3, 3, 3]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bn1.num_batches_tracked  I64"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("source = ordered.pth"), std::string::npos) << r.out;
  // 4*3*3*3 + 4 + 4*4 (bn weight, bias, mean, var) + 1 + 2*4 + 2 = 139 elements
  EXPECT_NE(r.out.find("9 tensors, 139 elements"), std::string::npos) << r.out;

  r = testutil::run_cli({"weights", "info", f("ordered.pth")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("9 tensors, 139 elements"), std::string::npos) << r.out;

  r = testutil::run_cli({"weights", "info", f("module.pth")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("convert_weights.py"), std::string::npos) << r.err;
  r = testutil::run_cli({"weights", "info"});
  EXPECT_EQ(r.exit_code, 2);
}

TEST_F(Pth, ConvertScriptTurnsPthIntoSafetensors) {
  auto out = o("script.safetensors");
  std::string log;
  ASSERT_EQ(testutil::run_shell("/usr/bin/python3 " + testutil::source_path("scripts/convert_weights.py") + " --pth " +
                                    f("nested.pth") + " -o " + out, &log), 0)
      << log;
  std::map<std::string, std::string> meta;
  auto got = models::load_safetensors(out, &meta);
  auto want = models::load_safetensors(f("nested.expected.safetensors"));
  ASSERT_EQ(got.size(), want.size());
  for (auto& [k, w] : want) EXPECT_TRUE(torch::equal(got.at(k), w)) << k;
  EXPECT_EQ(meta["source"], "nested.pth");
}

namespace {
// The Python fixture's nn.Sequential(conv1=Conv2d(3,4,3), bn1=BatchNorm2d(4), fc=Linear(4,2)).
struct Small : torch::nn::Module {
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Linear fc{nullptr};
  explicit Small(int64_t classes = 2) {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3)));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(4));
    fc = register_module("fc", torch::nn::Linear(4, classes));
  }
};
}  // namespace

TEST_F(Pth, TorchvisionStyleStateDictLoadsStrictlyIntoCppModule) {
  Small m;
  auto w = models::load_pth(f("ordered.pth"));
  auto r = models::load_state_dict(m, w);
  EXPECT_TRUE(r.ok()) << r.summary();
  EXPECT_EQ(r.loaded, 9);
  EXPECT_TRUE(torch::equal(m.bn1->running_mean, w.at("bn1.running_mean")));
  EXPECT_EQ(m.bn1->num_batches_tracked.item<int64_t>(), 7);
  EXPECT_TRUE(torch::equal(m.conv1->weight, w.at("conv1.weight")));
  // a 5-class head: strict fails naming fc.*, skipping "fc." loads the rest
  Small m5(5);
  EXPECT_THROW(models::load_state_dict(m5, w), core::Error);
  auto r5 = models::load_state_dict(m5, w, true, {"fc."});
  EXPECT_EQ(r5.loaded, 7);
  EXPECT_EQ(r5.skipped, (std::vector<std::string>{"fc.bias", "fc.weight"}));
}
