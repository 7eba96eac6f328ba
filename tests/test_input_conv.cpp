// Multi-band input-conv adaptation on a tiny network with a "conv1" (and on a nested conv): C = 3
// leaves every mode's function unchanged, mean on a grey image equals the original on the image
// repeated to RGB, zero_extra ignores extra bands, first_k / copy_mean formulas, repeat_scaled equal
// to timm's adapt_input_conv (run in Python), learned_1x1's init reproducing mean / zero_extra and
// its gradients (finite differences), options, errors.
#include <gtest/gtest.h>

#include "adapters/input_conv.h"
#include "core/error.h"
#include "models/safetensors.h"
#include "support/testing.h"

using namespace shiftlab;
using adapters::InputConvOptions;

namespace {

// conv1 (3->4, 3x3, bias) -> relu -> conv2 (4->2, 1x1) -> global mean: N × 2
struct TinyImpl : torch::nn::Module {
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  TinyImpl() {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).padding(1)));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 2, 1)));
  }
  torch::Tensor forward(torch::Tensor x) { return conv2(torch::relu(conv1(x))).mean({2, 3}); }
};
TORCH_MODULE(Tiny);

// the same seeded weights every time
Tiny make_tiny(torch::Dtype dt = torch::kFloat32) {
  torch::manual_seed(7);
  Tiny t;
  t->to(dt);
  return t;
}

torch::Tensor run(Tiny& net, torch::nn::AnyModule& pre, const torch::Tensor& x) {
  return net->forward(pre.forward(x));
}

InputConvOptions opts(int64_t c, const std::string& mode, std::vector<int64_t> rgb = {}) {
  InputConvOptions o;
  o.bands = c;
  o.mode = mode;
  o.rgb_bands = std::move(rgb);
  return o;
}

