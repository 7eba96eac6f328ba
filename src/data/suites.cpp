#include "data/suites.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/options.h"
#include "core/registry.h"
#include "data/npy.h"
#include "data/prepare.h"

namespace shiftlab::data::suites {

namespace fs = std::filesystem;
using core::check;
using core::check_usage;
using core::str;
using nlohmann::json;

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (char ch : s) h = (h ^ static_cast<unsigned char>(ch)) * 1099511628211ULL;
  return h;
}

double normal_draw(Rng& r) {
  const double u1 = r.uniform(), u2 = r.uniform();
  return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * M_PI * u2);
}

// ------------------------------------------------------------------ pixel operations
namespace {

/// Python's round(v, 15) (to 1e-15), as PIL rounds its rotation matrix.
double suite_round15(double v) { return std::round(v * 1e15) / 1e15; }

inline int64_t suite_clip_index(int64_t v, int64_t n) { return v < 0 ? 0 : (v < n ? v : n - 1); }

inline uint8_t suite_quantize(double x) {
  double v = std::floor(std::min(1.0, std::max(0.0, x)) * 255.0 + 0.5);
  return static_cast<uint8_t>(v);
}

std::vector<double> suite_to_unit(const uint8_t* img, int64_t n) {
  std::vector<double> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = img[i] / 255.0;
  return x;
}

std::vector<uint8_t> suite_from_unit(const std::vector<double>& x) {
  std::vector<uint8_t> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = suite_quantize(x[i]);
  return out;
}

/// Bilinear sample of a double image at (ys, xs) (pixel-centre coordinates); neighbours outside
/// the image count as 0.
double suite_sample_zero(const std::vector<double>& x, int64_t h, int64_t w, double ys, double xs) {
  const double fy = std::floor(ys), fx = std::floor(xs);
  const int64_t y0 = static_cast<int64_t>(fy), x0 = static_cast<int64_t>(fx);
  const double dy = ys - fy, dx = xs - fx;
  auto at = [&](int64_t yy, int64_t xx) -> double {
    if (yy < 0 || yy >= h || xx < 0 || xx >= w) return 0.0;
    return x[static_cast<size_t>(yy * w + xx)];
  };
  const double top = at(y0, x0) * (1 - dx) + at(y0, x0 + 1) * dx;
  const double bottom = at(y0 + 1, x0) * (1 - dx) + at(y0 + 1, x0 + 1) * dx;
  return top * (1 - dy) + bottom * dy;
}

struct CorruptionDef {
  const char* name;
  const char* param;
  double values[5];
  const char* formula;
  const char* origin;
};

const CorruptionDef kCorruptions[] = {
    {"gaussian_noise", "sigma", {0.08, 0.12, 0.18, 0.26, 0.38},
     "x' = x + sigma*z, z ~ N(0, 1) per pixel (Box-Muller from the item's Rng)",
     "ImageNet-C gaussian_noise severities (Hendrycks & Dietterich 2019)"},
    {"impulse_noise", "p", {0.03, 0.06, 0.09, 0.17, 0.27},
     "per pixel: with probability p (draw u < p) set to 0 or 1 (a second draw v: v < 0.5 -> 0), salt-and-pepper",
     "ImageNet-C impulse_noise amounts (skimage s&p)"},
    {"gaussian_blur", "sigma", {0.6, 0.9, 1.2, 1.6, 2.0},
     "separable Gaussian filter, radius floor(4*sigma + 0.5), edge replicate",
     "chosen for 28x28 (ImageNet-C uses sigma 1..6 at 224 px, CIFAR-10-C 0.4..1 at 32 px)"},
    {"contrast", "c", {0.4, 0.3, 0.2, 0.1, 0.05}, "x' = (x - m)*c + m, m = mean of the image",
     "ImageNet-C contrast severities"},
    {"inversion", "fraction", {0.2, 0.4, 0.6, 0.8, 1.0},
     "x' = 1 - x inside a band of columns [x0, x0 + wb), wb = round(fraction*W), x0 = floor(u*(W - wb + 1)) with u "
     "the item's first uniform; x elsewhere (severity 5 = the negative image)",
     "shiftlab (MNIST-C has no graded inversion; negative images are a classic digits shift)"},
    {"elastic", "alpha", {10, 16, 22, 28, 34},
     "displacements dx, dy = alpha * G_sigma(U(-1, 1) field) with sigma = 4 (draws: all dx, then all dy, "
     "row-major); x'(y, x) = bilinear x at (y + dy, x + dx), outside = 0",
     "Simard et al. 2003 elastic distortion (sigma 4; severity 5 = their augmentation strength, alpha 34)"},
};
constexpr double kElasticSigma = 4.0;

const CorruptionDef& find_corruption(const std::string& name) {
  for (const auto& c : kCorruptions)
    if (name == c.name) return c;
  throw core::UsageError(str("unknown corruption '", name, "' (known: gaussian_noise, impulse_noise, gaussian_blur, "
                             "contrast, inversion, elastic)"));
}

}  // namespace

