// Backbone registry, taps, feature dims, layer groups, the Classifier (heads, freezing, frozen
// BatchNorm staying in eval mode), parameter groups (lr × decay^distance, overrides, no-decay
// split) and the model / optim config keys.
#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "core/error.h"
#include "models/backbones.h"
#include "models/classifier.h"
#include "models/dropout.h"
#include "models/param_groups.h"
#include "models/weights.h"
#include "probe/advise.h"
#include "support/testing.h"

using namespace shiftlab;
using models::BackboneOptions;

static models::BackbonePtr make(const std::string& name, bool small_stem = false) {
  BackboneOptions o;
  o.name = name;
  o.small_stem = small_stem;
  return models::make_backbone(o);
}

static BackboneOptions tiny_vit(const std::string& name = "vit_small_patch16_224") {
  BackboneOptions o;
  o.name = name;
  o.image_size = 32;
  o.patch_size = 8;
  o.vit_dim = 32;
  o.vit_depth = 3;
  o.vit_heads = 2;
  o.vit_mlp_dim = 64;
  return o;
}

TEST(Backbones, RegistryHoldsEveryFamilyAndRejectsUnknownNames) {
  auto names = models::backbone_registry().names();
  for (auto n : {"lenet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vit_b_16",
                 "vit_small_patch16_224", "vit_base_patch16_224", "convnext_tiny", "efficientnet_b0", "efficientnet_b1",
                 "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "densenet121", "mobilenet_v3_small",
                 "mobilenet_v3_large"})
    EXPECT_TRUE(models::backbone_registry().has(n)) << n;
  BackboneOptions o;
  o.name = "resnet19";
  try {
    models::make_backbone(o);
    FAIL() << "no error";
  } catch (const core::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("resnet19"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("did you mean"), std::string::npos) << e.what();
  }
}

TEST(Backbones, ResNetTapShapesAndFeatureDims) {
  torch::NoGradGuard ng;
  auto r18 = make("resnet18");
  r18->eval();
  EXPECT_EQ(r18->feature_dim(), 512);
  EXPECT_EQ(r18->in_conv_name(), "conv1");
  auto f = r18->forward_features(torch::randn({2, 3, 64, 64}), r18->tap_names());
  EXPECT_EQ(f.at("stem").sizes(), (std::vector<int64_t>{2, 64, 16, 16}));
  EXPECT_EQ(f.at("layer1").sizes(), (std::vector<int64_t>{2, 64, 16, 16}));
  EXPECT_EQ(f.at("layer2").sizes(), (std::vector<int64_t>{2, 128, 8, 8}));
  EXPECT_EQ(f.at("layer3").sizes(), (std::vector<int64_t>{2, 256, 4, 4}));
  EXPECT_EQ(f.at("layer4").sizes(), (std::vector<int64_t>{2, 512, 2, 2}));
  EXPECT_EQ(f.at("pooled").sizes(), (std::vector<int64_t>{2, 512}));
  // pooled = spatial mean of layer4
  EXPECT_TRUE(torch::allclose(f.at("pooled"), f.at("layer4").mean({2, 3}), 1e-5, 1e-6));

  auto r50 = make("resnet50", true);
  r50->eval();
  EXPECT_EQ(r50->feature_dim(), 2048);
  auto g = r50->forward_features(torch::randn({1, 3, 32, 32}), {"stem", "layer4"});
  EXPECT_EQ(g.size(), 2u);
  EXPECT_EQ(g.at("stem").sizes(), (std::vector<int64_t>{1, 64, 32, 32}));  // small stem: no downsampling
  EXPECT_EQ(g.at("layer4").sizes(), (std::vector<int64_t>{1, 2048, 4, 4}));
  EXPECT_THROW(r50->forward_features(torch::randn({1, 3, 32, 32}), {"layer5"}), core::UsageError);
  EXPECT_THROW(r50->forward(torch::randn({1, 4, 32, 32})), core::UsageError);
}

TEST(Backbones, LayerGroupsCoverEveryParameterExactlyOnce) {
  std::vector<models::BackbonePtr> bbs{make("lenet"),
                                       make("resnet18"),
                                       make("resnet50"),
                                       models::make_backbone(tiny_vit()),
                                       models::make_backbone(tiny_vit("vit_b_16")),
                                       make("convnext_tiny"),
                                       make("efficientnet_b0"),
                                       make("mobilenet_v3_small"),
                                       make("mobilenet_v3_large"),
                                       make("densenet121")};
  std::vector<std::vector<std::string>> expect{
      {"conv1", "conv2", "fc"},
      {"stem", "layer1", "layer2", "layer3", "layer4"},
      {"stem", "layer1", "layer2", "layer3", "layer4"},
      {"embed", "blocks.0", "blocks.1", "blocks.2", "norm"},
      {"embed", "blocks.0", "blocks.1", "blocks.2", "norm"},
      {"stem", "stage1", "stage2", "stage3", "stage4", "norm"},
      {"stem", "stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage7", "last_conv"},
      {"stem", "stage1", "stage2", "stage3", "stage4", "last_conv"},
      {"stem", "stage1", "stage2", "stage3", "stage4", "last_conv"},
      {"stem", "denseblock1", "denseblock2", "denseblock3", "denseblock4"}};
  for (size_t i = 0; i < bbs.size(); ++i) {
    auto groups = bbs[i]->layer_groups();
    std::vector<std::string> names;
    for (auto& g : groups) names.push_back(g.name);
    EXPECT_EQ(names, expect[i]);
    for (auto& kv : bbs[i]->named_parameters(true)) {
      int hits = 0;
      for (auto& g : groups) hits += models::in_group(kv.key(), g);
      EXPECT_EQ(hits, 1) << kv.key();
    }
  }
}

