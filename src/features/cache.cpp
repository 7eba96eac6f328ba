// Reader side of the feature cache (schema in cache.h).
#include "features/cache.h"

#include <torch/torch.h>

#include <filesystem>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "features/cache_internal.h"
#include "features/h5.h"

namespace shiftlab::features {

using core::check;
using h5::Handle;

static_assert(std::is_same_v<hid_t, int64_t>, "CacheReader stores a hid_t as int64_t");

void check_cache_format(hid_t f, const std::string& path) {
  check(h5::has_attr(f, "format") && h5::read_str_attr(f, "format", path) == kCacheFormat, "'", path,
        "' is an HDF5 file but not a shiftlab feature cache (no format = ", kCacheFormat, " attribute)");
  auto v = h5::read_int_attr(f, "format_version", path);
  check(v == kCacheFormatVersion, "feature cache '", path, "' has format version ", v, "; this shiftlab reads version ",
        kCacheFormatVersion);
}

h5::Handle open_cache_file(const std::string& path, bool write) {
  h5::quiet();
  check(std::filesystem::exists(path), "feature cache '", path, "' does not exist");
  check(H5Fis_hdf5(path.c_str()) > 0, "'", path, "' is not an HDF5 file (expected a shiftlab feature cache)");
  Handle f{H5Fopen(path.c_str(), write ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  check(f.ok(), "cannot open '", path, "' as HDF5", write ? " for writing (locked by another process?)" : " (damaged?)");
  check_cache_format(f, path);
  return f;
}

CacheReader CacheReader::open(const std::string& path) {
  auto f = open_cache_file(path, false);
  CacheReader r(f.get(), path);
  (void)f.release();
  return r;
}

CacheReader CacheReader::from_image(const std::string& bytes, const std::string& name) {
  h5::quiet();
  check(bytes.size() >= 8, "'", name, "' is not an HDF5 file (", bytes.size(), " bytes)");
  Handle fapl{H5Pcreate(H5P_FILE_ACCESS), H5Pclose};
  check(fapl.ok() && H5Pset_fapl_core(fapl, 1 << 20, /*backing_store=*/0) >= 0 &&
            H5Pset_file_image(fapl, const_cast<char*>(bytes.data()), bytes.size()) >= 0,
        "'", name, "': cannot set up an HDF5 file image");
  Handle f{H5Fopen(name.c_str(), H5F_ACC_RDONLY, fapl), H5Fclose};
  check(f.ok(), "'", name, "' is not an HDF5 file or is damaged (expected a shiftlab feature cache)");
  check_cache_format(f, name);
  CacheReader r(f.get(), name);
  (void)f.release();
  return r;
}

CacheReader::CacheReader(CacheReader&& o) noexcept : file_(std::exchange(o.file_, -1)), name_(std::move(o.name_)) {}
CacheReader& CacheReader::operator=(CacheReader&& o) noexcept {
  if (this != &o) {
    if (file_ >= 0) H5Fclose(file_);
    file_ = std::exchange(o.file_, -1);
    name_ = std::move(o.name_);
  }
  return *this;
}
CacheReader::~CacheReader() {
  if (file_ >= 0) H5Fclose(file_);
}

static std::string block_name(const std::string& d, const std::string& s, const std::string& t) {
  return d + "/" + s + "/" + t;
}

// rows × D of a 2-D features dataset, refusing extents no array could have
static void features_dims(hid_t sp, const std::string& what, int64_t* rows, int64_t* dim) {
  check(H5Sget_simple_extent_ndims(sp) == 2, what, ": features is not 2-D");
  hsize_t dims[2] = {0, 0};
  H5Sget_simple_extent_dims(sp, dims, nullptr);
  constexpr hsize_t kMax = hsize_t{1} << 40;
  check(dims[0] <= kMax && dims[1] <= kMax && (dims[1] == 0 || dims[0] <= kMax / dims[1]), what, ": features of ", dims[0],
        "×", dims[1], " are too large");
  *rows = static_cast<int64_t>(dims[0]);
  *dim = static_cast<int64_t>(dims[1]);
}

std::vector<CacheEntry> CacheReader::list() const {
  const hid_t f = file_;
  const std::string& path = name_;
  std::vector<CacheEntry> out;
  for (auto& d : h5::children(f)) {
    if (!h5::is_group(f, d)) continue;
    Handle gd{H5Gopen2(f, d.c_str(), H5P_DEFAULT), H5Gclose};
    check(gd.ok(), "'", path, "': cannot open group ", d);
    for (auto& s : h5::children(gd)) {
      if (!h5::is_group(gd, s)) continue;
      Handle gs{H5Gopen2(gd, s.c_str(), H5P_DEFAULT), H5Gclose};
      check(gs.ok(), "'", path, "': cannot open group ", d, "/", s);
      for (auto& t : h5::children(gs)) {
        if (!h5::is_group(gs, t)) continue;
        Handle gt{H5Gopen2(gs, t.c_str(), H5P_DEFAULT), H5Gclose};
        check(gt.ok(), "'", path, "': cannot open group ", block_name(d, s, t));
        if (!h5::is_dataset(gt, "features")) continue;
        std::string what = core::str("'", path, "' block ", block_name(d, s, t));
        Handle ds{H5Dopen2(gt, "features", H5P_DEFAULT), H5Dclose};
        check(ds.ok(), what, ": cannot open features");
        Handle sp{H5Dget_space(ds), H5Sclose};
        Handle ty{H5Dget_type(ds), H5Tclose};
        CacheEntry e;
        e.domain = d;
        e.split = s;
        e.tap = t;
        features_dims(sp, what, &e.rows, &e.dim);
        e.rows_done = h5::read_int_attr(ds, "rows_done", what);
        e.dtype = h5::float_kind(ty);
        check(!e.dtype.empty(), what, ": features are neither float32 nor float16");
        check(e.rows_done >= 0 && e.rows_done <= e.rows, what, ": rows_done ", e.rows_done, " outside [0, ", e.rows, "]");
        out.push_back(std::move(e));
      }
    }
  }
  return out;
}

// The root attributes of the schema (cache.h; written by extract.cpp's provenance). They are read
// by name: enumerating attributes (H5Aopen_by_idx, H5Aiterate) makes HDF5 1.10 build a table of
// every attribute message, and on a corrupt message it dereferences a null pointer while freeing
// that table (found by fuzz_h5_cache); the lookup by name decodes messages one at a time.
static const char* const kRootAttributes[] = {
    "format",   "format_version", "backbone", "model",          "weights",         "weights_sha256", "checkpoint",
    "checkpoint_sha256", "shiftlab_version", "created", "config", "source_dataset", "target_dataset", "num_classes",
    "weights_trained_by"};

nlohmann::json CacheReader::attributes() const {
  const hid_t f = file_;
  nlohmann::json j = nlohmann::json::object();
  for (const char* name : kRootAttributes) {
    if (!h5::has_attr(f, name)) continue;
    Handle a{H5Aopen(f, name, H5P_DEFAULT), H5Aclose};
    if (!a.ok()) continue;
    Handle t{H5Aget_type(a), H5Tclose};
    auto cls = H5Tget_class(t);
    if (cls == H5T_STRING)
      j[name] = h5::read_str_attr(f, name, name_);
    else if (cls == H5T_INTEGER)
      j[name] = h5::read_int_attr(f, name, name_);
  }
  return j;
}

FeatureBlock CacheReader::read(const std::string& domain, const std::string& split, const std::string& tap) const {
  const hid_t f = file_;
  const std::string& path = name_;
  std::string name = block_name(domain, split, tap);
  std::string what = core::str("'", path, "' block ", name);
  std::string split_path = domain + "/" + split;
  bool present = h5::is_group(f, domain) && h5::is_group(f, split_path) && h5::is_group(f, name) &&
                 h5::is_dataset(f, name + "/features");
  if (!present) {
    std::string known;
    for (auto& e : list()) known += (known.empty() ? "" : ", ") + block_name(e.domain, e.split, e.tap);
    throw core::Error(core::str("feature cache '", path, "' has no block ", name, " (blocks: ",
                                known.empty() ? "none" : known, ")"));
  }
  Handle gs{H5Gopen2(f, split_path.c_str(), H5P_DEFAULT), H5Gclose};
  Handle ds{H5Dopen2(f, (name + "/features").c_str(), H5P_DEFAULT), H5Dclose};
  check(gs.ok() && ds.ok(), what, ": cannot open the block");
  Handle sp{H5Dget_space(ds), H5Sclose};
  int64_t rows = 0, D = 0;
  features_dims(sp, what, &rows, &D);
  const int64_t done = h5::read_int_attr(ds, "rows_done", what);
  check(done >= 0 && done <= rows, what, ": rows_done ", done, " outside [0, ", rows, "]");
  Handle ft{H5Dget_type(ds), H5Tclose};
  const std::string kind = h5::float_kind(ft);
  check(!kind.empty(), what, ": features are neither float32 nor float16");
  // without filters, the rows claimed written must be stored in the file (no allocation of what
  // the header merely claims); compressed blocks are bounded by HDF5's own read checks
  {
    Handle dcpl{H5Dget_create_plist(ds), H5Pclose};
    const uint64_t want = static_cast<uint64_t>(done) * static_cast<uint64_t>(D) * (kind == "float32" ? 4 : 2);
    if (dcpl.ok() && H5Pget_nfilters(dcpl) == 0)
      check(want <= H5Dget_storage_size(ds), what, ": rows_done ", done, " × ", D, " features need ", want,
            " bytes but the file stores ", H5Dget_storage_size(ds));
  }

  FeatureBlock b;
  b.domain = domain;
  b.split = split;
  b.tap = tap;
  b.num_classes = h5::has_attr(gs, "num_classes") ? h5::read_int_attr(gs, "num_classes", what) : 0;
  if (h5::has_attr(gs, "dataset")) b.dataset = h5::read_str_attr(gs, "dataset", what);
  b.X.resize(done, D);
  b.labels.assign(static_cast<size_t>(done), -1);
  if (done == 0 || D == 0) return b;

  // rows [0, done): read in the stored type (no HDF5 conversion), convert with torch
  hsize_t start[2] = {0, 0}, count[2] = {static_cast<hsize_t>(done), static_cast<hsize_t>(D)};
  Handle fs{H5Dget_space(ds), H5Sclose};
  check(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, nullptr, count, nullptr) >= 0, what, ": cannot select rows");
  Handle ms{H5Screate_simple(2, count, nullptr), H5Sclose};
  torch::Tensor rowmajor;
  if (kind == "float32") {
    rowmajor = torch::empty({done, D}, torch::kFloat32);
    check(H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, rowmajor.data_ptr()) >= 0, what, ": cannot read features");
  } else {
    auto half = torch::empty({done, D}, torch::kFloat16);
    Handle ht{h5::half_type(), H5Tclose};
    check(H5Dread(ds, ht, ms, fs, H5P_DEFAULT, half.data_ptr()) >= 0, what, ": cannot read features");
    rowmajor = half.to(torch::kFloat32);
  }
  // Eigen::MatrixXf is column-major: the transpose's contiguous copy is exactly its storage
  auto colmajor = rowmajor.t().contiguous();
  std::memcpy(b.X.data(), colmajor.data_ptr<float>(), sizeof(float) * static_cast<size_t>(done * D));

  // the per-row int64 vectors of the split group: their first `done` entries (`rows` stored)
  auto read_rows = [&](const std::string& v, std::vector<int64_t>& out) {
    Handle d{H5Dopen2(f, v.c_str(), H5P_DEFAULT), H5Dclose};
    check(d.ok(), what, ": cannot open ", v);
    Handle sp{H5Dget_space(d), H5Sclose};
    check(H5Sget_simple_extent_ndims(sp) == 1 && H5Sget_simple_extent_npoints(sp) == rows, what, ": ", v, " has ",
          H5Sget_simple_extent_npoints(sp), " entries, features ", rows, " rows");
    hsize_t first[1] = {0}, count[1] = {static_cast<hsize_t>(done)};
    check(H5Sselect_hyperslab(sp, H5S_SELECT_SET, first, nullptr, count, nullptr) >= 0, what, ": cannot select ", v);
    Handle ms{H5Screate_simple(1, count, nullptr), H5Sclose};
    out.resize(static_cast<size_t>(done));
    check(H5Dread(d, H5T_NATIVE_INT64, ms, sp, H5P_DEFAULT, out.data()) >= 0, what, ": cannot read ", v);
  };
  const std::string lab = split_path + "/labels", ih = split_path + "/item_hash";
  check(h5::is_dataset(f, lab), what, ": missing ", lab);
  read_rows(lab, b.labels);
  if (h5::is_dataset(f, ih)) read_rows(ih, b.item_hash);  // absent in caches written before 2026-12-04
  return b;
}

std::vector<CacheEntry> list_cache(const std::string& path) { return CacheReader::open(path).list(); }

nlohmann::json cache_attributes(const std::string& path) { return CacheReader::open(path).attributes(); }

FeatureBlock read_block(const std::string& path, const std::string& domain, const std::string& split,
                        const std::string& tap) {
  return CacheReader::open(path).read(domain, split, tap);
}

}  // namespace shiftlab::features
