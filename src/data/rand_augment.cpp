// rand_augment(N, M): torchvision's RandAugment (num_ops N, magnitude M of 31 bins) on 8-bit
// images: per sample N ops drawn uniformly from Identity, ShearX/Y, TranslateX/Y, Rotate,
// Brightness, Color, Contrast, Sharpness, Posterize, Solarize, AutoContrast, Equalize, each
// with magnitude bin M (sign drawn at random for signed ops). Geometric ops use nearest
// sampling and fill 0, as torchvision's defaults. Float input is converted to 8-bit first
// (round(v·255)), so put it before normalize.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "data/transforms.h"

namespace shiftlab::data {

namespace {

constexpr int kBins = 31;

Image to_u8(const Image& im) {
  if (im.type == PixelType::U8) return im;
  Image o = Image::make_u8(im.h, im.w, im.c);
  for (size_t i = 0; i < o.u8.size(); ++i) o.u8[i] = static_cast<uint8_t>(std::clamp(std::nearbyint(im.f32[i] * 255.f), 0.f, 255.f));
  return o;
}

/// out(x, y) = in(a·x + b·y + c, d·x + e·y + f), nearest, 0 outside.
Image warp(const Image& im, double a, double b, double c, double d, double e, double f) {
  Image o = Image::make_u8(im.h, im.w, im.c);
  for (int64_t y = 0; y < im.h; ++y)
    for (int64_t x = 0; x < im.w; ++x) {
      // pixel centres as torchvision (x + 0.5)
      double xs = a * (x + 0.5) + b * (y + 0.5) + c, ys = d * (x + 0.5) + e * (y + 0.5) + f;
      int64_t sx = static_cast<int64_t>(std::floor(xs)), sy = static_cast<int64_t>(std::floor(ys));
      if (sx < 0 || sy < 0 || sx >= im.w || sy >= im.h) continue;
      std::memcpy(o.u8.data() + (y * im.w + x) * im.c, im.u8.data() + (sy * im.w + sx) * im.c, static_cast<size_t>(im.c));
    }
  return o;
}

uint8_t clamp8(double v) { return static_cast<uint8_t>(std::clamp(std::nearbyint(v), 0.0, 255.0)); }

std::vector<double> grey(const Image& im) {
  std::vector<double> g(static_cast<size_t>(im.h * im.w));
  for (size_t i = 0; i < g.size(); ++i) {
    const uint8_t* p = im.u8.data() + i * static_cast<size_t>(im.c);
    g[i] = im.c >= 3 ? 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2] : p[0];
  }
  return g;
}

void blend(Image& im, const Image& other, double f) {
  for (size_t i = 0; i < im.u8.size(); ++i) im.u8[i] = clamp8(f * im.u8[i] + (1 - f) * other.u8[i]);
}

class RandAugment : public Transform {
 public:
  RandAugment(int n, int m) : n_(n), m_(m) {}
  Image apply(Image in, Rng& rng) const override {
    Image im = to_u8(in);
    for (int k = 0; k < n_; ++k) {
      int op = static_cast<int>(rng.below(14));
      bool neg = rng.below(2) == 1;
      im = apply_op(std::move(im), op, neg);
    }
    return im;
  }
  std::string spec() const override { return core::str("rand_augment(", n_, ", ", m_, ")"); }
  bool random() const override { return true; }
  bool keeps_u8() const override { return true; }