using Shape = std::vector<int64_t>;

TEST(Backbones, EfficientNetMobileNetDenseNetTapsNamesAndDims) {
  torch::NoGradGuard ng;
  auto x = torch::randn({2, 3, 64, 64});
  struct Case {
    std::string name;
    int64_t dim;
    std::map<std::string, Shape> shapes;
    std::vector<std::string> tensors;  // torchvision names that must exist
  };
  std::vector<Case> cases{
      {"efficientnet_b0", 1280,
       {{"stem", {2, 32, 32, 32}}, {"stage1", {2, 16, 32, 32}}, {"stage2", {2, 24, 16, 16}}, {"stage3", {2, 40, 8, 8}},
        {"stage4", {2, 80, 4, 4}}, {"stage5", {2, 112, 4, 4}}, {"stage6", {2, 192, 2, 2}}, {"stage7", {2, 320, 2, 2}},
        {"last_conv", {2, 1280, 2, 2}}, {"pooled", {2, 1280}}},
       {"features.0.0.weight", "features.0.1.running_var", "features.1.0.block.1.fc1.bias",
        "features.2.0.block.0.0.weight", "features.2.1.block.3.1.num_batches_tracked", "features.8.0.weight"}},
      {"mobilenet_v3_small", 1024,
       {{"stem", {2, 16, 32, 32}}, {"stage1", {2, 16, 16, 16}}, {"stage2", {2, 24, 8, 8}}, {"stage3", {2, 48, 4, 4}},
        {"stage4", {2, 96, 2, 2}}, {"last_conv", {2, 576, 2, 2}}, {"pooled", {2, 1024}}},
       {"features.1.block.1.fc2.weight", "features.4.block.0.0.weight", "features.12.1.bias", "classifier.0.weight"}},
      {"mobilenet_v3_large", 1280,
       {{"stem", {2, 16, 32, 32}}, {"stage1", {2, 24, 16, 16}}, {"stage2", {2, 40, 8, 8}}, {"stage3", {2, 112, 4, 4}},
        {"stage4", {2, 160, 2, 2}}, {"last_conv", {2, 960, 2, 2}}, {"pooled", {2, 1280}}},
       {"features.4.block.2.fc1.weight", "features.16.0.weight", "classifier.0.bias"}},
      {"densenet121", 1024,
       {{"stem", {2, 64, 16, 16}}, {"denseblock1", {2, 256, 16, 16}}, {"denseblock2", {2, 512, 8, 8}},
        {"denseblock3", {2, 1024, 4, 4}}, {"denseblock4", {2, 1024, 2, 2}}, {"norm5", {2, 1024, 2, 2}},
        {"pooled", {2, 1024}}},
       {"features.conv0.weight", "features.denseblock3.denselayer24.conv2.weight",
        "features.denseblock1.denselayer1.norm1.running_mean", "features.transition2.conv.weight", "features.norm5.bias"}},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto bb = make(c.name);
    bb->eval();
    EXPECT_EQ(bb->feature_dim(), c.dim);
    EXPECT_EQ(bb->in_channels(), 3);
    EXPECT_TRUE(bb->supports_adapters());
    auto f = bb->forward_features(x, bb->tap_names());
    EXPECT_EQ(f.size(), c.shapes.size());
    for (auto& [tap, shape] : c.shapes) EXPECT_EQ(f.at(tap).sizes(), shape) << tap;
    auto state = models::state_dict(*bb);
    for (auto& n : c.tensors) EXPECT_TRUE(state.count(n)) << n;
    EXPECT_TRUE(torch::equal(bb->forward(x), f.at("pooled")));
    auto one = bb->forward_features(x, {"stem"});  // stops early, same values
    EXPECT_EQ(one.size(), 1u);
    EXPECT_TRUE(torch::equal(one.at("stem"), f.at("stem")));
    EXPECT_THROW(bb->forward_features(x, {"layer9"}), core::UsageError);
    EXPECT_THROW(bb->forward(torch::randn({1, 4, 32, 32})), core::UsageError);
    EXPECT_THROW(bb->forward(torch::randn({3, 32, 32})), core::UsageError);
  }
  // 1 input band: the stem conv takes it
  BackboneOptions o;
  o.name = "densenet121";
  o.in_channels = 1;
  auto grey = models::make_backbone(o);
  EXPECT_EQ(grey->in_channels(), 1);
  EXPECT_EQ(grey->in_conv_name(), "features.conv0");
}

TEST(Backbones, EfficientNetWidthDepthAndStochasticDepth) {
  // width / depth multipliers as torchvision (make_divisible(c·w, 8), ceil(n·d)): feature dims and block counts
  std::map<std::string, std::pair<int64_t, size_t>> expect{{"efficientnet_b1", {1280, 23}},
                                                           {"efficientnet_b2", {1408, 23}},
                                                           {"efficientnet_b3", {1536, 26}},
                                                           {"efficientnet_b4", {1792, 32}}};
  for (auto& [name, e] : expect) {
    auto bb = make(name);
    EXPECT_EQ(bb->feature_dim(), e.first) << name;
    std::set<std::string> blocks;
    for (auto& kv : bb->named_parameters(true)) {
      auto& k = kv.key();
      if (k.find(".block.") != std::string::npos) blocks.insert(k.substr(0, k.find(".block.")));
    }
    EXPECT_EQ(blocks.size(), e.second) << name;
  }
  // stochastic depth (default 0.2): random in train mode, off in eval mode and with drop_path = 0
  torch::NoGradGuard ng;
  BackboneOptions o;
  o.name = "efficientnet_b0";
  auto bb = models::make_backbone(o);
  auto x = torch::randn({8, 3, 32, 32});
  bb->eval();
  EXPECT_TRUE(torch::equal(bb->forward(x), bb->forward(x)));
  bb->train();
  torch::manual_seed(0);
  auto a = bb->forward(x);
  auto b = bb->forward(x);
  EXPECT_FALSE(torch::allclose(a, b));
  o.drop_path = 0;
  auto det = models::make_backbone(o);
  det->train();
  EXPECT_TRUE(torch::equal(det->forward(x), det->forward(x)));  // batch statistics alone are deterministic
  o.drop_path = 1.0;
  EXPECT_THROW(models::make_backbone(o), core::UsageError);
}

