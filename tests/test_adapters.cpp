// Adapters (residual, bottleneck, LoRA): the model.adapters grammar and its errors, exact identity
// at initialisation on every backbone family (and a visible effect once the adapter is non-zero),
// parameter counts against closed-form formulas, gradients reaching only adapters + head when the
// backbone is frozen, LoRA values against a direct double-precision formula plus finite
// differences, LoRA merge, and adapter-only checkpoints (save / load / SHA-256 check / size).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "adapters/adapter.h"
#include "adapters/bottleneck.h"
#include "adapters/input_conv.h"
#include "adapters/lora.h"
#include "adapters/residual.h"
#include "core/fs.h"
#include "models/adapter_hook.h"
#include "models/backbones.h"
#include "models/classifier.h"
#include "models/param_groups.h"
#include "models/weights.h"
#include "support/testing.h"
#include "train/checkpoint.h"
#include "train/experiment.h"
#include "train/options.h"

using namespace shiftlab;
namespace fs = std::filesystem;

namespace {

models::BackboneOptions resnet(const std::string& name, bool small_stem = false) {
  models::BackboneOptions o;
  o.name = name;
  o.small_stem = small_stem;
  return o;
}

// a tiny ViT: 32 px, patch 8 (16 tokens + class token), dim 32, 2 blocks, 2 heads, MLP 64
models::BackboneOptions tiny_vit(bool timm) {
  models::BackboneOptions o;
  o.name = timm ? "vit_tiny_patch16_224" : "vit_b_16";
  o.image_size = 32;
  o.patch_size = 8;
  o.vit_dim = 32;
  o.vit_depth = 2;
  o.vit_heads = 2;
  o.vit_mlp_dim = 64;
  return o;
}

// no stochastic depth (EfficientNet's default is 0.2), so train-mode outputs are deterministic
models::BackboneOptions named(const std::string& name) {
  models::BackboneOptions o;
  o.name = name;
  o.drop_path = 0;
  return o;
}

adapters::AdapterOptions specs(const std::string& s) { return adapters::AdapterOptions{adapters::parse_adapter_specs(s)}; }

std::set<std::string> param_names(const torch::nn::Module& m) {
  std::set<std::string> s;
  for (auto& kv : m.named_parameters(true)) s.insert(kv.key());
  return s;
}

// every adapter-owned parameter filled with random values (so the adapter changes the function)
void randomise_adapters(torch::nn::Module& bb) {
  torch::NoGradGuard ng;
  auto params = bb.named_parameters(true);
  for (auto& n : models::adapter_parameter_names(bb)) params[n].normal_(0, 0.05);
}

std::string msg_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const core::UsageError& e) {
    return std::string("usage: ") + e.what();
  } catch (const core::Error& e) {
    return std::string("error: ") + e.what();
  }
  return "no error";
}

}  // namespace

// ---------------------------------------------------------------- grammar

TEST(AdapterSpec, ParsesAndRoundTrips) {
  auto v = adapters::parse_adapter_specs(
      " residual@layer3, layer4 ; bottleneck(dim=64)@layer4;lora( r=8 ,alpha=16, dropout=0)@blocks.*.attn.qkv;");
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].kind, "residual");
  EXPECT_EQ(v[0].patterns, (std::vector<std::string>{"layer3", "layer4"}));
  EXPECT_EQ(v[1].get_int("dim", 0, 1), 64);
  EXPECT_EQ(v[2].get_int("r", 0, 1), 8);
  EXPECT_DOUBLE_EQ(v[2].get_float("alpha", 0, 0, 1e6), 16.0);
  auto text = adapters::format_adapter_specs(v);
  EXPECT_EQ(text, "residual@layer3,layer4; bottleneck(dim=64)@layer4; lora(r=8,alpha=16,dropout=0)@blocks.*.attn.qkv");
  EXPECT_EQ(adapters::format_adapter_specs(adapters::parse_adapter_specs(text)), text);
  EXPECT_TRUE(adapters::parse_adapter_specs("  ").empty());
}

TEST(AdapterSpec, Globs) {
  EXPECT_TRUE(adapters::match_pattern("blocks.*.attn.qkv", "blocks.11.attn.qkv"));
  EXPECT_FALSE(adapters::match_pattern("blocks.*", "blocks.1.attn"));
  EXPECT_TRUE(adapters::match_pattern("blocks.**", "blocks.1.attn"));
  EXPECT_TRUE(adapters::match_pattern("layer*.*.conv*", "layer3.0.conv2"));
  EXPECT_FALSE(adapters::match_pattern("layer3", "layer3.0"));
  EXPECT_TRUE(adapters::match_pattern("**.conv1", "layer1.0.conv1"));
}

