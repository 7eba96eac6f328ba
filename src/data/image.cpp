#include "data/image.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/error.h"

namespace shiftlab::data {

Image Image::make_u8(int64_t h, int64_t w, int64_t c) {
  Image im;
  im.h = h, im.w = w, im.c = c, im.type = PixelType::U8;
  im.u8.assign(static_cast<size_t>(h * w * c), 0);
  return im;
}

Image Image::make_f32(int64_t h, int64_t w, int64_t c) {
  Image im;
  im.h = h, im.w = w, im.c = c, im.type = PixelType::F32;
  im.f32.assign(static_cast<size_t>(h * w * c), 0.f);
  return im;
}

Image to_float(const Image& im) {
  if (im.type == PixelType::F32) return im;
  Image out = Image::make_f32(im.h, im.w, im.c);
  const float k = 1.f / 255.f;
  for (size_t i = 0; i < im.u8.size(); ++i) out.f32[i] = static_cast<float>(im.u8[i]) * k;
  return out;
}

void write_chw(const Image& im, float* o, const float* scale, const float* shift) {
  const int64_t hw = im.h * im.w, c = im.c;
  for (int64_t b = 0; b < c; ++b) {
    float k = scale ? scale[b] : 1.f, a = shift ? shift[b] : 0.f;
    float* ob = o + b * hw;
    if (im.type == PixelType::U8) {
      k *= 1.f / 255.f;
      const uint8_t* p = im.u8.data() + b;
      if (c == 1)
        for (int64_t i = 0; i < hw; ++i) ob[i] = static_cast<float>(p[i]) * k + a;
      else
        for (int64_t i = 0; i < hw; ++i) ob[i] = static_cast<float>(p[i * c]) * k + a;
    } else {
      const float* p = im.f32.data() + b;
      for (int64_t i = 0; i < hw; ++i) ob[i] = p[i * c] * k + a;
    }
  }
}

torch::Tensor to_tensor(const Image& im) {
  auto t = torch::empty({im.c, im.h, im.w}, torch::kFloat32);
  write_chw(im, t.data_ptr<float>());
  return t;
}

Image from_tensor_chw(const torch::Tensor& t0) {
  auto t = t0.dim() == 2 ? t0.unsqueeze(0) : t0;
  core::check(t.dim() == 3, "from_tensor_chw: expected a C×H×W tensor, got ", t.dim(), " dims");
  t = t.to(torch::kFloat32).permute({1, 2, 0}).contiguous();
  Image im = Image::make_f32(t.size(0), t.size(1), t.size(2));
  std::memcpy(im.f32.data(), t.data_ptr<float>(), im.f32.size() * sizeof(float));
  return im;
}

namespace {

/// Contributions of input pixels to each output pixel along one axis (PIL's precompute_coeffs).
struct Coeffs {
  std::vector<int64_t> start, count;
  std::vector<float> w;  // out × ksize
  int64_t ksize = 0;
};

Coeffs make_coeffs(int64_t in_size, double x0, double len, int64_t out_size) {
  Coeffs c;
  double scale = len / static_cast<double>(out_size);
  double fscale = std::max(scale, 1.0);
  double support = 1.0 * fscale;  // bilinear filter support 1
  c.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  c.start.resize(static_cast<size_t>(out_size));
  c.count.resize(static_cast<size_t>(out_size));
  c.w.assign(static_cast<size_t>(out_size * c.ksize), 0.f);
  double ss = 1.0 / fscale;
  const int64_t lo = std::clamp<int64_t>(static_cast<int64_t>(std::floor(x0)), 0, in_size);
  const int64_t hi = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(x0 + len)), lo + 1, in_size);
  for (int64_t i = 0; i < out_size; ++i) {
    double center = x0 + (static_cast<double>(i) + 0.5) * scale;
    // the filter is clamped to the region (as crop-then-resize in torchvision / PIL)
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);
    if (center - support + 0.5 < 0) xmin = 0;
    xmin = std::max<int64_t>(xmin, lo);
    int64_t xmax = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), hi);
    int64_t n = std::max<int64_t>(xmax - xmin, 0);
    n = std::min(n, c.ksize);
    double total = 0;
    std::vector<double> ww(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      double x = (static_cast<double>(j + xmin) - center + 0.5) * ss;
      double v = 1.0 - std::fabs(x);
      v = v > 0 ? v : 0;
      ww[static_cast<size_t>(j)] = v;
      total += v;
    }
    if (total == 0 && n == 0) {  // region outside the image: take the nearest edge pixel
      xmin = std::clamp<int64_t>(static_cast<int64_t>(center), 0, in_size - 1);
      n = 1;
      ww.assign(1, 1.0);
      total = 1;
    }
    for (int64_t j = 0; j < n; ++j)
      c.w[static_cast<size_t>(i * c.ksize + j)] =
          static_cast<float>(total != 0 ? ww[static_cast<size_t>(j)] / total : 0);
    c.start[static_cast<size_t>(i)] = xmin;
    c.count[static_cast<size_t>(i)] = n;
  }
  return c;
}