TEST(Backbones, InfoRecordsNativeSizeAndNormalisation) {
  std::map<std::string, int64_t> sizes{{"efficientnet_b0", 224}, {"efficientnet_b1", 240}, {"efficientnet_b2", 260},
                                       {"efficientnet_b3", 300}, {"efficientnet_b4", 380}, {"densenet121", 224},
                                       {"mobilenet_v3_small", 224}, {"mobilenet_v3_large", 224}, {"convnext_tiny", 224},
                                       {"resnet50", 224}};
  for (auto& [name, px] : sizes) {
    const auto* info = models::backbone_info(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->image_size, px) << name;
    EXPECT_EQ(info->mean, (std::vector<double>{0.485, 0.456, 0.406}));
    EXPECT_NE(info->summary().find(std::to_string(px) + " px"), std::string::npos) << info->summary();
  }
  EXPECT_EQ(models::backbone_info("efficientnet_b3")->eval_transform(), "resize(320), center_crop(300), normalize(imagenet)");
  EXPECT_EQ(models::backbone_info("efficientnet_b4")->train_transform(), "random_resized_crop(380), hflip, normalize(imagenet)");
  // torchvision's B2 weights were evaluated at 288 px, not the paper's 260
  EXPECT_EQ(models::backbone_info("efficientnet_b2")->eval_crop(), 288);
  EXPECT_EQ(models::backbone_info("no_such_backbone"), nullptr);
  models::BackboneInfo custom;
  custom.mean = {0.5};
  custom.std = {0.25};
  EXPECT_EQ(custom.eval_transform(), "resize(256), center_crop(224), normalize(mean=[0.5], std=[0.25])");
  EXPECT_THROW(models::add_backbone_info("densenet121", custom), core::Error);  // duplicate
}

namespace {
// advise's evidence from a probe on 500 labelled source rows of 10 classes (50 per class: neither
// size rule applies)
probe::Evidence source_evidence(double source_acc, int64_t rows = 500) {
  probe::Evidence e;
  e.tap = "pooled";
  e.num_classes = 10;
  e.source_rows = rows;
  e.source_acc = source_acc;
  return e;
}
}  // namespace

TEST(Backbones, AdviseCarriesTheNativeResolution) {
  auto e = source_evidence(90);
  e.backbone = "efficientnet_b3";
  auto a = probe::advise(e);
  EXPECT_EQ(a.image_size, 300);
  EXPECT_EQ(a.train_transform, "random_resized_crop(300), hflip, normalize(imagenet)");
  EXPECT_NE(a.reasons.back().find("300 px"), std::string::npos) << a.reasons.back();
  EXPECT_EQ(a.to_json().at("image_size"), 300);
  auto ini = probe::advice_ini(a, nlohmann::json::object(), {"test"});
  EXPECT_NE(ini.find("resize(320), center_crop(300)"), std::string::npos) << ini;
  e.backbone = "lenet";  // nothing recorded: no resolution advice
  EXPECT_EQ(probe::advise(e).image_size, 0);
  // weights a shiftlab run trained, or none: the published weights' 300 px does not apply
  e.backbone = "efficientnet_b3";
  e.weights = probe::Evidence::Weights::Shiftlab;
  e.weights_trained_by = "runs/pretrain/20261203-1";
  a = probe::advise(e);
  EXPECT_EQ(a.image_size, 0);
  EXPECT_TRUE(a.train_transform.empty());
  EXPECT_NE(a.reasons.back().find("trained by shiftlab (runs/pretrain/20261203-1)"), std::string::npos)
      << a.reasons.back();
  EXPECT_EQ(probe::advice_ini(a, nlohmann::json::object(), {"test"}).find("Native input"), std::string::npos);
  e.weights = probe::Evidence::Weights::Random;
  a = probe::advise(e);
  EXPECT_EQ(a.image_size, 0);
  for (auto& r : a.reasons) EXPECT_EQ(r.find(" px"), std::string::npos) << r;
  e.weights = probe::Evidence::Weights::Imported;
  EXPECT_EQ(probe::advise(e).image_size, 300);
}

TEST(Advise, WilsonIntervalSolvesTheScoreEquation) {
  // the interval's ends are the roots π of (q − π)² = z² π (1 − π) / n, solved here as a quadratic
  for (auto [q, n] : {std::pair{0.5, int64_t{10}}, {0.9, 359}, {0.0, 20}, {1.0, 7}, {0.62, 1000}}) {
    const double z = 2, a = 1 + z * z / n, b = -(2 * q + z * z / n), c = q * q;
    const double disc = std::sqrt(b * b - 4 * a * c);
    auto [lo, hi] = probe::wilson_interval(q, n);
    EXPECT_NEAR(lo, (-b - disc) / (2 * a), 1e-12) << q << " " << n;
    EXPECT_NEAR(hi, (-b + disc) / (2 * a), 1e-12) << q << " " << n;
  }
  EXPECT_NEAR(probe::wilson_interval(0.5, 10).first, 0.2327, 1e-4);  // (0.5 − 0.2673)
}