TEST(AdapterSpec, ErrorsNameTheCulprit) {
  auto err = [](const std::string& s) { return msg_of([&] { adapters::parse_adapter_specs(s); }); };
  EXPECT_NE(err("lora(r=8)").find("expected '@' and a target module pattern after ')' at column 10"), std::string::npos);
  EXPECT_NE(err("lorra@x").find("did you mean 'lora'"), std::string::npos) << err("lorra@x");
  EXPECT_NE(err("lora(rank=8)@x").find("takes no argument 'rank'"), std::string::npos);
  EXPECT_NE(err("lora(r)@x").find("'r' is not key=value"), std::string::npos);
  EXPECT_NE(err("lora(r=8@x").find("unbalanced"), std::string::npos);
  EXPECT_NE(err("lora(r=1,r=2)@x").find("given twice"), std::string::npos);
  EXPECT_NE(err("lora@").find("expected a target module pattern after '@' at column 6"), std::string::npos);
  EXPECT_NE(err("lora@a@b").find("more than one '@'"), std::string::npos);
  for (auto s : {"lora@x", "lorra@x", "lora(r=8@x"}) EXPECT_EQ(err(s).rfind("usage: model.adapters", 0), s == std::string("lora@x") ? std::string::npos : 0u) << s;
  // values are checked when applied; patterns against the backbone's module names
  auto bb = models::make_backbone(resnet("resnet18"));
  auto e1 = msg_of([&] { adapters::apply_adapters(*bb, specs("lora(r=0)@layer1.0.conv1")); });
  EXPECT_NE(e1.find("r must be an integer >= 1 (got '0')"), std::string::npos) << e1;
  auto e2 = msg_of([&] { adapters::apply_adapters(*bb, specs("lora(r=2)@layer3.*.conv9")); });
  EXPECT_EQ(e2.rfind("usage: ", 0), 0u) << e2;
  EXPECT_NE(e2.find("pattern 'layer3.*.conv9' matches no module"), std::string::npos) << e2;
  EXPECT_NE(e2.find("candidates: conv1, layer1.0.conv1"), std::string::npos) << e2;
  auto e3 = msg_of([&] { adapters::apply_adapters(*bb, specs("bottleneck@layer5")); });
  EXPECT_NE(e3.find("candidates: layer1, layer2, layer3, layer4"), std::string::npos) << e3;
  auto e4 = msg_of([&] { adapters::apply_adapters(*bb, specs("residual(mode=diagonal)@layer1")); });
  EXPECT_NE(e4.find("mode must be one of parallel, series"), std::string::npos) << e4;
  auto vit = models::make_backbone(tiny_vit(true));
  auto e5 = msg_of([&] { adapters::apply_adapters(*vit, specs("residual@blocks.0")); });
  EXPECT_NE(e5.find("need a backbone with k×k convolution stages"), std::string::npos) << e5;
  models::BackboneOptions lo;
  lo.name = "lenet";
  lo.in_channels = 1;
  auto lenet = models::make_backbone(lo);
  auto e6 = msg_of([&] { adapters::apply_adapters(*lenet, specs("lora@8")); });
  EXPECT_NE(e6.find("honours inserted modules"), std::string::npos) << e6;
  // LoRA takes no grouped (depthwise) convolution: such a pattern matches no candidate
  auto eff = models::make_backbone(named("efficientnet_b0"));
  auto e7 = msg_of([&] { adapters::apply_adapters(*eff, specs("lora@features.1.0.block.0.0")); });
  EXPECT_NE(e7.find("matches no module"), std::string::npos) << e7;
  // a depthwise conv takes a residual adapter in series only (EfficientNet's stages come from the backbone)
  auto e8 = msg_of([&] { adapters::apply_adapters(*eff, specs("residual@features.1")); });
  EXPECT_NE(e8.find("'features.1.0.block.0.0'"), std::string::npos) << e8;
  EXPECT_NE(e8.find("use mode=series"), std::string::npos) << e8;
  // the option itself (INI ';' is not a comment)
  core::Schema s;
  adapters::declare_adapter_options(s);
  core::Config c(s);
  c.set("model.adapters", "residual@layer3; lora(r=4)@layer4.*.conv1");
  EXPECT_EQ(adapters::adapter_options_from(c).specs.size(), 2u);
  c.set("model.adapters", "lora(r=4)layer4");
  EXPECT_THROW(adapters::adapter_options_from(c), core::UsageError);
}

// ---------------------------------------------------------------- identity at init

struct IdentityCase {
  std::string label;
  models::BackboneOptions bb;
  std::string spec;
  std::vector<std::string> expect_names;  // some adapter parameter names that must exist
};

