// Typed options of the data module and their config keys.
//
// A domain = dataset + split + transform chain (+ labelled / on_error / cache), declared under a
// prefix such as "data.source", "data.target", "data.val", "data.test":
//   <prefix>.dataset    prepared name (mnist, uci-digits, fashion-mnist) or a kind: prepared, idx,
//                       digits_csv, npy, hdf5, image_folder, list_file
//   <prefix>.root       data root for prepared names (default "data"); otherwise the file or
//                       directory of the kind (see data/README.md)
//   <prefix>.split      train | val | test | all (prepared, idx); list file for list_file
//   <prefix>.transform  transform chain (transforms.h grammar)
//   <prefix>.labelled   false: labels reported as −1 (unlabelled target)
//   <prefix>.on_error   fail | skip (skip: a corrupt item is replaced by the next readable one)
//   <prefix>.cache      RAM cache of decoded, resized uint8 images
//   <prefix>.labels     labels file (npy kind: .npy; idx kind: IDX labels file)
//   <prefix>.images_key / .labels_key   HDF5 dataset names
//   <prefix>.layout     npy/hdf5 image layout: auto | nhw | nhwc | nchw
//   <prefix>.per_class / .limit / .subset_seed   seeded subset (few-label studies, quick evals)
// Loader options under their own prefix (e.g. "loader.source"): batch_size, workers, shuffle,
// drop_last, balanced, seed, prefetch, pin_memory.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/options.h"