TEST(Advise, FewImagesMakeTheBandAndTheGapUncertain) {
  auto e = source_evidence(60);
  e.a_distance = 0.3;
  e.a_distance_error = (1 - 0.3 / 2) / 2;  // d = 2 (1 − 2ε)
  // 60 % on 10 images: [31, 83] spans three bands; on 2,000 images [57.8, 62.2] stays in 50–70 %
  e.source_acc_rows = 10;
  e.a_distance_test_rows = 20;
  auto a = probe::advise(e);
  EXPECT_TRUE(a.band_uncertain);
  EXPECT_TRUE(a.gap_uncertain);
  EXPECT_EQ(a.strategy, "discriminative fine-tune");  // still the point estimate's band
  EXPECT_EQ(a.method, "source_only");
  bool said = false;
  for (auto& r : a.reasons) said = said || r.find("on 10 images the 95 % interval") != std::string::npos;
  EXPECT_TRUE(said);
  EXPECT_TRUE(a.to_json().at("band_uncertain").get<bool>());
  e.source_acc_rows = 2000;
  e.a_distance_test_rows = 4000;  // ε 0.425 ± 0.016: d in [0.24, 0.37], below 0.5
  a = probe::advise(e);
  EXPECT_FALSE(a.band_uncertain);
  EXPECT_FALSE(a.gap_uncertain);
  for (auto& r : a.reasons) EXPECT_EQ(r.find("uncertain"), std::string::npos) << r;
  e.source_acc_rows = 0;  // unknown: no interval claimed
  e.a_distance_test_rows = 0;
  EXPECT_FALSE(probe::advise(e).band_uncertain);
  // a labelled target: the band uses target→target and its rows, and no DA is chosen from the gap
  e.target_labelled = true;
  e.target_target_acc = 90;
  e.target_target_rows = 12;
  e.a_distance_test_rows = 20;
  a = probe::advise(e);
  EXPECT_TRUE(a.band_uncertain);
  EXPECT_FALSE(a.gap_uncertain);
}

// The size rules follow the transfer study's cells (README): the far pair's 10-label evidence (probe
// 73 % on source-val) used to become feature extraction (11-13 points under fine-tuning); its 100 and
// ~700-label cells (probe 90 / 94 %) and the near pair's all-label cell (98 %, 126 per class) too.
TEST(Advise, LabelsPerClassShiftTheBandAsTheTransferStudyMeasured) {
  struct Case {
    double acc;
    int64_t rows;
    const char* strategy;
    const char* freeze;
    bool bn_frozen;
  };
  for (auto c : {Case{73, 100, "fine-tune top groups", "top:2", true},     // far, 10/class: few labels keep the band
                 Case{73, 500, "fine-tune top groups", "top:2", false},    // 50/class: no size rule
                 Case{90, 100, "feature extraction", "backbone", true},    // near, 10/class, probe > 85 %
                 Case{90, 1000, "fine-tune top groups", "top:1", false},   // far, 100/class
                 Case{94, 7001, "fine-tune top groups", "top:1", false},   // far, all
                 Case{98.3, 1260, "fine-tune top groups", "top:1", false}, // near, all (~126/class)
                 Case{99, 999, "feature extraction", "backbone", true},    // 99.9/class: below the threshold
                 Case{60, 1000, "full fine-tune", "none", false},
                 Case{40, 5000, "full fine-tune", "none", false}}) {       // the last band stays
    auto a = probe::advise(source_evidence(c.acc, c.rows));
    SCOPED_TRACE(testing::Message() << c.acc << " % with " << c.rows << " rows");
    EXPECT_EQ(a.strategy, c.strategy);
    EXPECT_EQ(a.freeze, c.freeze);
    EXPECT_EQ(a.settings.count("model.bn") && a.settings.at("model.bn") == "frozen", c.bn_frozen);
    bool said = false;
    for (auto& r : a.reasons) said = said || r.find("one band less frozen") != std::string::npos;
    EXPECT_EQ(said, c.rows >= 1000 && c.acc >= 50);
  }
}

TEST(Backbones, HeadPrefixesKeepBackbonePartsOfTheClassifier) {
  // a full torchvision state dict (backbone + head) loads strictly; head keys are skipped, but
  // ConvNeXt's classifier.0 (LayerNorm2d) and MobileNetV3's classifier.0 (Linear) are loaded
  for (auto [name, kept, head] : {std::tuple<const char*, const char*, const char*>{"convnext_tiny", "classifier.0.weight", "classifier.2.weight"},
                                  {"mobilenet_v3_small", "classifier.0.weight", "classifier.3.weight"},
                                  {"efficientnet_b0", "", "classifier.1.weight"},
                                  {"densenet121", "", "classifier.weight"}}) {
    SCOPED_TRACE(name);
    auto src = make(name), dst = make(name);
    models::TensorMap w;
    for (auto& [k, v] : models::state_dict(*src))  // distinct from dst's values
      w[k] = v.is_floating_point() ? v.detach().clone().uniform_() : v.detach().clone();
    w[head] = torch::zeros({10, 4});
    auto r = models::load_state_dict(*dst, w, true, dst->head_prefixes());
    EXPECT_TRUE(r.ok()) << r.summary();
    EXPECT_EQ(r.skipped, std::vector<std::string>{head});
    if (*kept) {
      EXPECT_TRUE(torch::equal(models::state_dict(*dst).at(kept), w.at(kept)));
    }
  }
}