TEST(Adapters, ExactIdentityAtInitAndAnEffectOnceTrained) {
  std::vector<IdentityCase> cases = {
      {"r18 residual", resnet("resnet18"), "residual@layer3,layer4",
       {"layer3.0.conv1.adapter.weight", "layer4.1.conv2.adapter.weight"}},
      {"r18 residual series", resnet("resnet18"), "residual(mode=series)@layer2.0", {"layer2.0.conv2.adapter.weight"}},
      {"r18 bottleneck", resnet("resnet18"), "bottleneck(dim=16)@layer4", {"layer4.adapter.down.weight", "layer4.adapter.up.bias"}},
      {"r18 lora", resnet("resnet18"), "lora(r=4,alpha=8)@layer3.*.conv*,layer2.0.downsample.0,conv1",
       {"layer3.0.conv1.lora_A", "layer3.1.conv2.lora_B", "layer2.0.downsample.0.lora_A", "conv1.lora_B"}},
      {"r18 small-stem residual", resnet("resnet18", true), "residual@conv1,layer1", {"conv1.adapter.weight"}},
      {"r18 small-stem lora all", resnet("resnet18", true), "lora(r=2)@**", {"layer4.1.conv2.lora_A"}},
      {"r18 all three", resnet("resnet18"), "residual@layer3; bottleneck(dim=8)@layer4; lora(r=2)@layer4.*.conv1",
       {"layer3.1.conv1.adapter.weight", "layer4.adapter.up.weight", "layer4.0.conv1.lora_A"}},
      {"r50 residual", resnet("resnet50"), "residual@layer4", {"layer4.0.conv2.adapter.weight"}},
      {"r50 bottleneck", resnet("resnet50"), "bottleneck(dim=8)@layer1,layer4", {"layer1.adapter.down.weight"}},
      {"r50 lora", resnet("resnet50"), "lora(r=2)@layer4.*.conv3", {"layer4.2.conv3.lora_A"}},
      {"vit timm bottleneck", tiny_vit(true), "bottleneck(dim=8)@blocks.*",
       {"blocks.0.attn.adapter.down.weight", "blocks.1.mlp.adapter.up.weight"}},
      {"vit timm lora", tiny_vit(true), "lora(r=4)@blocks.*.attn.qkv,blocks.*.mlp.fc1,patch_embed.proj",
       {"blocks.1.attn.qkv.lora_A", "blocks.0.mlp.fc1.lora_B", "patch_embed.proj.lora_A"}},
      {"vit tv bottleneck", tiny_vit(false), "bottleneck(dim=8,act=gelu)@encoder.layers.*.mlp",
       {"encoder.layers.encoder_layer_1.mlp.adapter.down.weight"}},
      {"vit tv lora", tiny_vit(false),
       "lora(r=4)@encoder.layers.*.self_attention.in_proj,encoder.layers.*.self_attention.out_proj,conv_proj",
       {"encoder.layers.encoder_layer_0.self_attention.in_proj.lora_A",
        "encoder.layers.encoder_layer_1.self_attention.out_proj.lora_B"}},
      {"vit tv bottleneck blocks", tiny_vit(false), "bottleneck(dim=4)@encoder.layers.encoder_layer_0",
       {"encoder.layers.encoder_layer_0.self_attention.adapter.down.weight"}},
      // LoRA on 1×1 convs (squeeze-excitation fc1 / fc2, projections, last conv), the stem, and Linears
      {"efficientnet lora", named("efficientnet_b0"),
       "lora(r=2)@features.*.*.block.*.fc*,features.*.*.block.3.0,features.8.0,features.0.0",
       {"features.1.0.block.1.fc1.lora_A", "features.6.3.block.2.fc2.lora_B", "features.4.2.block.3.0.lora_A",
        "features.8.0.lora_B", "features.0.0.lora_A"}},
      {"mobilenet_v3 lora", named("mobilenet_v3_small"), "lora(r=2)@classifier.0,features.*.block.0.0,features.*.block.*.fc2",
       {"classifier.0.lora_A", "features.2.block.0.0.lora_B", "features.1.block.1.fc2.lora_A"}},
      {"densenet lora", named("densenet121"),
       "lora(r=2)@features.denseblock4.*.conv1,features.denseblock1.denselayer2.conv2,features.transition3.conv",
       {"features.denseblock4.denselayer16.conv1.lora_A", "features.denseblock1.denselayer2.conv2.lora_B",
        "features.transition3.conv.lora_A"}},
  };
  torch::manual_seed(0);
  auto x = torch::randn({2, 3, 32, 32});
  for (auto& c : cases) {
    SCOPED_TRACE(c.label);
    auto bb = models::make_backbone(c.bb);
    auto before_names = param_names(*bb);
    auto before_sd = models::state_dict(*bb);
    bb->eval();
    torch::NoGradGuard ng;
    auto y0 = bb->forward(x);
    auto rep = adapters::apply_adapters(*bb, specs(c.spec));
    EXPECT_GT(rep.params, 0);
    auto y1 = bb->forward(x);
    EXPECT_TRUE(torch::equal(y0, y1)) << "max diff " << (y0 - y1).abs().max().item<double>();
    // train mode (batch statistics) too
    bb->train();
    EXPECT_TRUE(torch::equal(bb->forward(x), bb->forward(x)));
    bb->eval();
    // the base model's tensors keep their names (weights still load by name) and values
    auto after = param_names(*bb);
    for (auto& n : before_names) EXPECT_TRUE(after.count(n)) << "lost base parameter name " << n;
    auto after_sd = models::state_dict(*bb);
    for (auto& [k, v] : before_sd) ASSERT_TRUE(after_sd.count(k) && after_sd[k].is_same(v)) << k;
    for (auto& n : c.expect_names) EXPECT_TRUE(after.count(n)) << "missing adapter parameter " << n;
    auto ad = models::adapter_parameter_names(*bb);
    for (auto& n : ad) EXPECT_FALSE(before_names.count(n)) << n;
    EXPECT_EQ(ad.size() + before_names.size(), after.size());
    // wired into the forward: non-zero adapter parameters change the output
    randomise_adapters(*bb);
    auto y2 = bb->forward(x);
    EXPECT_GT((y2 - y0).abs().max().item<double>(), 1e-6);
  }
}

TEST(Adapters, MultiBandInputConvOnEfficientNetMobileNetDenseNet) {
  // zero_extra: bands 3, 2, 1 feed R, G, B; the extra bands are ignored at the start
  torch::manual_seed(5);
  auto x = torch::randn({2, 5, 32, 32});
  auto rgb = x.index_select(1, torch::tensor({3, 2, 1}));
  adapters::InputConvOptions ic;
  ic.bands = 5;
  ic.mode = "zero_extra";
  ic.rgb_bands = {3, 2, 1};
  for (auto name : {"efficientnet_b0", "mobilenet_v3_small", "densenet121"}) {
    SCOPED_TRACE(name);
    torch::manual_seed(6);
    auto bb = models::make_backbone(named(name));
    bb->eval();
    torch::NoGradGuard ng;
    auto want = bb->forward(rgb);
    auto front = adapters::adapt_input_conv(*bb, bb->in_conv_name(), ic);
    EXPECT_EQ(bb->in_channels(), 5);
    auto got = bb->forward(front.forward(x));
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
  }
}

