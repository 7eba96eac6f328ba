#include "data/transforms.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/format.h"
#include "core/error.h"
#include "core/options.h"
#include "core/spec.h"

namespace shiftlab::data {

using core::str;

const std::vector<double> kImagenetMean = {0.485, 0.456, 0.406};
const std::vector<double> kImagenetStd = {0.229, 0.224, 0.225};

core::Registry<TransformFactory>& transform_registry() {
  static core::Registry<TransformFactory> r("transforms", "image transforms usable in <domain>.transform chains");
  return r;
}

// ------------------------------------------------------------------ args
bool TransformArgs::has(size_t i, const std::string& key) const {
  return kw.count(key) || kw_words.count(key) || i < pos.size();
}

std::vector<double> TransformArgs::list(size_t i, const std::string& key, std::vector<double> def) const {
  if (kw_words.count(key) || (i < pos.size() && !pos_words[i].empty() && !kw.count(key)))
    throw core::UsageError(str("transform ", name, ": argument '", key, "' must be a number or [list]"));
  if (kw.count(key)) return kw.at(key);
  if (i < pos.size()) return pos[i];
  return def;
}

double TransformArgs::num(size_t i, const std::string& key, double def) const {
  auto v = list(i, key, {def});
  if (v.size() != 1) throw core::UsageError(str("transform ", name, ": argument '", key, "' must be one number"));
  return v[0];
}

void TransformArgs::allow(size_t max_pos, const std::vector<std::string>& keys) const {
  if (pos.size() > max_pos)
    throw core::UsageError(str("transform ", name, " takes at most ", max_pos, " positional argument(s), got ", pos.size()));
  auto check_key = [&](const std::string& k) {
    if (std::find(keys.begin(), keys.end(), k) == keys.end())
      throw core::UsageError(str("transform ", name, ": unknown argument '", k, "'",
                                 keys.empty() ? std::string(" (takes none)") : str(" (known: ", [&] {
                                   std::string s;
                                   for (auto& x : keys) s += (s.empty() ? "" : ", ") + x;
                                   return s;
                                 }(), ")")));
  };
  for (auto& [k, v] : kw) check_key(k);
  for (auto& [k, v] : kw_words) check_key(k);
}

static std::string fmt_list(const std::vector<double>& v) {
  if (v.size() == 1) return core::shortest(v[0]);
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + core::shortest(v[i]);
  return s + "]";
}

// ------------------------------------------------------------------ pixel helpers
namespace {

Image crop_pad(const Image& im, int64_t top, int64_t left, int64_t h, int64_t w, float fill = 0) {
  Image out = im.type == PixelType::U8 ? Image::make_u8(h, w, im.c) : Image::make_f32(h, w, im.c);
  const int64_t c = im.c;
  if (im.type == PixelType::U8) std::fill(out.u8.begin(), out.u8.end(), static_cast<uint8_t>(std::clamp(fill, 0.f, 255.f)));
  else std::fill(out.f32.begin(), out.f32.end(), fill);
  int64_t y0 = std::max<int64_t>(0, -top), y1 = std::min<int64_t>(h, im.h - top);
  int64_t x0 = std::max<int64_t>(0, -left), x1 = std::min<int64_t>(w, im.w - left);
  if (x1 <= x0) return out;
  for (int64_t y = y0; y < y1; ++y) {
    size_t so = static_cast<size_t>(((y + top) * im.w + (x0 + left)) * c), d = static_cast<size_t>((y * w + x0) * c);
    size_t n = static_cast<size_t>((x1 - x0) * c);
    if (im.type == PixelType::U8) std::memcpy(out.u8.data() + d, im.u8.data() + so, n);
    else std::memcpy(out.f32.data() + d, im.f32.data() + so, n * sizeof(float));
  }
  return out;
}

template <typename T>
void flip_rows(std::vector<T>& v, int64_t h, int64_t w, int64_t c) {
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w / 2; ++x)
      for (int64_t b = 0; b < c; ++b)
        std::swap(v[static_cast<size_t>((y * w + x) * c + b)], v[static_cast<size_t>((y * w + (w - 1 - x)) * c + b)]);
}
template <typename T>
void flip_cols(std::vector<T>& v, int64_t h, int64_t w, int64_t c) {
  for (int64_t y = 0; y < h / 2; ++y)
    std::swap_ranges(v.begin() + (y * w * c), v.begin() + ((y + 1) * w * c), v.begin() + ((h - 1 - y) * w * c));
}

/// Python's round(): ties to even.
int64_t py_round(double v) { return static_cast<int64_t>(std::nearbyint(v)); }

// ------------------------------------------------------------------ ops
class Resize : public Transform {
 public:
  Resize(int64_t h, int64_t w, bool shorter) : h_(h), w_(w), shorter_(shorter) {}
  Image apply(Image im, Rng&) const override {
    if (im.h <= 0 || im.w <= 0) throw core::Error(str(spec(), ": the image is ", im.h, "×", im.w, " (empty)"));
    int64_t oh = h_, ow = w_;
    if (shorter_) {
      if (im.h <= im.w) oh = h_, ow = static_cast<int64_t>(static_cast<double>(h_) * im.w / im.h);
      else ow = h_, oh = static_cast<int64_t>(static_cast<double>(h_) * im.h / im.w);
      if (oh == im.h && ow == im.w) return im;
    }
    return resample_bilinear(im, 0, 0, static_cast<double>(im.w), static_cast<double>(im.h), oh, ow);
  }
  std::string spec() const override { return shorter_ ? str("resize(", h_, ")") : str("resize(", h_, ", ", w_, ")"); }
  bool keeps_u8() const override { return true; }
  int64_t decode_hint() const override { return shorter_ ? h_ : std::min(h_, w_); }