TEST(Backbones, DenseNetUpgradesLegacyKeyNames) {
  auto bb = make("densenet121");
  models::TensorMap w = models::state_dict(*bb);
  // torchvision's published densenet121-a639ec97.pth says "norm.1" / "conv.2" inside dense layers
  // and, saved before PyTorch 0.4.1, has no num_batches_tracked
  models::TensorMap legacy;
  for (auto& [k, v] : w) {
    if (k.find("num_batches_tracked") != std::string::npos) continue;
    std::string n = k;
    for (auto part : {".norm1.", ".norm2.", ".conv1.", ".conv2."}) {
      auto at = n.find(part);
      if (at != std::string::npos && n.find("denselayer") != std::string::npos)
        n = n.substr(0, at + 5) + "." + n.substr(at + 5);
    }
    legacy[n] = v;
  }
  EXPECT_TRUE(legacy.count("features.denseblock2.denselayer3.norm.2.running_var"));
  EXPECT_TRUE(legacy.count("features.transition1.norm.weight"));  // not a dense layer: unchanged
  bb->upgrade_state_dict(legacy);
  std::set<std::string> a, b;
  for (auto& kv : w) a.insert(kv.first);
  for (auto& kv : legacy) b.insert(kv.first);
  EXPECT_EQ(a, b);
  EXPECT_EQ(legacy.at("features.norm5.num_batches_tracked").item<int64_t>(), 0);
  auto r = models::load_state_dict(*bb, legacy, true, bb->head_prefixes());
  EXPECT_TRUE(r.ok()) << r.summary();
}

TEST(Backbones, ViTTapsNamesAndPooling) {
  torch::NoGradGuard ng;
  auto o = tiny_vit();
  auto vit = models::make_backbone(o);
  vit->eval();
  EXPECT_EQ(vit->feature_dim(), 32);
  EXPECT_EQ(vit->in_conv_name(), "patch_embed.proj");
  auto params = vit->named_parameters(true);
  for (auto n : {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.2.attn.qkv.weight",
                 "blocks.0.mlp.fc2.bias", "norm.weight"})
    EXPECT_TRUE(params.find(n)) << n;
  EXPECT_EQ(params["pos_embed"].sizes(), (std::vector<int64_t>{1, 17, 32}));
  auto x = torch::randn({2, 3, 32, 32});
  auto f = vit->forward_features(x, {"embed", "blocks.1", "norm", "pooled"});
  EXPECT_EQ(f.at("blocks.1").sizes(), (std::vector<int64_t>{2, 17, 32}));
  EXPECT_TRUE(torch::equal(f.at("pooled"), f.at("norm").select(1, 0)));
  EXPECT_TRUE(torch::equal(models::pool_tap(*vit, f.at("norm")), f.at("pooled")));
  EXPECT_THROW(vit->forward(torch::randn({2, 3, 48, 48})), core::UsageError);

  auto tv = models::make_backbone(tiny_vit("vit_b_16"));
  EXPECT_EQ(tv->in_conv_name(), "conv_proj");
  auto tp = tv->named_parameters(true);
  for (auto n : {"class_token", "encoder.pos_embedding", "conv_proj.bias",
                 "encoder.layers.encoder_layer_1.self_attention.in_proj_weight",
                 "encoder.layers.encoder_layer_1.self_attention.out_proj.weight", "encoder.layers.encoder_layer_0.mlp.3.bias",
                 "encoder.layers.encoder_layer_0.ln_2.weight", "encoder.ln.bias"})
    EXPECT_TRUE(tp.find(n)) << n;

  o.pool = "mean";
  auto vm = models::make_backbone(o);
  vm->eval();
  auto g = vm->forward_features(x, {"norm", "pooled"});
  using torch::indexing::Slice;
  EXPECT_TRUE(torch::allclose(g.at("pooled"), g.at("norm").index({Slice(), Slice(1)}).mean(1)));
}

TEST(Backbones, ViTDropPathIsStochasticInTrainModeOnly) {
  auto o = tiny_vit();
  o.drop_path = 0.5;
  auto vit = models::make_backbone(o);
  torch::NoGradGuard ng;
  auto x = torch::randn({8, 3, 32, 32});
  vit->eval();
  EXPECT_TRUE(torch::equal(vit->forward(x), vit->forward(x)));
  vit->train();
  torch::manual_seed(0);
  auto a = vit->forward(x);
  auto b = vit->forward(x);
  EXPECT_FALSE(torch::allclose(a, b));
}

TEST(Backbones, ReplacedInputConvIsUsed) {
  // an adapter may swap the input conv for a Sequential (e.g. 1×1 band mixing + the old conv)
  auto bb = make("resnet18", true);
  auto old = bb->named_children()["conv1"];
  auto mix = torch::nn::Conv2d(torch::nn::Conv2dOptions(5, 3, 1).bias(false));
  torch::nn::Sequential seq(mix, torch::nn::Conv2d(std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(old)));
  bb->replace_module("conv1", seq.ptr());
  EXPECT_EQ(bb->in_channels(), 5);
  torch::NoGradGuard ng;
  bb->eval();
  EXPECT_EQ(bb->forward(torch::randn({2, 5, 32, 32})).sizes(), (std::vector<int64_t>{2, 512}));
}

// ---------------------------------------------------------------- classifier

static models::Classifier classifier(const std::string& bb, const std::string& head = "linear", int64_t classes = 7) {
  models::HeadOptions h;
  h.type = head;
  h.bottleneck_dim = 16;
  return models::Classifier(make(bb, true), h, classes);
}

