// Decoders against PIL / numpy references on fixtures generated at test time, multi-band TIFF
// round trips from an independent writer, and corrupt files -> errors naming the file.
#include "data/decode.h"

#include "data_test_util.h"

using namespace shiftlab;
using namespace shiftlab::testutil;

namespace {

/// Decoded image as H×W×C float64 in the decoder's scale; 16-bit (F32 in [0,1]) back to 0..65535.
torch::Tensor as_hwc(const data::Image& im, double scale = 1.0) {
  auto t = torch::empty({im.h, im.w, im.c}, torch::kFloat64);
  double* p = t.data_ptr<double>();
  for (size_t i = 0; i < im.numel(); ++i)
    p[i] = im.type == data::PixelType::U8 ? im.u8[i] : static_cast<double>(im.f32[i]) * scale;
  return t;
}

void expect_matches(const std::string& name, double scale, double tol, data::PixelType type) {
  std::string dir = data_fixtures("images");
  data::Image im = data::decode_file(dir + "/" + name);
  auto ref = npy_tensor(dir + "/" + name + ".ref.npy");
  ASSERT_EQ(im.type, type) << name;
  ASSERT_EQ(std::vector<int64_t>({im.h, im.w, im.c}), ref.sizes().vec()) << name;
  EXPECT_LE(max_abs_diff(as_hwc(im, scale), ref), tol) << name;
}

}  // namespace

TEST(DataDecode, Png8BitGreyRgbRgbaEqualPil) {
  expect_matches("gray8.png", 1, 0, data::PixelType::U8);
  expect_matches("rgb8.png", 1, 0, data::PixelType::U8);
  expect_matches("rgba8.png", 1, 0, data::PixelType::U8);
}

TEST(DataDecode, Png16BitEqualsReference) {
  expect_matches("gray16.png", 65535.0, 1e-2, data::PixelType::F32);
  expect_matches("rgb16.png", 65535.0, 1e-2, data::PixelType::F32);
}

TEST(DataDecode, JpegEqualsPil) {
  expect_matches("rgb.jpg", 1, 0, data::PixelType::U8);
  expect_matches("gray.jpg", 1, 0, data::PixelType::U8);
}

TEST(DataDecode, JpegDctScalingEqualsPilDraft) {
  std::string dir = data_fixtures("images");
  data::DecodeHint hint;
  hint.min_short_side = 40;  // 96×128 -> 48×64 is the largest reduction keeping >= 40
  data::Image im = data::decode_file(dir + "/rgb.jpg", hint);
  auto ref = npy_tensor(dir + "/rgb_half.jpg.ref.npy");
  ASSERT_EQ(std::vector<int64_t>({im.h, im.w, im.c}), ref.sizes().vec());
  EXPECT_LE(max_abs_diff(as_hwc(im), ref), 0);
}

TEST(DataDecode, TiffRgbAndMultiBandRoundTrip) {
  expect_matches("rgb8.tif", 1, 0, data::PixelType::U8);
  expect_matches("bands4_u8.tif", 1, 0, data::PixelType::U8);
  expect_matches("bands5_u16.tif", 65535.0, 1e-2, data::PixelType::F32);
  expect_matches("bands7_f32_planar.tif", 1, 0, data::PixelType::F32);
}

TEST(DataDecode, CorruptFilesNameTheFile) {
  std::string dir = data_fixtures("images");
  for (std::string f : {"truncated.jpg", "truncated.png", "truncated.tif", "garbage.jpg", "empty.png", "missing.png"}) {
    std::string path = dir + "/" + f;
    try {
      data::decode_file(path);
      ADD_FAILURE() << f << " decoded without error";
    } catch (const core::Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

TEST(DataDecode, WriteJpegThenDecode) {
  std::string dir = fresh_dir("data_decode_write");
  data::Image im = data::Image::make_u8(16, 24, 3);
  for (size_t i = 0; i < im.u8.size(); ++i) im.u8[i] = static_cast<uint8_t>((i * 7) % 200 + 20);
  data::write_jpeg(dir + "/a.jpg", im, 100);
  data::Image back = data::decode_file(dir + "/a.jpg");
  ASSERT_EQ(back.h, 16);
  ASSERT_EQ(back.w, 24);
  double err = 0;
  for (size_t i = 0; i < im.u8.size(); ++i) err += std::abs(double(im.u8[i]) - double(back.u8[i]));
  EXPECT_LT(err / double(im.u8.size()), 30.0);  // lossy, but the same picture
}