 private:
  int64_t h_, w_;
  bool shorter_;
};

class CenterCrop : public Transform {
 public:
  CenterCrop(int64_t h, int64_t w) : h_(h), w_(w) {}
  Image apply(Image im, Rng&) const override {
    if (im.h == h_ && im.w == w_) return im;
    // as torchvision: pad symmetrically when the crop is larger, then crop at round((H-h)/2)
    int64_t top = py_round((static_cast<double>(im.h) - static_cast<double>(h_)) / 2.0);
    int64_t left = py_round((static_cast<double>(im.w) - static_cast<double>(w_)) / 2.0);
    if (im.h < h_) top = -((h_ - im.h) / 2);
    if (im.w < w_) left = -((w_ - im.w) / 2);
    return crop_pad(im, top, left, h_, w_);
  }
  std::string spec() const override { return h_ == w_ ? str("center_crop(", h_, ")") : str("center_crop(", h_, ", ", w_, ")"); }
  bool keeps_u8() const override { return true; }

 private:
  int64_t h_, w_;
};

class Pad : public Transform {
 public:
  Pad(std::vector<int64_t> p, double fill) : p_(std::move(p)), fill_(fill) {}  // left, top, right, bottom
  Image apply(Image im, Rng&) const override {
    float f = static_cast<float>(im.type == PixelType::U8 ? fill_ * 255.0 : fill_);
    return crop_pad(im, -p_[1], -p_[0], im.h + p_[1] + p_[3], im.w + p_[0] + p_[2], f);
  }
  std::string spec() const override {
    std::string s = (p_[0] == p_[1] && p_[1] == p_[2] && p_[2] == p_[3]) ? str("pad(", p_[0])
                                                                       : str("pad([", p_[0], ", ", p_[1], ", ", p_[2], ", ", p_[3], "]");
    return s + (fill_ != 0 ? str(", fill=", core::shortest(fill_), ")") : ")");
  }
  bool keeps_u8() const override { return true; }

 private:
  std::vector<int64_t> p_;
  double fill_;
};

class RandomCrop : public Transform {
 public:
  RandomCrop(int64_t h, int64_t w, int64_t padding) : h_(h), w_(w), pad_(padding) {}
  Image apply(Image im, Rng& rng) const override {
    int64_t H = im.h + 2 * pad_, W = im.w + 2 * pad_;
    if (H < h_ || W < w_) throw core::Error(str("random_crop(", h_, ", ", w_, "): image is only ", im.h, "×", im.w));
    int64_t i = static_cast<int64_t>(rng.below(static_cast<uint64_t>(H - h_ + 1)));
    int64_t j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(W - w_ + 1)));
    return crop_pad(im, i - pad_, j - pad_, h_, w_);
  }
  std::string spec() const override {
    return str("random_crop(", h_ == w_ ? str(h_) : str(h_, ", ", w_), pad_ ? str(", padding=", pad_) : "", ")");
  }
  bool random() const override { return true; }
  bool keeps_u8() const override { return true; }

 private:
  int64_t h_, w_, pad_;
};

class RandomResizedCrop : public Transform {
 public:
  RandomResizedCrop(int64_t h, int64_t w, std::vector<double> scale, std::vector<double> ratio)
      : h_(h), w_(w), scale_(std::move(scale)), ratio_(std::move(ratio)) {}
  Image apply(Image im, Rng& rng) const override {
    // torchvision RandomResizedCrop.get_params, then one crop+resize pass
    const double H = static_cast<double>(im.h), W = static_cast<double>(im.w), area = H * W;
    const double lr0 = std::log(ratio_[0]), lr1 = std::log(ratio_[1]);
    for (int attempt = 0; attempt < 10; ++attempt) {
      double target = area * rng.uniform(scale_[0], scale_[1]);
      double aspect = std::exp(rng.uniform(lr0, lr1));
      int64_t w = py_round(std::sqrt(target * aspect));
      int64_t h = py_round(std::sqrt(target / aspect));
      if (w > 0 && h > 0 && w <= im.w && h <= im.h) {
        int64_t i = static_cast<int64_t>(rng.below(static_cast<uint64_t>(im.h - h + 1)));
        int64_t j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(im.w - w + 1)));
        return resample_bilinear(im, static_cast<double>(j), static_cast<double>(i), static_cast<double>(w),
                                 static_cast<double>(h), h_, w_);
      }
    }
    double in_ratio = W / H;
    int64_t w, h;
    if (in_ratio < ratio_[0]) w = im.w, h = py_round(W / ratio_[0]);
    else if (in_ratio > ratio_[1]) h = im.h, w = py_round(H * ratio_[1]);
    else w = im.w, h = im.h;
    int64_t i = (im.h - h) / 2, j = (im.w - w) / 2;
    return resample_bilinear(im, static_cast<double>(j), static_cast<double>(i), static_cast<double>(w),
                             static_cast<double>(h), h_, w_);
  }
  std::string spec() const override {
    return str("random_resized_crop(", h_ == w_ ? str(h_) : str("[", h_, ", ", w_, "]"), ", scale=", fmt_list(scale_),
               ", ratio=", fmt_list(ratio_), ")");
  }
  bool random() const override { return true; }
  bool keeps_u8() const override { return true; }
  int64_t decode_hint() const override {
    // smallest crop side that can be drawn, relative to the image's shorter side
    double rel = std::sqrt(scale_[0] * std::min(ratio_[0], 1.0 / ratio_[1]));
    return static_cast<int64_t>(std::ceil(static_cast<double>(std::max(h_, w_)) / std::max(rel, 1e-3)));
  }

 private:
  int64_t h_, w_;
  std::vector<double> scale_, ratio_;
};