TEST(Classifier, OutputsFeaturesLogitsAndPooledTaps) {
  auto m = classifier("resnet18");
  torch::NoGradGuard ng;
  m->eval();
  auto x = torch::randn({3, 3, 32, 32});
  auto out = m->forward(x, {"layer2", "layer4"});
  EXPECT_EQ(m->feature_dim(), 512);
  EXPECT_EQ(out.features.sizes(), (std::vector<int64_t>{3, 512}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{3, 7}));
  EXPECT_EQ(out.taps.at("layer2").sizes(), (std::vector<int64_t>{3, 128}));
  EXPECT_EQ(out.taps.at("layer4").sizes(), (std::vector<int64_t>{3, 512}));
  EXPECT_TRUE(torch::allclose(out.taps.at("layer4"), out.features, 1e-5, 1e-6));
  // logits = features · Wᵀ + b
  auto p = m->named_parameters(true);
  EXPECT_TRUE(torch::allclose(out.logits, torch::addmm(p["head.bias"], out.features, p["head.weight"].t()), 1e-5, 1e-6));

  auto mb = classifier("lenet", "bottleneck", 4);
  mb->eval();
  EXPECT_EQ(mb->feature_dim(), 16);
  auto ob = mb->forward(torch::randn({2, 3, 28, 28}));
  EXPECT_EQ(ob.features.sizes(), (std::vector<int64_t>{2, 16}));
  EXPECT_TRUE((ob.features >= 0).all().item<bool>());  // after ReLU
  auto pb = mb->named_parameters(true);
  for (auto n : {"backbone.0.weight", "bottleneck.0.weight", "bottleneck.1.weight", "head.weight"})
    EXPECT_TRUE(pb.find(n)) << n;
  auto groups = mb->layer_groups();
  EXPECT_EQ(groups.back().name, "head");
  EXPECT_EQ(groups.front().prefixes.front(), "backbone.0.");
}

static std::map<std::string, bool> grad_by_group(models::ClassifierImpl& m) {
  std::map<std::string, bool> any;
  auto groups = m.layer_groups();
  for (auto& kv : m.named_parameters(true))
    for (auto& g : groups)
      if (models::in_group(kv.key(), g)) {
        auto it = any.find(g.name);
        bool rg = kv.value().requires_grad();
        if (it == any.end()) any[g.name] = rg;
        else EXPECT_EQ(it->second, rg) << "group " << g.name << " is mixed at " << kv.key();
      }
  return any;
}

TEST(Classifier, FreezeModesSetRequiresGrad) {
  auto m = classifier("resnet18");
  m->apply_freeze("backbone", "train");
  auto g = grad_by_group(*m);
  for (auto n : {"stem", "layer1", "layer2", "layer3", "layer4"}) EXPECT_FALSE(g.at(n)) << n;
  EXPECT_TRUE(g.at("head"));
  m->apply_freeze("top:2", "train");
  g = grad_by_group(*m);
  for (auto n : {"stem", "layer1", "layer2"}) EXPECT_FALSE(g.at(n)) << n;
  for (auto n : {"layer3", "layer4", "head"}) EXPECT_TRUE(g.at(n)) << n;
  m->apply_freeze("none", "frozen");
  g = grad_by_group(*m);
  for (auto& [n, rg] : g) EXPECT_TRUE(rg) << n;
  EXPECT_THROW(m->apply_freeze("top:6", "train"), core::UsageError);
  EXPECT_THROW(m->apply_freeze("top:x", "train"), core::UsageError);
  EXPECT_THROW(m->apply_freeze("all", "train"), core::UsageError);
  EXPECT_THROW(m->apply_freeze("none", "eval"), core::UsageError);
}

static std::map<std::string, torch::Tensor> bn_stats(torch::nn::Module& m) {
  std::map<std::string, torch::Tensor> s;
  for (auto& kv : m.named_buffers(true))
    if (kv.key().find("running_") != std::string::npos) s[kv.key()] = kv.value().clone();
  return s;
}

TEST(Classifier, FrozenBatchNormStaysInEvalAfterTrain) {
  auto m = classifier("resnet18", "bottleneck");
  m->apply_freeze("none", "frozen");
  m->train();  // the pitfall: a plain train() would switch every BN back to batch statistics
  EXPECT_TRUE(m->is_training());
  EXPECT_EQ(m->frozen_bn_count(), 20u);  // bn1 + 8 blocks × 2 + 3 downsample BNs
  auto before = bn_stats(*m);
  auto x = torch::randn({4, 3, 32, 32});
  m->forward(x);
  auto after = bn_stats(*m);
  for (auto& [k, v] : before) {
    bool backbone = k.rfind("backbone.", 0) == 0;
    EXPECT_EQ(torch::equal(v, after.at(k)), backbone) << k;  // the head's bottleneck BN still learns
  }
  // in train mode with frozen BN, the backbone equals its eval-mode self
  {
    torch::NoGradGuard ng;
    auto f_train = m->backbone()->forward(x);
    m->eval();
    auto f_eval = m->backbone()->forward(x);
    EXPECT_TRUE(torch::equal(f_train, f_eval));
  }
  // freeze top:1 with bn=train: BNs of frozen groups stay in eval, layer4's BNs use batch stats
  m->apply_freeze("top:1", "train");
  m->train();
  before = bn_stats(*m);
  m->forward(x);
  after = bn_stats(*m);
  for (auto& [k, v] : before) {
    bool frozen = k.rfind("backbone.", 0) == 0 && k.rfind("backbone.layer4.", 0) != 0;
    EXPECT_EQ(torch::equal(v, after.at(k)), frozen) << k;
  }
  // back to bn=train, none: all BN layers learn again
  m->apply_freeze("none", "train");
  EXPECT_EQ(m->frozen_bn_count(), 0u);
  m->train();
  before = bn_stats(*m);
  m->forward(x);
  after = bn_stats(*m);
  for (auto& [k, v] : before) EXPECT_FALSE(torch::equal(v, after.at(k))) << k;
}

