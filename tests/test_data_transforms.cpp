// Transforms against torch / torchvision / PIL references on the same input, determinism under a
// seed, the chain grammar (round trip, errors).
#include "data/transforms.h"

#include "data_test_util.h"

using namespace shiftlab;
using namespace shiftlab::testutil;

namespace {

torch::Tensor run(const std::string& chain, const data::Image& in, uint64_t seed = 0) {
  return data::to_tensor(data::parse_transforms(chain).apply(in, seed)).to(torch::kFloat64);
}

data::Image input_x() { return data::from_tensor_chw(npy_tensor(data_fixtures("transforms") + "/x.npy")); }
torch::Tensor ref(const std::string& name) { return npy_tensor(data_fixtures("transforms") + "/" + name + ".npy"); }

data::Image u8_image(const std::string& file) {
  auto t = npy_tensor(data_fixtures("transforms") + "/" + file);  // H×W×C
  data::Image im = data::Image::make_u8(t.size(0), t.size(1), t.size(2));
  auto c = t.contiguous();
  for (size_t i = 0; i < im.u8.size(); ++i) im.u8[i] = static_cast<uint8_t>(c.data_ptr<double>()[i]);
  return im;
}

void expect_close(const torch::Tensor& a, const torch::Tensor& b, double tol, const std::string& what) {
  ASSERT_EQ(a.sizes().vec(), b.sizes().vec()) << what;
  EXPECT_LE(max_abs_diff(a, b), tol) << what;
}

}  // namespace

TEST(DataTransforms, ResizeEqualsTorchAntialiasedBilinear) {
  auto x = input_x();
  expect_close(run("resize(17, 23)", x), ref("resize_down"), 2e-5, "down");
  expect_close(run("resize(61, 80)", x), ref("resize_up"), 2e-5, "up");
  expect_close(run("resize(50, 20)", x), ref("resize_mixed"), 2e-5, "mixed");
}

TEST(DataTransforms, ResizeUint8EqualsPil) {
  auto u8 = u8_image("u8.npy");
  auto pil = npy_tensor(data_fixtures("transforms") + "/u8_resize_pil.npy").permute({2, 0, 1}) / 255.0;
  expect_close(run("resize(18, 24)", u8), pil, 1.0 / 255 + 1e-6, "resize(18, 24) vs PIL");
  auto pil_short = npy_tensor(data_fixtures("transforms") + "/u8_resize_short_pil.npy").permute({2, 0, 1}) / 255.0;
  expect_close(run("resize(30)", u8), pil_short, 1.0 / 255 + 1e-6, "resize(30) shorter side vs torchvision+PIL");
}

TEST(DataTransforms, CropFlipPadNormalizeGreyEqualTorchvision) {
  auto x = input_x();
  expect_close(run("normalize(imagenet)", x), ref("normalize"), 1e-5, "normalize");
  expect_close(run("normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])", x), ref("normalize"), 1e-5, "normalize list");
  expect_close(run("center_crop(20, 31)", x), ref("center_crop_odd"), 0, "center_crop odd");
  expect_close(run("center_crop(41, 60)", x), ref("center_crop_big"), 0, "center_crop larger than image");
  expect_close(run("hflip(1)", x), ref("hflip"), 0, "hflip");
  expect_close(run("vflip(1)", x), ref("vflip"), 0, "vflip");
  expect_close(run("pad([1, 2, 3, 4], fill=0.25)", x), ref("pad"), 0, "pad");
  expect_close(run("grayscale", x), ref("grayscale"), 1e-5, "grayscale");
}

TEST(DataTransforms, ColourOpsEqualTorchvision) {
  auto x = input_x();
  expect_close(run("adjust_color(brightness=1.3)", x), ref("brightness"), 1e-5, "brightness");
  expect_close(run("adjust_color(contrast=0.6)", x), ref("contrast"), 5e-5, "contrast");
  expect_close(run("adjust_color(saturation=1.7)", x), ref("saturation"), 5e-5, "saturation");
  expect_close(run("adjust_color(hue=0.2)", x), ref("hue"), 1e-4, "hue");
  expect_close(run("color_jitter(brightness=0)", x), data::to_tensor(x).to(torch::kFloat64), 0, "no jitter = identity");
}

TEST(DataTransforms, ResizedCropRegionEqualsTorch) {
  // the crop+resize pass random_resized_crop uses, on a fixed box
  auto x = input_x();
  auto out = data::resample_bilinear(x, 7, 5, 30, 24, 16, 16);
  expect_close(data::to_tensor(out).to(torch::kFloat64), ref("resized_crop"), 2e-5, "resized crop");
}

