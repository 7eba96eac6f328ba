#include "features/writer.h"

#include <torch/torch.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/options.h"
#include "features/cache.h"
#include "features/cache_internal.h"
#include "features/h5.h"

namespace shiftlab::features {

namespace fs = std::filesystem;
using core::check;
using h5::Handle;

namespace {

std::string group_path(const CacheBlock& b) { return b.domain + "/" + b.split; }
std::string tap_path(const CacheBlock& b, const std::string& tap) { return group_path(b) + "/" + tap; }

Handle open_or_create_group(hid_t loc, const std::string& name) {
  if (h5::is_group(loc, name)) return Handle{H5Gopen2(loc, name.c_str(), H5P_DEFAULT), H5Gclose};
  Handle g{H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose};
  check(g.ok(), "cannot create HDF5 group '", name, "'");
  return g;
}

void write_1d_int64(hid_t loc, const std::string& name, const std::vector<int64_t>& v) {
  hsize_t n = v.size();
  Handle sp{H5Screate_simple(1, &n, nullptr), H5Sclose};
  Handle d{H5Dcreate2(loc, name.c_str(), H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose};
  check(d.ok() && H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0, "cannot write '",
        name, "'");
}

void write_paths(hid_t loc, const std::vector<std::string>& paths, size_t n) {
  std::vector<const char*> p(n, "");
  for (size_t i = 0; i < n && i < paths.size(); ++i) p[i] = paths[i].c_str();
  hsize_t dim = n;
  Handle t{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  Handle sp{H5Screate_simple(1, &dim, nullptr), H5Sclose};
  Handle d{H5Dcreate2(loc, "paths", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose};
  check(d.ok() && H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data()) >= 0, "cannot write 'paths'");
}

/// Rows per chunk: about 1 MiB per chunk, at least 1, at most N.
hsize_t chunk_rows(int64_t rows, int64_t dim, size_t esize) {
  int64_t r = static_cast<int64_t>((1u << 20) / std::max<size_t>(1, static_cast<size_t>(dim) * esize));
  return static_cast<hsize_t>(std::clamp<int64_t>(r, 1, rows));
}

std::vector<int64_t> read_int64_vector(hid_t loc, const std::string& name) {
  Handle d{H5Dopen2(loc, name.c_str(), H5P_DEFAULT), H5Dclose};
  Handle sp{H5Dget_space(d), H5Sclose};
  std::vector<int64_t> v(static_cast<size_t>(std::max<hssize_t>(0, H5Sget_simple_extent_npoints(sp))));
  if (!v.empty()) check(H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0, "cannot read '", name, "'");
  return v;
}

void refuse(const std::string& path, const std::string& where, const std::string& attr, std::string in_file,
            std::string now) {
  // multi-line values (the "model" keys): show the first line that differs
  if (in_file.find('\n') != std::string::npos || now.find('\n') != std::string::npos) {
    auto a = core::split_list(in_file, '\n'), b = core::split_list(now, '\n');
    size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
    in_file = i < a.size() ? a[i] : "";
    now = i < b.size() ? b[i] : "";
  }
  throw core::UsageError(core::str("feature cache '", path, "'", where, " was written with a different ", attr, " ('",
                                   in_file, "', now '", now,
                                   "'); refusing to append: use another output file or --overwrite"));
}

}  // namespace

struct CacheWriter::Impl {
  std::string path;
  CacheLayout layout;
  Handle file;
  std::vector<std::vector<Handle>> datasets;      // [block][tap]
  std::vector<std::vector<int64_t>> rows_done;     // [block][tap]
  Handle half;
  int64_t writes = 0, kill_at = -1;
  double seconds = 0;

  /// Compares an existing file with this layout and provenance; true when blocks/taps are missing.
  bool check_existing(const Provenance& prov) {
    auto f = open_cache_file(path, false);
    for (auto& [k, v] : prov.compared) {
      std::string have = h5::has_attr(f, k) ? h5::read_str_attr(f, k, path) : "";
      if (have != v) refuse(path, "", k, have, v);
    }
    bool missing = false;
    for (auto& b : layout.blocks) {
      auto gp = group_path(b);
      if (!h5::is_group(f, gp)) {
        missing = true;
        continue;
      }
      Handle g{H5Gopen2(f, gp.c_str(), H5P_DEFAULT), H5Gclose};
      std::string where = core::str(" block ", gp);
      std::string tr = h5::read_str_attr(g, "transform", path + " " + gp);
      if (tr != b.transform) refuse(path, where, "transform", tr, b.transform);
      int64_t rows = h5::read_int_attr(g, "rows", path + " " + gp);
      if (rows != b.rows()) refuse(path, where, "number of rows", std::to_string(rows), std::to_string(b.rows()));
      if (read_int64_vector(g, "labels") != b.labels) refuse(path, where, "labels", "stored labels", "this dataset's labels");
      if (h5::is_dataset(g, "item_hash") && !b.item_hash.empty() && read_int64_vector(g, "item_hash") != b.item_hash)
        refuse(path, where, "images", "stored image identities", "this dataset's images");
      for (auto& t : layout.taps) {
        if (!h5::is_dataset(g, t.name + "/features")) {
          missing = true;
          continue;
        }
        Handle d{H5Dopen2(g, (t.name + "/features").c_str(), H5P_DEFAULT), H5Dclose};
        std::string w = core::str(" block ", gp, "/", t.name);
        std::string pool = h5::read_str_attr(d, "pool", path + w);
        if (pool != layout.pool) refuse(path, w, "pool", pool, layout.pool);
        std::string dt = h5::read_str_attr(d, "dtype", path + w);
        if (dt != layout.dtype) refuse(path, w, "dtype", dt, layout.dtype);
        Handle sp{H5Dget_space(d), H5Sclose};
        hsize_t dims[2] = {0, 0};
        H5Sget_simple_extent_dims(sp, dims, nullptr);
        if (static_cast<int64_t>(dims[1]) != t.dim)
          refuse(path, w, "feature width", std::to_string(dims[1]), std::to_string(t.dim));
      }
    }
    return missing;
  }

  /// Creates whatever blocks / taps `f` lacks (all of them in a new file).
  void add_missing(hid_t f) {
    for (auto& b : layout.blocks) {
      auto gd = open_or_create_group(f, b.domain);
      bool fresh = !h5::is_group(gd, b.split);
      auto g = open_or_create_group(gd, b.split);
      if (fresh) {
        h5::write_str_attr(g, "dataset", b.dataset);
        h5::write_str_attr(g, "transform", b.transform);
        if (!b.origin.empty()) h5::write_str_attr(g, "origin", b.origin);
        h5::write_int_attr(g, "num_classes", b.num_classes);
        h5::write_int_attr(g, "rows", b.rows());
        check(b.index.size() == b.labels.size(), "block ", group_path(b), ": index and labels differ in length");
        write_1d_int64(g, "labels", b.labels);
        write_1d_int64(g, "index", b.index);
        if (!b.item_hash.empty()) {
          check(b.item_hash.size() == b.labels.size(), "block ", group_path(b), ": item hashes and labels differ in length");
          write_1d_int64(g, "item_hash", b.item_hash);
        }
        write_paths(g, b.paths, b.labels.size());
      }
      for (auto& t : layout.taps) {
        if (h5::is_dataset(g, t.name + "/features")) continue;
        auto gt = open_or_create_group(g, t.name);
        const size_t es = layout.dtype == "float16" ? 2 : 4;
        hsize_t dims[2] = {static_cast<hsize_t>(b.rows()), static_cast<hsize_t>(t.dim)};
        hsize_t chunk[2] = {chunk_rows(b.rows(), t.dim, es), dims[1]};
        Handle sp{H5Screate_simple(2, dims, nullptr), H5Sclose};
        Handle dcpl{H5Pcreate(H5P_DATASET_CREATE), H5Pclose};
        H5Pset_chunk(dcpl, 2, chunk);
        // every chunk allocated now: later writes change raw data only, never the chunk index
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
        Handle ft{layout.dtype == "float16" ? h5::half_type() : H5Tcopy(H5T_IEEE_F32LE), H5Tclose};
        Handle d{H5Dcreate2(gt, "features", ft, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose};
        check(d.ok(), "cannot create dataset ", tap_path(b, t.name), "/features in '", path, "'");
        h5::write_str_attr(d, "tap", t.name);
        h5::write_str_attr(d, "pool", layout.pool);
        h5::write_str_attr(d, "dtype", layout.dtype);
        h5::write_int_attr(d, "rows_done", 0);
      }
    }
  }

  /// Builds the new or extended file under a temporary name and renames it into place.
  void build(bool exists, const Provenance& prov) {
    std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    fs::remove(tmp);
    try {
      Handle f;
      if (exists) {
        core::log_info("feature cache '", path, "': adding blocks (through a copy)");
        fs::copy_file(path, tmp);
        f = Handle{H5Fopen(tmp.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose};
        check(f.ok(), "cannot open '", tmp, "' for writing");
      } else {
        f = Handle{H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose};
        check(f.ok(), "cannot create '", tmp, "' (is the directory writable?)");
        h5::write_str_attr(f, "format", kCacheFormat);
        h5::write_int_attr(f, "format_version", kCacheFormatVersion);
        for (auto& [k, v] : prov.compared) h5::write_str_attr(f, k, v);
        for (auto& [k, v] : prov.info) h5::write_str_attr(f, k, v);
        for (auto& [k, v] : prov.info_int) h5::write_int_attr(f, k, v);
      }
      add_missing(f);
      check(H5Fflush(f, H5F_SCOPE_GLOBAL) >= 0, "cannot flush '", tmp, "'");
      f.reset();
      core::fsync_path(tmp);
      fs::rename(tmp, path);
      auto parent = fs::absolute(path).parent_path();
      core::fsync_path(parent.string());
    } catch (...) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw;
    }
  }

  void open_for_writing() {
    file = open_cache_file(path, true);
    if (layout.dtype == "float16") half = Handle{h5::half_type(), H5Tclose};
    for (auto& b : layout.blocks) {
      datasets.emplace_back();
      rows_done.emplace_back();
      for (auto& t : layout.taps) {
        const size_t es = layout.dtype == "float16" ? 2 : 4;
        size_t chunk_bytes = chunk_rows(b.rows(), t.dim, es) * static_cast<size_t>(t.dim) * es;
        Handle dapl{H5Pcreate(H5P_DATASET_ACCESS), H5Pclose};
        // room for the chunks one batch touches; fully written chunks are evicted first
        H5Pset_chunk_cache(dapl, 12421, std::max<size_t>(4 * chunk_bytes, 4u << 20), 1.0);
        auto name = tap_path(b, t.name) + "/features";
        Handle d{H5Dopen2(file, name.c_str(), dapl), H5Dclose};
        check(d.ok(), "cannot open ", name, " in '", path, "'");
        rows_done.back().push_back(h5::read_int_attr(d, "rows_done", path + " " + name));
        datasets.back().push_back(std::move(d));
      }
    }
  }
};

CacheWriter::CacheWriter(const std::string& path, const CacheLayout& layout, const Provenance& prov, bool overwrite)
    : impl_(std::make_unique<Impl>()) {
  h5::quiet();
  impl_->path = path;
  impl_->layout = layout;
  check(layout.dtype == "float32" || layout.dtype == "float16", "feature cache dtype '", layout.dtype,
        "' (expected float32 or float16)");
  check(!layout.taps.empty(), "feature cache '", path, "': no taps to write");
  for (auto& b : layout.blocks) check(b.rows() > 0, "block ", group_path(b), " (", b.dataset, ") has no rows");
  if (overwrite && fs::exists(path)) fs::remove(path);
  bool exists = fs::exists(path);
  bool need_build = !exists || impl_->check_existing(prov);
  if (need_build) impl_->build(exists, prov);
  impl_->open_for_writing();
}

CacheWriter::~CacheWriter() {
  try {
    close();
  } catch (...) {
  }
}

void CacheWriter::close() {
  if (!impl_->file.ok()) return;
  impl_->datasets.clear();
  H5Fflush(impl_->file, H5F_SCOPE_LOCAL);
  impl_->file.reset();
}

const std::string& CacheWriter::path() const { return impl_->path; }

void CacheWriter::set_kill_in_write(int64_t k) { impl_->kill_at = k; }

int64_t CacheWriter::resume_row(size_t b) const {
  check(b < impl_->rows_done.size(), "resume_row: no block ", b);
  auto& r = impl_->rows_done[b];
  return *std::min_element(r.begin(), r.end());
}

void CacheWriter::write(size_t bi, int64_t row0, const std::map<std::string, torch::Tensor>& features) {
  auto& im = *impl_;
  const auto t0 = std::chrono::steady_clock::now();
  check(im.file.ok(), "feature cache '", im.path, "' is closed");
  check(bi < im.layout.blocks.size(), "write: no block ", bi);
  const auto& b = im.layout.blocks[bi];
  const bool f16 = im.layout.dtype == "float16";
  int64_t n = -1;
  std::vector<torch::Tensor> rows(im.layout.taps.size());
  for (size_t t = 0; t < im.layout.taps.size(); ++t) {
    const auto& tap = im.layout.taps[t];
    auto it = features.find(tap.name);
    check(it != features.end(), "write ", tap_path(b, tap.name), ": no features given for this tap");
    // dtype conversion in torch: HDF5 converting during the write is ~50x slower
    auto x = it->second.detach().to(torch::kCPU, f16 ? torch::kFloat16 : torch::kFloat32).contiguous();
    check(x.dim() == 2 && x.size(1) == tap.dim, "write ", tap_path(b, tap.name), ": expected n x ", tap.dim,
          " features, got ", x.dim() == 2 ? core::str(x.size(0), " x ", x.size(1)) : core::str(x.dim(), "-d"));
    check(n < 0 || x.size(0) == n, "write ", group_path(b), ": taps disagree on the number of rows");
    n = x.size(0);
    rows[t] = x;
  }
  check(row0 >= 0 && n >= 0 && row0 + n <= b.rows(), "write ", group_path(b), ": rows [", row0, ", ", row0 + n,
        ") outside [0, ", b.rows(), ")");
  const int64_t end = row0 + n;
  for (size_t t = 0; t < rows.size(); ++t) {
    check(row0 <= im.rows_done[bi][t], "write ", tap_path(b, im.layout.taps[t].name), ": rows from ", row0,
          " would leave a gap after rows_done ", im.rows_done[bi][t]);
    if (im.rows_done[bi][t] >= end || n == 0) continue;
    hid_t d = im.datasets[bi][t];
    hsize_t start[2] = {static_cast<hsize_t>(row0), 0}, count[2] = {static_cast<hsize_t>(n),
                                                                     static_cast<hsize_t>(im.layout.taps[t].dim)};
    Handle fsp{H5Dget_space(d), H5Sclose};
    H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, nullptr, count, nullptr);
    Handle msp{H5Screate_simple(2, count, nullptr), H5Sclose};
    // the memory type equals the file type: HDF5 copies bytes, no conversion
    hid_t mt = f16 ? im.half.get() : H5T_NATIVE_FLOAT;
    check(H5Dwrite(d, mt, msp, fsp, H5P_DEFAULT, rows[t].data_ptr()) >= 0, "cannot write rows [", row0, ", ", end,
          ") of ", tap_path(b, im.layout.taps[t].name), " in '", im.path, "'");
  }
  if (++im.writes == im.kill_at) ::raise(SIGKILL);
  // data first, then the counter: rows_done never covers rows that are not on disk
  check(H5Fflush(im.file, H5F_SCOPE_LOCAL) >= 0, "cannot flush '", im.path, "'");
  for (size_t t = 0; t < rows.size(); ++t) {
    if (im.rows_done[bi][t] >= end) continue;
    h5::write_int_attr(im.datasets[bi][t], "rows_done", end);
    im.rows_done[bi][t] = end;
  }
  check(H5Fflush(im.file, H5F_SCOPE_LOCAL) >= 0, "cannot flush '", im.path, "'");
  im.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double CacheWriter::write_seconds() const { return impl_->seconds; }

}  // namespace shiftlab::features
