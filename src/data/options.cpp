#include "data/options.h"

#include "core/error.h"

namespace shiftlab::data {

void declare_domain_options(core::Schema& s, const std::string& p, const DomainOptions& d) {
  s.add_string(p + ".dataset", d.dataset,
               "prepared name (mnist, uci-digits, fashion-mnist) or a kind: prepared, idx, digits_csv, npy, hdf5, "
               "image_folder, list_file");
  s.add_path(p + ".root", d.root, "data root for prepared names, else the kind's file or directory");
  s.add_string(p + ".split", d.split, "train | val | test | all (prepared, idx); the list file for list_file");
  s.add_string(p + ".transform", d.transform,
               "transform chain, e.g. \"resize(32), center_crop(28), grey_to_rgb, normalize(0.5, 0.5)\"");
  s.add_bool(p + ".labelled", d.labelled, "false: labels reported as -1 (unlabelled target)");
  s.add_choice(p + ".on_error", d.on_error, {"fail", "skip"},
               "unreadable image: fail, or skip (replaced by the next readable item, counted and logged)");
  s.add_bool(p + ".cache", d.cache, "keep decoded, resized uint8 images in RAM");
  s.add_path(p + ".labels", d.labels, "labels file: .npy for npy, IDX for idx (\"\" = none / automatic)");
  s.add_string(p + ".images_key", d.images_key, "HDF5 dataset holding the images");
  s.add_string(p + ".labels_key", d.labels_key, "HDF5 dataset holding the labels (\"\" = none)");
  s.add_choice(p + ".layout", d.layout, {"auto", "nhw", "nhwc", "nchw"},
               "npy / hdf5 image layout (auto: 3 dims = nhw; 4 dims = nchw when dim 1 < dim 3, else nhwc)");
  s.add_int(p + ".per_class", d.per_class,
            "keep this many items of every class (seeded; one seed's subsets are nested), 0 = all").range(0, 1e12);
  s.add_int(p + ".limit", d.limit, "keep this many items, drawn at random after per_class (seeded), 0 = all").range(0, 1e12);
  s.add_int(p + ".subset_seed", static_cast<long long>(d.subset_seed), "seed of the per_class / limit subset").range(0, 9.2e18);
}

DomainOptions domain_options_from(const core::Config& c, const std::string& p) {
  DomainOptions o;
  o.dataset = c.get_string(p + ".dataset");
  o.root = c.get_string(p + ".root");
  o.split = c.get_string(p + ".split");
  o.transform = c.get_string(p + ".transform");
  o.labelled = c.get_bool(p + ".labelled");
  o.on_error = c.get_string(p + ".on_error");
  o.cache = c.get_bool(p + ".cache");
  o.labels = c.get_string(p + ".labels");
  o.images_key = c.get_string(p + ".images_key");
  o.labels_key = c.get_string(p + ".labels_key");
  o.layout = c.get_string(p + ".layout");
  o.per_class = c.get_int(p + ".per_class");
  o.limit = c.get_int(p + ".limit");
  o.subset_seed = static_cast<uint64_t>(c.get_int(p + ".subset_seed"));
  return o;
}

void declare_loader_options(core::Schema& s, const std::string& p, const LoaderOptions& d) {
  s.add_int(p + ".batch_size", d.batch_size, "images per batch").range(1, 1 << 20);
  s.add_int(p + ".workers", d.workers, "decoding threads (0 = in the training thread)").range(0, 256);
  s.add_bool(p + ".shuffle", d.shuffle, "reshuffle every epoch (seeded by seed and epoch)");
  s.add_bool(p + ".drop_last", d.drop_last, "drop the last partial batch of an epoch");
  s.add_bool(p + ".balanced", d.balanced, "class-balanced sampling with replacement (weights 1 / class count)");
  s.add_int(p + ".seed", static_cast<long long>(d.seed), "seed of the order and of the random transforms").range(0, 9.2e18);
  s.add_int(p + ".prefetch", d.prefetch, "batches prepared ahead").range(1, 1024);
  s.add_bool(p + ".pin_memory", d.pin_memory, "page-locked batches for fast host-to-GPU copies (CUDA only)");
  s.add_int(p + ".preload", d.preload,
            "benchmarks only: build this many batches once and cycle them (compute-only ceiling, 0 = off)")
      .range(0, 1 << 20);
}

LoaderOptions loader_options_from(const core::Config& c, const std::string& p) {
  LoaderOptions o;
  o.batch_size = c.get_int(p + ".batch_size");
  o.workers = static_cast<int>(c.get_int(p + ".workers"));
  o.shuffle = c.get_bool(p + ".shuffle");
  o.drop_last = c.get_bool(p + ".drop_last");
  o.balanced = c.get_bool(p + ".balanced");
  o.seed = static_cast<uint64_t>(c.get_int(p + ".seed"));
  o.prefetch = static_cast<int>(c.get_int(p + ".prefetch"));
  o.pin_memory = c.get_bool(p + ".pin_memory");
  o.preload = c.get_int(p + ".preload");
  return o;
}

}  // namespace shiftlab::data
