#include "data/datasets.h"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "core/log.h"
#include "core/options.h"
#include "core/fs.h"
#include "data/io.h"
#include "data/list_file.h"
#include "data/npy.h"
#include "data/prepare.h"
#include "data/suites.h"

namespace shiftlab::data {

namespace fs = std::filesystem;
using core::check;
using core::check_usage;
using core::str;

core::Registry<DatasetFactory>& dataset_registry() {
  static core::Registry<DatasetFactory> r("datasets", "dataset kinds for <domain>.dataset (or a prepared name)");
  return r;
}

Sample RawDataset::get(size_t i, uint64_t) const {
  Sample s;
  s.image = to_tensor(load(i, {}));
  s.label = labels_[i];
  s.index = static_cast<int64_t>(i);
  return s;
}

// The class count implied by labels (max + 1); a label below −1 (−1 = none) or >= kMaxClasses is
// a corrupt labels file, refused naming it and the item.
static int64_t classes_from_labels(const std::vector<int64_t>& labels, const std::string& what) {
  int64_t m = -1;
  for (size_t i = 0; i < labels.size(); ++i) {
    auto l = labels[i];
    check(l >= -1 && l < kMaxClasses, what, ": label ", l, " of item ", i, " is out of range (expected 0..",
          kMaxClasses - 1, ", or -1 for none)");
    m = std::max(m, l);
  }
  return m + 1;
}

// A labelled domain whose labels file labels some items must label all of them: the first item
// without one (−1) is refused naming the file and the item (`unit` "item" / "row"; rows 1-based).
static void check_all_labelled(const std::vector<int64_t>& labels, const std::string& what, bool labelled,
                               const char* unit = "item", int64_t first = 0) {
  if (!labelled || std::none_of(labels.begin(), labels.end(), [](int64_t l) { return l >= 0; })) return;
  for (size_t i = 0; i < labels.size(); ++i)
    check(labels[i] != -1, what, ": label ", labels[i], " of ", unit, " ", static_cast<int64_t>(i) + first,
          " in a labelled domain (every item needs a class 0, 1, ...; or set labelled = false)");
}

std::string RawDataset::item_id(size_t i) const {
  std::string p = path(i);
  if (!p.empty()) return fs::absolute(fs::path(p)).lexically_normal().string();
  return describe_ + "#" + std::to_string(i);
}

// ------------------------------------------------------------------ ArrayDataset
ArrayDataset::ArrayDataset(int64_t n, int64_t h, int64_t w, int64_t c, std::vector<uint8_t> u8, std::vector<float> f32,
                           std::vector<int64_t> labels, int64_t num_classes, std::string describe,
                           std::vector<std::string> class_names)
    : h_(h), w_(w), c_(c), u8_(std::move(u8)), f32_(std::move(f32)) {
  check(static_cast<int64_t>(labels.size()) == n, describe, ": ", labels.size(), " labels for ", n, " images");
  check(n == 0 || (h > 0 && w > 0 && c > 0), describe, ": images of ", h, "×", w, "×", c,
        " (every image needs at least 1×1 pixels and 1 band)");
  for (size_t i = 0; num_classes > 0 && i < labels.size(); ++i)
    check(labels[i] < num_classes, describe, ": label ", labels[i], " of item ", i, " is not below its ", num_classes,
          " classes");
  labels_ = std::move(labels);
  num_classes_ = num_classes;
  describe_ = std::move(describe);
  class_names_ = std::move(class_names);
}

void ArrayDataset::set_origins(std::vector<std::string> files, std::vector<int64_t> sizes) {
  for (auto& f : files) f = fs::absolute(fs::path(f)).lexically_normal().string();
  origins_ = std::move(files);
  origin_sizes_ = std::move(sizes);
}

std::string ArrayDataset::item_id(size_t i) const {
  int64_t row = static_cast<int64_t>(i);
  for (size_t k = 0; k < origins_.size(); ++k) {
    if (row < origin_sizes_[k]) return origins_[k] + "#" + std::to_string(row);
    row -= origin_sizes_[k];
  }
  return RawDataset::item_id(i);
}

Image ArrayDataset::load(size_t i, const DecodeHint&) const {
  check(i < labels_.size(), "index ", i, " out of range for ", describe_);
  const size_t k = static_cast<size_t>(h_ * w_ * c_);
  if (!u8_.empty()) {
    Image im = Image::make_u8(h_, w_, c_);
    std::memcpy(im.u8.data(), u8_.data() + i * k, k);
    return im;
  }
  Image im = Image::make_f32(h_, w_, c_);
  std::memcpy(im.f32.data(), f32_.data() + i * k, k * sizeof(float));
  return im;
}

// ------------------------------------------------------------------ FileDataset
FileDataset::FileDataset(std::vector<std::string> paths, std::vector<int64_t> labels, int64_t num_classes,
                         std::vector<std::string> class_names, std::string describe)
    : paths_(std::move(paths)) {
  labels_ = std::move(labels);
  num_classes_ = num_classes;
  class_names_ = std::move(class_names);
  describe_ = std::move(describe);
}

Image FileDataset::load(size_t i, const DecodeHint& hint) const {
  check(i < paths_.size(), "index ", i, " out of range for ", describe_);
  return decode_file(paths_[i], hint);
}

// ------------------------------------------------------------------ array conversion helpers
namespace {

/// Converts an N-item array with the given layout into N×H×W×C (U8 or F32).
struct ArrayData {
  int64_t n = 0, h = 0, w = 0, c = 0;
  std::vector<uint8_t> u8;
  std::vector<float> f32;
};

ArrayData to_nhwc(const std::vector<int64_t>& shape, const std::string& layout_in, const std::string& dtype,
                  const char* data, const std::string& name) {
  check(shape.size() == 3 || shape.size() == 4, "'", name, "': images must be N×H×W, N×H×W×C or N×C×H×W, got ",
        shape.size(), " dims");
  std::string layout = layout_in;
  if (layout == "auto") layout = shape.size() == 3 ? "nhw" : (shape[1] < shape[3] ? "nchw" : "nhwc");
  // auto cannot tell N×A×B×A, nor N×8×8×13 (8 bands of 8×13, or 13 bands of 8×8): ask for the layout
  if (layout_in == "auto" && shape.size() == 4 &&
      (shape[1] == shape[3] || (layout == "nchw" && shape[1] == shape[2]) || (layout == "nhwc" && shape[2] == shape[3])))
    throw core::UsageError(str("'", name, "': cannot tell the layout of a ", shape[0], "×", shape[1], "×", shape[2], "×",
                               shape[3], " image array (", shape[1], " bands of ", shape[2], "×", shape[3], ", or ",
                               shape[3], " bands of ", shape[1], "×", shape[2],
                               "): set the domain's layout option (e.g. data.source.layout = nchw or nhwc)"));
  check((layout == "nhw") == (shape.size() == 3), "'", name, "': layout ", layout, " does not fit a ", shape.size(),
        "-dim array");
  ArrayData a;
  a.n = shape[0];
  if (layout == "nhw") a.h = shape[1], a.w = shape[2], a.c = 1;
  else if (layout == "nhwc") a.h = shape[1], a.w = shape[2], a.c = shape[3];
  else a.c = shape[1], a.h = shape[2], a.w = shape[3];
  const size_t total = static_cast<size_t>(a.n * a.h * a.w * a.c);
  auto src_index = [&](size_t dst) -> size_t {  // dst in NHWC -> index in the stored layout
    if (layout != "nchw") return dst;
    size_t b = dst % static_cast<size_t>(a.c), rest = dst / static_cast<size_t>(a.c);
    size_t x = rest % static_cast<size_t>(a.w);
    rest /= static_cast<size_t>(a.w);
    size_t y = rest % static_cast<size_t>(a.h), n = rest / static_cast<size_t>(a.h);
    return ((n * static_cast<size_t>(a.c) + b) * static_cast<size_t>(a.h) + y) * static_cast<size_t>(a.w) + x;
  };
  if (dtype == "u1") {
    a.u8.resize(total);
    const uint8_t* p = reinterpret_cast<const uint8_t*>(data);
    if (layout != "nchw") std::memcpy(a.u8.data(), p, total);
    else
      for (size_t i = 0; i < total; ++i) a.u8[i] = p[src_index(i)];
    return a;
  }
  a.f32.resize(total);
  for (size_t i = 0; i < total; ++i) {
    size_t s = src_index(i);
    float v;
    if (dtype == "u2") {
      uint16_t u;
      std::memcpy(&u, data + s * 2, 2);
      v = static_cast<float>(u) / 65535.f;
    } else if (dtype == "i2") {
      int16_t u;
      std::memcpy(&u, data + s * 2, 2);
      v = static_cast<float>(u) / 32767.f;
    } else if (dtype == "f4") {
      std::memcpy(&v, data + s * 4, 4);
    } else if (dtype == "f8") {
      double d;
      std::memcpy(&d, data + s * 8, 8);
      v = static_cast<float>(d);
    } else {
      throw core::Error(str("'", name, "': image dtype ", dtype, " is not supported (uint8, uint16, int16, float32, float64)"));
    }
    if (!std::isfinite(v)) {  // NaN / inf pixels would train to a NaN loss: name the item now
      const size_t px = static_cast<size_t>(a.h * a.w * a.c), rest = i % px;
      throw core::Error(str("'", name, "': image ", i / px, " holds ", v, " at y ", rest / static_cast<size_t>(a.w * a.c),
                            ", x ", (rest / static_cast<size_t>(a.c)) % static_cast<size_t>(a.w), ", band ",
                            rest % static_cast<size_t>(a.c), " (index ", s, " of the stored array; NaN / inf pixels are not images)"));
    }
    a.f32[i] = v;
  }
  return a;
}

std::vector<int64_t> npy_labels(const std::string& path, int64_t n) {
  NpyArray l = read_npy(path);
  check(l.shape.size() == 1 && l.shape[0] == n, "'", path, "': labels must be a 1-D array of ", n, " entries");
  std::vector<int64_t> out(static_cast<size_t>(n));
  const bool floats = l.dtype[0] == 'f';
  for (size_t i = 0; i < out.size(); ++i) {
    if (floats) {
      double v = l.get_double(i);
      check(std::isfinite(v) && v == std::floor(v), "'", path, "': label ", v, " of item ", i,
            " is not an integer (float labels; save the class indices as integers)");
    }
    out[i] = l.get_int(i);
  }
  return out;
}

// ------------------------------------------------------------------ prepared
RawDatasetPtr open_prepared_dir(const std::string& dir, const std::string& split) {
  nlohmann::json m = read_manifest(dir);
  if (auto suite = suites::open_suite_split(dir, m, split)) return suite;  // split = DOMAIN/SPLIT
  std::vector<std::string> splits;
  if (split == "all") splits = {"train", "val", "test"};
  else {
    check(m["splits"].contains(split), "prepared data set '", dir, "' has no split '", split,
          "' (known: train, val, test, all)");
    splits = {split};
  }
  ArrayData all;
  std::vector<int64_t> labels;
  std::vector<std::string> origin_files;
  std::vector<int64_t> origin_sizes;
  for (auto& s : splits) {
    std::string ip = (fs::path(dir) / m["splits"][s]["images"].get<std::string>()).string();
    std::string lp = (fs::path(dir) / m["splits"][s]["labels"].get<std::string>()).string();
    NpyArray im = read_npy(ip);
    check(im.dtype == "u1" && im.shape.size() == 3, "'", ip, "': expected uint8 N×H×W");
    check(im.shape[0] == m["splits"][s]["count"].get<int64_t>(), "'", ip, "' holds ", im.shape[0],
          " images but the manifest says ", m["splits"][s]["count"].get<int64_t>());
    auto l = npy_labels(lp, im.shape[0]);
    origin_files.push_back(ip);
    origin_sizes.push_back(im.shape[0]);
    if (all.n == 0) all.h = im.shape[1], all.w = im.shape[2], all.c = 1;
    all.n += im.shape[0];
    all.u8.insert(all.u8.end(), im.data.begin(), im.data.end());
    labels.insert(labels.end(), l.begin(), l.end());
  }
  std::vector<std::string> names = m.value("classes", std::vector<std::string>{});
  auto ds = std::make_shared<ArrayDataset>(all.n, all.h, all.w, all.c, std::move(all.u8), std::vector<float>{},
                                           std::move(labels), m.value("num_classes", int64_t{0}),
                                           str("prepared ", m.value("name", dir), " (", dir, ") split ", split, ": ",
                                               all.n, " images ", all.h, "×", all.w),
                                           names);
  ds->set_origins(std::move(origin_files), std::move(origin_sizes));
  return ds;
}

RawDatasetPtr make_prepared(const DomainOptions& o) {
  return open_prepared_dir(o.root, o.split);
}

// ------------------------------------------------------------------ idx
std::string find_idx(const std::string& dir, const std::string& stem) {
  for (const char* suf : {"", ".gz"}) {
    std::string p = (fs::path(dir) / (stem + suf)).string();
    if (fs::exists(p)) return p;
  }
  throw core::UsageError(str("no IDX file '", stem, "[.gz]' in '", dir, "'"));
}

RawDatasetPtr make_idx(const DomainOptions& o) {
  std::string images = o.root, labels = o.labels;
  if (fs::is_directory(o.root)) {
    std::string stem = o.split == "test" ? "t10k" : o.split;
    images = find_idx(o.root, stem + "-images-idx3-ubyte");
    if (labels.empty()) labels = find_idx(o.root, stem + "-labels-idx1-ubyte");
  }
  check(fs::exists(images), "IDX images file '", images, "' does not exist");
  IdxArray im = parse_idx(read_maybe_gz(images), images);
  check(im.dims.size() == 3 || im.dims.size() == 4, "'", images, "': expected N×H×W or N×H×W×C IDX images");
  int64_t n = im.dims[0], c = im.dims.size() == 4 ? im.dims[3] : 1;
  std::vector<int64_t> lab(static_cast<size_t>(n), -1);
  if (!labels.empty()) {
    IdxArray l = parse_idx(read_maybe_gz(labels), labels);
    check(l.dims.size() == 1 && l.dims[0] == n, "'", labels, "': expected ", n, " labels");
    for (size_t i = 0; i < lab.size(); ++i) lab[i] = static_cast<unsigned char>(l.data[i]);
  }
  std::vector<uint8_t> px(im.data.begin(), im.data.end());
  auto ds = std::make_shared<ArrayDataset>(n, im.dims[1], im.dims[2], c, std::move(px), std::vector<float>{}, lab,
                                           classes_from_labels(lab, "'" + (labels.empty() ? images : labels) + "'"),
                                           str("idx ", images, ": ", n, " images"));
  ds->set_origins({images}, {n});
  return ds;
}

// ------------------------------------------------------------------ digits_csv
RawDatasetPtr make_digits_csv(const DomainOptions& o) {
  std::string text = read_maybe_gz(o.root);
  std::istringstream in(text);
  std::string line;
  std::vector<uint8_t> px;
  std::vector<int64_t> lab;
  int64_t row = 0;
  while (std::getline(in, line)) {
    if (core::trim(line).empty()) continue;
    ++row;
    auto cells = core::split_list(line, ',');
    check(cells.size() == 65, "'", o.root, "' row ", row, ": expected 65 columns (64 pixel counts + label), got ", cells.size());
    auto number = [&](size_t i) {
      char* end = nullptr;
      double v = std::strtod(cells[i].c_str(), &end);
      check(end && *end == '\0' && std::isfinite(v), "'", o.root, "' row ", row, " column ", i + 1, ": '", cells[i],
            "' is not a number");
      return v;
    };
    for (size_t i = 0; i < 64; ++i) {
      double v = number(i);
      check(v >= 0 && v <= 16, "'", o.root, "' row ", row, ": pixel count ", v, " outside 0..16");
      px.push_back(static_cast<uint8_t>(std::lround(v * 255.0 / 16.0)));
    }
    double l = number(64);
    check(l >= -1 && l < kMaxClasses, "'", o.root, "' row ", row, ": label ", cells[64], " is out of range");
    check(l == std::floor(l), "'", o.root, "' row ", row, ": label ", cells[64], " is not an integer");
    lab.push_back(std::lround(l));
  }
  int64_t n = static_cast<int64_t>(lab.size());
  check_all_labelled(lab, "'" + o.root + "'", o.labelled, "row", 1);
  auto ds = std::make_shared<ArrayDataset>(n, 8, 8, 1, std::move(px), std::vector<float>{}, lab,
                                           classes_from_labels(lab, "'" + o.root + "'"),
                                           str("digits_csv ", o.root, ": ", n, " images 8×8"));
  ds->set_origins({o.root}, {n});
  return ds;
}

// ------------------------------------------------------------------ npy
RawDatasetPtr make_npy(const DomainOptions& o) {
  NpyArray im = read_npy(o.root);
  ArrayData a = to_nhwc(im.shape, o.layout, im.dtype, im.data.data(), o.root);
  std::vector<int64_t> lab(static_cast<size_t>(a.n), -1);
  if (!o.labels.empty()) lab = npy_labels(o.labels, a.n);
  check_all_labelled(lab, "'" + o.labels + "'", o.labelled);
  const int64_t n = a.n;
  auto ds = std::make_shared<ArrayDataset>(a.n, a.h, a.w, a.c, std::move(a.u8), std::move(a.f32), lab,
                                           classes_from_labels(lab, "'" + (o.labels.empty() ? o.root : o.labels) + "'"),
                                           str("npy ", o.root, ": ", a.n, " images ", a.h, "×", a.w, "×", a.c));
  ds->set_origins({o.root}, {n});
  return ds;
}

// ------------------------------------------------------------------ hdf5
struct H5Handle {
  hid_t id = -1;
  herr_t (*close)(hid_t) = nullptr;
  ~H5Handle() {
    if (id >= 0 && close) close(id);
  }
};

RawDatasetPtr make_hdf5(const DomainOptions& o) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  check(fs::exists(o.root), "HDF5 file '", o.root, "' does not exist");
  H5Handle f{H5Fopen(o.root.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  check(f.id >= 0, "cannot open HDF5 file '", o.root, "' (corrupt or not HDF5)");
  check(H5Lexists(f.id, o.images_key.c_str(), H5P_DEFAULT) > 0, "'", o.root, "' has no dataset '", o.images_key, "' (images_key)");
  H5Handle d{H5Dopen2(f.id, o.images_key.c_str(), H5P_DEFAULT), H5Dclose};
  H5Handle sp{H5Dget_space(d.id), H5Sclose};
  int nd = H5Sget_simple_extent_ndims(sp.id);
  check(nd == 3 || nd == 4, "'", o.root, "' dataset '", o.images_key, "': expected 3 or 4 dims, got ", nd);
  hsize_t dims[4];
  H5Sget_simple_extent_dims(sp.id, dims, nullptr);
  std::vector<int64_t> shape(dims, dims + nd);
  H5Handle t{H5Dget_type(d.id), H5Tclose};
  H5T_class_t cls = H5Tget_class(t.id);
  size_t sz = H5Tget_size(t.id);
  std::string dtype;
  hid_t mem;
  if (cls == H5T_INTEGER && sz == 1) dtype = "u1", mem = H5T_NATIVE_UINT8;
  else if (cls == H5T_INTEGER && sz == 2 && H5Tget_sign(t.id) == H5T_SGN_NONE) dtype = "u2", mem = H5T_NATIVE_UINT16;
  else if (cls == H5T_INTEGER && sz == 2) dtype = "i2", mem = H5T_NATIVE_INT16;
  else if (cls == H5T_FLOAT) dtype = "f4", mem = H5T_NATIVE_FLOAT;
  else throw core::Error(str("'", o.root, "' dataset '", o.images_key, "': unsupported type (uint8, uint16, int16, float)"));
  size_t total = 1;
  for (auto s : shape) total *= static_cast<size_t>(s);
  std::vector<char> buf(total * std::stoul(dtype.substr(1)));
  check(H5Dread(d.id, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) >= 0, "cannot read dataset '", o.images_key,
        "' of '", o.root, "'");
  ArrayData a = to_nhwc(shape, o.layout, dtype, buf.data(), o.root + ":" + o.images_key);
  buf = {};
  std::vector<int64_t> lab(static_cast<size_t>(a.n), -1);
  if (!o.labels_key.empty() && H5Lexists(f.id, o.labels_key.c_str(), H5P_DEFAULT) > 0) {
    H5Handle ld{H5Dopen2(f.id, o.labels_key.c_str(), H5P_DEFAULT), H5Dclose};
    H5Handle ls{H5Dget_space(ld.id), H5Sclose};
    check(H5Sget_simple_extent_npoints(ls.id) == a.n, "'", o.root, "' dataset '", o.labels_key, "': expected ", a.n, " labels");
    H5Handle lt{H5Dget_type(ld.id), H5Tclose};
    if (H5Tget_class(lt.id) == H5T_FLOAT) {  // float labels: integral values only, else refused
      std::vector<double> fl(lab.size());
      check(H5Dread(ld.id, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, fl.data()) >= 0, "cannot read labels '",
            o.labels_key, "' of '", o.root, "'");
      for (size_t i = 0; i < fl.size(); ++i) {
        check(std::isfinite(fl[i]) && fl[i] == std::floor(fl[i]) && std::fabs(fl[i]) < 1e15, "'", o.root, ":",
              o.labels_key, "': label ", fl[i], " of item ", i, " is not an integer (float labels)");
        lab[i] = static_cast<int64_t>(fl[i]);
      }
    } else {
      check(H5Dread(ld.id, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab.data()) >= 0, "cannot read labels '",
            o.labels_key, "' of '", o.root, "'");
    }
    check_all_labelled(lab, "'" + o.root + ":" + o.labels_key + "'", o.labelled);
  } else if (o.labelled && o.labels_key != "labels") {
    throw core::UsageError(str("'", o.root, "' has no labels dataset '", o.labels_key, "' (labels_key)"));
  }
  const int64_t n = a.n;
  auto ds = std::make_shared<ArrayDataset>(a.n, a.h, a.w, a.c, std::move(a.u8), std::move(a.f32), lab,
                                           classes_from_labels(lab, "'" + o.root + ":" + o.labels_key + "'"),
                                           str("hdf5 ", o.root, ":", o.images_key, ": ", a.n, " images ", a.h, "×", a.w,
                                               "×", a.c));
  ds->set_origins({o.root + ":" + o.images_key}, {n});
  return ds;
}

// ------------------------------------------------------------------ image_folder / list_file
bool is_image_file(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e == ".jpg" || e == ".jpeg" || e == ".png" || e == ".tif" || e == ".tiff";
}

std::vector<std::string> images_under(const fs::path& dir, bool recursive) {
  std::vector<std::string> out;
  if (recursive) {
    for (auto& e : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink))
      if (e.is_regular_file() && is_image_file(e.path())) out.push_back(e.path().string());
  } else {
    for (auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && is_image_file(e.path())) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

RawDatasetPtr make_image_folder(const DomainOptions& o) {
  check(fs::is_directory(o.root), "image folder '", o.root, "' is not a directory");
  std::vector<std::string> classes;
  for (auto& e : fs::directory_iterator(o.root))
    if (e.is_directory()) classes.push_back(e.path().filename().string());
  std::sort(classes.begin(), classes.end());
  std::vector<std::string> paths;
  std::vector<int64_t> labels;
  std::vector<std::string> used;
  for (auto& c : classes) {
    auto files = images_under(fs::path(o.root) / c, true);
    if (files.empty()) continue;
    int64_t k = static_cast<int64_t>(used.size());
    used.push_back(c);
    for (auto& f : files) paths.push_back(f), labels.push_back(k);
  }
  bool flat = false;
  if (paths.empty()) {  // a flat folder of images: unlabelled
    paths = images_under(o.root, false);
    labels.assign(paths.size(), -1);
    flat = true;
  }
  check(!paths.empty(), "image folder '", o.root, "' holds no .jpg/.jpeg/.png/.tif/.tiff files");
  return std::make_shared<FileDataset>(paths, labels, static_cast<int64_t>(used.size()), used,
                                       str("image_folder ", o.root, ": ", paths.size(), " images",
                                           flat ? " (flat, unlabelled)" : str(", ", used.size(), " classes")));
}

RawDatasetPtr make_list_file(const DomainOptions& o) {
  std::string list = o.split;
  if (!fs::exists(list) && fs::exists(fs::path(o.root) / list)) list = (fs::path(o.root) / list).string();
  check(fs::exists(list), "list file '", o.split, "' not found (split names the list file; relative to the cwd or root '",
        o.root, "')");
  std::string text;
  try {
    text = core::read_file(list);
  } catch (const core::Error&) {
    throw core::Error(str("cannot read list file '", list, "'"));
  }
  auto entries = parse_list_file(text, list, o.root);
  check_list_labels(entries, list, o.labelled);
  auto& paths = entries.paths;
  auto& labels = entries.labels;
  check(!paths.empty(), "list file '", list, "' lists no images");
  return std::make_shared<FileDataset>(paths, labels, classes_from_labels(labels, "'" + list + "'"), std::vector<std::string>{},
                                       str("list_file ", list, " (root ", o.root, "): ", paths.size(), " images"));
}

}  // namespace

SHIFTLAB_REGISTER(dataset_registry(), "prepared", "a prepared directory (root = data/<name>); split train|val|test|all", make_prepared);
SHIFTLAB_REGISTER(dataset_registry(), "idx", "IDX files (MNIST format): root = images file (+ labels) or a directory with <split>-images-idx3-ubyte[.gz]", make_idx);
SHIFTLAB_REGISTER(dataset_registry(), "digits_csv", "UCI digits CSV (64 counts 0..16 + label per row, .gz ok): root = file", make_digits_csv);
SHIFTLAB_REGISTER(dataset_registry(), "npy", "root = images .npy (N×H×W, N×H×W×C, N×C×H×W; uint8/16, float), labels = .npy", make_npy);
SHIFTLAB_REGISTER(dataset_registry(), "hdf5", "root = .h5 file with images_key (N×H×W[×C] or N×C×H×W) and labels_key datasets", make_hdf5);
SHIFTLAB_REGISTER(dataset_registry(), "image_folder", "root/<class>/*.jpg|png|tif (labelled) or a flat folder of images (unlabelled)", make_image_folder);
SHIFTLAB_REGISTER(dataset_registry(), "list_file", "TLlib/Office list: split = list file of 'relative/path [label]' lines, root = image root", make_list_file);

// ------------------------------------------------------------------ domain
RawDatasetPtr make_raw_dataset(const DomainOptions& o) {
  check_usage(!o.dataset.empty(), "no dataset given (set <domain>.dataset to a prepared name or a kind)");
  if (dataset_registry().has(o.dataset)) return dataset_registry().get(o.dataset)(o);
  fs::path dir = fs::path(o.root) / o.dataset;
  if (fs::exists(dir / "manifest.json")) return open_prepared_dir(dir.string(), o.split);
  if (prepare_registry().has(o.dataset))
    throw core::UsageError(str("data set '", o.dataset, "' is not prepared under '", o.root, "': run `shiftlab data prepare ",
                               o.dataset, " --data.root=", o.root, "`"));
  std::vector<std::string> known = dataset_registry().names();
  for (auto& n : prepare_registry().names()) known.push_back(n);
  std::string all;
  for (auto& n : known) all += (all.empty() ? "" : ", ") + n;
  std::string hint = core::nearest(o.dataset, known);
  throw core::UsageError(str("unknown dataset '", o.dataset, "'", hint.empty() ? "" : str(" — did you mean '", hint, "'?"),
                             " (kinds and prepared names: ", all, ")"));
}

DomainDataset::DomainDataset(RawDatasetPtr raw, TransformChain chain, DomainOptions o)
    : raw_(std::move(raw)), chain_(std::move(chain)), o_(std::move(o)) {
  check_usage(o_.on_error == "fail" || o_.on_error == "skip", "on_error must be fail or skip, got '", o_.on_error, "'");
  prefix_ = chain_.cacheable_prefix();
  hint_ = chain_.decode_hint();
  if (o_.cache) {
    cache_.resize(raw_->size());
    cache_locks_.reset(new std::mutex[64]);
  }
}

Image DomainDataset::load_prefix(size_t i) const {
  if (!o_.cache) return chain_.apply_range(raw_->load(i, hint_), 0, 0, prefix_);
  std::mutex& mu = cache_locks_[i % 64];
  {
    std::lock_guard<std::mutex> lk(mu);
    if (cache_[i]) return *cache_[i];
  }
  auto im = std::make_shared<Image>(chain_.apply_range(raw_->load(i, hint_), 0, 0, prefix_));
  std::lock_guard<std::mutex> lk(mu);
  if (!cache_[i]) cache_[i] = im;
  return *im;
}

/// Runs ops [from, to) of the chain on a loaded item, naming the item in errors.
static Image run_ops(const TransformChain& chain, Image im, uint64_t seed, size_t from, size_t to, size_t j,
                     const RawDataset& raw) {
  try {
    return chain.apply_range(std::move(im), seed, from, to);
  } catch (const core::Error& e) {
    std::string where = raw.path(j);
    throw core::Error(str(e.what(), " (item ", j, where.empty() ? "" : " '" + where + "'", " of ", raw.describe(), ")"));
  }
}

Image DomainDataset::load_readable(size_t i, size_t* used) const {
  const size_t n = raw_->size();
  check(i < n, "index ", i, " out of range for ", raw_->describe());
  if (o_.on_error != "skip") {
    *used = i;
    return load_prefix(i);
  }
  for (size_t attempt = 0; attempt < n; ++attempt) {
    size_t j = (i + attempt) % n;
    {
      std::lock_guard<std::mutex> lk(skip_mu_);
      if (bad_.count(j)) continue;
    }
    try {
      Image im = load_prefix(j);
      *used = j;
      return im;
    } catch (const core::Error& e) {
      std::lock_guard<std::mutex> lk(skip_mu_);
      if (bad_.emplace(j, e.what()).second) core::log_warn("skipping unreadable item ", j, ": ", e.what());
    }
  }
  throw core::Error(str("no readable item in ", raw_->describe(), " (all ", n, " skipped)"));
}

Image DomainDataset::get_image(size_t i, uint64_t rng_seed, size_t* used_index) const {
  size_t j = i;
  Image im = load_readable(i, &j);
  if (used_index) *used_index = j;
  return run_ops(chain_, std::move(im), rng_seed, prefix_, chain_.ops().size(), j, *raw_);
}

DomainDataset::Prepared DomainDataset::get_prepared(size_t i, uint64_t rng_seed) const {
  Prepared p;
  Image im = load_readable(i, &p.index);
  const size_t nops = chain_.ops().size();
  size_t end = nops;
  // everything but a trailing normalize (it draws nothing, so the Rng sequence is unchanged)
  const bool fuse = nops > prefix_ && chain_.ops().back()->is_affine();
  if (fuse) end = nops - 1;
  p.image = run_ops(chain_, std::move(im), rng_seed, prefix_, end, p.index, *raw_);
  if (fuse) {
    try {
      chain_.ops().back()->affine(p.image.c, p.scale, p.shift);
    } catch (const core::Error& e) {
      std::string where = raw_->path(p.index);
      throw core::Error(str(e.what(), " (item ", p.index, where.empty() ? "" : " '" + where + "'", " of ", raw_->describe(), ")"));
    }
  }
  p.label = o_.labelled ? raw_->label(p.index) : -1;
  return p;
}

Sample DomainDataset::get(size_t i, uint64_t rng_seed) const {
  Prepared p = get_prepared(i, rng_seed);
  Sample s;
  s.image = torch::empty({p.image.c, p.image.h, p.image.w}, torch::kFloat32);
  write_chw(p.image, s.image.data_ptr<float>(), p.scale.empty() ? nullptr : p.scale.data(),
            p.shift.empty() ? nullptr : p.shift.data());
  s.label = p.label;
  s.index = static_cast<int64_t>(p.index);
  return s;
}

std::vector<int64_t> DomainDataset::labels() const {
  if (o_.labelled) return raw_->labels();
  return std::vector<int64_t>(raw_->size(), -1);
}

std::string DomainDataset::describe() const {
  std::string s = raw_->describe();
  if (!chain_.ops().empty()) s += " | " + chain_.spec();
  if (!o_.labelled) s += " | unlabelled";
  if (o_.cache) s += " | cached";
  size_t k = skipped_count();
  if (k) s += str(" | ", k, " skipped");
  return s;
}

size_t DomainDataset::skipped_count() const {
  std::lock_guard<std::mutex> lk(skip_mu_);
  return bad_.size();
}

std::vector<std::string> DomainDataset::skipped_items() const {
  std::lock_guard<std::mutex> lk(skip_mu_);
  std::vector<std::string> v;
  for (auto& [i, msg] : bad_) v.push_back(msg);
  return v;
}

namespace {

// A fixed subset of a raw dataset's items (few-label studies, quick evaluations): the base
// items idx[0], idx[1], ... in ascending base order.
class SubsetDataset : public RawDataset {
 public:
  SubsetDataset(RawDatasetPtr base, std::vector<size_t> idx, const std::string& what)
      : base_(std::move(base)), idx_(std::move(idx)) {
    labels_.reserve(idx_.size());
    for (size_t i : idx_) labels_.push_back(base_->label(i));
    num_classes_ = base_->num_classes();
    class_names_ = base_->class_names();
    describe_ = str(base_->describe(), " | subset ", idx_.size(), " of ", base_->size(), " (", what, ")");
  }
  Image load(size_t i, const DecodeHint& hint) const override { return base_->load(idx_.at(i), hint); }
  std::string path(size_t i) const override { return base_->path(idx_.at(i)); }
  std::string item_id(size_t i) const override { return base_->item_id(idx_.at(i)); }

 private:
  RawDatasetPtr base_;
  std::vector<size_t> idx_;
};

// Labels mapped onto another class list (class matching by name across domains).
class RelabelledDataset : public RawDataset {
 public:
  RelabelledDataset(RawDatasetPtr base, const std::vector<int64_t>& to_source, std::vector<std::string> names,
                    const std::string& what)
      : base_(std::move(base)) {
    labels_.reserve(base_->size());
    for (auto l : base_->labels()) {
      if (l >= static_cast<int64_t>(to_source.size()))
        throw core::Error(str(base_->describe(), ": label ", l, " has no class name"));
      labels_.push_back(l < 0 ? -1 : to_source[static_cast<size_t>(l)]);
    }
    num_classes_ = static_cast<int64_t>(names.size());
    class_names_ = std::move(names);
    describe_ = what.empty() ? base_->describe() : str(base_->describe(), " | ", what);
  }
  Image load(size_t i, const DecodeHint& hint) const override { return base_->load(i, hint); }
  std::string path(size_t i) const override { return base_->path(i); }
  std::string item_id(size_t i) const override { return base_->item_id(i); }

 private:
  RawDatasetPtr base_;
};

}  // namespace

// Fisher-Yates with a fixed generator: the same subset on every platform and libstdc++ version.
void seeded_shuffle(std::vector<size_t>& v, uint64_t seed) {
  std::mt19937_64 g(seed);
  for (size_t i = v.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(g() % i);
    std::swap(v[i - 1], v[j]);
  }
}

RawDatasetPtr pick_items(RawDatasetPtr base, std::vector<size_t> idx, const std::string& what) {
  for (size_t i : idx)
    if (i >= base->size()) throw core::Error(str("internal: item ", i, " beyond ", base->describe()));
  return std::make_shared<SubsetDataset>(std::move(base), std::move(idx), what);
}

RawDatasetPtr relabel_dataset(RawDatasetPtr base, std::vector<int64_t> to_source, std::vector<std::string> names,
                              const std::string& what) {
  return std::make_shared<RelabelledDataset>(std::move(base), to_source, std::move(names), what);
}

RawDatasetPtr subset_dataset(RawDatasetPtr raw, int64_t per_class, int64_t limit, uint64_t seed) {
  if (per_class <= 0 && limit <= 0) return raw;
  std::vector<size_t> keep;
  std::string what;
  if (per_class > 0) {
    const auto& labels = raw->labels();
    if (raw->num_classes() <= 0)
      throw core::UsageError(str("per_class = ", per_class, " needs labels, and ", raw->describe(), " has none"));
    // per class: a seeded permutation of its items, the first per_class of it (so the subsets of
    // one seed are nested: 10 per class is part of 100 per class)
    std::vector<std::vector<size_t>> by(static_cast<size_t>(raw->num_classes()));
    for (size_t i = 0; i < labels.size(); ++i)
      if (labels[i] >= 0 && labels[i] < raw->num_classes()) by[static_cast<size_t>(labels[i])].push_back(i);
    for (size_t c = 0; c < by.size(); ++c) {
      seeded_shuffle(by[c], seed * 1000003ULL + c);
      if (by[c].size() < static_cast<size_t>(per_class))
        core::log_warn(raw->describe(), ": class ", c, " has ", by[c].size(), " items, fewer than per_class = ", per_class);
      size_t k = std::min(by[c].size(), static_cast<size_t>(per_class));
      keep.insert(keep.end(), by[c].begin(), by[c].begin() + static_cast<std::ptrdiff_t>(k));
    }
    what = str(per_class, " per class");
  } else {
    keep.resize(raw->size());
    for (size_t i = 0; i < keep.size(); ++i) keep[i] = i;
  }
  if (limit > 0 && static_cast<size_t>(limit) < keep.size()) {
    std::sort(keep.begin(), keep.end());
    seeded_shuffle(keep, seed ^ 0x9e3779b97f4a7c15ULL);
    keep.resize(static_cast<size_t>(limit));
    what += str(what.empty() ? "" : ", ", "limit ", limit);
  }
  if (keep.empty()) throw core::UsageError(str("the subset of ", raw->describe(), " is empty"));
  std::sort(keep.begin(), keep.end());
  return std::make_shared<SubsetDataset>(raw, std::move(keep), str(what, what.empty() ? "" : ", ", "seed ", seed));
}

DatasetPtr make_domain(const DomainOptions& o) {
  TransformChain chain = parse_transforms(o.transform);
  auto raw = subset_dataset(make_raw_dataset(o), o.per_class, o.limit, o.subset_seed);
  return std::make_shared<DomainDataset>(std::move(raw), std::move(chain), o);
}

}  // namespace shiftlab::data