class Flip : public Transform {
 public:
  Flip(bool horizontal, double p) : horiz_(horizontal), p_(p) {}
  Image apply(Image im, Rng& rng) const override {
    if (!(rng.uniform() < p_)) return im;
    if (horiz_) {
      if (im.type == PixelType::U8) flip_rows(im.u8, im.h, im.w, im.c);
      else flip_rows(im.f32, im.h, im.w, im.c);
    } else {
      if (im.type == PixelType::U8) flip_cols(im.u8, im.h, im.w, im.c);
      else flip_cols(im.f32, im.h, im.w, im.c);
    }
    return im;
  }
  std::string spec() const override { return str(horiz_ ? "hflip" : "vflip", p_ != 0.5 ? str("(", core::shortest(p_), ")") : ""); }
  bool random() const override { return p_ > 0 && p_ < 1; }
  bool keeps_u8() const override { return true; }

 private:
  bool horiz_;
  double p_;
};

class Rotation : public Transform {
 public:
  Rotation(double lo, double hi, double fill) : lo_(lo), hi_(hi), fill_(fill) {}
  Image apply(Image im, Rng& rng) const override {
    double deg = rng.uniform(lo_, hi_);
    double a = deg * M_PI / 180.0, ca = std::cos(a), sa = std::sin(a);
    const double cx = (static_cast<double>(im.w) - 1) / 2, cy = (static_cast<double>(im.h) - 1) / 2;
    const float fill = static_cast<float>(im.type == PixelType::U8 ? fill_ * 255.0 : fill_);
    Image out = im.type == PixelType::U8 ? Image::make_u8(im.h, im.w, im.c) : Image::make_f32(im.h, im.w, im.c);
    std::vector<float> px(static_cast<size_t>(im.c));
    for (int64_t y = 0; y < im.h; ++y)
      for (int64_t x = 0; x < im.w; ++x) {
        // inverse map of a counter-clockwise rotation (y down), bilinear, `fill` outside
        double dx = static_cast<double>(x) - cx, dy = static_cast<double>(y) - cy;
        double sx = dx * ca - dy * sa + cx, sy = dx * sa + dy * ca + cy;
        int64_t x0 = static_cast<int64_t>(std::floor(sx)), y0 = static_cast<int64_t>(std::floor(sy));
        double fx = sx - static_cast<double>(x0), fy = sy - static_cast<double>(y0);
        std::fill(px.begin(), px.end(), 0.f);
        for (int k = 0; k < 4; ++k) {
          int64_t xx = x0 + (k & 1), yy = y0 + (k >> 1);
          double wgt = ((k & 1) ? fx : 1 - fx) * ((k >> 1) ? fy : 1 - fy);
          if (wgt == 0) continue;
          bool in = xx >= 0 && yy >= 0 && xx < im.w && yy < im.h;
          for (int64_t b = 0; b < im.c; ++b) px[static_cast<size_t>(b)] += static_cast<float>(wgt) * (in ? im.at(yy, xx, b) : fill);
        }
        size_t o = static_cast<size_t>((y * im.w + x) * im.c);
        for (int64_t b = 0; b < im.c; ++b) {
          if (im.type == PixelType::U8)
            out.u8[o + static_cast<size_t>(b)] = static_cast<uint8_t>(std::clamp(std::nearbyint(px[static_cast<size_t>(b)]), 0.f, 255.f));
          else out.f32[o + static_cast<size_t>(b)] = px[static_cast<size_t>(b)];
        }
      }
    return out;
  }
  std::string spec() const override {
    return str("rotation(", lo_ == -hi_ ? core::shortest(hi_) : str("[", core::shortest(lo_), ", ", core::shortest(hi_), "]"), fill_ != 0 ? str(", fill=", core::shortest(fill_)) : "", ")");
  }
  bool random() const override { return lo_ != hi_; }
  bool keeps_u8() const override { return true; }

 private:
  double lo_, hi_, fill_;
};

