// Writer side of the HDF5 feature cache (schema in features/cache.h).
//
// CacheWriter lays out every (domain, split) group and (tap) features dataset up front, then
// writes row blocks as extraction proceeds. Crash safety (a SIGKILL at any moment leaves a file
// that opens and whose first rows_done rows of every block are valid):
//  * structure is only ever changed on a copy: a new file, or an existing one gaining blocks, is
//    built under a temporary name (labels, index, paths written, every features chunk allocated
//    at creation so later writes never touch the chunk index), flushed and renamed into place;
//  * each write: rows via H5Dwrite -> H5Fflush -> rows_done attribute updated in place ->
//    H5Fflush. Only raw chunks and one fixed-size attribute change after creation, so the
//    on-disk metadata is never half-updated.
// Reopening an existing cache compares its provenance attributes with this run's; any
// difference is refused with a UsageError naming the attribute (and both values).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace shiftlab::features {

/// One (domain, split) group: what was read and the per-row labels, indices and paths.
struct CacheBlock {
  std::string domain;     ///< "source" | "target"
  std::string split;      ///< group name ("train", "val", "test", ...)
  std::string dataset;    ///< Dataset::describe() (attr "dataset")
  std::string transform;  ///< transform chain (attr "transform"; part of the provenance)
  std::string origin;     ///< how the rows were chosen: role definition or split (attr "origin")
  int64_t num_classes = 0;
  std::vector<int64_t> labels;     ///< N entries, -1 = no label
  std::vector<int64_t> index;      ///< N sample indices within the dataset split
  std::vector<std::string> paths;  ///< N entries ("" where the dataset has no paths) or empty
  /// N entries or empty: FNV-1a 64 of each row's image identity (data::RawDataset::item_id: the
  /// file's path, or the array file and row), dataset "item_hash": how a probe tells which rows of
  /// two blocks are the same images (a target/test drawn from the target/train images)
  std::vector<int64_t> item_hash;
  int64_t rows() const { return static_cast<int64_t>(labels.size()); }
};

/// One tap written in every block: name and pooled width D.
struct CacheTap {
  std::string name;
  int64_t dim = 0;
};

struct CacheLayout {
  std::vector<CacheBlock> blocks;
  std::vector<CacheTap> taps;
  std::string pool = "avg";       ///< avg | avgmax (attr of every tap)
  std::string dtype = "float32";  ///< float32 | float16 (stored type)
};

/// Root attributes. `compared` ones must equal those of an existing file (backbone, model,
/// weights_sha256, checkpoint_sha256); `info` ones are written when the file is created.
struct Provenance {
  std::vector<std::pair<std::string, std::string>> compared;
  std::vector<std::pair<std::string, std::string>> info;
  std::vector<std::pair<std::string, int64_t>> info_int;  ///< integer attributes (num_classes)
};

class CacheWriter {
 public:
  /// Creates `path`, or opens an existing cache after checking its provenance and layout (adding
  /// missing blocks / taps through a copy). overwrite: an existing file is replaced.
  CacheWriter(const std::string& path, const CacheLayout& layout, const Provenance& prov, bool overwrite = false);
  ~CacheWriter();
  CacheWriter(const CacheWriter&) = delete;
  CacheWriter& operator=(const CacheWriter&) = delete;

  /// First row of block `b` (index into layout.blocks) missing in some tap (min of rows_done).
  int64_t resume_row(size_t b) const;
  /// Writes rows [row0, row0 + n) of block `b`: one n×D tensor per layout tap (any float dtype
  /// and device; converted with torch to the stored dtype, never by HDF5), then flushes and
  /// advances rows_done. Taps whose rows_done is already past the range keep their rows.
  void write(size_t b, int64_t row0, const std::map<std::string, torch::Tensor>& features);
  /// Flushes and closes (also done by the destructor, which never throws).
  void close();
  const std::string& path() const;
  /// Wall seconds spent inside write() so far (conversion, HDF5 writes, flushes).
  double write_seconds() const;

  /// Testing aid: raise SIGKILL inside the write of call number `k` (1-based), after the rows
  /// went to HDF5 but before they are flushed and counted. -1 = never.
  void set_kill_in_write(int64_t k);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace shiftlab::features