// The adapters ask the backbone where they go (models::BackboneImpl::adapter_sites / adapter_blocks):
// every family's sites carry the width its output really has (the matching tap, measured here), and
// residual and bottleneck adapters attach to families other than ResNet as exact identities that
// change the function once their weights are non-zero.
TEST(Adapters, ResidualAndBottleneckAttachThroughTheBackboneInterface) {
  torch::manual_seed(3);
  auto x = torch::randn({2, 3, 32, 32});
  auto bott = [](int64_t C, int64_t d) { return 2 * C * d + d + C; };
  struct SiteCase {
    models::BackboneOptions bb;
    std::string site, tap;  // a site and the tap that sees its output
  };
  std::vector<SiteCase> sites = {{resnet("resnet18"), "layer2", "layer2"},
                                 {resnet("resnet50"), "layer3", "layer3"},
                                 {named("efficientnet_b0"), "features.3", "stage3"},
                                 {named("mobilenet_v3_small"), "features.3", "stage2"},
                                 {named("densenet121"), "features.denseblock2", "denseblock2"},
                                 {named("convnext_tiny"), "features.5", "stage3"},
                                 {tiny_vit(true), "blocks.1.mlp", "blocks.1"}};
  for (auto& c : sites) {
    SCOPED_TRACE(c.bb.name + " " + c.site);
    auto bb = models::make_backbone(c.bb);
    bb->eval();
    torch::NoGradGuard ng;
    auto tap = bb->forward_features(x, {c.tap}).at(c.tap);
    const int64_t width = tap.dim() == 3 ? tap.size(2) : tap.size(1);
    const auto all = bb->adapter_sites();
    auto it = std::find_if(all.begin(), all.end(), [&](const models::AdapterSite& s) { return s.name == c.site; });
    ASSERT_NE(it, all.end());
    EXPECT_EQ(it->channels, width);
    EXPECT_EQ(it->spatial, tap.dim() == 4);
    auto y0 = bb->forward(x);
    auto rep = adapters::apply_adapters(*bb, specs("bottleneck(dim=8)@" + c.site));
    EXPECT_EQ(rep.params, bott(width, 8));
    EXPECT_TRUE(param_names(*bb).count(c.site + ".adapter.down.weight"));
    EXPECT_TRUE(torch::equal(bb->forward(x), y0));
    EXPECT_TRUE(torch::equal(bb->forward_features(x, {c.tap}).at(c.tap), tap));
    // wired in: the site's output (its tap) changes once the adapter is non-zero (the final output
    // of a freshly initialised deep net in eval mode barely moves)
    randomise_adapters(*bb);
    EXPECT_GT((bb->forward_features(x, {c.tap}).at(c.tap) - tap).abs().max().item<double>(),
              1e-3 * tap.abs().max().item<double>());
  }
  // residual adapters on the k×k convs of the backbone's blocks: DenseNet's 3×3 conv2 of each layer
  // of denseblock1 (128 -> 32, parallel), the depthwise 3×3 convs of MobileNetV3 / EfficientNet
  // blocks (in series: C -> C)
  struct ResidualCase {
    models::BackboneOptions bb;
    std::string spec, tap;
    size_t convs;
    int64_t params;
  };
  std::vector<ResidualCase> residual = {
      {named("densenet121"), "residual@features.denseblock1", "denseblock1", 6, 6 * 128 * 32},
      {named("mobilenet_v3_small"), "residual(mode=series)@features.1", "stage1", 1, 16 * 16},
      {named("efficientnet_b0"), "residual(mode=series)@features.1.0", "stage1", 1, 32 * 32}};
  for (auto& c : residual) {
    SCOPED_TRACE(c.bb.name + " " + c.spec);
    auto bb = models::make_backbone(c.bb);
    bb->eval();
    torch::NoGradGuard ng;
    auto y0 = bb->forward(x);
    auto tap = bb->forward_features(x, {c.tap}).at(c.tap);
    auto rep = adapters::apply_adapters(*bb, specs(c.spec));
    ASSERT_EQ(rep.applied.size(), 1u);
    EXPECT_EQ(rep.applied[0].second.modules.size(), c.convs);
    EXPECT_EQ(rep.params, c.params);
    EXPECT_TRUE(torch::equal(bb->forward(x), y0));
    randomise_adapters(*bb);
    EXPECT_GT((bb->forward_features(x, {c.tap}).at(c.tap) - tap).abs().max().item<double>(),
              1e-3 * tap.abs().max().item<double>());
  }
  // a family without blocks or sites says so, naming itself
  models::BackboneOptions lo;
  lo.name = "lenet";
  lo.in_channels = 1;
  auto lenet = models::make_backbone(lo);
  auto e = msg_of([&] { adapters::apply_adapters(*lenet, specs("bottleneck@0")); });
  EXPECT_NE(e.find("bottleneck adapters need a backbone with adapter sites"), std::string::npos) << e;
  auto cn = models::make_backbone(named("convnext_tiny"));
  auto e2 = msg_of([&] { adapters::apply_adapters(*cn, specs("residual@features.1")); });
  EXPECT_NE(e2.find("residual adapters need a backbone with k×k convolution stages"), std::string::npos) << e2;
}

// ---------------------------------------------------------------- parameter counts