std::vector<uint8_t> rotate_pil_bilinear(const uint8_t* img, int64_t h, int64_t w, double degrees) {
  std::vector<uint8_t> out(static_cast<size_t>(h * w), 0);
  const double ang = -degrees * M_PI / 180.0;
  const double a = suite_round15(std::cos(ang)), b = suite_round15(std::sin(ang));
  const double d = suite_round15(-std::sin(ang)), e = suite_round15(std::cos(ang));
  const double cx = static_cast<double>(w) / 2.0, cy = static_cast<double>(h) / 2.0;
  const double c = a * (-cx) + b * (-cy) + cx;
  const double f = d * (-cx) + e * (-cy) + cy;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      double xin = a * (x + 0.5) + b * (y + 0.5) + c;
      double yin = d * (x + 0.5) + e * (y + 0.5) + f;
      if (xin < 0.0 || xin >= static_cast<double>(w) || yin < 0.0 || yin >= static_cast<double>(h)) continue;
      xin -= 0.5;
      yin -= 0.5;
      const double fx = std::floor(xin), fy = std::floor(yin);
      const int64_t xi = static_cast<int64_t>(fx), yi = static_cast<int64_t>(fy);
      const double dx = xin - fx, dy = yin - fy;
      const uint8_t* row = img + suite_clip_index(yi, h) * w;
      const int64_t x0 = suite_clip_index(xi, w), x1 = suite_clip_index(xi + 1, w);
      double v1 = row[x0] + (static_cast<double>(row[x1]) - row[x0]) * dx;
      double v2 = v1;
      if (yi + 1 >= 0 && yi + 1 < h) {
        const uint8_t* row2 = img + (yi + 1) * w;
        v2 = row2[x0] + (static_cast<double>(row2[x1]) - row2[x0]) * dx;
      }
      v1 = v1 + (v2 - v1) * dy;
      out[static_cast<size_t>(y * w + x)] = static_cast<uint8_t>(v1);  // PIL truncates
    }
  return out;
}

std::vector<double> gaussian_filter(const std::vector<double>& x, int64_t h, int64_t w, double sigma) {
  const int64_t r = static_cast<int64_t>(std::floor(4.0 * sigma + 0.5));
  std::vector<double> k(static_cast<size_t>(2 * r + 1));
  double sum = 0;
  for (int64_t i = -r; i <= r; ++i) {
    double v = std::exp(-0.5 * (static_cast<double>(i) / sigma) * (static_cast<double>(i) / sigma));
    k[static_cast<size_t>(i + r)] = v;
    sum += v;
  }
  for (auto& v : k) v /= sum;
  std::vector<double> tmp(x.size()), out(x.size());
  for (int64_t y = 0; y < h; ++y)
    for (int64_t xx = 0; xx < w; ++xx) {
      double s = 0;
      for (int64_t i = -r; i <= r; ++i)
        s += k[static_cast<size_t>(i + r)] * x[static_cast<size_t>(y * w + suite_clip_index(xx + i, w))];
      tmp[static_cast<size_t>(y * w + xx)] = s;
    }
  for (int64_t y = 0; y < h; ++y)
    for (int64_t xx = 0; xx < w; ++xx) {
      double s = 0;
      for (int64_t i = -r; i <= r; ++i)
        s += k[static_cast<size_t>(i + r)] * tmp[static_cast<size_t>(suite_clip_index(y + i, h) * w + xx)];
      out[static_cast<size_t>(y * w + xx)] = s;
    }
  return out;
}

const std::vector<std::string>& corruption_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& c : kCorruptions) v.push_back(c.name);
    return v;
  }();
  return names;
}

json corruption_params(const std::string& name, int severity) {
  const auto& c = find_corruption(name);
  check_usage(severity >= 1 && severity <= 5, "corruption severity must be 1..5, got ", severity);
  json j = {{"corruption", c.name}, {"severity", severity}, {c.param, c.values[severity - 1]},
            {"formula", c.formula}, {"origin", c.origin}};
  if (name == "elastic") j["sigma"] = kElasticSigma;
  return j;
}

