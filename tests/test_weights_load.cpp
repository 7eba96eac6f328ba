// state_dict names (Python's: parameters and buffers, dotted paths) and load_state_dict: strict
// errors listing missing / unexpected / shape-mismatched keys, skip by prefix, partial loads,
// dtype conversion, and nothing copied when a strict load fails.
#include <gtest/gtest.h>

#include "core/error.h"
#include "models/weights.h"
#include "support/testing.h"

using namespace shiftlab;
using models::TensorMap;

namespace {

struct Block : torch::nn::Module {
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  Block() {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 2, 3).bias(false)));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(2));
  }
};

struct Net : torch::nn::Module {
  torch::nn::ModuleList layer1;
  torch::nn::Linear fc{nullptr};
  explicit Net(int64_t classes = 3) {
    layer1 = register_module("layer1", torch::nn::ModuleList(std::make_shared<Block>(), std::make_shared<Block>()));
    fc = register_module("fc", torch::nn::Linear(2, classes));
  }
};

std::string strict_error(torch::nn::Module& m, const TensorMap& w) {
  try {
    models::load_state_dict(m, w);
  } catch (const core::Error& e) {
    return e.what();
  }
  return "NO ERROR";
}

TensorMap cloned(const TensorMap& t) {
  TensorMap out;
  for (auto& [k, v] : t) out[k] = v.detach().clone();
  return out;
}

}  // namespace

TEST(StateDict, NamesAreThePythonNames) {
  Net n;
  std::vector<std::string> keys;
  for (auto& [k, v] : models::state_dict(n)) keys.push_back(k);
  // what torch.nn gives for the same structure (ModuleList children are "0", "1"; BatchNorm has
  // three buffers; sorted by name)
  std::vector<std::string> want = {
      "fc.bias", "fc.weight",
      "layer1.0.bn1.bias", "layer1.0.bn1.num_batches_tracked", "layer1.0.bn1.running_mean",
      "layer1.0.bn1.running_var", "layer1.0.bn1.weight", "layer1.0.conv1.weight",
      "layer1.1.bn1.bias", "layer1.1.bn1.num_batches_tracked", "layer1.1.bn1.running_mean",
      "layer1.1.bn1.running_var", "layer1.1.bn1.weight", "layer1.1.conv1.weight"};
  EXPECT_EQ(keys, want);
  // shared with the module, not copies
  auto sd = models::state_dict(n);
  EXPECT_EQ(sd.at("fc.weight").data_ptr(), n.fc->weight.data_ptr());
}

TEST(LoadStateDict, RoundTripCopiesEveryTensor) {
  torch::manual_seed(0);
  Net a, b;
  auto w = cloned(models::state_dict(a));
  w["layer1.0.bn1.running_mean"].uniform_(-1, 1);
  w["layer1.1.bn1.num_batches_tracked"].fill_(42);
  auto r = models::load_state_dict(b, w);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.loaded, 14);
  EXPECT_EQ(r.total, 14);
  for (auto& [k, v] : models::state_dict(b)) EXPECT_TRUE(torch::equal(v, w.at(k))) << k;
  EXPECT_TRUE(b.fc->weight.requires_grad());  // still a trainable parameter
}