TEST(Adapters, ParameterCountsMatchFormulas) {
  auto count = [](models::BackboneOptions o, const std::string& s) {
    auto bb = models::make_backbone(o);
    auto rep = adapters::apply_adapters(*bb, specs(s));
    EXPECT_EQ(rep.params, adapters::adapter_numel(*bb)) << s;
    return rep.params;
  };
  // ResNet-18 stage s (1..4): planes p = 64·2^(s-1); block 0's conv1 takes p/2 (s>1) or 64
  auto r18_3x3 = [](int s, auto f) {  // sum of f(in, out) over the stage's 3×3 convs
    int64_t p = int64_t{64} << (s - 1), in0 = s == 1 ? 64 : p / 2;
    return f(in0, p) + f(p, p) + f(p, p) + f(p, p);
  };
  auto inout = [](int64_t i, int64_t o) { return i * o; };
  EXPECT_EQ(count(resnet("resnet18"), "residual@layer3,layer4"), r18_3x3(3, inout) + r18_3x3(4, inout));
  EXPECT_EQ(count(resnet("resnet18"), "residual(mode=series)@layer1"), 4 * 64 * 64);
  // ResNet-50: residual only on each bottleneck's 3×3 conv2 (planes → planes)
  EXPECT_EQ(count(resnet("resnet50"), "residual@layer4"), 3 * 512 * 512);
  // bottleneck: 2·C·d + d + C
  auto bott = [](int64_t C, int64_t d) { return 2 * C * d + d + C; };
  EXPECT_EQ(count(resnet("resnet18"), "bottleneck(dim=64)@layer4"), bott(512, 64));
  EXPECT_EQ(count(resnet("resnet50"), "bottleneck(dim=16)@layer1,layer3"), bott(256, 16) + bott(1024, 16));
  EXPECT_EQ(count(tiny_vit(true), "bottleneck(dim=8)@blocks.*"), 2 * 2 * bott(32, 8));
  EXPECT_EQ(count(tiny_vit(false), "bottleneck(dim=8)@encoder.layers.*.mlp"), 2 * bott(32, 8));
  // LoRA linear r·(in + out); conv r·(in·k·k + out)
  const int64_t D = 32, M = 64;
  EXPECT_EQ(count(tiny_vit(true), "lora(r=4)@blocks.*.attn.qkv"), 2 * 4 * (D + 3 * D));
  EXPECT_EQ(count(tiny_vit(false), "lora(r=4)@encoder.layers.*.self_attention.in_proj"), 2 * 4 * (D + 3 * D));
  EXPECT_EQ(count(tiny_vit(true), "lora(r=2)@blocks.1.mlp.fc1,blocks.1.mlp.fc2"), 2 * (D + M) + 2 * (M + D));
  EXPECT_EQ(count(tiny_vit(true), "lora(r=2)@patch_embed.proj"), 2 * (3 * 8 * 8 + D));
  auto lconv = [](int64_t i, int64_t o) { return 3 * (i * 9 + o); };
  EXPECT_EQ(count(resnet("resnet18"), "lora(r=3)@layer2.*.conv*"), r18_3x3(2, lconv));
  EXPECT_EQ(count(resnet("resnet18"), "lora(r=3)@layer2.0.downsample.0"), 3 * (64 + 128));
}

// ---------------------------------------------------------------- gradients and freezing

TEST(Adapters, FrozenBackboneGradientsReachOnlyAdaptersAndHead) {
  torch::manual_seed(1);
  auto bb = models::make_backbone(resnet("resnet18"));
  adapters::apply_adapters(*bb, specs("residual@layer3.1; bottleneck(dim=8)@layer4; lora(r=2)@layer4.*.conv1"));
  randomise_adapters(*bb);  // zero last projections would leave the first ones without gradient
  models::HeadOptions h;
  models::Classifier model(bb, h, 5);
  model->apply_freeze("backbone", "train");
  model->train();
  auto x = torch::randn({4, 3, 32, 32});
  auto y = torch::tensor({0, 1, 2, 3});
  torch::nn::functional::cross_entropy(model->forward(x).logits, y).backward();
  auto adapter = models::adapter_parameter_names(*bb);
  int64_t adapter_numel = 0;
  for (auto& kv : model->named_parameters(true)) {
    const std::string& n = kv.key();
    bool is_adapter = n.rfind("backbone.", 0) == 0 && adapter.count(n.substr(9));
    bool should_train = is_adapter || n.rfind("head.", 0) == 0;
    EXPECT_EQ(kv.value().requires_grad(), should_train) << n;
    if (should_train) {
      ASSERT_TRUE(kv.value().grad().defined()) << n;
      EXPECT_GT(kv.value().grad().abs().sum().item<double>(), 0) << n;
    } else {
      EXPECT_FALSE(kv.value().grad().defined()) << n;
    }
    if (is_adapter) adapter_numel += kv.value().numel();
  }
  EXPECT_GT(adapter_numel, 0);
  // optimizer groups: the adapters form "extra" at the head lr; no backbone group remains
  models::ParamGroupOptions po;
  po.lr = 0.1;
  po.layer_decay = 0.5;
  auto groups = models::make_param_groups(*model, po);
  int64_t extra = 0;
  for (auto& g : groups) {
    EXPECT_TRUE(g.name.rfind("extra", 0) == 0 || g.name.rfind("head", 0) == 0) << g.name;
    if (g.name.rfind("extra", 0) == 0) {
      extra += g.numel;
      EXPECT_DOUBLE_EQ(g.lr, 0.1);
    }
  }
  EXPECT_EQ(extra, adapter_numel);
  // top:1 trains layer4 as well; layer3's base weights stay frozen but its adapter trains
  model->apply_freeze("top:1", "train");
  auto params = model->named_parameters(true);
  EXPECT_FALSE(params["backbone.layer3.1.conv1.weight"].requires_grad());
  EXPECT_TRUE(params["backbone.layer3.1.conv1.adapter.weight"].requires_grad());
  EXPECT_TRUE(params["backbone.layer4.0.conv1.weight"].requires_grad());
  EXPECT_TRUE(params["backbone.layer4.0.conv1.lora_A"].requires_grad());
}

// ---------------------------------------------------------------- LoRA values, gradients, merge