std::vector<uint8_t> corrupt(const std::string& name, int severity, const uint8_t* img, int64_t h, int64_t w,
                             uint64_t seed) {
  const auto& c = find_corruption(name);
  check_usage(severity >= 1 && severity <= 5, "corruption severity must be 1..5, got ", severity);
  const double p = c.values[severity - 1];
  const int64_t n = h * w;
  Rng rng(seed);
  std::vector<double> x = suite_to_unit(img, n);
  if (name == "gaussian_noise") {
    for (auto& v : x) v += p * normal_draw(rng);
  } else if (name == "impulse_noise") {
    for (auto& v : x)
      if (rng.uniform() < p) v = rng.uniform() < 0.5 ? 0.0 : 1.0;
  } else if (name == "gaussian_blur") {
    x = gaussian_filter(x, h, w, p);
  } else if (name == "contrast") {
    double m = 0;
    for (double v : x) m += v;
    m /= static_cast<double>(n);
    for (auto& v : x) v = (v - m) * p + m;
  } else if (name == "inversion") {
    const int64_t wb = std::llround(p * static_cast<double>(w));
    const int64_t x0 = static_cast<int64_t>(std::floor(rng.uniform() * static_cast<double>(w - wb + 1)));
    std::vector<uint8_t> out(img, img + n);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t xx = x0; xx < x0 + wb && xx < w; ++xx)
        out[static_cast<size_t>(y * w + xx)] = static_cast<uint8_t>(255 - out[static_cast<size_t>(y * w + xx)]);
    return out;
  } else if (name == "elastic") {
    std::vector<double> fx(static_cast<size_t>(n)), fy(static_cast<size_t>(n));
    for (auto& v : fx) v = 2.0 * rng.uniform() - 1.0;
    for (auto& v : fy) v = 2.0 * rng.uniform() - 1.0;
    fx = gaussian_filter(fx, h, w, kElasticSigma);
    fy = gaussian_filter(fy, h, w, kElasticSigma);
    std::vector<double> out(static_cast<size_t>(n));
    for (int64_t y = 0; y < h; ++y)
      for (int64_t xx = 0; xx < w; ++xx) {
        const size_t i = static_cast<size_t>(y * w + xx);
        out[i] = suite_sample_zero(x, h, w, static_cast<double>(y) + p * fy[i], static_cast<double>(xx) + p * fx[i]);
      }
    x = std::move(out);
  }
  return suite_from_unit(x);
}

std::vector<uint8_t> sketch(const uint8_t* img, int64_t h, int64_t w) {
  std::vector<double> g = gaussian_filter(suite_to_unit(img, h * w), h, w, kSketchBlurSigma);
  auto at = [&](int64_t y, int64_t x) { return g[static_cast<size_t>(suite_clip_index(y, h) * w + suite_clip_index(x, w))]; };
  std::vector<double> mag(g.size());
  double mx = 0;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      double gx = (at(y - 1, x + 1) + 2 * at(y, x + 1) + at(y + 1, x + 1)) - (at(y - 1, x - 1) + 2 * at(y, x - 1) + at(y + 1, x - 1));
      double gy = (at(y + 1, x - 1) + 2 * at(y + 1, x) + at(y + 1, x + 1)) - (at(y - 1, x - 1) + 2 * at(y - 1, x) + at(y - 1, x + 1));
      double m = std::sqrt(gx * gx + gy * gy);
      mag[static_cast<size_t>(y * w + x)] = m;
      mx = std::max(mx, m);
    }
  std::vector<uint8_t> out(g.size(), 255);
  if (mx < 1e-12) return out;
  for (size_t i = 0; i < mag.size(); ++i) {
    double e = mag[i] / mx;
    double s = std::min(1.0, std::max(0.0, (e - kSketchLow) / (kSketchHigh - kSketchLow)));
    out[i] = suite_quantize(1.0 - s);
  }
  return out;
}

// ------------------------------------------------------------------ base sets and writing
namespace {

/// One split of a prepared base set.
struct SuiteBaseSplit {
  int64_t n = 0, h = 0, w = 0;
  std::vector<uint8_t> images;
  std::vector<int64_t> labels, index;
  const uint8_t* image(int64_t i) const { return images.data() + i * h * w; }
};

struct SuiteBase {
  std::string name, dir;
  json manifest;
  std::map<std::string, SuiteBaseSplit> splits;  // train, val, test
};

/// Prepares (or verifies) the base set under the same root and loads its splits (the first
/// o.limit items of each when limit > 0).
SuiteBase load_suite_base(const std::string& name, const PrepareOptions& o) {
  PrepareOptions bo = o;
  bo.force = false;
  auto r = prepare_dataset(name, bo);
  SuiteBase b;
  b.name = name;
  b.dir = r.dir;
  b.manifest = r.manifest;
  for (const char* s : {"train", "val", "test"}) {
    const auto& js = b.manifest["splits"][s];
    NpyArray im = read_npy((fs::path(b.dir) / js["images"].get<std::string>()).string());
    NpyArray lb = read_npy((fs::path(b.dir) / js["labels"].get<std::string>()).string());
    NpyArray ix = read_npy((fs::path(b.dir) / js["index"].get<std::string>()).string());
    check(im.dtype == "u1" && im.shape.size() == 3, "'", b.dir, "': ", s, " images are not uint8 N×H×W");
    SuiteBaseSplit sp;
    sp.n = im.shape[0], sp.h = im.shape[1], sp.w = im.shape[2];
    if (o.limit > 0) sp.n = std::min(sp.n, o.limit);
    sp.images.assign(im.data.begin(), im.data.begin() + sp.n * sp.h * sp.w);
    for (int64_t i = 0; i < sp.n; ++i) {
      sp.labels.push_back(lb.get_int(static_cast<size_t>(i)));
      sp.index.push_back(ix.get_int(static_cast<size_t>(i)));
    }
    b.splits[s] = std::move(sp);
  }
  return b;
}

/// The base's sources plus its prepared files (name/file, SHA-256): the suite's provenance.
json suite_sources(const SuiteBase& b) {
  json out = json::array();
  for (const auto& s : b.manifest["sources"]) {
    json e = s;
    e["origin"] = str(s.value("origin", ""), " (source of the base set ", b.name, ")");
    out.push_back(e);
  }
  for (auto& [f, sha] : b.manifest["files"].items())
    out.push_back({{"file", b.name + "/" + f}, {"sha256", sha}, {"origin", str("prepared base set `shiftlab data prepare ", b.name, "`")}});
  return out;
}

/// Writes parts (domain/split) of a suite as they are made, then the manifest.
class SuiteWriter {
 public:
  SuiteWriter(std::string dir, int64_t h, int64_t w, int64_t c, int64_t num_classes)
      : dir_(std::move(dir)), h_(h), w_(w), c_(c), nc_(num_classes), total_pc_(static_cast<size_t>(num_classes), 0) {}