namespace shiftlab::data {

struct DomainOptions {
  std::string dataset;            ///< prepared name or a dataset kind
  std::string root = "data";      ///< data root (prepared) or the kind's file / directory
  std::string split = "train";    ///< train | val | test | all, or list file path (list_file)
  std::string transform;          ///< transform chain, "" = none
  bool labelled = true;           ///< false: labels reported as −1
  std::string on_error = "fail";  ///< fail | skip
  bool cache = false;             ///< RAM cache of decoded, resized uint8 images
  std::string labels;             ///< labels file for npy / idx kinds ("" = none or automatic)
  std::string images_key = "images";  ///< HDF5 images dataset
  std::string labels_key = "labels";  ///< HDF5 labels dataset ("" = none)
  std::string layout = "auto";        ///< npy / hdf5: auto | nhw | nhwc | nchw
  int64_t per_class = 0;              ///< > 0: keep this many items per class (seeded subset)
  int64_t limit = 0;                  ///< > 0: keep this many items (seeded random subset)
  uint64_t subset_seed = 0;           ///< seed of the per_class / limit subset
};

/// <prefix>.dataset, .root, .split, .transform, .labelled, .on_error, .cache, .labels,
/// .images_key, .labels_key, .layout, .per_class, .limit, .subset_seed.
const core::OptionTable<DomainOptions>& domain_option_table();
/// Declares them under `prefix` with the values of `defaults` as defaults.
inline void declare_domain_options(core::Schema& s, const std::string& prefix, const DomainOptions& defaults) {
  domain_option_table().declare(s, prefix, defaults);
}
inline DomainOptions domain_options_from(const core::Config& c, const std::string& prefix) {
  return domain_option_table().read(c, prefix);
}

struct LoaderOptions {
  int64_t batch_size = 64;
  int workers = 2;          ///< decoding threads; 0 = in the caller's thread
  bool shuffle = true;      ///< per-epoch permutation seeded by (seed, epoch)
  bool drop_last = true;    ///< drop the last partial batch
  bool balanced = false;    ///< class-balanced sampling with replacement (weight 1 / class count)
  uint64_t seed = 0;        ///< order and augmentation seed
  int prefetch = 4;         ///< batches prepared ahead (bounded queue)
  bool pin_memory = false;  ///< page-locked batches (only when CUDA is available)
  int64_t preload = 0;      ///< benchmarks: ForeverIterator builds this many batches once, then cycles them
  // Distributed training (set by the trainer, not config keys): every process draws the same
  // epoch order and takes positions shard_rank, shard_rank + shard_count, ... of it.
  int64_t shard_rank = 0;   ///< this process's shard
  int64_t shard_count = 1;  ///< number of shards (processes); 1 = the whole order
  /// true: every shard gets the same number of items (the order is truncated to a multiple of
  /// shard_count with drop_last, else padded by wrapping around); false: shard sizes differ by at
  /// most one and every item is in exactly one shard (evaluation).
  bool shard_even = true;
};

/// <prefix>.batch_size, .workers, .shuffle, .drop_last, .balanced, .seed, .prefetch, .pin_memory,
/// .preload (the shard_* members are set by the trainer, not config keys).
const core::OptionTable<LoaderOptions>& loader_option_table();
/// Declares them under `prefix` with LoaderOptions' defaults (or `defaults`).
inline void declare_loader_options(core::Schema& s, const std::string& prefix, const LoaderOptions& defaults = {}) {
  loader_option_table().declare(s, prefix, defaults);
}
inline LoaderOptions loader_options_from(const core::Config& c, const std::string& prefix) {
  return loader_option_table().read(c, prefix);
}

/// The four roles of a run (source/train, source/val, target/train, target/test; data/roles.h),
/// as configured. Keys (besides the data.source / data.target domains):
///   data.source.val_split, data.target.test_split     held-out split of kinds with splits
///   data.source.eval_transform, data.target.eval_transform
///   data.source.val_fraction, data.target.test_fraction   seeded stratified hold-out (0 = none)
///   data.holdout_seed                                 seed of those hold-outs
///   data.protocol      held_out | transductive (target/test = the target training images)
///   data.class_match   exact | case_insensitive (class names of other roles onto the source's)
///   data.class_map     file of "name = source_name" lines applied before matching
///   [data.source_val], [data.target_test]: a complete domain (dataset, root, split, transform,
///     labels, images_key, labels_key, layout, on_error, per_class, limit, subset_seed); an empty
///     key takes the training domain's value ("none" clears transform / labels / labels_key).
struct RoleOptions {
  DomainOptions source, target;  ///< the training domains
  std::string val_split = "val", test_split = "test";
  std::string source_eval_transform, target_eval_transform;
  double val_fraction = 0, test_fraction = 0;
  uint64_t holdout_seed = 0;
  std::string protocol = "held_out";
  std::string class_match = "exact";
  std::string class_map;
  /// The keys given in [data.source_val] / [data.target_test] (non-empty / non-zero), by name.
  std::map<std::string, std::string> source_val, target_test;
};

/// data.source.val_fraction, data.target.test_fraction, data.holdout_seed, data.protocol,
/// data.class_match, data.class_map.
struct HoldoutOptions {
  double val_fraction = 0;
  double test_fraction = 0;
  uint64_t holdout_seed = 0;
  std::string protocol = "held_out";  ///< held_out | transductive
  std::string class_match = "exact";  ///< exact | case_insensitive
  std::string class_map;              ///< "" = none
};
const core::OptionTable<HoldoutOptions>& holdout_option_table();

/// The keys of [data.source_val] / [data.target_test] ("" / 0 = the training domain's value).
struct EvalDomainKeys {
  std::string dataset, root, split, transform, labels, images_key, labels_key, layout, on_error;
  int64_t per_class = 0, limit = 0;
  uint64_t subset_seed = 0;
};
const core::OptionTable<EvalDomainKeys>& eval_domain_key_table();

/// The role keys above except the training domains, val_split / test_split and eval_transform
/// (declared by the experiment schema): HoldoutOptions, and EvalDomainKeys under data.source_val
/// and data.target_test.
void declare_role_options(core::Schema& s);
/// Reads them (and the training domains) from an experiment config.
RoleOptions role_options_from(const core::Config& c);
/// Applies the keys of a [data.source_val] / [data.target_test] section to a domain.
void apply_domain_keys(DomainOptions& d, const std::map<std::string, std::string>& keys);

}  // namespace shiftlab::data
