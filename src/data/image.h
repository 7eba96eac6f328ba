// Decoded images before they become tensors: an interleaved H×W×C buffer of uint8 (8-bit
// sources, values 0..255) or float32 (16-bit sources scaled to [0,1], float sources as stored).
// Transforms work on this type (geometric ones keep uint8, photometric ones switch to float);
// to_tensor() gives the C×H×W float32 tensor a Dataset yields (uint8 is divided by 255).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace shiftlab::data {

enum class PixelType { U8, F32 };

/// H×W×C interleaved pixels (row-major, band fastest). Exactly one of u8/f32 is used.
struct Image {
  int64_t h = 0, w = 0, c = 0;
  PixelType type = PixelType::U8;
  std::vector<uint8_t> u8;
  std::vector<float> f32;

  static Image make_u8(int64_t h, int64_t w, int64_t c);
  static Image make_f32(int64_t h, int64_t w, int64_t c);
  size_t numel() const { return static_cast<size_t>(h * w * c); }
  bool empty() const { return numel() == 0; }
  /// Value at (y, x, band) as float in the image's own scale (0..255 for U8).
  float at(int64_t y, int64_t x, int64_t b) const {
    size_t i = static_cast<size_t>((y * w + x) * c + b);
    return type == PixelType::U8 ? static_cast<float>(u8[i]) : f32[i];
  }
};

/// Float copy with U8 scaled to [0,1] (F32 is returned unchanged).
Image to_float(const Image& im);
/// C×H×W float32 tensor (U8 / 255).
torch::Tensor to_tensor(const Image& im);
/// Writes im as C×H×W float32 into dst (h·w·c floats): x·scale[b] + shift[b] where x is the
/// value in [0,1] units (U8 / 255); null scale/shift = identity. (to_tensor + a fused normalize.)
void write_chw(const Image& im, float* dst, const float* scale = nullptr, const float* shift = nullptr);
/// Image from a C×H×W or H×W float tensor (F32, values kept) — for tests and tools.
Image from_tensor_chw(const torch::Tensor& t);

/// Separable resampling to out_h×out_w with a triangle (bilinear) filter whose support widens
/// when downscaling (antialiasing; the same weights as PIL's BILINEAR resize and torch's
/// interpolate(mode="bilinear", align_corners=False, antialias=True)). U8 results are rounded.
/// The region (x0, y0, cw, ch) of the input is resampled (crop + resize in one pass); pass the
/// whole image for a plain resize.
Image resample_bilinear(const Image& im, double x0, double y0, double cw, double ch, int64_t out_h,
                        int64_t out_w);

}  // namespace shiftlab::data