// RGB <-> HSV as torchvision's _rgb2hsv / _hsv2rgb
void rgb2hsv(float r, float g, float b, float& h, float& s, float& v) {
  float maxc = std::max({r, g, b}), minc = std::min({r, g, b});
  bool eqc = maxc == minc;
  float cr = maxc - minc;
  float ones = 1.f;
  s = cr / (eqc ? ones : maxc);
  float cr_div = eqc ? ones : cr;
  float rc = (maxc - r) / cr_div, gc = (maxc - g) / cr_div, bc = (maxc - b) / cr_div;
  float hr = (maxc == r) ? (bc - gc) : 0.f;
  float hg = (maxc == g && maxc != r) ? (2.f + rc - bc) : 0.f;
  float hb = (maxc != g && maxc != r) ? (4.f + gc - rc) : 0.f;
  h = hr + hg + hb;
  h = std::fmod(h / 6.f + 1.f, 1.f);
  v = maxc;
}
void hsv2rgb(float h, float s, float v, float& r, float& g, float& b) {
  float i = std::floor(h * 6.f);
  float f = h * 6.f - i;
  int ii = static_cast<int>(i) % 6;
  if (ii < 0) ii += 6;
  float p = std::clamp(v * (1.f - s), 0.f, 1.f), q = std::clamp(v * (1.f - s * f), 0.f, 1.f),
        t = std::clamp(v * (1.f - s * (1.f - f)), 0.f, 1.f);
  switch (ii) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
  }
}

void blend(Image& im, const std::vector<float>& other_or_scalar, float f, bool per_pixel) {
  // im = clamp(f * im + (1 - f) * other, 0, 1); other is per pixel (H×W) or one scalar
  for (int64_t i = 0; i < im.h * im.w; ++i) {
    float o = per_pixel ? other_or_scalar[static_cast<size_t>(i)] : other_or_scalar[0];
    for (int64_t b = 0; b < im.c; ++b) {
      float& v = im.f32[static_cast<size_t>(i * im.c + b)];
      v = std::clamp(f * v + (1.f - f) * o, 0.f, 1.f);
    }
  }
}

std::vector<float> grey_of(const Image& im) {
  std::vector<float> g(static_cast<size_t>(im.h * im.w));
  for (int64_t i = 0; i < im.h * im.w; ++i) {
    const float* p = im.f32.data() + i * im.c;
    g[static_cast<size_t>(i)] = im.c >= 3 ? 0.2989f * p[0] + 0.587f * p[1] + 0.114f * p[2] : p[0];  // torchvision
  }
  return g;
}

/// op 0 brightness, 1 contrast, 2 saturation, 3 hue (torchvision adjust_* on float [0,1]).
void adjust_colour(Image& im, int op, double f) {
  if (op == 0) {
    for (auto& v : im.f32) v = std::clamp(v * static_cast<float>(f), 0.f, 1.f);
  } else if (op == 1) {
    auto g = grey_of(im);
    double m = 0;
    for (float v : g) m += v;
    m /= static_cast<double>(std::max<size_t>(g.size(), 1));
    blend(im, {static_cast<float>(m)}, static_cast<float>(f), false);
  } else if (op == 2 && im.c >= 3) {
    blend(im, grey_of(im), static_cast<float>(f), true);
  } else if (op == 3 && im.c >= 3) {
    for (int64_t i = 0; i < im.h * im.w; ++i) {
      float* p = im.f32.data() + i * im.c;
      float hh, ss, vv;
      rgb2hsv(p[0], p[1], p[2], hh, ss, vv);
      hh = std::fmod(hh + static_cast<float>(f) + 1.f, 1.f);
      hsv2rgb(hh, ss, vv, p[0], p[1], p[2]);
    }
  }
}

class ColorJitter : public Transform {
 public:
  ColorJitter(double b, double c, double s, double h) : b_(b), c_(c), s_(s), h_(h) {}
  Image apply(Image im0, Rng& rng) const override {
    Image im = to_float(im0);
    std::vector<int> order = {0, 1, 2, 3};
    rng.shuffle(order);
    double f[4] = {b_ > 0 ? rng.uniform(std::max(0.0, 1 - b_), 1 + b_) : 1,
                   c_ > 0 ? rng.uniform(std::max(0.0, 1 - c_), 1 + c_) : 1,
                   s_ > 0 ? rng.uniform(std::max(0.0, 1 - s_), 1 + s_) : 1, h_ > 0 ? rng.uniform(-h_, h_) : 0};
    const double on[4] = {b_, c_, s_, h_};
    for (int op : order)
      if (on[op] > 0) adjust_colour(im, op, f[op]);
    return im;
  }
  std::string spec() const override {
    return str("color_jitter(brightness=", core::shortest(b_), ", contrast=", core::shortest(c_), ", saturation=", core::shortest(s_), ", hue=", core::shortest(h_), ")");
  }
  bool random() const override { return true; }

 private:
  double b_, c_, s_, h_;
};