  /// domain "" = a plain prepared set (files <split>_*.npy, split key <split>).
  void add(const std::string& domain, const std::string& split, const std::vector<uint8_t>& images,
           const std::vector<int64_t>& labels, const std::vector<int64_t>& index, const json& params,
           const std::string& index_refers_to) {
    const int64_t n = static_cast<int64_t>(labels.size());
    check(static_cast<int64_t>(images.size()) == n * c_ * h_ * w_ && static_cast<int64_t>(index.size()) == n,
          "suite part ", domain, "/", split, ": inconsistent sizes");
    const std::string key = domain.empty() ? split : domain + "/" + split;
    const std::string prefix = domain.empty() ? split : domain + "/" + split;
    if (!domain.empty()) fs::create_directories(fs::path(dir_) / domain);
    std::vector<int64_t> pc(static_cast<size_t>(nc_), 0);
    for (auto l : labels) {
      check(l >= 0 && l < nc_, "suite part ", key, ": label ", l, " out of range");
      pc[static_cast<size_t>(l)]++;
      total_pc_[static_cast<size_t>(l)]++;
    }
    std::vector<int64_t> shape = c_ == 1 ? std::vector<int64_t>{n, h_, w_} : std::vector<int64_t>{n, c_, h_, w_};
    const std::string base = (fs::path(dir_) / prefix).string();
    write_npy(base + "_images.npy", "u1", shape, images.data(), images.size());
    write_npy(base + "_labels.npy", "i8", {n}, labels.data(), labels.size() * 8);
    write_npy(base + "_index.npy", "i8", {n}, index.data(), index.size() * 8);
    for (const char* suf : {"_images.npy", "_labels.npy", "_index.npy"}) files_[prefix + suf] = core::sha256_file(base + suf);
    json js = {{"count", n}, {"per_class", pc}, {"images", prefix + "_images.npy"}, {"labels", prefix + "_labels.npy"},
               {"index", prefix + "_index.npy"}, {"index_refers_to", index_refers_to}};
    if (!domain.empty()) js["domain"] = domain;
    if (!params.is_null()) js["params"] = params;
    splits_[key] = js;
    total_ += n;
  }

  /// manifest.json: `header` (name, description, licence, classes, conversion, sources, derivation,
  /// suite, ...) + shapes, splits, totals and the SHA-256 of every file.
  void finish(json header) {
    header["format"] = "shiftlab-prepared";
    header["version"] = 1;
    header["image_shape"] = {h_, w_};
    header["channels"] = c_;
    header["layout"] = c_ == 1 ? "nhw" : "nchw";
    header["dtype"] = "uint8";
    header["num_classes"] = nc_;
    header["splits"] = splits_;
    header["total"] = total_;
    header["per_class"] = total_pc_;
    header["files"] = files_;
    core::atomic_write((fs::path(dir_) / "manifest.json").string(), header.dump(2) + "\n");
  }