TEST(DataTransforms, RandomOpsDeterministicUnderSeed) {
  auto x = input_x();
  for (std::string chain : {"random_resized_crop(16)", "hflip", "rotation(30)", "random_crop(30, padding=4)",
                            "color_jitter(0.4, 0.4, 0.4, 0.1)", "rand_augment(2, 9)",
                            "random_resized_crop(20, scale=[0.2, 1]), hflip, color_jitter(0.2, 0.2), normalize(0.5, 0.5)"}) {
    auto a = run(chain, x, 1234), b = run(chain, x, 1234);
    EXPECT_TRUE(torch::equal(a, b)) << chain;
    bool differs = false;
    for (uint64_t s = 1; s < 8 && !differs; ++s) differs = !torch::equal(a, run(chain, x, 1234 + s));
    EXPECT_TRUE(differs) << chain << " ignores its seed";
  }
}

TEST(DataTransforms, RotationByZeroIsIdentityAndFillsCorners) {
  auto x = input_x();
  expect_close(run("rotation([0, 0])", x), data::to_tensor(x).to(torch::kFloat64), 1e-6, "rotation 0");
  auto r = run("rotation([45, 45], fill=0)", x);
  EXPECT_EQ(r[0][0][0].item<double>(), 0.0);  // corner comes from outside the image
}

TEST(DataTransforms, BandsGreyToRgbAndShapes) {
  data::Image g = data::Image::make_u8(4, 5, 1);
  for (size_t i = 0; i < g.u8.size(); ++i) g.u8[i] = static_cast<uint8_t>(i * 3);
  auto rgb = run("grey_to_rgb", g);
  ASSERT_EQ(rgb.size(0), 3);
  EXPECT_TRUE(torch::equal(rgb[0], rgb[2]));
  data::Image m = data::Image::make_f32(3, 3, 5);
  for (size_t i = 0; i < m.f32.size(); ++i) m.f32[i] = static_cast<float>(i);
  auto sel = run("bands(4, 0, 2)", m);
  auto full = data::to_tensor(m).to(torch::kFloat64);
  EXPECT_TRUE(torch::equal(sel[0], full[4]));
  EXPECT_TRUE(torch::equal(sel[1], full[0]));
  EXPECT_TRUE(torch::equal(sel[2], full[2]));
  EXPECT_THROW(run("bands(7)", m), core::Error);
  EXPECT_THROW(run("normalize(mean=[0.1, 0.2], std=[1, 1])", m), core::Error);
}

TEST(DataTransforms, RandomResizedCropOutputAndHint) {
  auto x = input_x();
  auto out = run("random_resized_crop(12, scale=[0.5, 1], ratio=[1, 1])", x, 3);
  EXPECT_EQ(out.sizes().vec(), std::vector<int64_t>({3, 12, 12}));
  auto chain = data::parse_transforms("random_resized_crop(224), hflip");
  EXPECT_GT(chain.decode_hint().min_short_side, 224);
  EXPECT_EQ(data::parse_transforms("resize(32), center_crop(28)").decode_hint().min_short_side, 32);
  EXPECT_EQ(data::parse_transforms("resize(32), center_crop(28), grey_to_rgb, hflip").cacheable_prefix(), 3u);
}

TEST(DataTransforms, GrammarRoundTripAndErrors) {
  for (std::string s : {"resize(32), center_crop(28), grey_to_rgb, normalize(0.5, 0.5)",
                        "random_resized_crop(224, scale=[0.08, 1], ratio=[0.75, 1.333333333]), hflip, normalize(imagenet)",
                        "pad(4, fill=0.5), random_crop(32), rotation(10), color_jitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)",
                        "bands(3, 2, 1), normalize(mean=[0.1, 0.2, 0.3], std=[1, 2, 3]), vflip(0.3)"}) {
    auto spec = data::parse_transforms(s).spec();
    EXPECT_EQ(data::parse_transforms(spec).spec(), spec) << s;
  }
  EXPECT_EQ(data::parse_transforms("").ops().size(), 0u);
  auto expect_usage = [](const std::string& s, const std::string& needle) {
    try {
      data::parse_transforms(s);
      ADD_FAILURE() << s << " parsed";
    } catch (const core::UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_usage("resize(32), centre_crop(28)", "centre_crop");
  expect_usage("resize(32", "unbalanced");
  expect_usage("resize(0)", "resize");
  expect_usage("normalize(foo)", "foo");
  expect_usage("hflip(p=2)", "hflip");
  expect_usage("random_resized_crop(224, scal=[0.1, 1])", "scal");
}
