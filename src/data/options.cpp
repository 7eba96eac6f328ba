#include "data/options.h"

#include "core/error.h"

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

}  // namespace shiftlab::data