/// Fixed colour factors, applied in the order brightness, contrast, saturation, hue.
class AdjustColour : public Transform {
 public:
  AdjustColour(double b, double c, double s, double h) : f_{b, c, s, h} {}
  Image apply(Image im0, Rng&) const override {
    Image im = to_float(im0);
    const double id[4] = {1, 1, 1, 0};
    for (int op = 0; op < 4; ++op)
      if (f_[op] != id[op]) adjust_colour(im, op, f_[op]);
    return im;
  }
  std::string spec() const override {
    return str("adjust_color(brightness=", core::shortest(f_[0]), ", contrast=", core::shortest(f_[1]), ", saturation=", core::shortest(f_[2]), ", hue=", core::shortest(f_[3]), ")");
  }

 private:
  double f_[4];
};

class ToRgb : public Transform {
 public:
  Image apply(Image im, Rng&) const override {
    if (im.c == 3) return im;
    if (im.c != 1 && im.c != 2 && im.c != 4)
      throw core::Error(str("grey_to_rgb: cannot make RGB from a ", im.c, "-band image (use bands(...))"));
    const int64_t n = im.h * im.w, c = im.c;
    Image out = im.type == PixelType::U8 ? Image::make_u8(im.h, im.w, 3) : Image::make_f32(im.h, im.w, 3);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t b = 0; b < 3; ++b) {
        int64_t src = c <= 2 ? 0 : b;  // grey (+alpha) repeats band 0; RGBA drops alpha
        if (im.type == PixelType::U8) out.u8[static_cast<size_t>(i * 3 + b)] = im.u8[static_cast<size_t>(i * c + src)];
        else out.f32[static_cast<size_t>(i * 3 + b)] = im.f32[static_cast<size_t>(i * c + src)];
      }
    return out;
  }
  std::string spec() const override { return "grey_to_rgb"; }
  bool keeps_u8() const override { return true; }
};

class Grayscale : public Transform {
 public:
  Image apply(Image im, Rng&) const override {
    if (im.c == 1) return im;
    if (im.c < 3) throw core::Error(str("grayscale: needs an RGB image, got ", im.c, " bands"));
    const int64_t n = im.h * im.w, c = im.c;
    Image out = im.type == PixelType::U8 ? Image::make_u8(im.h, im.w, 1) : Image::make_f32(im.h, im.w, 1);
    for (int64_t i = 0; i < n; ++i) {
      // PIL's weights for 8-bit, torchvision's for float
      float v = (im.type == PixelType::U8 ? 0.299f : 0.2989f) * im.at(0, i, 0) + 0.587f * im.at(0, i, 1) + 0.114f * im.at(0, i, 2);
      (void)c;
      if (im.type == PixelType::U8) out.u8[static_cast<size_t>(i)] = static_cast<uint8_t>(std::clamp(std::nearbyint(v), 0.f, 255.f));
      else out.f32[static_cast<size_t>(i)] = v;
    }
    return out;
  }
  std::string spec() const override { return "grayscale"; }
  bool keeps_u8() const override { return true; }
};

class Bands : public Transform {
 public:
  explicit Bands(std::vector<int64_t> b) : b_(std::move(b)) {}
  Image apply(Image im, Rng&) const override {
    for (auto b : b_)
      if (b >= im.c) throw core::Error(str("bands: band ", b, " requested but the image has ", im.c, " band(s)"));
    const int64_t n = im.h * im.w, c = im.c, k = static_cast<int64_t>(b_.size());
    Image out = im.type == PixelType::U8 ? Image::make_u8(im.h, im.w, k) : Image::make_f32(im.h, im.w, k);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j) {
        size_t s = static_cast<size_t>(i * c + b_[static_cast<size_t>(j)]), d = static_cast<size_t>(i * k + j);
        if (im.type == PixelType::U8) out.u8[d] = im.u8[s];
        else out.f32[d] = im.f32[s];
      }
    return out;
  }
  std::string spec() const override {
    std::string s = "bands(";
    for (size_t i = 0; i < b_.size(); ++i) s += (i ? ", " : "") + std::to_string(b_[i]);
    return s + ")";
  }
  bool keeps_u8() const override { return true; }

 private:
  std::vector<int64_t> b_;
};