 private:
  std::string dir_;
  int64_t h_, w_, c_, nc_;
  std::vector<int64_t> total_pc_;
  int64_t total_ = 0;
  json splits_ = json::object(), files_ = json::object();
};

/// Per-domain stratified split: per class, a permutation seeded by (seed, suite, domain, class);
/// test = round(0.2 n_c), val = round(0.1 n_c), train = the rest; 0 train, 1 val, 2 test.
std::vector<int> suite_stratify(const std::vector<int64_t>& labels, uint64_t seed, const std::string& suite,
                                const std::string& domain) {
  std::map<int64_t, std::vector<size_t>> by;
  for (size_t i = 0; i < labels.size(); ++i) by[labels[i]].push_back(i);
  std::vector<int> which(labels.size(), 0);
  for (auto& [cls, idx] : by) {
    Rng r(mix_seed(seed, fnv1a(suite + "/split"), fnv1a(domain), static_cast<uint64_t>(cls)));
    r.shuffle(idx);
    const size_t nt = static_cast<size_t>(std::llround(kTestFraction * static_cast<double>(idx.size())));
    const size_t nv = static_cast<size_t>(std::llround(kValFraction * static_cast<double>(idx.size())));
    for (size_t k = 0; k < idx.size(); ++k) which[idx[k]] = k < nt ? 2 : (k < nt + nv ? 1 : 0);
  }
  return which;
}

const char* kSuiteSplitMethod =
    "per domain, stratified per class: test = round(0.2·n_c), val = round(0.1·n_c), train = the rest; per-class "
    "permutation seeded by mix_seed(seed, fnv1a(suite + \"/split\"), fnv1a(domain), class); items keep domain order";

/// Writes one domain's items split per suite_stratify.
void suite_write_domain(SuiteWriter& wr, const std::string& suite, const std::string& domain, uint64_t seed,
                        int64_t item_bytes, const std::vector<uint8_t>& images, const std::vector<int64_t>& labels,
                        const std::vector<int64_t>& index, const json& params, const std::string& refers) {
  auto which = suite_stratify(labels, seed, suite, domain);
  const char* names[3] = {"train", "val", "test"};
  for (int s = 0; s < 3; ++s) {
    std::vector<uint8_t> im;
    std::vector<int64_t> lb, ix;
    for (size_t i = 0; i < labels.size(); ++i)
      if (which[i] == s) {
        im.insert(im.end(), images.begin() + static_cast<std::ptrdiff_t>(i) * item_bytes,
                  images.begin() + static_cast<std::ptrdiff_t>(i + 1) * item_bytes);
        lb.push_back(labels[i]);
        ix.push_back(index[i]);
      }
    wr.add(domain, names[s], im, lb, ix, params, refers);
  }
}

/// The base set's items in source order (positions given by the splits' index arrays).
void suite_source_order(const SuiteBase& b, std::vector<uint8_t>& images, std::vector<int64_t>& labels,
                        std::vector<int64_t>& index) {
  std::vector<std::pair<int64_t, std::pair<const SuiteBaseSplit*, int64_t>>> items;
  for (auto& [s, sp] : b.splits)
    for (int64_t i = 0; i < sp.n; ++i) items.push_back({sp.index[static_cast<size_t>(i)], {&sp, i}});
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& c) { return a.first < c.first; });
  for (auto& [pos, it] : items) {
    const auto* sp = it.first;
    images.insert(images.end(), sp->image(it.second), sp->image(it.second) + sp->h * sp->w);
    labels.push_back(sp->labels[static_cast<size_t>(it.second)]);
    index.push_back(pos);
  }
}

json suite_derivation(const SuiteBase& b, const PrepareOptions& o) {
  return {{"base", b.name}, {"base_manifest_sha256", core::sha256_file((fs::path(b.dir) / "manifest.json").string())},
          {"seed", o.seed}, {"limit", o.limit},
          {"item_seed", "mix_seed(seed, fnv1a(suite), fnv1a(domain), k) for item k of a domain (src/data/rng.h)"}};
}

// ------------------------------------------------------------------ rotated-mnist / colored-mnist
/// DomainBed's MultipleEnvironmentMNIST: the base items in source order, permuted (Rng seeded by
/// mix_seed(seed, fnv1a(suite))), domain i = permuted items i, i + D, i + 2D, ...
std::vector<std::vector<size_t>> suite_partition(size_t n, size_t domains, uint64_t seed, const std::string& suite) {
  std::vector<size_t> perm(n);
  for (size_t i = 0; i < n; ++i) perm[i] = i;
  Rng r(mix_seed(seed, fnv1a(suite)));
  r.shuffle(perm);
  std::vector<std::vector<size_t>> out(domains);
  for (size_t k = 0; k < n; ++k) out[k % domains].push_back(perm[k]);
  return out;
}

const char* kPartitionMethod =
    "DomainBed MultipleEnvironmentMNIST: the base's items in source order, permuted by Rng(mix_seed(seed, "
    "fnv1a(suite))).shuffle (Fisher-Yates from the end), domain i = permuted items i, i+D, i+2D, ... (disjoint)";

