#include "data/options.h"

#include "core/error.h"

#include <utility>

namespace shiftlab::data {

const core::OptionTable<DomainOptions>& domain_option_table() {
  static const auto table = [] {
    using O = DomainOptions;
    core::OptionTable<O> t("data::DomainOptions");
    t.field("dataset", &O::dataset,
            "prepared name (mnist, uci-digits, fashion-mnist) or a kind: prepared, idx, digits_csv, npy, hdf5, "
            "image_folder, list_file");
    t.field("root", &O::root, "data root for prepared names, else the kind's file or directory").path();
    t.field("split", &O::split, "train | val | test | all (prepared, idx); the list file for list_file");
    t.field("transform", &O::transform,
            "transform chain, e.g. \"resize(32), center_crop(28), grey_to_rgb, normalize(0.5, 0.5)\"");
    t.field("labelled", &O::labelled, "false: labels reported as -1 (unlabelled target)");
    t.field("on_error", &O::on_error,
            "unreadable image: fail, or skip (replaced by the next readable item, counted and logged)")
        .choices({"fail", "skip"});
    t.field("cache", &O::cache, "keep decoded, resized uint8 images in RAM");
    t.field("labels", &O::labels, "labels file: .npy for npy, IDX for idx (\"\" = none / automatic)").path();
    t.field("images_key", &O::images_key, "HDF5 dataset holding the images");
    t.field("labels_key", &O::labels_key, "HDF5 dataset holding the labels (\"\" = none)");
    t.field("layout", &O::layout,
            "npy / hdf5 image layout (auto: 3 dims = nhw; 4 dims = nchw when dim 1 < dim 3, else nhwc)")
        .choices({"auto", "nhw", "nhwc", "nchw"});
    t.field("per_class", &O::per_class,
            "keep this many items of every class (seeded; one seed's subsets are nested), 0 = all")
        .range(0, 1e12);
    t.field("limit", &O::limit, "keep this many items, drawn at random after per_class (seeded), 0 = all")
        .range(0, 1e12);
    t.field("subset_seed", &O::subset_seed, "seed of the per_class / limit subset").range(0, 9.2e18);
    return t;
  }();
  return table;
}

const core::OptionTable<LoaderOptions>& loader_option_table() {
  static const auto table = [] {
    using O = LoaderOptions;
    core::OptionTable<O> t("data::LoaderOptions");
    t.field("batch_size", &O::batch_size, "images per batch").range(1, 1 << 20);
    t.field("workers", &O::workers, "decoding threads (0 = in the training thread)").range(0, 256);
    t.field("shuffle", &O::shuffle, "reshuffle every epoch (seeded by seed and epoch)");
    t.field("drop_last", &O::drop_last, "drop the last partial batch of an epoch");
    t.field("balanced", &O::balanced, "class-balanced sampling with replacement (weights 1 / class count)");
    t.field("seed", &O::seed, "seed of the order and of the random transforms").range(0, 9.2e18);
    t.field("prefetch", &O::prefetch, "batches prepared ahead").range(1, 1024);
    t.field("pin_memory", &O::pin_memory, "page-locked batches for fast host-to-GPU copies (CUDA only)");
    t.field("preload", &O::preload,
            "benchmarks only: build this many batches once and cycle them (compute-only ceiling, 0 = off)")
        .range(0, 1 << 20);
    return t;
  }();
  return table;
}

const core::OptionTable<HoldoutOptions>& holdout_option_table() {
  static const auto table = [] {
    using O = HoldoutOptions;
    core::OptionTable<O> t("data::HoldoutOptions");
    t.field("data.source.val_fraction", &O::val_fraction,
            "hold out this fraction of data.source (seeded, stratified by class) as source/val; 0 = none")
        .range(0, 0.9);
    t.field("data.target.test_fraction", &O::test_fraction,
            "hold out this fraction of data.target (seeded, stratified by class) as the labelled target/test; 0 = none")
        .range(0, 0.9);
    t.field("data.holdout_seed", &O::holdout_seed,
            "seed of the val_fraction / test_fraction hold-outs (independent of run.seed)")
        .range(0, 9.2e18);
    t.field("data.protocol", &O::protocol,
            "held_out: target/test shares no image with target/train; transductive: target/test IS the target "
            "training images, evaluated with their labels (recorded as such)")
        .choices({"held_out", "transductive"});
    t.field("data.class_match", &O::class_match,
            "how class names of other domains (class folders) are matched to the source's")
        .choices({"exact", "case_insensitive"});
    t.field("data.class_map", &O::class_map,
            "file of 'name = source_name' lines renaming other domains' classes before matching")
        .path();
    return t;
  }();
  return table;
}

const core::OptionTable<EvalDomainKeys>& eval_domain_key_table() {
  static const auto table = [] {
    using O = EvalDomainKeys;
    core::OptionTable<O> t("data::EvalDomainKeys");
    t.field("dataset", &O::dataset, "dataset kind or prepared name of this role (empty = the training domain's)");
    t.field("root", &O::root, "file or directory of this role's images (empty = the training domain's)").path();
    t.field("split", &O::split, "split or list file (empty = data.source.val_split / data.target.test_split)");
    t.field("transform", &O::transform, "transform chain (empty = the eval transform; none = no transform)");
    t.field("labels", &O::labels, "labels file (empty = the training domain's; none = no labels file)").path();
    t.field("images_key", &O::images_key, "HDF5 images dataset (empty = the training domain's)");
    t.field("labels_key", &O::labels_key, "HDF5 labels dataset (empty = the training domain's)");
    t.field("layout", &O::layout, "npy / hdf5 layout: auto, nhw, nhwc, nchw (empty = the training domain's)");
    t.field("on_error", &O::on_error, "fail or skip (empty = the training domain's)");
    t.field("per_class", &O::per_class, "keep this many items of every class (seeded), 0 = all").range(0, 1e12);
    t.field("limit", &O::limit, "keep this many items (seeded), 0 = all").range(0, 1e12);
    t.field("subset_seed", &O::subset_seed, "seed of the per_class / limit subset").range(0, 9.2e18);
    return t;
  }();
  return table;
}

void declare_role_options(core::Schema& s) {
  holdout_option_table().declare(s);
  eval_domain_key_table().declare(s, "data.source_val");
  eval_domain_key_table().declare(s, "data.target_test");
}

void apply_domain_keys(DomainOptions& d, const std::map<std::string, std::string>& keys) {
  auto text = [](const std::string& v) { return v == "none" ? std::string() : v; };
  for (const auto& [k, v] : keys) {
    if (k == "dataset") d.dataset = v;
    else if (k == "root") d.root = v;
    else if (k == "split") d.split = v;
    else if (k == "transform") d.transform = text(v);
    else if (k == "labels") d.labels = text(v);
    else if (k == "images_key") d.images_key = v;
    else if (k == "labels_key") d.labels_key = text(v);
    else if (k == "layout") d.layout = v;
    else if (k == "on_error") d.on_error = v;
    else if (k == "per_class") d.per_class = std::stoll(v);
    else if (k == "limit") d.limit = std::stoll(v);
    else if (k == "subset_seed") d.subset_seed = std::stoull(v);
    else throw core::Error(core::str("internal: unknown evaluation-domain key '", k, "'"));
  }
}

namespace {
std::map<std::string, std::string> eval_keys_given(const EvalDomainKeys& k) {
  std::map<std::string, std::string> m;
  auto put = [&](const char* name, const std::string& v) {
    if (!v.empty()) m[name] = v;
  };
  put("dataset", k.dataset);
  put("root", k.root);
  put("split", k.split);
  put("transform", k.transform);
  put("labels", k.labels);
  put("images_key", k.images_key);
  put("labels_key", k.labels_key);
  put("layout", k.layout);
  put("on_error", k.on_error);
  if (k.per_class) m["per_class"] = std::to_string(k.per_class);
  if (k.limit) m["limit"] = std::to_string(k.limit);
  if (k.subset_seed) m["subset_seed"] = std::to_string(k.subset_seed);
  return m;
}
}  // namespace

RoleOptions role_options_from(const core::Config& c) {
  RoleOptions o;
  o.source = domain_options_from(c, "data.source");
  o.target = domain_options_from(c, "data.target");
  o.val_split = c.get_string("data.source.val_split");
  o.test_split = c.get_string("data.target.test_split");
  o.source_eval_transform = c.get_string("data.source.eval_transform");
  o.target_eval_transform = c.get_string("data.target.eval_transform");
  const auto h = holdout_option_table().read(c);
  o.val_fraction = h.val_fraction;
  o.test_fraction = h.test_fraction;
  o.holdout_seed = h.holdout_seed;
  o.protocol = h.protocol;
  o.class_match = h.class_match;
  o.class_map = h.class_map;
  using Section = std::pair<const char*, std::map<std::string, std::string>*>;
  for (auto [sec, out] : {Section{"data.source_val", &o.source_val}, Section{"data.target_test", &o.target_test}}) {
    *out = eval_keys_given(eval_domain_key_table().read(c, sec));
    auto on_error = out->count("on_error") ? out->at("on_error") : std::string();
    core::check_usage(on_error.empty() || on_error == "fail" || on_error == "skip", "option '", sec,
                      ".on_error': expected fail or skip, got '", on_error, "'");
    auto layout = out->count("layout") ? out->at("layout") : std::string();
    core::check_usage(layout.empty() || layout == "auto" || layout == "nhw" || layout == "nhwc" || layout == "nchw",
                      "option '", sec, ".layout': expected auto, nhw, nhwc or nchw, got '", layout, "'");
  }
  return o;
}

}  // namespace shiftlab::data