 private:
  double lin(double hi) const { return hi * m_ / (kBins - 1); }
  Image apply_op(Image im, int op, bool neg) const {
    const double s = neg ? -1 : 1;
    const double W = static_cast<double>(im.w), H = static_cast<double>(im.h);
    switch (op) {
      case 0: return im;  // identity
      case 1: return warp(im, 1, s * lin(0.3), 0, 0, 1, 0);  // shear x
      case 2: return warp(im, 1, 0, 0, s * lin(0.3), 1, 0);  // shear y
      case 3: return warp(im, 1, 0, -s * lin(150.0 / 331.0 * W), 0, 1, 0);  // translate x
      case 4: return warp(im, 1, 0, 0, 0, 1, -s * lin(150.0 / 331.0 * H));  // translate y
      case 5: {  // rotate about the centre
        double a = s * lin(30.0) * M_PI / 180.0, ca = std::cos(a), sa = std::sin(a);
        double cx = W / 2, cy = H / 2;
        return warp(im, ca, -sa, cx - ca * cx + sa * cy, sa, ca, cy - sa * cx - ca * cy);
      }
      case 6: {  // brightness
        Image black = Image::make_u8(im.h, im.w, im.c);
        blend(im, black, 1 + s * lin(0.9));
        return im;
      }
      case 7: {  // color (saturation)
        if (im.c < 3) return im;
        auto g = grey(im);
        Image gi = Image::make_u8(im.h, im.w, im.c);
        for (size_t i = 0; i < g.size(); ++i)
          for (int64_t b = 0; b < im.c; ++b) gi.u8[i * static_cast<size_t>(im.c) + static_cast<size_t>(b)] = clamp8(g[i]);
        blend(im, gi, 1 + s * lin(0.9));
        return im;
      }
      case 8: {  // contrast
        auto g = grey(im);
        double mean = 0;
        for (double v : g) mean += v;
        mean /= static_cast<double>(g.size());
        Image mi = Image::make_u8(im.h, im.w, im.c);
        std::fill(mi.u8.begin(), mi.u8.end(), clamp8(mean));
        blend(im, mi, 1 + s * lin(0.9));
        return im;
      }
      case 9: {  // sharpness: blend with a 3×3 smoothed copy (borders unchanged)
        Image sm = im;
        for (int64_t y = 1; y + 1 < im.h; ++y)
          for (int64_t x = 1; x + 1 < im.w; ++x)
            for (int64_t b = 0; b < im.c; ++b) {
              double acc = 0;
              for (int dy = -1; dy <= 1; ++dy)
                for (int dx = -1; dx <= 1; ++dx)
                  acc += (dx == 0 && dy == 0 ? 5.0 : 1.0) * im.u8[static_cast<size_t>(((y + dy) * im.w + x + dx) * im.c + b)];
              sm.u8[static_cast<size_t>((y * im.w + x) * im.c + b)] = clamp8(acc / 13.0);
            }
        blend(im, sm, 1 + s * lin(0.9));
        return im;
      }
      case 10: {  // posterize
        int bits = 8 - static_cast<int>(std::nearbyint(m_ / ((kBins - 1) / 4.0)));
        uint8_t mask = static_cast<uint8_t>(~((1u << (8 - std::max(bits, 0))) - 1u) & 0xff);
        for (auto& v : im.u8) v &= mask;
        return im;
      }
      case 11: {  // solarize
        double thr = 255.0 - lin(255.0);
        for (auto& v : im.u8)
          if (v >= thr) v = static_cast<uint8_t>(255 - v);
        return im;
      }
      case 12: {  // autocontrast per band
        for (int64_t b = 0; b < im.c; ++b) {
          int lo = 255, hi = 0;
          for (size_t i = static_cast<size_t>(b); i < im.u8.size(); i += static_cast<size_t>(im.c))
            lo = std::min<int>(lo, im.u8[i]), hi = std::max<int>(hi, im.u8[i]);
          if (hi <= lo) continue;
          double sc = 255.0 / (hi - lo);
          for (size_t i = static_cast<size_t>(b); i < im.u8.size(); i += static_cast<size_t>(im.c))
            im.u8[i] = clamp8((im.u8[i] - lo) * sc);
        }
        return im;
      }
      default: {  // equalize per band (PIL / torchvision algorithm)
        for (int64_t b = 0; b < im.c; ++b) {
          int64_t hist[256] = {0};
          for (size_t i = static_cast<size_t>(b); i < im.u8.size(); i += static_cast<size_t>(im.c)) hist[im.u8[i]]++;
          int64_t total = 0, last = 0;
          for (int v = 0; v < 256; ++v) {
            total += hist[v];
            if (hist[v]) last = hist[v];
          }
          int64_t step = (total - last) / 255;
          if (step == 0) continue;
          uint8_t lut[256];
          int64_t cum = step / 2;
          for (int v = 0; v < 256; ++v) {
            lut[v] = static_cast<uint8_t>(std::min<int64_t>(cum / step, 255));
            cum += hist[v];
          }
          for (size_t i = static_cast<size_t>(b); i < im.u8.size(); i += static_cast<size_t>(im.c)) im.u8[i] = lut[im.u8[i]];
        }
        return im;
      }
    }
  }
  int n_, m_;
};

TransformPtr make_rand_augment(const TransformArgs& a) {
  a.allow(2, {"n", "m"});
  double n = a.num(0, "n", 2), m = a.num(1, "m", 9);
  if (!(n >= 0 && n <= 10 && n == std::floor(n))) throw core::UsageError("transform rand_augment: n must be an integer in 0..10");
  if (!(m >= 0 && m < kBins && m == std::floor(m))) throw core::UsageError("transform rand_augment: m must be an integer in 0..30");
  return std::make_shared<RandAugment>(static_cast<int>(n), static_cast<int>(m));
}

}  // namespace

SHIFTLAB_REGISTER(transform_registry(), "rand_augment", "rand_augment(N=2, M=9): torchvision RandAugment on 8-bit images (before normalize)",
                  make_rand_augment);

}  // namespace shiftlab::data
