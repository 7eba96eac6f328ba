// Config-driven, seeded image transforms and their small text grammar.
//
// Grammar (`items` in core/spec.h; data/README.md):  chain := item ("," item)* | "none" | ""
//   item := name [ "(" args ")" ] ;  args := arg ("," arg)* ;  arg := value | key "=" value
//   value := number | word | "[" number, ... "]"     (positional args before key=value ones)
// e.g. "resize(32), center_crop(28), grey_to_rgb, normalize(0.5, 0.5)"
//      "random_resized_crop(224, scale=[0.08, 1]), hflip, normalize(imagenet)"
// Items run left to right on an Image (image.h). Random items draw from one Rng seeded per
// sample by the loader from (seed, epoch, index), so results never depend on the worker thread.
// spec() prints a chain in canonical form; parse(spec()) gives the same chain (round trip).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/registry.h"
#include "data/decode.h"
#include "data/image.h"
#include "data/rng.h"

namespace shiftlab::data {

/// Parsed arguments of one transform item.
struct TransformArgs {
  std::string name;                                   ///< transform name (for errors)
  std::vector<std::vector<double>> pos;               ///< positional numeric values (lists allowed)
  std::vector<std::string> pos_words;                 ///< positional words ("" where numeric)
  std::map<std::string, std::vector<double>> kw;      ///< key=value numeric
  std::map<std::string, std::string> kw_words;        ///< key=word
  /// Numeric value of positional i or key (scalar); `def` when absent.
  double num(size_t i, const std::string& key, double def) const;
  bool has(size_t i, const std::string& key) const;
  std::vector<double> list(size_t i, const std::string& key, std::vector<double> def) const;
  /// Throws UsageError unless only the given keys / at most max_pos positionals are used.
  void allow(size_t max_pos, const std::vector<std::string>& keys) const;
};

/// One step of a chain. apply() must be thread-safe (const, no state).
class Transform {
 public:
  virtual ~Transform() = default;
  virtual Image apply(Image im, Rng& rng) const = 0;
  /// Canonical text, e.g. "resize(32)".
  virtual std::string spec() const = 0;
  /// True when the output depends on the rng.
  virtual bool random() const { return false; }
  /// True when a U8 input stays U8 (geometric / band ops): such a leading non-random prefix
  /// is what the RAM cache stores.
  virtual bool keeps_u8() const { return false; }
  /// For the first op: smallest shorter side of the decoded image that loses nothing (0 = full).
  virtual int64_t decode_hint() const { return 0; }
  /// Per-band affine ops (normalize) report out = x·scale[b] + shift[b] for `bands` bands so
  /// the final tensor conversion can fuse them (x in [0,1] units). Throws like apply() on a
  /// band mismatch.
  virtual bool is_affine() const { return false; }
  virtual bool affine(int64_t /*bands*/, std::vector<float>& /*scale*/, std::vector<float>& /*shift*/) const {
    return false;
  }
};
using TransformPtr = std::shared_ptr<const Transform>;
using TransformFactory = std::function<TransformPtr(const TransformArgs&)>;
core::Registry<TransformFactory>& transform_registry();

/// An ordered list of transforms.
class TransformChain {
 public:
  TransformChain() = default;
  explicit TransformChain(std::vector<TransformPtr> ops) : ops_(std::move(ops)) {}
  /// Runs every op with an Rng seeded by `seed`.
  Image apply(Image im, uint64_t seed) const { return apply_range(std::move(im), seed, 0, ops_.size()); }
  /// Runs ops [from, to) with an Rng seeded by `seed`.
  Image apply_range(Image im, uint64_t seed, size_t from, size_t to) const;
  /// Number of leading ops that are non-random and keep U8 (cacheable).
  size_t cacheable_prefix() const;
  DecodeHint decode_hint() const;
  std::string spec() const;
  const std::vector<TransformPtr>& ops() const { return ops_; }

 private:
  std::vector<TransformPtr> ops_;
};

/// Parses the grammar above; core::SpecError (a UsageError) with the column of the bad item /
/// argument.
TransformChain parse_transforms(const std::string& text);

/// ImageNet mean / std (RGB), as torchvision.
extern const std::vector<double> kImagenetMean, kImagenetStd;

}  // namespace shiftlab::data