TEST(Lora, LinearMatchesTheFormulaAndFiniteDifferences) {
  torch::manual_seed(2);
  auto base = torch::nn::Linear(5, 4);
  adapters::LoraOptions o;
  o.r = 3;
  o.alpha = 6;
  auto l = std::make_shared<adapters::LoraLinearImpl>(base.ptr(), o);
  l->to(torch::kDouble);
  {
    torch::NoGradGuard ng;
    l->lora_B.normal_();
  }
  auto x = torch::randn({7, 5}, torch::kDouble);
  auto W = base->weight, b = base->bias, A = l->lora_A, B = l->lora_B;
  auto ref = x.mm(W.t()) + b + 2.0 * x.mm(A.t()).mm(B.t());  // s = alpha / r = 2
  EXPECT_LT((l->forward(x) - ref).abs().max().item<double>(), 1e-12);
  auto res = testutil::gradcheck(
      [&](const std::vector<torch::Tensor>& in) {
        return torch::linear(in[0], W.detach(), b.detach()) + 2.0 * torch::linear(torch::linear(in[0], in[1]), in[2]);
      },
      {x.clone().requires_grad_(), A.detach().clone().requires_grad_(), B.detach().clone().requires_grad_()});
  EXPECT_GRADCHECK(res, 1e-6);
  // the module's own autograd gradients equal those of the formula
  auto xr = x.clone().requires_grad_();
  (l->forward(xr) * torch::arange(28, torch::kDouble).view({7, 4})).sum().backward();
  auto Ar = A.detach().clone().requires_grad_(), Br = B.detach().clone().requires_grad_();
  auto x2 = x.clone().requires_grad_();
  ((x2.mm(W.detach().t()) + b.detach() + 2.0 * x2.mm(Ar.t()).mm(Br.t())) * torch::arange(28, torch::kDouble).view({7, 4}))
      .sum()
      .backward();
  EXPECT_LT((xr.grad() - x2.grad()).abs().max().item<double>(), 1e-10);
  EXPECT_LT((l->lora_A.grad() - Ar.grad()).abs().max().item<double>(), 1e-10);
  EXPECT_LT((l->lora_B.grad() - Br.grad()).abs().max().item<double>(), 1e-10);
}

TEST(Lora, ConvGradcheckAndResidualBottleneckGradcheck) {
  torch::manual_seed(3);
  auto conv = torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 3, 3).stride(2).padding(1).bias(false));
  adapters::LoraOptions o;
  o.r = 2;
  o.alpha = 3;
  auto l = std::make_shared<adapters::LoraConv2dImpl>(conv.ptr(), o);
  EXPECT_DOUBLE_EQ(l->scale(), 1.5);
  l->to(torch::kDouble);
  {
    torch::NoGradGuard ng;
    l->lora_B.normal_();
  }
  auto x = torch::randn({1, 2, 5, 5}, torch::kDouble);
  auto res = testutil::gradcheck([&](const std::vector<torch::Tensor>& in) { return l->forward(in[0]); },
                                 {x.clone().requires_grad_()});
  EXPECT_GRADCHECK(res, 1e-6);
  // the conv LoRA equals a conv with the merged kernel W + s·(B A) (computed here independently)
  auto W = conv->weight.detach();
  auto merged = W + l->scale() * torch::einsum("or,rikl->oikl", {l->lora_B.detach(), l->lora_A.detach()});
  auto ref = torch::conv2d(x, merged, {}, 2, 1);
  EXPECT_LT((l->forward(x) - ref).abs().max().item<double>(), 1e-12);
  // residual (parallel) and bottleneck adapters: finite differences w.r.t. the input
  auto c2 = torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 3, 3).padding(1).bias(false));
  auto ra = std::make_shared<adapters::ResidualConvAdapterImpl>(c2.ptr(), false);
  ra->to(torch::kDouble);
  {
    torch::NoGradGuard ng;
    ra->adapter->weight.normal_();
  }
  auto r2 = testutil::gradcheck([&](const std::vector<torch::Tensor>& in) { return ra->forward(in[0]); },
                                {x.clone().requires_grad_()});
  EXPECT_GRADCHECK(r2, 1e-6);
  auto ref2 = torch::conv2d(x, c2->weight.detach(), {}, 1, 1) + torch::conv2d(x, ra->adapter->weight.detach());
  EXPECT_LT((ra->forward(x) - ref2).abs().max().item<double>(), 1e-12);
  auto ba = std::make_shared<adapters::BottleneckAdapterImpl>(4, 3, false, "gelu");
  ba->to(torch::kDouble);
  randomise_adapters(*ba);
  auto t = torch::randn({2, 3, 4}, torch::kDouble);
  auto r3 = testutil::gradcheck([&](const std::vector<torch::Tensor>& in) { return ba->forward(in[0]); },
                                {t.clone().requires_grad_()});
  EXPECT_GRADCHECK(r3, 1e-6);
  // the adapter with a bad padding for the parallel branch is refused
  auto c3 = torch::nn::Conv2d(torch::nn::Conv2dOptions(2, 3, 3).padding(0));
  EXPECT_THROW(adapters::ResidualConvAdapterImpl(c3.ptr(), false), core::UsageError);
}

