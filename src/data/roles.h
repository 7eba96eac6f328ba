// The four roles of a run: source/train, source/val (model selection), target/train (unlabelled
// during training) and target/test (the reported number). Every role is a complete domain; the
// held-out roles come from, in order of precedence:
//   source/val:  data.source.val_fraction > 0 (seeded stratified hold-out of data.source), else
//                [data.source_val] (any key given; the others default to data.source's, split to
//                data.source.val_split), else data.source.val_split for kinds with splits
//                (prepared, idx directory, list_file); else an error naming those options.
//   target/test: data.protocol = transductive (the target training images, with their labels),
//                else data.target.test_fraction > 0, else [data.target_test], else
//                data.target.test_split for kinds with splits; else an error. Under held_out, a
//                target/test sharing images with target/train is refused when the method reads
//                target images (check_target_overlap).
// Classes are the source's names: every other role whose dataset names its classes (image
// folders, prepared sets) has its labels mapped onto them by name (data.class_match,
// data.class_map); a name the source lacks is an error listing the differences; a role lacking
// some source classes is fine. Every role records what it holds (RoleInfo): description, count,
// labelled items and how many of its images are also training images (same file path, or same
// array file and row), so "transductive" is a recorded fact, not an accident.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/datasets.h"
#include "data/options.h"

namespace shiftlab::data {

enum class RoleMode {
  Train,    ///< training transforms on the training roles; any problem throws
  Extract,  ///< eval transforms and labels everywhere; an undefinable held-out role is skipped
  Check,    ///< `data check`: problems recorded in RoleInfo::error, not thrown
};

struct RoleInfo {
  std::string role;        ///< source/train | source/val | target/train | target/test
  std::string definition;  ///< how its images were chosen (split, hold-out, section, transductive)
  std::string dataset;     ///< the domain's describe()
  int64_t count = 0;
  int64_t labelled = 0;    ///< items with a label
  int64_t overlap_source_train = 0;  ///< images also in source/train
  int64_t overlap_target_train = 0;  ///< images also in target/train
  std::string error;       ///< why the role could not be built (Check / Extract), else ""
  nlohmann::json to_json() const;
  /// One line for the run log.
  std::string line() const;
};

struct Roles {
  /// Null where the role could not be built (Check / Extract modes; see RoleInfo::error).
  std::shared_ptr<const DomainDataset> source_train, source_val, target_train, target_test;
  std::vector<RoleInfo> info;  ///< the four roles, in the order above
  std::string protocol;        ///< held_out | transductive
  std::vector<std::string> class_names;  ///< the source's ("" entries when it has none)
  int64_t num_classes = 0;               ///< the source's
  const RoleInfo& at(const std::string& role) const;
  /// {"protocol": ..., "classes": [...], "roles": {"source/val": RoleInfo, ...}}
  nlohmann::json to_json() const;
};

/// Builds the four roles (see the file comment). `oracle`: train.select = oracle (named in the
/// error when target/test has no labels).
Roles make_roles(const RoleOptions& o, RoleMode mode, bool oracle = false);

/// Under data.protocol = held_out, a target/test sharing images with target/train is refused
/// (UsageError naming data.protocol) when the method reads target images (`target_used`: target
/// batches or AdaBN statistics); a method that never reads them (source_only) only records it.
void check_target_overlap(const Roles& r, bool target_used);

/// True for kinds whose `split` picks other images: prepared (kind or name), list_file, idx
/// with a directory root.
bool kind_has_splits(const DomainOptions& o);
/// Seeded stratified hold-out: per label (−1 is one more stratum), round(fraction · n) items of a
/// seeded permutation (at least 1 and at most n − 1 when n ≥ 2; none when n = 1) are held out.
/// Returns (kept, held out), both ascending.
std::pair<std::vector<size_t>, std::vector<size_t>> stratified_holdout(const std::vector<int64_t>& labels,
                                                                       double fraction, uint64_t seed);
/// For each of `other`'s class names, its index in `source` (exact, or ignoring case; after the
/// class map's renaming). Throws UsageError naming `what` and listing every name without a match.
std::vector<int64_t> match_class_names(const std::vector<std::string>& source, const std::vector<std::string>& other,
                                       const std::string& what, bool case_insensitive,
                                       const std::map<std::string, std::string>& class_map);
/// A class map file: "name = source_name" per line, blank lines and '#' comments skipped.
std::map<std::string, std::string> read_class_map(const std::string& path);
/// Items of `a` whose item_id() is also an item of `b`.
int64_t count_overlap(const RawDataset& a, const RawDataset& b);

}  // namespace shiftlab::data