class Normalize : public Transform {
 public:
  Normalize(std::vector<double> m, std::vector<double> s, std::string preset)
      : m_(std::move(m)), s_(std::move(s)), preset_(std::move(preset)) {}
  bool is_affine() const override { return true; }
  bool affine(int64_t c, std::vector<float>& k, std::vector<float>& a) const override {
    auto band = [&](const std::vector<double>& v, int64_t b) { return v.size() == 1 ? v[0] : v[static_cast<size_t>(b)]; };
    if ((m_.size() != 1 && static_cast<int64_t>(m_.size()) != c) || (s_.size() != 1 && static_cast<int64_t>(s_.size()) != c))
      throw core::Error(str(spec(), ": ", m_.size(), " means / ", s_.size(), " stds for a ", c, "-band image"));
    k.resize(static_cast<size_t>(c));
    a.resize(static_cast<size_t>(c));
    for (int64_t b = 0; b < c; ++b) {
      k[static_cast<size_t>(b)] = static_cast<float>(1.0 / band(s_, b));
      a[static_cast<size_t>(b)] = static_cast<float>(-band(m_, b) / band(s_, b));
    }
    return true;
  }
  Image apply(Image im, Rng&) const override {
    const int64_t c = im.c;
    std::vector<float> k, a;
    affine(c, k, a);
    const size_t n = static_cast<size_t>(im.h * im.w);
    if (im.type == PixelType::U8) {
      for (auto& v : k) v /= 255.f;
      Image out = Image::make_f32(im.h, im.w, c);
      for (size_t i = 0; i < n; ++i)
        for (int64_t b = 0; b < c; ++b) {
          size_t j = i * static_cast<size_t>(c) + static_cast<size_t>(b);
          out.f32[j] = static_cast<float>(im.u8[j]) * k[static_cast<size_t>(b)] + a[static_cast<size_t>(b)];
        }
      return out;
    }
    for (size_t i = 0; i < n; ++i)
      for (int64_t b = 0; b < c; ++b) {
        size_t j = i * static_cast<size_t>(c) + static_cast<size_t>(b);
        im.f32[j] = im.f32[j] * k[static_cast<size_t>(b)] + a[static_cast<size_t>(b)];
      }
    return im;
  }
  std::string spec() const override {
    if (!preset_.empty()) return "normalize(" + preset_ + ")";
    if (m_.size() == 1 && s_.size() == 1) return str("normalize(", core::shortest(m_[0]), ", ", core::shortest(s_[0]), ")");
    auto l = [](const std::vector<double>& v) {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + core::shortest(v[i]);
      return s + "]";
    };
    return str("normalize(mean=", l(m_), ", std=", l(s_), ")");
  }

 private:
  std::vector<double> m_, s_;
  std::string preset_;
};

// ------------------------------------------------------------------ factories
// The largest output side a transform may ask for: center_crop(100000) would allocate 40 GB per
// image and fail half a minute later; refused when the chain is parsed instead.
constexpr int64_t kMaxTransformSide = 16384;

int64_t as_size(const TransformArgs& a, double v, const std::string& what) {
  if (!(v >= 1 && v == std::floor(v) && v < 1e6))
    throw core::UsageError(str("transform ", a.name, ": ", what, " must be a positive integer, got ", core::shortest(v)));
  if (v > kMaxTransformSide)
    throw core::UsageError(str("transform ", a.name, ": ", what, " ", core::shortest(v), " exceeds ", kMaxTransformSide,
                               " pixels (an image of that side needs gigabytes)"));
  return static_cast<int64_t>(v);
}

std::pair<int64_t, int64_t> size_arg(const TransformArgs& a) {
  if (!a.has(0, "size")) throw core::UsageError(str("transform ", a.name, " needs a size, e.g. ", a.name, "(224)"));
  auto v = a.list(0, "size", {});
  if (v.size() == 2) return {as_size(a, v[0], "size"), as_size(a, v[1], "size")};
  if (v.size() != 1) throw core::UsageError(str("transform ", a.name, ": size must be N or [H, W]"));
  int64_t h = as_size(a, v[0], "size");
  if (a.pos.size() >= 2 && !a.kw.count("size")) return {h, as_size(a, a.num(1, "width", 0), "width")};
  return {h, h};
}