TEST(Lora, MergeGivesTheSameOutputsAndThePlainNames) {
  struct Case {
    models::BackboneOptions bb;
    std::string spec;
  };
  std::vector<Case> cases = {
      {resnet("resnet18"), "lora(r=4,alpha=8)@conv1,layer1.*.conv*,layer2.0.downsample.0"},
      {tiny_vit(true), "lora(r=4,alpha=16)@blocks.*.attn.qkv,blocks.*.mlp.fc2,patch_embed.proj"},
      {tiny_vit(false), "lora(r=2)@encoder.layers.*.self_attention.in_proj,encoder.layers.*.mlp.0"},
      {named("efficientnet_b0"), "lora(r=2)@features.*.*.block.*.fc1,features.8.0"},
      {named("mobilenet_v3_large"), "lora(r=2)@classifier.0,features.1*.block.*.0"},
      {named("densenet121"), "lora(r=2)@features.denseblock3.*.conv1,features.transition*.conv"},
  };
  torch::manual_seed(4);
  auto x = torch::randn({2, 3, 32, 32});
  for (auto& c : cases) {
    SCOPED_TRACE(c.spec);
    auto bb = models::make_backbone(c.bb);
    auto names = param_names(*bb);
    adapters::apply_adapters(*bb, specs(c.spec));
    randomise_adapters(*bb);
    bb->eval();
    torch::NoGradGuard ng;
    auto y0 = bb->forward(x);
    auto n = adapters::merge_lora(*bb);
    EXPECT_GT(n, 0);
    EXPECT_EQ(param_names(*bb), names);  // the plain backbone again: loads into torchvision / timm by name
    EXPECT_TRUE(models::adapter_parameter_names(*bb).empty());
    auto y1 = bb->forward(x);
    EXPECT_TRUE(torch::allclose(y0, y1, 1e-4, 1e-5)) << "max diff " << (y0 - y1).abs().max().item<double>();
  }
}

// ---------------------------------------------------------------- adapter-only checkpoints

TEST(AdapterCheckpoint, SaveLoadRoundTripSmallFileAndShaCheck) {
  auto dir = testutil::fresh_dir("adapter_ckpt");
  const std::string base = dir + "/base.safetensors";
  torch::manual_seed(5);
  {
    auto bb = models::make_backbone(resnet("resnet18", true));
    models::TensorMap sd;
    for (auto& [k, v] : models::state_dict(*bb)) sd[k] = v.detach().contiguous();
    models::save_safetensors(base, sd);
  }
  core::Config cfg(train::experiment_schema());
  cfg.set("model.backbone", "resnet18");
  cfg.set("model.small_stem", "true");
  cfg.set("model.weights", base);
  cfg.set("model.freeze", "backbone");
  cfg.set("model.adapters", "lora(r=4)@layer4.*.conv1; bottleneck(dim=8)@layer3");
  std::string sha1;
  torch::manual_seed(6);
  auto m1 = train::build_model(cfg, 10, &sha1);
  EXPECT_EQ(sha1, core::sha256_file(base));
  {  // "training": adapters, head and a BatchNorm statistic change
    torch::NoGradGuard ng;
    randomise_adapters(*m1->backbone());
    auto p = m1->named_parameters(true);
    p["head.weight"].normal_();
    p["head.bias"].normal_();
    m1->named_buffers(true)["backbone.layer1.0.bn1.running_mean"].normal_();
  }
  m1->eval();
  torch::manual_seed(7);
  auto x = torch::randn({2, 3, 32, 32});
  torch::Tensor y1;
  {
    torch::NoGradGuard ng;
    y1 = m1->forward(x).logits;
  }
  train::CheckpointParts save{m1.ptr().get(), nullptr, nullptr, {{"step", 3}}};
  save.trainable_only = true;
  save.base_weights = base;
  save.base_sha256 = sha1;
  train::save_checkpoint(dir + "/small.pt", save);
  train::CheckpointParts full{m1.ptr().get(), nullptr, nullptr, {{"step", 3}}};
  train::save_checkpoint(dir + "/full.pt", full);
  auto small_size = fs::file_size(dir + "/small.pt"), full_size = fs::file_size(dir + "/full.pt");
  EXPECT_LT(small_size * 20, full_size) << small_size << " vs " << full_size;

  // a model rebuilt from the base weights (other seed: other adapter / head init) + the small file
  std::string sha2;
  torch::manual_seed(8);
  auto m2 = train::build_model(cfg, 10, &sha2);
  m2->eval();
  {
    torch::NoGradGuard ng;
    EXPECT_FALSE(torch::equal(m2->forward(x).logits, y1));
  }
  train::CheckpointParts load{m2.ptr().get(), nullptr, nullptr, {}};
  load.base_weights = base;
  load.base_sha256 = sha2;
  auto meta = train::load_checkpoint(dir + "/small.pt", load, false);
  EXPECT_EQ(meta.value("step", -1), 3);
  {
    torch::NoGradGuard ng;
    EXPECT_TRUE(torch::equal(m2->forward(x).logits, y1));
  }
  for (auto& [k, v] : models::state_dict(*m1)) EXPECT_TRUE(torch::equal(v, models::state_dict(*m2)[k])) << k;

  // the base weights changed: an error naming the checkpoint and the base file
  {
    auto w = models::load_safetensors(base);
    w["layer1.0.conv1.weight"].mul_(2);
    models::save_safetensors(base, w);
  }
  std::string sha3;
  auto m3 = train::build_model(cfg, 10, &sha3);
  train::CheckpointParts load3{m3.ptr().get(), nullptr, nullptr, {}};
  load3.base_weights = base;
  load3.base_sha256 = sha3;
  auto err = msg_of([&] { train::load_checkpoint(dir + "/small.pt", load3, false); });
  EXPECT_EQ(err.rfind("error: ", 0), 0u) << err;
  EXPECT_NE(err.find("small.pt"), std::string::npos) << err;
  EXPECT_NE(err.find("base.safetensors"), std::string::npos) << err;
  EXPECT_NE(err.find(sha1.substr(0, 12)), std::string::npos) << err;
  // a model whose trainable set differs (no adapters) is refused with the missing tensor's name
  cfg.set("model.adapters", "");
  cfg.set("model.freeze", "top:1");
  auto m4 = train::build_model(cfg, 10, &sha3);
  train::CheckpointParts load4{m4.ptr().get(), nullptr, nullptr, {}};
  load4.base_sha256 = sha1;
  auto err4 = msg_of([&] { train::load_checkpoint(dir + "/small.pt", load4, false); });
  EXPECT_NE(err4.find("is not in this model"), std::string::npos) << err4;
}

