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
};

/// Every block in the cache (Error naming the file when it is not a shiftlab feature cache).
std::vector<CacheEntry> list_cache(const std::string& path);
/// Root attributes as JSON (backbone, weights_sha256, ...).
nlohmann::json cache_attributes(const std::string& path);
/// Reads one block (only its written rows). Error naming the file and the missing block.
FeatureBlock read_block(const std::string& path, const std::string& domain, const std::string& split,
                        const std::string& tap);

}  // namespace shiftlab::features