Converted prepare_rotated(const PrepareOptions& o) {
  Converted c;
  c.description = "Rotated MNIST (DomainBed): 6 disjoint domains of the 10,000-digit MNIST subset rotated by 0, 15, 30, "
                  "45, 60, 75 degrees";
  c.license = "MIT";
  c.write = [o](const std::string& dir) {
    const std::string suite = "rotated-mnist";
    SuiteBase b = load_suite_base("mnist", o);
    std::vector<uint8_t> images;
    std::vector<int64_t> labels, index;
    suite_source_order(b, images, labels, index);
    const int64_t h = b.splits["train"].h, w = b.splits["train"].w;
    const std::vector<int> angles = {0, 15, 30, 45, 60, 75};
    auto parts = suite_partition(labels.size(), angles.size(), o.seed, suite);
    SuiteWriter wr(dir, h, w, 1, 10);
    json domains = json::array();
    for (size_t d = 0; d < angles.size(); ++d) {
      const std::string dom = std::to_string(angles[d]);
      domains.push_back(dom);
      std::vector<uint8_t> im;
      std::vector<int64_t> lb, ix;
      for (size_t k : parts[d]) {
        auto r = rotate_pil_bilinear(images.data() + k * static_cast<size_t>(h * w), h, w, angles[d]);
        im.insert(im.end(), r.begin(), r.end());
        lb.push_back(labels[k]);
        ix.push_back(index[k]);
      }
      suite_write_domain(wr, suite, dom, o.seed, h * w, im, lb, ix, json{{"angle", angles[d]}}, "mnist source order");
    }
    json classes = json::array();
    for (int k = 0; k < 10; ++k) classes.push_back(std::to_string(k));
    wr.finish({{"name", suite},
               {"description", "Rotated MNIST (DomainBed; Ghifary et al. 2015): disjoint domains of the MNIST subset "
                               "rotated by 0..75 degrees"},
               {"license", "MIT"},
               {"classes", classes},
               {"conversion", "rotate_pil_bilinear: PIL Image.rotate(angle, BILINEAR, fillcolor=0), as DomainBed's "
                              "torchvision rotate (counter-clockwise about the image centre, uint8 truncated)"},
               {"sources", suite_sources(b)},
               {"derivation", suite_derivation(b, o)},
               {"split", {{"seed", o.seed}, {"method", kSuiteSplitMethod}}},
               {"suite", {{"kind", "rotated-mnist"},
                          {"paper", "Ghifary et al., ICCV 2015 (MTAE); Gulrajani & Lopez-Paz, ICLR 2021 (DomainBed)"},
                          {"domains", domains},
                          {"partition", kPartitionMethod},
                          {"transformation", "rotation by the domain's angle (degrees, counter-clockwise)"}}}});
  };
  return c;
}

Converted prepare_colored(const PrepareOptions& o) {
  Converted c;
  c.description = "Colored MNIST (DomainBed): binary label digit < 5 with 25% label noise, colour agrees with the label "
                  "with probability 1 - e, e = 0.1, 0.2, 0.9; 2 channels";
  c.license = "MIT";
  c.write = [o](const std::string& dir) {
    const std::string suite = "colored-mnist";
    SuiteBase b = load_suite_base("mnist", o);
    std::vector<uint8_t> images;
    std::vector<int64_t> labels, index;
    suite_source_order(b, images, labels, index);
    const int64_t h = b.splits["train"].h, w = b.splits["train"].w, hw = h * w;
    const std::vector<std::string> envs = {"0.1", "0.2", "0.9"};
    const std::vector<double> es = {0.1, 0.2, 0.9};
    constexpr double kNoise = 0.25;
    auto parts = suite_partition(labels.size(), envs.size(), o.seed, suite);
    SuiteWriter wr(dir, h, w, 2, 2);
    for (size_t d = 0; d < envs.size(); ++d) {
      std::vector<uint8_t> im(parts[d].size() * static_cast<size_t>(2 * hw), 0);
      std::vector<int64_t> lb, ix;
      for (size_t k = 0; k < parts[d].size(); ++k) {
        const size_t src = parts[d][k];
        Rng r(item_seed(o.seed, suite, envs[d], k));
        int64_t y = labels[src] < 5 ? 1 : 0;
        if (r.uniform() < kNoise) y ^= 1;
        int64_t colour = y;
        if (r.uniform() < es[d]) colour ^= 1;
        std::memcpy(im.data() + (k * 2 + static_cast<size_t>(colour)) * static_cast<size_t>(hw),
                    images.data() + src * static_cast<size_t>(hw), static_cast<size_t>(hw));
        lb.push_back(y);
        ix.push_back(index[src]);
      }
      suite_write_domain(wr, suite, envs[d], o.seed, 2 * hw, im, lb, ix,
                         json{{"e", es[d]}, {"label_noise", kNoise}}, "mnist source order");
    }
    wr.finish({{"name", suite},
               {"description", "Colored MNIST (DomainBed; Arjovsky et al. 2019): binary label, 25% label noise, colour "
                               "flipped from the label with probability e per domain"},
               {"license", "MIT"},
               {"classes", std::vector<std::string>{"digit >= 5", "digit < 5"}},
               {"conversion",
                "label y = (digit < 5) xor (u1 < 0.25); colour = y xor (u2 < e); image = 2×H×W, channel `colour` = the "
                "digit, the other channel 0 (DomainBed's color_dataset; channel 0 'red', 1 'green'); u1, u2 = the "
                "first two uniforms of the item's Rng"},
               {"sources", suite_sources(b)},
               {"derivation", suite_derivation(b, o)},
               {"split", {{"seed", o.seed}, {"method", kSuiteSplitMethod}}},
               {"suite", {{"kind", "colored-mnist"},
                          {"paper", "Arjovsky et al., 2019 (IRM); Gulrajani & Lopez-Paz, ICLR 2021 (DomainBed)"},
                          {"domains", envs},
                          {"partition", kPartitionMethod},
                          {"transformation", "colour-flip probability e = the domain name; label noise 0.25"}}}});
  };
  return c;
}