double max_abs(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(InputConv, ThreeBandsEveryModeReproducesTheNetworkExactly) {
  torch::manual_seed(1);
  auto x = torch::randn({2, 3, 6, 6});
  auto ref = make_tiny();
  auto want = ref->forward(x);
  for (const auto& mode : adapters::input_conv_modes()) {
    auto net = make_tiny();
    auto pre = adapters::adapt_input_conv(*net, "conv1", opts(3, mode));
    EXPECT_EQ(net->conv1->weight.size(1), 3) << mode;
    EXPECT_TRUE(torch::equal(run(net, pre, x), want)) << mode << ": max diff " << max_abs(run(net, pre, x), want);
  }
}

TEST(InputConv, MeanOnGreyEqualsOriginalOnRepeatedImage) {
  torch::manual_seed(2);
  auto grey = torch::randn({2, 1, 5, 5}, torch::kFloat64);
  auto ref = make_tiny(torch::kFloat64);
  auto want = ref->forward(grey.repeat({1, 3, 1, 1}));
  for (std::string mode : {"mean", "auto", "repeat_scaled", "learned_1x1"}) {  // all equal timm's sum rule at C=1
    auto net = make_tiny(torch::kFloat64);
    auto pre = adapters::adapt_input_conv(*net, "conv1", opts(1, mode));
    EXPECT_EQ(net->conv1->options.in_channels(), mode == "learned_1x1" ? 3 : 1) << mode;
    EXPECT_LT(max_abs(run(net, pre, grey), want), 1e-12) << mode;
  }
  // C bands: a band-constant image gives the original output on the grey value repeated to RGB
  auto net = make_tiny(torch::kFloat64);
  auto pre = adapters::adapt_input_conv(*net, "conv1", opts(5, "mean"));
  EXPECT_LT(max_abs(run(net, pre, grey.repeat({1, 5, 1, 1})), want), 1e-12);
}

TEST(InputConv, ZeroExtraIgnoresExtraBandsAndHonoursRgbBands) {
  torch::manual_seed(3);
  auto x = torch::randn({2, 6, 5, 5});
  auto ref = make_tiny();
  // Sentinel-2 style: bands 3, 2, 1 feed R, G, B
  auto rgb = x.index_select(1, torch::tensor({3, 2, 1}));
  auto want = ref->forward(rgb);
  auto net = make_tiny();
  auto pre = adapters::adapt_input_conv(*net, "conv1", opts(6, "zero_extra", {3, 2, 1}));
  EXPECT_EQ(net->conv1->weight.size(1), 6);
  auto got = run(net, pre, x);
  EXPECT_LT(max_abs(got, want), 1e-6);
  auto x2 = x.clone();
  for (int64_t b : {0, 4, 5}) x2.select(1, b).normal_();
  EXPECT_TRUE(torch::equal(run(net, pre, x2), got)) << "extra bands changed the output";
}

TEST(InputConv, CopyMeanAndFirstKFormulas) {
  auto ref = make_tiny();
  auto W = ref->conv1->weight.detach();
  auto mean = W.mean(1);
  auto net = make_tiny();
  adapters::adapt_input_conv(*net, "conv1", opts(5, "copy_mean", {4, 0, 2}));
  auto A = net->conv1->weight.detach();
  ASSERT_EQ(A.sizes(), (std::vector<int64_t>{4, 5, 3, 3}));
  EXPECT_TRUE(torch::equal(A.select(1, 4), W.select(1, 0)));
  EXPECT_TRUE(torch::equal(A.select(1, 0), W.select(1, 1)));
  EXPECT_TRUE(torch::equal(A.select(1, 2), W.select(1, 2)));
  EXPECT_TRUE(torch::equal(A.select(1, 1), mean));
  EXPECT_TRUE(torch::equal(A.select(1, 3), mean));
  EXPECT_TRUE(torch::equal(net->conv1->bias, ref->conv1->bias));

  // first_k, C = 2: W' = W[:, :2]; the network equals the original on [x0, x1, 0]
  torch::manual_seed(4);
  auto x = torch::randn({2, 2, 5, 5});
  auto net2 = make_tiny();
  auto pre = adapters::adapt_input_conv(*net2, "conv1", opts(2, "first_k"));
  EXPECT_TRUE(torch::equal(net2->conv1->weight, W.slice(1, 0, 2)));
  auto want = ref->forward(torch::cat({x, torch::zeros({2, 1, 5, 5})}, 1));
  EXPECT_LT(max_abs(run(net2, pre, x), want), 1e-6);
}

TEST(InputConv, RepeatScaledMatchesTimmAdaptInputConv) {
  auto d = testutil::fresh_dir("input_conv_timm");
  auto ref = make_tiny();
  auto W = ref->conv1->weight.detach().clone();
  models::save_safetensors(d + "/w.safetensors", {{"weight", W}});
  std::string out;
  ASSERT_EQ(testutil::run_shell("/usr/bin/python3 " + testutil::source_path("scripts/weights_fixtures.py") +
                                    " timm-adapt " + d + "/w.safetensors " + d + "/timm.safetensors 1,2,3,4,7,13",
                                &out),
            0)
      << out;
  auto timm = models::load_safetensors(d + "/timm.safetensors");
  for (int64_t c : {1, 2, 3, 4, 7, 13}) {
    auto got = adapters::adapt_input_conv_weight(W, opts(c, "repeat_scaled"));
    const auto& want = timm.at("c" + std::to_string(c));
    ASSERT_EQ(got.sizes(), want.sizes()) << c;
    EXPECT_TRUE(torch::equal(got, want)) << "C=" << c << " max diff " << max_abs(got, want);
    // the formula, in double: W'_j = W_(j mod 3) * 3 / C  (C = 1: sum of the RGB filters)
    for (int64_t j = 0; j < c; ++j) {
      auto f = c == 1 ? W.to(torch::kFloat64).sum(1) : W.select(1, j % 3).to(torch::kFloat64) * (3.0 / double(c));
      EXPECT_LT(max_abs(got.select(1, j).to(torch::kFloat64), f), 1e-6) << "C=" << c << " band " << j;
    }
  }
}

TEST(InputConv, LearnedOneByOneInitAndGradients) {
  torch::manual_seed(5);
  // C = 5 with rgb bands: the 1x1 picks bands -> equals zero_extra
  auto x = torch::randn({2, 5, 4, 4});
  auto za = make_tiny();
  auto zpre = adapters::adapt_input_conv(*za, "conv1", opts(5, "zero_extra", {3, 2, 1}));
  auto net = make_tiny();
  auto pre = adapters::adapt_input_conv(*net, "conv1", opts(5, "learned_1x1", {3, 2, 1}));
  EXPECT_EQ(net->conv1->weight.size(1), 3);
  auto mixer = pre.ptr()->as<torch::nn::Conv2dImpl>();
  ASSERT_NE(mixer, nullptr);
  EXPECT_EQ(mixer->weight.sizes(), (std::vector<int64_t>{3, 5, 1, 1}));
  EXPECT_LT(max_abs(run(net, pre, x), run(za, zpre, x)), 1e-6);
  // C = 2: every RGB channel starts as the average of the two bands
  auto net2 = make_tiny();
  auto pre2 = adapters::adapt_input_conv(*net2, "conv1", opts(2, "learned_1x1"));
  auto x2 = torch::randn({1, 2, 4, 4});
  auto avg = x2.mean(1, true).repeat({1, 3, 1, 1});
  EXPECT_LT(max_abs(run(net2, pre2, x2), make_tiny()->forward(avg)), 1e-6);

  // gradients reach the mixer and the conv; autograd equals finite differences (double)
  auto out = run(net, pre, x).sum();
  out.backward();
  ASSERT_TRUE(mixer->weight.grad().defined());
  EXPECT_GT(mixer->weight.grad().abs().sum().item<double>(), 0);
  EXPECT_TRUE(net->conv1->weight.grad().defined());
  auto dnet = make_tiny(torch::kFloat64);
  auto dpre = adapters::adapt_input_conv(*dnet, "conv1", opts(5, "learned_1x1"));
  auto dmix = dpre.ptr()->as<torch::nn::Conv2dImpl>();
  dmix->to(torch::kFloat64);
  auto xd = torch::randn({1, 5, 4, 4}, torch::kFloat64);
  auto res = testutil::gradcheck(
      [&](const std::vector<torch::Tensor>& in) {
        auto y = torch::conv2d(in[1], in[0]);  // the mixer with weight in[0]
        return dnet->forward(y);
      },
      {dmix->weight.detach().clone().requires_grad_(true), xd.clone().requires_grad_(true)});
  EXPECT_GRADCHECK(res, 1e-6);
}

TEST(InputConv, ParentHolderStaysValidAndNestedNamesWork) {
  // nested: "stem.0" inside a Sequential, the parent's holder sees the new weight
  torch::manual_seed(6);
  torch::nn::Sequential stem(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 2, 3)), torch::nn::ReLU());
  struct Outer : torch::nn::Module {
    torch::nn::Sequential stem;
    explicit Outer(torch::nn::Sequential s) : stem(register_module("stem", s)) {}
  } outer(stem);
  adapters::adapt_input_conv(outer, "stem.0", opts(4, "copy_mean"));
  auto y = outer.stem->forward(torch::randn({1, 4, 5, 5}));
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{1, 2, 3, 3}));
  bool found = false;
  for (auto& p : outer.named_parameters())
    if (p.key() == "stem.0.weight") {
      found = true;
      EXPECT_EQ(p.value().size(1), 4);
      EXPECT_TRUE(p.value().requires_grad());
    }
  EXPECT_TRUE(found);
  auto net = make_tiny();
  adapters::adapt_input_conv(*net, "conv1", opts(4, "repeat_scaled"));
  EXPECT_EQ(net->forward(torch::randn({1, 4, 5, 5})).sizes(), (std::vector<int64_t>{1, 2}));
}