TEST(LoadStateDict, StrictErrorListsMissingUnexpectedAndMismatchedKeys) {
  Net n;
  auto w = cloned(models::state_dict(n));
  auto before = cloned(models::state_dict(n));
  w.erase("layer1.0.conv1.weight");
  w.erase("layer1.1.bn1.running_var");
  w["head.weight"] = torch::zeros({3, 2});
  w["fc.weight"] = torch::zeros({1000, 2});
  w["fc.bias"].fill_(99);  // would be copied if a strict failure copied anything
  auto msg = strict_error(n, w);
  EXPECT_NE(msg.find("missing keys (2): layer1.0.conv1.weight, layer1.1.bn1.running_var"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected keys (1): head.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("shape mismatches (1): fc.weight: model [3, 2] vs file [1000, 2]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.strict = false"), std::string::npos) << msg;
  for (auto& [k, v] : models::state_dict(n)) EXPECT_TRUE(torch::equal(v, before.at(k))) << k << " changed";
}

TEST(LoadStateDict, LongListsAreCutWithCounts) {
  Net n;
  auto msg = strict_error(n, TensorMap{});
  EXPECT_NE(msg.find("missing keys (14): "), std::string::npos) << msg;
  EXPECT_NE(msg.find("(9 more)"), std::string::npos) << msg;
}

TEST(LoadStateDict, SkipPrefixesForADifferentHead) {
  Net src(1000), dst(10);
  auto w = cloned(models::state_dict(src));
  EXPECT_THROW(models::load_state_dict(dst, w), core::Error);
  auto r = models::load_state_dict(dst, w, /*strict=*/true, {"fc."});
  EXPECT_TRUE(r.ok()) << r.summary();
  EXPECT_EQ(r.loaded, 12);
  EXPECT_EQ(r.skipped, (std::vector<std::string>{"fc.bias", "fc.weight"}));
  EXPECT_TRUE(torch::equal(dst.layer1[0]->as<Block>()->conv1->weight, w.at("layer1.0.conv1.weight")));
  EXPECT_EQ(dst.fc->weight.size(0), 10);
  EXPECT_NE(r.summary().find("skipped by prefix 2: fc.bias, fc.weight"), std::string::npos) << r.summary();
  // a file-only key under a skipped prefix is skipped too, not unexpected
  w["fc.extra"] = torch::zeros({1});
  auto r2 = models::load_state_dict(dst, w, true, {"fc."});
  EXPECT_EQ(r2.skipped.size(), 3u);
}

TEST(LoadStateDict, NonStrictLoadsWhatMatchesAndReports) {
  torch::manual_seed(1);
  Net src(1000), dst(10);
  auto w = cloned(models::state_dict(src));
  w.erase("layer1.1.bn1.weight");
  w["extra.thing"] = torch::ones({2});
  auto fc_before = dst.fc->weight.detach().clone();
  auto bn_before = dst.layer1[1]->as<Block>()->bn1->weight.detach().clone();
  auto r = models::load_state_dict(dst, w, /*strict=*/false);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.missing, (std::vector<std::string>{"layer1.1.bn1.weight"}));
  EXPECT_EQ(r.unexpected, (std::vector<std::string>{"extra.thing"}));
  EXPECT_EQ(r.shape_mismatch, (std::vector<std::string>{"fc.bias", "fc.weight"}));
  EXPECT_EQ(r.loaded, 11);
  EXPECT_TRUE(torch::equal(dst.fc->weight, fc_before));
  EXPECT_TRUE(torch::equal(dst.layer1[1]->as<Block>()->bn1->weight, bn_before));
  EXPECT_TRUE(torch::equal(dst.layer1[0]->as<Block>()->conv1->weight, w.at("layer1.0.conv1.weight")));
  auto s = r.summary();
  EXPECT_NE(s.find("loaded 11/14 tensors"), std::string::npos) << s;
  EXPECT_NE(s.find("missing 1: layer1.1.bn1.weight"), std::string::npos) << s;
  EXPECT_NE(s.find("fc.weight: model [10, 2] vs file [1000, 2]"), std::string::npos) << s;
}

TEST(LoadStateDict, ConvertsDtypeAndKeepsTheModuleDtype) {
  Net src, dst;
  auto w = cloned(models::state_dict(src));
  for (auto& [k, v] : w)
    if (v.is_floating_point()) v = v.to(torch::kFloat16);
  auto r = models::load_state_dict(dst, w);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(dst.fc->weight.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(dst.fc->weight, w.at("fc.weight").to(torch::kFloat32)));
}

TEST(LoadStateDict, SafetensorsRoundTripThroughAModule) {
  auto d = testutil::fresh_dir("load_roundtrip");
  torch::manual_seed(3);
  Net a, b;
  models::save_safetensors(d + "/net.safetensors", models::state_dict(a));
  auto r = models::load_state_dict(b, models::load_weights_file(d + "/net.safetensors"));
  EXPECT_TRUE(r.ok());
  auto x = torch::randn({2, 2});
  EXPECT_TRUE(torch::equal(a.fc->forward(x), b.fc->forward(x)));
}

// issue 18: loading few of the model's tensors with strict = false (another backbone's weights, a
// "module."-prefixed state dict) is a console warning, not only an info line in the log
TEST(LoadStateDict, NonStrictLoadOfFewTensorsWarnsLoudly) {
  torch::manual_seed(2);
  Net src, dst;
  TensorMap prefixed;
  for (auto& [k, v] : models::state_dict(src)) prefixed["module." + k] = v.detach().clone();
  testing::internal::CaptureStderr();
  auto r = models::load_state_dict(dst, prefixed, /*strict=*/false);
  auto err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(r.loaded, 0);
  EXPECT_NE(err.find("model.strict = false: only 0 of 14 tensors of the model were loaded"), std::string::npos) << err;
  // most tensors loaded: quiet
  auto w = cloned(models::state_dict(src));
  w.erase("layer1.1.bn1.weight");
  testing::internal::CaptureStderr();
  models::load_state_dict(dst, w, /*strict=*/false);
  err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("model.strict"), std::string::npos) << err;
}