// ------------------------------------------------------------------ corruption suites
Converted prepare_corrupted(const PrepareOptions& o, const std::string& suite, const std::string& base) {
  Converted c;
  c.description = str("corruptions × severity 1..5 of the ", base, " test split");
  c.license = "MIT";
  c.write = [o, suite, base](const std::string& dir) {
    SuiteBase b = load_suite_base(base, o);
    const auto& t = b.splits["test"];
    SuiteWriter wr(dir, t.h, t.w, 1, b.manifest.value("num_classes", int64_t{10}));
    json domains = json::array(), params = json::object();
    for (const auto& name : corruption_names())
      for (int sev = 1; sev <= 5; ++sev) {
        const std::string dom = str(name, "-", sev);
        domains.push_back(dom);
        std::vector<uint8_t> im;
        im.reserve(t.images.size());
        for (int64_t k = 0; k < t.n; ++k) {
          auto r = corrupt(name, sev, t.image(k), t.h, t.w, item_seed(o.seed, suite, dom, static_cast<uint64_t>(k)));
          im.insert(im.end(), r.begin(), r.end());
        }
        json p = corruption_params(name, sev);
        params[dom] = p;
        wr.add(dom, "test", im, t.labels, t.index, p, str(base, " ", b.manifest["splits"]["test"].value("index_refers_to", "source order")));
      }
    wr.finish({{"name", suite},
               {"description", str("corrupted copies of the ", base, " test split: ", corruption_names().size(),
                                   " corruptions × severity 1..5 (MNIST-C / ImageNet-C style); clean = `dataset = ",
                                   base, "`, `split = test`")},
               {"license", b.manifest.value("license", "")},
               {"classes", b.manifest["classes"]},
               {"conversion", "x = uint8/255 (double); corruption; uint8 = floor(clip(x', 0, 1)·255 + 0.5); item k of "
                              "domain D uses Rng(item_seed(seed, suite, D, k)); items in the base test split's order"},
               {"sources", suite_sources(b)},
               {"derivation", suite_derivation(b, o)},
               {"split", {{"seed", o.seed}, {"method", str("each domain's test = the corrupted ", base, " test split")}}},
               {"suite", {{"kind", "corruptions"},
                          {"paper", "Mu & Gilmer 2019 (MNIST-C); Hendrycks & Dietterich, ICLR 2019 (ImageNet-C)"},
                          {"domains", domains},
                          {"corruptions", corruption_names()},
                          {"params", params},
                          {"transformation", "domain <corruption>-<severity>"}}}});
  };
  return c;
}

// ------------------------------------------------------------------ fashion-sketch
Converted prepare_sketch(const PrepareOptions& o) {
  Converted c;
  c.description = "Fashion-MNIST as line drawings (edges, dark on white): a photo → sketch analogue";
  c.license = "MIT";
  c.write = [o](const std::string& dir) {
    SuiteBase b = load_suite_base("fashion-mnist", o);
    const auto& t0 = b.splits["train"];
    SuiteWriter wr(dir, t0.h, t0.w, 1, 10);
    for (const char* s : {"train", "val", "test"}) {
      const auto& sp = b.splits[s];
      std::vector<uint8_t> im;
      im.reserve(sp.images.size());
      for (int64_t k = 0; k < sp.n; ++k) {
        auto r = sketch(sp.image(k), sp.h, sp.w);
        im.insert(im.end(), r.begin(), r.end());
      }
      wr.add("", s, im, sp.labels, sp.index, json(), b.manifest["splits"][s].value("index_refers_to", ""));
    }
    wr.finish({{"name", "fashion-sketch"},
               {"description", "Fashion-MNIST rendered as line drawings (dark edges on white), same items and splits as "
                               "fashion-mnist: a photo → sketch analogue (PACS / DomainNet sketch domains)"},
               {"license", "MIT"},
               {"classes", b.manifest["classes"]},
               {"conversion", str("sketch(): Gaussian blur sigma ", kSketchBlurSigma,
                                  " (edge replicate), Sobel magnitude (edge replicate), e = magnitude / max, s = clip((e - ",
                                  kSketchLow, ") / ", kSketchHigh - kSketchLow,
                                  ", 0, 1), uint8 = floor((1 - s)·255 + 0.5); no randomness")},
               {"sources", suite_sources(b)},
               {"derivation", suite_derivation(b, o)},
               {"split", {{"seed", kSplitSeed}, {"method", "the fashion-mnist splits, item for item"}}}});
  };
  return c;
}

Converted prepare_mnist_c(const PrepareOptions& o) { return prepare_corrupted(o, "mnist-c", "mnist"); }
Converted prepare_fashion_c(const PrepareOptions& o) { return prepare_corrupted(o, "fashion-c", "fashion-mnist"); }

}  // namespace

SHIFTLAB_REGISTER(prepare_registry(), "rotated-mnist",
                  "DomainBed Rotated MNIST from mnist: domains 0,15,30,45,60,75 (split = 45/train)", prepare_rotated);