TEST(InputConv, ErrorsNameTheProblem) {
  auto msg = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const core::Error& e) {
      return e.what();
    }
    return "NO ERROR";
  };
  auto net = make_tiny();
  EXPECT_NE(msg([&] { adapters::adapt_input_conv(*net, "conv9", opts(4, "copy_mean")); }).find("no submodule 'conv9'"),
            std::string::npos);
  EXPECT_NE(msg([&] { adapters::adapt_input_conv(*net, "conv2", opts(4, "copy_mean")); }).find("takes 4 input channels"),
            std::string::npos);
  EXPECT_THROW(adapters::adapt_input_conv(*net, "conv1", opts(2, "zero_extra")), core::UsageError);
  EXPECT_THROW(adapters::adapt_input_conv(*net, "conv1", opts(5, "first_k")), core::UsageError);
  EXPECT_THROW(adapters::adapt_input_conv(*net, "conv1", opts(4, "nonsense")), core::UsageError);
  EXPECT_NE(msg([&] { adapters::adapt_input_conv(*net, "conv1", opts(4, "copy_mean", {0, 1, 4})); })
                .find("model.rgb_bands: band 4 is outside 0..3"),
            std::string::npos);
  EXPECT_NE(msg([&] { adapters::adapt_input_conv(*net, "conv1", opts(4, "copy_mean", {0, 1, 1})); }).find("given twice"),
            std::string::npos);
  EXPECT_THROW(adapters::adapt_input_conv(*net, "conv1", opts(1, "mean", {0, 0, 0})), core::UsageError);
  EXPECT_EQ(net->conv1->weight.size(1), 3) << "a refused adaptation changed the conv";
}