// ---------------------------------------------------------------- end to end (CLI)

TEST(AdapterCli, TrainAdapterOnlyCheckpointsEvalExportMerge) {
  auto dir = testutil::fresh_dir("adapter_cli");
  auto prep = testutil::run_cli({"data", "prepare", "uci-digits", "--data.root=" + dir + "/data"});
  ASSERT_EQ(prep.exit_code, 0) << prep.err;
  const std::string base = dir + "/base.safetensors";
  {
    torch::manual_seed(9);
    auto o = resnet("resnet18");
    o.in_channels = 1;
    auto bb = models::make_backbone(o);
    models::TensorMap sd;
    for (auto& [k, v] : models::state_dict(*bb)) sd[k] = v.detach().contiguous();
    models::save_safetensors(base, sd);
  }
  std::vector<std::string> args = {"train",
                                   "--run.root=" + dir + "/runs",
                                   "--run.name=a",
                                   "--run.threads=1",
                                   "--run.log_level=warn",
                                   "--data.source.dataset=uci-digits",
                                   "--data.source.root=" + dir + "/data",
                                   "--data.source.transform=resize(28), normalize(0.5, 0.5)",
                                   "--data.source.batch_size=16",
                                   "--data.source.workers=1",
                                   "--data.target.dataset=uci-digits",
                                   "--data.target.root=" + dir + "/data",
                                   "--data.target.split=val",
                                   "--data.target.transform=resize(28), normalize(0.5, 0.5)",
                                   "--data.target.batch_size=16",
                                   "--data.target.workers=1",
                                   "--model.backbone=resnet18",
                                   "--model.in_channels=1",
                                   "--model.weights=" + base,
                                   "--model.freeze=backbone",
                                   "--model.adapters=lora(r=2)@layer4.*.conv1; bottleneck(dim=8)@layer3",
                                   "--train.save=trainable",
                                   "--method=dann",
                                   "--train.steps=4",
                                   "--train.eval_every=2",
                                   "--eval.workers=1"};
  auto r = testutil::run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string run;
  for (auto& e : fs::directory_iterator(dir + "/runs/a")) run = e.path().string();
  auto log = core::read_file(run + "/log.txt");
  EXPECT_NE(log.find("adapters: lora(r=2)@layer4.*.conv1 -> 2 modules"), std::string::npos) << log;
  EXPECT_NE(log.find("trainable parameters: model "), std::string::npos);
  EXPECT_NE(log.find("; adapters "), std::string::npos);
  auto base_size = fs::file_size(base);
  // the files hold adapters + head + BatchNorm statistics + DANN's discriminator (1.6 M parameters,
  // most of the bytes) (+ its optimizer state in latest.pt), not the 11.2 M backbone parameters
  EXPECT_LT(fs::file_size(run + "/best.pt") * 5, base_size);
  EXPECT_LT(fs::file_size(run + "/latest.pt") * 3, base_size);
  auto ev = testutil::run_cli({"eval", "--run=" + run, "--run.threads=1", "--eval.workers=1"});
  ASSERT_EQ(ev.exit_code, 0) << ev.err;
  auto sum = nlohmann::json::parse(core::read_file(run + "/summary.json"));
  char acc[32];
  std::snprintf(acc, sizeof acc, "accuracy %.2f %%", sum["selected"]["target_test_acc"].get<double>());
  EXPECT_NE(ev.out.find(std::string("target-test (")), std::string::npos) << ev.out;
  EXPECT_NE(ev.out.find(acc), std::string::npos) << ev.out << " expected " << acc;
  // export with LoRA merged: base names (+ the bottleneck adapter's), no lora tensors, trained conv1
  auto out = dir + "/merged.safetensors";
  auto ex = testutil::run_cli({"weights", "export", run, out, "--merge_lora", "--checkpoint=latest"});
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  EXPECT_NE(ex.out.find("merged 2 LoRA modules"), std::string::npos) << ex.out;
  auto w = models::load_safetensors(out), b = models::load_safetensors(base);
  for (auto& [k, v] : w) EXPECT_EQ(k.find("lora"), std::string::npos) << k;
  for (auto& [k, v] : b) EXPECT_TRUE(w.count(k)) << k;
  EXPECT_TRUE(w.count("layer3.adapter.up.weight"));
  EXPECT_FALSE(torch::equal(w["layer4.0.conv1.weight"], b["layer4.0.conv1.weight"]));
  EXPECT_TRUE(torch::equal(w["layer4.0.conv2.weight"], b["layer4.0.conv2.weight"]));
  // --resume rebuilds from the base weights and loads latest.pt (trainable tensors + optimizer state)
  auto res = testutil::run_cli({"train", "--resume", run, "--run.threads=1"});
  EXPECT_EQ(res.exit_code, 0) << res.err;
  EXPECT_NE(core::read_file(run + "/log.txt").find("resumed '"), std::string::npos);
  // other base weights: evaluation refuses the adapter-only checkpoint, naming both files
  b["layer1.0.conv1.weight"].mul_(-1);
  models::save_safetensors(base, b);
  auto bad = testutil::run_cli({"eval", "--run=" + run, "--run.threads=1", "--eval.workers=1"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("best.pt"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("base.safetensors"), std::string::npos) << bad.err;
  // train.save = trainable without base weights (frozen random tensors) is refused up front
  auto noweights = args;
  noweights.erase(std::remove(noweights.begin(), noweights.end(), "--model.weights=" + base), noweights.end());
  auto nw = testutil::run_cli(noweights);
  EXPECT_EQ(nw.exit_code, 2) << nw.err;
  EXPECT_NE(nw.err.find("train.save = trainable"), std::string::npos) << nw.err;
}