TransformPtr make_resize(const TransformArgs& a) {
  a.allow(2, {"size"});
  auto v = a.has(0, "size") ? a.list(0, "size", {}) : std::vector<double>{};
  if (v.empty()) throw core::UsageError("transform resize needs a size: resize(S) (shorter side) or resize(H, W)");
  if (v.size() == 1 && a.pos.size() < 2) return std::make_shared<Resize>(as_size(a, v[0], "size"), 0, true);
  auto [h, w] = size_arg(a);
  return std::make_shared<Resize>(h, w, false);
}
TransformPtr make_center_crop(const TransformArgs& a) {
  a.allow(2, {"size"});
  auto [h, w] = size_arg(a);
  return std::make_shared<CenterCrop>(h, w);
}
TransformPtr make_random_crop(const TransformArgs& a) {
  a.allow(2, {"size", "padding"});
  auto [h, w] = size_arg(a);
  double p = a.kw.count("padding") ? a.kw.at("padding")[0] : 0;
  if (!(p >= 0 && p <= kMaxTransformSide))
    throw core::UsageError(str("transform random_crop: padding must be in [0, ", kMaxTransformSide, "]"));
  return std::make_shared<RandomCrop>(h, w, static_cast<int64_t>(p));
}
TransformPtr make_rrc(const TransformArgs& a) {
  a.allow(1, {"size", "scale", "ratio"});
  auto [h, w] = size_arg(a);
  auto scale = a.kw.count("scale") ? a.kw.at("scale") : std::vector<double>{0.08, 1.0};
  auto ratio = a.kw.count("ratio") ? a.kw.at("ratio") : std::vector<double>{3.0 / 4.0, 4.0 / 3.0};
  if (scale.size() != 2 || !(scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1))
    throw core::UsageError("transform random_resized_crop: scale must be [lo, hi] with 0 < lo <= hi <= 1");
  if (ratio.size() != 2 || !(ratio[0] > 0 && ratio[0] <= ratio[1]))
    throw core::UsageError("transform random_resized_crop: ratio must be [lo, hi] with 0 < lo <= hi");
  return std::make_shared<RandomResizedCrop>(h, w, scale, ratio);
}
TransformFactory make_flip(bool horiz) {
  return [horiz](const TransformArgs& a) -> TransformPtr {
    a.allow(1, {"p"});
    double p = a.num(0, "p", 0.5);
    if (p < 0 || p > 1) throw core::UsageError(str("transform ", a.name, ": p must be in [0, 1]"));
    return std::make_shared<Flip>(horiz, p);
  };
}
TransformPtr make_rotation(const TransformArgs& a) {
  a.allow(1, {"degrees", "fill"});
  auto d = a.list(0, "degrees", {});
  if (d.empty()) throw core::UsageError("transform rotation needs degrees: rotation(15) or rotation([-10, 30])");
  double lo = d.size() == 1 ? -std::fabs(d[0]) : d[0], hi = d.size() == 1 ? std::fabs(d[0]) : d[1];
  return std::make_shared<Rotation>(lo, hi, a.kw.count("fill") ? a.kw.at("fill")[0] : 0.0);
}
TransformPtr make_jitter(const TransformArgs& a) {
  a.allow(4, {"brightness", "contrast", "saturation", "hue"});
  double b = a.num(0, "brightness", 0), c = a.num(1, "contrast", 0), s = a.num(2, "saturation", 0), h = a.num(3, "hue", 0);
  if (b < 0 || c < 0 || s < 0 || h < 0 || h > 0.5) throw core::UsageError("transform color_jitter: factors must be >= 0 and hue <= 0.5");
  return std::make_shared<ColorJitter>(b, c, s, h);
}
TransformPtr make_adjust(const TransformArgs& a) {
  a.allow(4, {"brightness", "contrast", "saturation", "hue"});
  double b = a.num(0, "brightness", 1), c = a.num(1, "contrast", 1), s = a.num(2, "saturation", 1), h = a.num(3, "hue", 0);
  if (b < 0 || c < 0 || s < 0 || std::fabs(h) > 0.5) throw core::UsageError("transform adjust_color: factors must be >= 0 and |hue| <= 0.5");
  return std::make_shared<AdjustColour>(b, c, s, h);
}
TransformPtr make_bands(const TransformArgs& a) {
  a.allow(1000, {});
  std::vector<int64_t> b;
  for (size_t i = 0; i < a.pos.size(); ++i)
    for (double v : a.pos[i]) {
      if (!(v >= 0 && v == std::floor(v))) throw core::UsageError(str("transform bands: band index ", core::shortest(v), " is not a non-negative integer"));
      b.push_back(static_cast<int64_t>(v));
    }
  if (b.empty()) throw core::UsageError("transform bands needs band indices (0-based), e.g. bands(3, 2, 1)");
  return std::make_shared<Bands>(b);
}
TransformPtr make_normalize(const TransformArgs& a) {
  a.allow(2, {"mean", "std"});
  if (!a.pos_words.empty() && !a.pos_words[0].empty()) {
    if (a.pos_words[0] != "imagenet") throw core::UsageError(str("transform normalize: unknown preset '", a.pos_words[0], "' (known: imagenet)"));
    return std::make_shared<Normalize>(kImagenetMean, kImagenetStd, "imagenet");
  }
  auto m = a.list(0, "mean", {}), s = a.list(1, "std", {});
  if (m.empty() || s.empty()) throw core::UsageError("transform normalize needs mean and std: normalize(0.5, 0.5), normalize(mean=[..], std=[..]) or normalize(imagenet)");
  for (double v : s)
    if (!(v > 0)) throw core::UsageError("transform normalize: std must be > 0");
  return std::make_shared<Normalize>(m, s, "");
}
TransformPtr make_pad(const TransformArgs& a) {
  a.allow(1, {"padding", "fill"});
  auto p = a.list(0, "padding", {});
  if (p.size() != 1 && p.size() != 2 && p.size() != 4) throw core::UsageError("transform pad: padding is N, [horizontal, vertical] or [left, top, right, bottom]");
  std::vector<int64_t> q;
  for (double v : p) {
    if (!(v >= 0 && v == std::floor(v) && v <= kMaxTransformSide))
      throw core::UsageError(str("transform pad: padding must be integers in [0, ", kMaxTransformSide, "]"));
    q.push_back(static_cast<int64_t>(v));
  }
  if (q.size() == 1) q = {q[0], q[0], q[0], q[0]};
  if (q.size() == 2) q = {q[0], q[1], q[0], q[1]};
  return std::make_shared<Pad>(q, a.kw.count("fill") ? a.kw.at("fill")[0] : 0.0);
}
template <typename T>
TransformFactory no_args() {
  return [](const TransformArgs& a) -> TransformPtr {
    a.allow(0, {});
    return std::make_shared<T>();
  };
}

}  // namespace