/// One output row of the horizontal pass; C > 0 fixes the band count at compile time.
template <typename T, int C>
void horizontal_row(const T* row, int64_t ch, const Coeffs& cx, int64_t out_w, float* trow) {
  constexpr int kMax = 8;
  const int64_t nb = C > 0 ? C : ch;
  for (int64_t x = 0; x < out_w; ++x) {
    const float* w = cx.w.data() + x * cx.ksize;
    const int64_t s = cx.start[static_cast<size_t>(x)], n = cx.count[static_cast<size_t>(x)];
    if (C > 0 || nb <= kMax) {
      float acc[kMax] = {0, 0, 0, 0, 0, 0, 0, 0};
      const T* p = row + s * nb;
      for (int64_t j = 0; j < n; ++j, p += nb)
        for (int64_t b = 0; b < (C > 0 ? C : nb); ++b) acc[b] += w[j] * static_cast<float>(p[b]);
      for (int64_t b = 0; b < nb; ++b) trow[x * nb + b] = acc[b];
    } else {
      for (int64_t b = 0; b < nb; ++b) {
        float a = 0;
        for (int64_t j = 0; j < n; ++j) a += w[j] * static_cast<float>(row[(s + j) * nb + b]);
        trow[x * nb + b] = a;
      }
    }
  }
}

template <typename T, int C>
void resample_impl(const T* src, int64_t in_h, int64_t in_w, int64_t ch, const Coeffs& cx,
                   const Coeffs& cy, int64_t out_h, int64_t out_w, float* dst) {
  // rows of the input actually used by the vertical pass
  int64_t r0 = in_h, r1 = 0;
  for (int64_t i = 0; i < out_h; ++i) {
    r0 = std::min(r0, cy.start[static_cast<size_t>(i)]);
    r1 = std::max(r1, cy.start[static_cast<size_t>(i)] + cy.count[static_cast<size_t>(i)]);
  }
  if (r1 <= r0) r1 = r0 + 1;
  std::vector<float> tmp(static_cast<size_t>((r1 - r0) * out_w * ch));
  for (int64_t y = r0; y < r1; ++y) {
    const T* row = src + y * in_w * ch;
    float* trow = tmp.data() + (y - r0) * out_w * ch;
    horizontal_row<T, C>(row, ch, cx, out_w, trow);
  }
  const int64_t rowlen = out_w * ch;
  for (int64_t y = 0; y < out_h; ++y) {
    const float* w = cy.w.data() + y * cy.ksize;
    int64_t s = cy.start[static_cast<size_t>(y)], n = cy.count[static_cast<size_t>(y)];
    float* orow = dst + y * rowlen;
    std::fill(orow, orow + rowlen, 0.f);
    for (int64_t j = 0; j < n; ++j) {
      const float* trow = tmp.data() + (s + j - r0) * rowlen;
      const float wj = w[j];
      for (int64_t k = 0; k < rowlen; ++k) orow[k] += wj * trow[k];
    }
  }
}

}  // namespace

Image resample_bilinear(const Image& im, double x0, double y0, double cw, double ch, int64_t out_h,
                        int64_t out_w) {
  core::check(out_h > 0 && out_w > 0, "resize: output size must be positive (got ", out_h, "×", out_w, ")");
  core::check(!im.empty(), "resize: empty image");
  Coeffs cx = make_coeffs(im.w, x0, cw, out_w);
  Coeffs cy = make_coeffs(im.h, y0, ch, out_h);
  auto run = [&](const auto* src, float* dst) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(src)>>;
    if (im.c == 1) resample_impl<T, 1>(src, im.h, im.w, im.c, cx, cy, out_h, out_w, dst);
    else if (im.c == 3) resample_impl<T, 3>(src, im.h, im.w, im.c, cx, cy, out_h, out_w, dst);
    else resample_impl<T, 0>(src, im.h, im.w, im.c, cx, cy, out_h, out_w, dst);
  };
  if (im.type == PixelType::F32) {
    Image out = Image::make_f32(out_h, out_w, im.c);
    run(im.f32.data(), out.f32.data());
    return out;
  }
  std::vector<float> buf(static_cast<size_t>(out_h * out_w * im.c));
  run(im.u8.data(), buf.data());
  Image out = Image::make_u8(out_h, out_w, im.c);
  for (size_t i = 0; i < buf.size(); ++i) {
    float v = std::nearbyint(buf[i]);
    out.u8[i] = static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
  }
  return out;
}

}  // namespace shiftlab::data