// ---------------------------------------------------------------- parameter groups

TEST(ParamGroups, LayerDecayOverridesAndNoDecaySplit) {
  auto m = classifier("resnet18");
  models::ParamGroupOptions o;
  o.lr = 0.1;
  o.layer_decay = 0.5;
  o.weight_decay = 1e-3;
  o.lr_overrides = {{"layer3", 0.007}};
  auto groups = models::make_param_groups(*m, o);
  std::map<std::string, models::ParamGroup> by;
  for (auto& g : groups) by.emplace(g.name, g);
  // distance from the head: head 0, layer4 1, layer3 2 (overridden), layer2 3, layer1 4, stem 5
  std::map<std::string, int> dist{{"head", 0}, {"layer4", 1}, {"layer2", 3}, {"layer1", 4}, {"stem", 5}};
  for (auto& [n, d] : dist) {
    EXPECT_DOUBLE_EQ(by.at(n).lr, 0.1 * std::pow(0.5, d)) << n;
    EXPECT_DOUBLE_EQ(by.at(n + ".no_decay").lr, 0.1 * std::pow(0.5, d)) << n;
  }
  EXPECT_DOUBLE_EQ(by.at("layer3").lr, 0.007);
  EXPECT_DOUBLE_EQ(by.at("layer3.no_decay").lr, 0.007);
  // decayed groups hold only ≥2-d weights; no-decay groups hold biases and BN weights at wd 0
  int64_t total = 0;
  for (auto& g : groups) {
    bool nd = g.name.size() > 9 && g.name.substr(g.name.size() - 9) == ".no_decay";
    EXPECT_DOUBLE_EQ(g.weight_decay, nd ? 0.0 : 1e-3) << g.name;
    int64_t numel = 0;
    for (auto& p : g.params) {
      EXPECT_EQ(p.dim() <= 1, nd) << g.name;
      numel += p.numel();
    }
    EXPECT_EQ(numel, g.numel);
    total += numel;
  }
  int64_t all = 0;
  for (auto& p : m->parameters()) all += p.numel();
  EXPECT_EQ(total, all);
  EXPECT_EQ(groups.front().name, "stem");
  auto table = models::param_group_table(groups);
  EXPECT_NE(table.find("layer3.no_decay"), std::string::npos) << table;
  EXPECT_NE(table.find(std::to_string(all)), std::string::npos) << table;

  // no_decay_bn_bias off: one group per layer group, all at the weight decay
  o.no_decay_bn_bias = false;
  o.lr_overrides.clear();
  EXPECT_EQ(models::make_param_groups(*m, o).size(), 6u);
}

TEST(ParamGroups, OnlyTrainableParametersAndUnknownOverrideFails) {
  auto m = classifier("resnet18");
  m->apply_freeze("backbone", "train");
  models::ParamGroupOptions o;
  auto groups = models::make_param_groups(*m, o);
  ASSERT_EQ(groups.size(), 2u);  // head (weight) + head.no_decay (bias); empty groups dropped
  EXPECT_EQ(groups[0].name, "head");
  EXPECT_EQ(groups[0].numel + groups[1].numel, 512 * 7 + 7);
  m->apply_freeze("top:1", "train");
  EXPECT_EQ(models::make_param_groups(*m, o).size(), 4u);
  o.lr_overrides = {{"layer7", 1.0}};
  try {
    models::make_param_groups(*m, o);
    FAIL();
  } catch (const core::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("layer7"), std::string::npos);
  }
}

TEST(ParamGroups, ViTTokensAndEmbeddingsAreNotDecayed) {
  models::Classifier m(models::make_backbone(tiny_vit("vit_b_16")), models::HeadOptions{}, 3);
  auto groups = models::make_param_groups(*m, models::ParamGroupOptions{});
  for (auto& g : groups) {
    if (g.name == "embed.no_decay") {
      EXPECT_EQ(g.params.size(), 3u);  // class_token, pos_embedding, conv bias
    }
    if (g.name == "embed") {
      EXPECT_EQ(g.params.size(), 1u);  // conv_proj.weight
    }
  }
  EXPECT_TRUE(models::is_no_decay("backbone.cls_token", torch::zeros({1, 1, 4})));
  EXPECT_FALSE(models::is_no_decay("backbone.blocks.0.attn.qkv.weight", torch::zeros({12, 4})));
}

// ---------------------------------------------------------------- config