SHIFTLAB_REGISTER(prepare_registry(), "colored-mnist",
                  "DomainBed Colored MNIST from mnist: domains 0.1,0.2,0.9, 2 channels (split = 0.1/train)", prepare_colored);
SHIFTLAB_REGISTER(prepare_registry(), "mnist-c",
                  "mnist test split × 6 corruptions × severity 1..5 (split = gaussian_noise-3/test)", prepare_mnist_c);
SHIFTLAB_REGISTER(prepare_registry(), "fashion-c",
                  "fashion-mnist test split × 6 corruptions × severity 1..5 (split = elastic-2/test)", prepare_fashion_c);
SHIFTLAB_REGISTER(prepare_registry(), "fashion-sketch",
                  "fashion-mnist as line drawings (photo -> sketch analogue), same splits", prepare_sketch);

// ------------------------------------------------------------------ opening DOMAIN/SPLIT
RawDatasetPtr open_suite_split(const std::string& dir, const json& m, const std::string& split) {
  if (!m.contains("suite")) return nullptr;
  const std::string name = m.value("name", dir);
  std::vector<std::string> domains = m["suite"]["domains"].get<std::vector<std::string>>();
  std::string dl;
  for (auto& d : domains) dl += (dl.empty() ? "" : ", ") + d;
  const auto slash = split.rfind('/');
  if (slash == std::string::npos)
    throw core::UsageError(str("'", name, "' (", dir, ") is a suite of domains: split must be DOMAIN/SPLIT, e.g. '",
                               domains.front(), "/", m["splits"].contains(domains.front() + "/train") ? "train" : "test",
                               "', not '", split, "' (domains: ", dl, ")"));
  const std::string dom = split.substr(0, slash), part = split.substr(slash + 1);
  if (std::find(domains.begin(), domains.end(), dom) == domains.end()) {
    std::string hint = core::nearest(dom, domains);
    throw core::UsageError(str("suite '", name, "' has no domain '", dom, "'", hint.empty() ? "" : str(" — did you mean '", hint, "'?"),
                               " (domains: ", dl, ")"));
  }
  std::vector<std::string> parts;
  std::string known;
  for (const char* s : {"train", "val", "test"})
    if (m["splits"].contains(dom + "/" + s)) {
      known += str(known.empty() ? "" : ", ", s);
      if (part == "all" || part == s) parts.push_back(dom + "/" + s);
    }
  check_usage(!parts.empty(), "suite '", name, "' domain '", dom, "' has no split '", part, "' (known: ", known, ", all)");
  int64_t n = 0, h = 0, w = 0, c = 0;
  std::vector<uint8_t> data;
  std::vector<int64_t> labels;
  for (auto& key : parts) {
    const auto& js = m["splits"][key];
    std::string ip = (fs::path(dir) / js["images"].get<std::string>()).string();
    NpyArray im = read_npy(ip);
    check(im.dtype == "u1" && (im.shape.size() == 3 || im.shape.size() == 4), "'", ip, "': expected uint8 N×H×W or N×C×H×W");
    check(im.shape[0] == js["count"].get<int64_t>(), "'", ip, "' holds ", im.shape[0], " images but the manifest says ",
          js["count"].get<int64_t>());
    const int64_t ic = im.shape.size() == 4 ? im.shape[1] : 1, ih = im.shape[im.shape.size() - 2], iw = im.shape.back();
    if (n == 0) h = ih, w = iw, c = ic;
    check(ih == h && iw == w && ic == c, "'", ip, "': image shape differs from the domain's other splits");
    const size_t off = data.size();
    data.resize(off + static_cast<size_t>(im.shape[0] * c * h * w));
    if (c == 1) std::memcpy(data.data() + off, im.data.data(), static_cast<size_t>(im.shape[0] * h * w));
    else  // N×C×H×W on disk -> N×H×W×C in memory
      for (int64_t i = 0; i < im.shape[0]; ++i)
        for (int64_t b = 0; b < c; ++b)
          for (int64_t p = 0; p < h * w; ++p)
            data[off + static_cast<size_t>((i * h * w + p) * c + b)] =
                static_cast<uint8_t>(im.data[static_cast<size_t>((i * c + b) * h * w + p)]);
    NpyArray lb = read_npy((fs::path(dir) / js["labels"].get<std::string>()).string());
    check(lb.shape.size() == 1 && lb.shape[0] == im.shape[0], "'", dir, "': labels of ", key, " do not match its images");
    for (int64_t i = 0; i < im.shape[0]; ++i) labels.push_back(lb.get_int(static_cast<size_t>(i)));
    n += im.shape[0];
  }
  return std::make_shared<ArrayDataset>(n, h, w, c, std::move(data), std::vector<float>{}, std::move(labels),
                                        m.value("num_classes", int64_t{0}),
                                        str("suite ", name, " (", dir, ") ", split, ": ", n, " images ", h, "×", w,
                                            c > 1 ? str("×", c) : std::string()),
                                        m.value("classes", std::vector<std::string>{}));
}

}  // namespace shiftlab::data::suites
