// Shift suites derived from the prepared base sets (`shiftlab data prepare NAME`, data/README.md):
//   rotated-mnist   DomainBed's Rotated MNIST: domains 0, 15, 30, 45, 60, 75 (degrees)
//   colored-mnist   DomainBed's Colored MNIST: domains 0.1, 0.2, 0.9 (colour-flip probability)
//   mnist-c         corruptions × severity 1..5 of the mnist test split (MNIST-C / ImageNet-C style)
//   fashion-c       the same for the Fashion-MNIST test split
//   fashion-sketch  a line-drawing (edge) rendering of Fashion-MNIST, same splits (photo → sketch)
// Every image operation here is deterministic: random draws come from a data::Rng seeded per item
// from (data.seed, suite, domain, item), so a suite is byte-identical on every machine.
//
// A suite's manifest is a prepared manifest (format shiftlab-prepared, version 1) whose "splits"
// are keyed DOMAIN/SPLIT ("45/train", "gaussian_noise-3/test") and that carries a "suite" object
// (domains, transformation, parameters, seed, base set). A domain names a member directly:
// `dataset = rotated-mnist`, `split = 45/train`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/datasets.h"
#include "data/rng.h"

namespace shiftlab::data::suites {

/// PIL's Image.rotate(degrees, resample=BILINEAR, expand=False, fillcolor=0) of an 8-bit H×W
/// image, bit-exact with Pillow 9 (counter-clockwise about (W/2, H/2); samples at pixel centres;
/// a sample point outside [0, W)×[0, H) is 0; neighbours are clamped at the border; the bilinear
/// value is truncated to uint8). This is what DomainBed's RotatedMNIST applies
/// (torchvision.transforms.functional.rotate on a PIL image).
std::vector<uint8_t> rotate_pil_bilinear(const uint8_t* img, int64_t h, int64_t w, double degrees);

/// Corruption names, in suite order: gaussian_noise, impulse_noise, gaussian_blur, contrast,
/// inversion, elastic.
const std::vector<std::string>& corruption_names();
/// The parameters of one corruption at severity 1..5 ({"corruption", "severity", parameter: value,
/// "formula"}); UsageError for an unknown name or severity.
nlohmann::json corruption_params(const std::string& name, int severity);
/// Applies a corruption to an 8-bit H×W image. Pixels are x = u/255 in double precision; the result
/// is uint8 = floor(clip(x', 0, 1)·255 + 0.5). `seed` seeds the item's Rng (noise, elastic fields).
std::vector<uint8_t> corrupt(const std::string& name, int severity, const uint8_t* img, int64_t h, int64_t w,
                             uint64_t seed);

/// Separable Gaussian filter of a double H×W image: kernel exp(-i²/(2σ²)), i in [-r, r],
/// r = floor(4σ + 0.5), normalised; rows first, then columns; indices clamped (edge replicate).
std::vector<double> gaussian_filter(const std::vector<double>& x, int64_t h, int64_t w, double sigma);

/// The line drawing of an 8-bit H×W image: Gaussian blur (σ 0.7), Sobel gradient magnitude (edge
/// replicate), e = magnitude / its maximum, strength s = clip((e − 0.1) / 0.4, 0, 1), dark lines on
/// white: uint8 = floor((1 − s)·255 + 0.5) (an image without edges is white).
std::vector<uint8_t> sketch(const uint8_t* img, int64_t h, int64_t w);
constexpr double kSketchBlurSigma = 0.7, kSketchLow = 0.1, kSketchHigh = 0.5;

/// 64-bit FNV-1a of a string (the suite and domain parts of an item's seed).
uint64_t fnv1a(const std::string& s);
/// The Rng seed of item k of a domain: mix_seed(seed, fnv1a(suite), fnv1a(domain), k).
inline uint64_t item_seed(uint64_t seed, const std::string& suite, const std::string& domain, uint64_t k) {
  return mix_seed(seed, fnv1a(suite), fnv1a(domain), k);
}

/// A standard normal draw from two uniforms (Box-Muller, cosine branch):
/// sqrt(-2 ln(1 − u1)) · cos(2π u2).
double normal_draw(Rng& r);

/// Opens split DOMAIN/SPLIT of a suite directory (manifest has "suite"); SPLIT may be "all"
/// (train + val + test of that domain). Returns nullptr when the manifest is not a suite's.
RawDatasetPtr open_suite_split(const std::string& dir, const nlohmann::json& manifest, const std::string& split);

}  // namespace shiftlab::data::suites