TEST(ModelOptions, ConfigKeysMapToOptions) {
  core::Schema s;
  models::declare_model_options(s);
  models::declare_param_group_options(s);
  auto c = core::parse_args(s, {"--model.backbone=vit_b_16", "--model.image_size=32", "--model.head=bottleneck",
                                "--model.bottleneck_dim=64", "--model.freeze=top:3", "--model.bn=frozen",
                                "--model.in_channels=4", "--model.pool=mean", "--optim.group_lr=layer4=1e-3, head=0.01",
                                "--optim.layer_decay=0.7"});
  auto m = models::model_options_from(c);
  EXPECT_EQ(m.backbone.name, "vit_b_16");
  EXPECT_EQ(m.backbone.image_size, 32);
  EXPECT_EQ(m.backbone.in_channels, 4);
  EXPECT_EQ(m.backbone.pool, "mean");
  EXPECT_EQ(m.head.type, "bottleneck");
  EXPECT_EQ(m.head.bottleneck_dim, 64);
  EXPECT_EQ(m.freeze, "top:3");
  EXPECT_EQ(m.bn, "frozen");
  auto p = models::param_group_options_from(c);
  EXPECT_DOUBLE_EQ(p.layer_decay, 0.7);
  EXPECT_EQ(p.lr_overrides, (std::map<std::string, double>{{"layer4", 1e-3}, {"head", 0.01}}));
  EXPECT_THROW(core::parse_args(s, {"--model.backbone=resnet5"}), core::UsageError);
  EXPECT_THROW(models::model_options_from(core::parse_args(s, {"--model.freeze=top"})), core::UsageError);
  EXPECT_THROW(models::parse_group_lr("layer4:1e-3"), core::UsageError);
  EXPECT_THROW(models::parse_group_lr("layer4=abc"), core::UsageError);
  EXPECT_THROW(models::parse_group_lr("head=1,head=2"), core::UsageError);
}

// ------------------------------------------------------------------ dropout (models/dropout.h)

// The keep rate is Bernoulli(1 - p): the kept count of n elements lies within 5 binomial standard
// deviations of n (1 - p); kept values are x / (1 - p) exactly, dropped ones 0.
TEST(Dropout, KeepRateScaleAndMeanFollowTheBernoulliFormula) {
  torch::manual_seed(3);
  const int64_t n = 1 << 20;
  for (double p : {0.1, 0.5, 0.9}) {
    auto x = torch::rand({n}) + 0.5;
    auto y = models::dropout(x, p, true);
    auto kept = y.ne(0);
    const double k = kept.sum().item<double>(), mean = n * (1 - p), sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(k, mean, 5 * sd) << "p " << p;
    EXPECT_TRUE(torch::allclose(y.masked_select(kept), x.masked_select(kept) / (1 - p), 1e-6, 1e-6)) << p;
    // E[y] = x: the mean of y / x is 1 within 5 standard errors (var of y/x = p / (1 - p))
    EXPECT_NEAR((y / x).mean().item<double>(), 1.0, 5 * std::sqrt(p / (1 - p) / n)) << p;
  }
  // neighbours are independent: P(both kept) = (1 - p)^2 within 5 standard errors
  auto m = models::dropout_mask(n, 0.5, 42).ne(0).to(torch::kDouble);
  auto both = (m.narrow(0, 0, n - 1) * m.narrow(0, 1, n - 1)).mean().item<double>();
  EXPECT_NEAR(both, 0.25, 5 * std::sqrt(0.25 * 0.75 / n));
}

TEST(Dropout, EvalIdentityEdgesGradientAndReproducibility) {
  auto x = torch::randn({64, 500});
  EXPECT_TRUE(models::dropout(x, 0.5, false).equal(x));  // eval mode
  EXPECT_TRUE(models::dropout(x, 0.0, true).equal(x));
  EXPECT_EQ(models::dropout(x, 1.0, true).abs().sum().item<double>(), 0.0);
  EXPECT_THROW(models::dropout_mask(10, 1.5, 0), core::UsageError);
  // the gradient is the same scaled mask as the forward
  auto xr = x.clone().requires_grad_(true);
  auto y = models::dropout(xr, 0.3, true);
  y.sum().backward();
  auto mask = y.detach() / x;
  EXPECT_TRUE(torch::allclose(xr.grad(), mask, 1e-5, 1e-5));
  // reproducible under the torch seed, different from call to call
  torch::manual_seed(7);
  auto a1 = models::dropout(x, 0.5, true), a2 = models::dropout(x, 0.5, true);
  torch::manual_seed(7);
  EXPECT_TRUE(models::dropout(x, 0.5, true).equal(a1));
  EXPECT_FALSE(a1.equal(a2));
  // the mask is a function of (seed, element) only: independent of the thread count
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  auto m1 = models::dropout_mask(1 << 18, 0.5, 99);
  torch::set_num_threads(std::max(2, threads));
  auto m2 = models::dropout_mask(1 << 18, 0.5, 99);
  torch::set_num_threads(threads);
  EXPECT_TRUE(m1.equal(m2));
  // a module in a Sequential, honouring train / eval
  torch::nn::Sequential seq(torch::nn::Linear(500, 8), models::Dropout(0.5));
  seq->eval();
  EXPECT_TRUE(seq->forward(x).equal(seq->forward(x)));
  seq->train();
  EXPECT_GT(seq->forward(x).eq(0).sum().item<int64_t>(), 64 * 8 / 4);
}

// feature_dropout drops whole channels: every N×C slice is all zero or all x / (1 - p).
TEST(Dropout, FeatureDropoutDropsWholeChannels) {
  torch::manual_seed(1);
  auto x = torch::rand({32, 50, 4, 4}) + 0.5;
  auto y = models::feature_dropout(x, 0.5, true);
  auto zero = y.eq(0).flatten(2).all(2), scaled = (y - 2 * x).abs().lt(1e-5).flatten(2).all(2);
  EXPECT_TRUE(zero.logical_xor(scaled).all().item<bool>());
  const double k = scaled.sum().item<double>(), n = 32 * 50;
  EXPECT_NEAR(k, n / 2, 5 * std::sqrt(n / 4));
  EXPECT_TRUE(models::feature_dropout(x, 0.5, false).equal(x));
}