TEST(InputConv, OptionsFromConfig) {
  core::Schema s;
  adapters::declare_input_conv_options(s);
  auto c = core::parse_args(s, {"--model.bands=13", "--model.band_mode=zero_extra", "--model.rgb_bands=3, 2,1"});
  auto o = adapters::input_conv_options_from(c);
  EXPECT_EQ(o.bands, 13);
  EXPECT_EQ(o.mode, "zero_extra");
  EXPECT_EQ(o.rgb_bands, (std::vector<int64_t>{3, 2, 1}));
  auto d = adapters::input_conv_options_from(core::parse_args(s, {}));
  EXPECT_EQ(d.bands, 0);  // 0 = the backbone's own input channels, no adaptation
  EXPECT_EQ(d.mode, "auto");
  EXPECT_TRUE(d.rgb_bands.empty());
  EXPECT_THROW(core::parse_args(s, {"--model.band_mode=avg"}), core::UsageError);
  EXPECT_THROW(adapters::input_conv_options_from(core::parse_args(s, {"--model.rgb_bands=r,g,b"})), core::UsageError);
}

TEST(InputConv, BandModesAreARegistryBehindTheOption) {
  core::Schema s;
  adapters::declare_input_conv_options(s);
  EXPECT_EQ(s.spec("model.band_mode").all_choices(), adapters::band_mode_registry().names());
  for (auto m : {"auto", "mean", "first_k", "copy_mean", "repeat_scaled", "zero_extra", "learned_1x1"})
    EXPECT_TRUE(adapters::band_mode_registry().has(m)) << m;
  EXPECT_EQ(adapters::input_conv_modes(), adapters::band_mode_registry().names());
  // auto stands for a weight mode by the band count; learned_1x1 is the front mode
  adapters::InputConvOptions o;
  o.mode = "auto";
  auto w = torch::randn({4, 3, 3, 3});
  for (int64_t C : {1, 2, 5}) {
    o.bands = C;
    auto named = o;
    named.mode = C == 1 ? "mean" : C == 2 ? "first_k" : "copy_mean";
    EXPECT_TRUE(torch::equal(adapters::adapt_input_conv_weight(w, o), adapters::adapt_input_conv_weight(w, named))) << C;
  }
  EXPECT_TRUE(static_cast<bool>(adapters::band_mode_registry().get("learned_1x1").front));
  EXPECT_FALSE(static_cast<bool>(adapters::band_mode_registry().get("learned_1x1").weight));
}