SHIFTLAB_REGISTER(transform_registry(), "resize", "resize(S): shorter side to S (aspect kept); resize(H, W): exact; bilinear, antialiased", make_resize);
SHIFTLAB_REGISTER(transform_registry(), "center_crop", "center_crop(S) or center_crop(H, W); zero-pads when the image is smaller", make_center_crop);
SHIFTLAB_REGISTER(transform_registry(), "random_crop", "random_crop(S, padding=P): random S×S crop after zero padding", make_random_crop);
SHIFTLAB_REGISTER(transform_registry(), "random_resized_crop", "random_resized_crop(S, scale=[0.08, 1], ratio=[0.75, 1.333]) as torchvision", make_rrc);
SHIFTLAB_REGISTER(transform_registry(), "hflip", "hflip(p=0.5): random horizontal flip", make_flip(true));
SHIFTLAB_REGISTER(transform_registry(), "vflip", "vflip(p=0.5): random vertical flip", make_flip(false));
SHIFTLAB_REGISTER(transform_registry(), "rotation", "rotation(D) uniform in [-D, D] degrees, or rotation([lo, hi]); bilinear, fill=0", make_rotation);
SHIFTLAB_REGISTER(transform_registry(), "color_jitter", "color_jitter(brightness, contrast, saturation, hue) as torchvision (random order)", make_jitter);
SHIFTLAB_REGISTER(transform_registry(), "adjust_color", "adjust_color(brightness=1, contrast=1, saturation=1, hue=0): fixed factors as torchvision adjust_*", make_adjust);
SHIFTLAB_REGISTER(transform_registry(), "grey_to_rgb", "1 band -> 3 (repeat); grey+alpha -> 3; RGBA -> RGB; RGB unchanged", no_args<ToRgb>());
SHIFTLAB_REGISTER(transform_registry(), "grayscale", "RGB -> 1 band (0.299 R + 0.587 G + 0.114 B)", no_args<Grayscale>());
SHIFTLAB_REGISTER(transform_registry(), "bands", "bands(i, j, ...): select / reorder bands (0-based)", make_bands);
SHIFTLAB_REGISTER(transform_registry(), "normalize", "normalize(mean, std) per band (one value = all bands), mean=[..], std=[..], or imagenet", make_normalize);
SHIFTLAB_REGISTER(transform_registry(), "pad", "pad(P) or pad([l, t, r, b]), fill=0: constant padding", make_pad);

// ------------------------------------------------------------------ chain
Image TransformChain::apply_range(Image im, uint64_t seed, size_t from, size_t to) const {
  Rng rng(seed);
  for (size_t i = from; i < to && i < ops_.size(); ++i) im = ops_[i]->apply(std::move(im), rng);
  return im;
}

size_t TransformChain::cacheable_prefix() const {
  size_t n = 0;
  while (n < ops_.size() && !ops_[n]->random() && ops_[n]->keeps_u8()) ++n;
  return n;
}

DecodeHint TransformChain::decode_hint() const {
  DecodeHint h;
  if (!ops_.empty()) h.min_short_side = ops_[0]->decode_hint();
  return h;
}

std::string TransformChain::spec() const {
  std::string s;
  for (auto& op : ops_) s += (s.empty() ? "" : ", ") + op->spec();
  return s;
}

namespace {
/// A transform argument's value as TransformArgs holds it: numbers (a list, or one), or a word.
void transform_arg_value(const core::SpecParser& p, const core::SpecValue& v, std::vector<double>& nums, std::string& word) {
  if (v.is_number()) {
    nums.push_back(v.number);
  } else if (v.is_word()) {
    word = v.text;
  } else {
    if (v.items.empty()) p.fail(v.pos, "empty list", " (a list holds one or more numbers)");
    for (auto& x : v.items) {
      if (!x.is_number()) p.fail(x.pos, str("'", x.str(), "' is not a number"), " (lists hold numbers)");
      nums.push_back(x.number);
    }
  }
}
}  // namespace

TransformChain parse_transforms(const std::string& text) {
  // the grammar is core::parse_spec_items (core/spec.h); names and arguments are checked here
  std::vector<TransformPtr> ops;
  if (core::trim(text) == "none") return TransformChain{};
  core::SpecParser p("transform chain", text);
  for (const core::SpecItem& item : core::parse_spec_items(p, "a transform name")) {
    TransformArgs a;
    for (const core::SpecArg& arg : item.args) {
      std::vector<double> nums;
      std::string word;
      transform_arg_value(p, arg.value, nums, word);
      if (arg.key.empty()) {
        a.pos.push_back(nums);
        a.pos_words.push_back(word);
      } else if (!word.empty() || arg.value.is_word()) {
        a.kw_words[arg.key] = word;
      } else {
        a.kw[arg.key] = nums;
      }
    }
    std::string name = item.name;
    if (name == "to_rgb") name = "grey_to_rgb";
    if (name == "random_rotation") name = "rotation";
    if (!transform_registry().has(name)) p.fail_unknown("transform", item.name, item.pos, transform_registry().names());
    a.name = name;
    try {
      ops.push_back(transform_registry().get(name)(a));
    } catch (const core::SpecError&) {
      throw;
    } catch (const core::UsageError& e) {  // a bad argument: the factory's message, at the item
      p.fail(item.pos, e.what());
    }
  }
  return TransformChain(std::move(ops));
}

}  // namespace shiftlab::data
