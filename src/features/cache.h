// The HDF5 feature cache written by `shiftlab extract` and read by `shiftlab probe` / `advise`.
//
// Schema (format "shiftlab-features", version 1; plain arrays, readable by h5py and pandas):
//   /                              attrs: format, format_version, backbone, weights, weights_sha256,
//                                         checkpoint, shiftlab_version, created, config (resolved INI)
//   /<domain>/<split>/             attrs: dataset, transform, num_classes, rows (N expected)
//   /<domain>/<split>/labels       int64 [N]   (-1 = no label)
//   /<domain>/<split>/index        int64 [N]   sample index within the dataset split
//   /<domain>/<split>/paths        vlen utf-8 string [N] ("" where the dataset has no paths)
//   /<domain>/<split>/<tap>/features  float32 or float16 [N, D], chunked (rows), stored as such;
//                                  attrs: tap, pool ("avg" | "avgmax"), dtype, rows_done
// <domain> is "source" or "target"; <split> the dataset split ("train", "val", "test"); <tap> a
// backbone tap name ("layer3", "pooled"). rows_done counts the rows written so far; a block is
// complete when rows_done == rows. Resumed extraction continues at rows_done.
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace shiftlab::features {

constexpr int kCacheFormatVersion = 1;

/// One (domain, split, tap) block as listed in a cache.
struct CacheEntry {
  std::string domain, split, tap;
  int64_t rows = 0;       ///< N expected
  int64_t rows_done = 0;  ///< rows written so far
  int64_t dim = 0;        ///< D
  std::string dtype;      ///< "float32" | "float16"
  bool complete() const { return rows_done == rows; }
};

/// Features and labels of one block, in memory as float32 whatever the stored dtype.
struct FeatureBlock {
  std::string domain, split, tap;
  Eigen::MatrixXf X;            ///< rows_done × D, one row per sample
  std::vector<int64_t> labels;  ///< rows_done entries, -1 = no label
  int64_t num_classes = 0;
  /// the split group's "dataset" attribute (the dataset's description, "" when absent): two blocks
  /// with the same description hold the same images, row for row
  std::string dataset;
  /// rows_done entries, or empty (a cache written before they were recorded): FNV-1a 64 of each
  /// row's image identity; equal hashes in two blocks = the same image
  std::vector<int64_t> item_hash;
};

/// A feature cache opened for reading: from a file, or from a whole file image in memory (HDF5's
/// core driver; for tests and the fuzzer). Every value read from the file is checked before it
/// is used: attribute types and shapes, rows_done within the rows, the block's size against the
/// bytes the file stores (nothing is allocated that a header merely claims). Move-only.
class CacheReader {
 public:
  /// Error naming the file when it is missing, not HDF5, not a shiftlab cache or of another version.
  static CacheReader open(const std::string& path);
  /// The same checks on a file image; `name` stands for the file in errors.
  static CacheReader from_image(const std::string& bytes, const std::string& name);
  CacheReader(CacheReader&& o) noexcept;
  CacheReader& operator=(CacheReader&& o) noexcept;
  CacheReader(const CacheReader&) = delete;
  CacheReader& operator=(const CacheReader&) = delete;
  ~CacheReader();

  /// Every block in the cache.
  std::vector<CacheEntry> list() const;
  /// The schema's root attributes present in the file, as JSON (strings and integers).
  nlohmann::json attributes() const;
  /// One block (only its written rows). Error naming the file and the missing block.
  FeatureBlock read(const std::string& domain, const std::string& split, const std::string& tap) const;
  const std::string& name() const { return name_; }

 private:
  CacheReader(int64_t file, std::string name) : file_(file), name_(std::move(name)) {}
  int64_t file_ = -1;  ///< the HDF5 file identifier (hid_t)
  std::string name_;
};

/// Every block in the cache (Error naming the file when it is not a shiftlab feature cache).
std::vector<CacheEntry> list_cache(const std::string& path);
/// Root attributes as JSON (backbone, weights_sha256, ...).
nlohmann::json cache_attributes(const std::string& path);
/// Reads one block (only its written rows). Error naming the file and the missing block.
FeatureBlock read_block(const std::string& path, const std::string& domain, const std::string& split,
                        const std::string& tap);

}  // namespace shiftlab::features
