// Dataset kinds (registry "datasets"): raw sources of decoded images before transforms, and the
// domain wrapper that applies a transform chain, hides labels, skips corrupt items and caches.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/registry.h"
#include "data/dataset.h"
#include "data/decode.h"
#include "data/image.h"
#include "data/options.h"
#include "data/transforms.h"

namespace shiftlab::data {

/// A source of decoded images (H×W×C, image.h) with labels known up front. It is also a
/// Dataset (get() = to_tensor(load(i)), no transforms).
class RawDataset : public Dataset {
 public:
  /// Decodes item i; `hint` lets JPEG decoding downscale. Thread-safe.
  virtual Image load(size_t i, const DecodeHint& hint) const = 0;
  size_t size() const override { return labels_.size(); }
  Sample get(size_t i, uint64_t) const override;
  int64_t num_classes() const override { return num_classes_; }
  std::vector<int64_t> labels() const override { return labels_; }
  std::string describe() const override { return describe_; }
  int64_t label(size_t i) const { return labels_[i]; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  /// A stable identity of item i, equal for the same image reached through two datasets (the
  /// file's absolute path, or the array file and row): how role overlaps are counted.
  virtual std::string item_id(size_t i) const;

 protected:
  std::vector<int64_t> labels_;  ///< −1 where unknown
  int64_t num_classes_ = 0;
  std::vector<std::string> class_names_;
  std::string describe_;
};
using RawDatasetPtr = std::shared_ptr<const RawDataset>;

using DatasetFactory = std::function<RawDatasetPtr(const DomainOptions&)>;
/// Dataset kinds: prepared, idx, digits_csv, npy, hdf5, image_folder, list_file.
core::Registry<DatasetFactory>& dataset_registry();

/// Images held in memory as one N×H×W×C array (prepared, idx, digits_csv, npy).
class ArrayDataset : public RawDataset {
 public:
  /// `u8` or `f32` holds N×H×W×C values (exactly one is non-empty).
  ArrayDataset(int64_t n, int64_t h, int64_t w, int64_t c, std::vector<uint8_t> u8, std::vector<float> f32,
               std::vector<int64_t> labels, int64_t num_classes, std::string describe,
               std::vector<std::string> class_names = {});
  Image load(size_t i, const DecodeHint& hint) const override;
  /// Rows come from these files in order (sizes sum to N): item_id = "<file>#<row in it>".
  void set_origins(std::vector<std::string> files, std::vector<int64_t> sizes);
  std::string item_id(size_t i) const override;

 private:
  std::vector<std::string> origins_;
  std::vector<int64_t> origin_sizes_;
  int64_t h_, w_, c_;
  std::vector<uint8_t> u8_;
  std::vector<float> f32_;
};

/// Image files on disk (image_folder, list_file): decoded on every load.
class FileDataset : public RawDataset {
 public:
  FileDataset(std::vector<std::string> paths, std::vector<int64_t> labels, int64_t num_classes,
              std::vector<std::string> class_names, std::string describe);
  Image load(size_t i, const DecodeHint& hint) const override;
  std::string path(size_t i) const override { return paths_[i]; }

 private:
  std::vector<std::string> paths_;
};

/// A domain: raw dataset + transform chain. labelled=false hides labels (−1, num_classes 0);
/// on_error=skip replaces an unreadable item by the next readable one (i+1, i+2, … mod N,
/// deterministic) and counts it; cache keeps the output of the chain's leading deterministic
/// uint8 ops (decode, resize, crop, band ops) per item in RAM.
class DomainDataset : public Dataset {
 public:
  DomainDataset(RawDatasetPtr raw, TransformChain chain, DomainOptions o);
  size_t size() const override { return raw_->size(); }
  Sample get(size_t i, uint64_t rng_seed) const override;
  /// The transformed image of item i as an Image (before to_tensor) — for stats and tools.
  Image get_image(size_t i, uint64_t rng_seed, size_t* used_index = nullptr) const;
  /// Item i transformed up to a trailing normalize, whose per-band affine is returned in
  /// scale/shift (empty = identity) for a fused write_chw(); the loader's fast path. get()
  /// uses the same path, so both give identical tensors.
  struct Prepared {
    Image image;
    std::vector<float> scale, shift;
    size_t index = 0;  ///< the item actually used (differs from i after a skip)
    int64_t label = -1;
  };
  Prepared get_prepared(size_t i, uint64_t rng_seed) const;
  int64_t num_classes() const override { return o_.labelled ? raw_->num_classes() : 0; }
  std::vector<int64_t> labels() const override;
  std::string describe() const override;
  std::string path(size_t i) const override { return raw_->path(i); }
  /// Items skipped so far (on_error = skip), with their error messages.
  size_t skipped_count() const;
  std::vector<std::string> skipped_items() const;
  const RawDataset& raw() const { return *raw_; }
  const TransformChain& chain() const { return chain_; }
  const DomainOptions& options() const { return o_; }

 private:
  Image load_prefix(size_t i) const;
  Image load_readable(size_t i, size_t* used) const;
  RawDatasetPtr raw_;
  TransformChain chain_;
  DomainOptions o_;
  size_t prefix_;
  DecodeHint hint_;
  mutable std::vector<std::shared_ptr<const Image>> cache_;
  mutable std::unique_ptr<std::mutex[]> cache_locks_;
  mutable std::mutex skip_mu_;
  mutable std::map<size_t, std::string> bad_;
};

/// Builds the raw dataset of a domain: a registered kind, or a prepared name under o.root.
RawDatasetPtr make_raw_dataset(const DomainOptions& o);
/// A seeded subset of `raw`: per_class > 0 keeps that many items of every class (the first of a
/// per-class permutation, so one seed's subsets are nested), limit > 0 then keeps that many items
/// at random; both 0 returns raw. Items stay in ascending base order.
RawDatasetPtr subset_dataset(RawDatasetPtr raw, int64_t per_class, int64_t limit, uint64_t seed);
/// Items idx[0], idx[1], ... of `base` as a dataset (labels, names, paths and item ids follow);
/// `what` is appended to the description.
RawDatasetPtr pick_items(RawDatasetPtr base, std::vector<size_t> idx, const std::string& what);
/// `base` with label l replaced by to_source[l] (−1 stays −1), the given class names and count.
RawDatasetPtr relabel_dataset(RawDatasetPtr base, std::vector<int64_t> to_source, std::vector<std::string> names,
                              const std::string& what);
/// Fisher-Yates with mt19937_64(seed): the same permutation on every platform.
void seeded_shuffle(std::vector<size_t>& v, uint64_t seed);
/// dataset + split + transform chain (errors name files, keys and transform items).
DatasetPtr make_domain(const DomainOptions& o);

}  // namespace shiftlab::data
