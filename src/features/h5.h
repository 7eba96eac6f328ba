// Private HDF5 helpers of the feature cache (included only by src/features/*.cpp; the HDF5
// include directories are private to the shiftlab library): an owning handle, string and int64
// attributes (variable-length UTF-8 strings, so h5py reads them as str), and the IEEE half type.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace shiftlab::features::h5 {

/// Owns one HDF5 identifier and closes it with the matching H5xclose.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, -1)), close_(o.close_) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, -1);
      close_ = o.close_;
    }
    return *this;
  }
  ~Handle() { reset(); }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }
  hid_t get() const { return id_; }
  /// Gives up ownership (the caller closes the identifier).
  hid_t release() { return std::exchange(id_, -1); }
  bool ok() const { return id_ >= 0; }
  operator hid_t() const { return id_; }  // NOLINT: handles pass straight to the C API

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

/// Turns off HDF5's automatic error printing (we throw our own one-line errors).
inline void quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

inline bool has_attr(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }
inline bool has_link(hid_t loc, const std::string& name) { return H5Lexists(loc, name.c_str(), H5P_DEFAULT) > 0; }

/// A string attribute (variable- or fixed-length); throws naming `what` when absent or not a string.
std::string read_str_attr(hid_t obj, const std::string& name, const std::string& what);
/// An integer attribute as int64.
int64_t read_int_attr(hid_t obj, const std::string& name, const std::string& what);
/// Creates or replaces a variable-length UTF-8 string attribute.
void write_str_attr(hid_t obj, const std::string& name, const std::string& value);
/// Creates or overwrites (in place when it exists) a scalar int64 attribute.
void write_int_attr(hid_t obj, const std::string& name, int64_t value);

/// IEEE 754 binary16, little-endian (h5py and numpy read it as float16). Caller owns the id.
hid_t half_type();
/// "float32" | "float16" | "" (other) for a dataset's file type.
std::string float_kind(hid_t type);

/// Names of the links in group `loc` (sorted by name).
std::vector<std::string> children(hid_t loc);
/// True when `name` in `loc` is a group / a dataset.
bool is_group(hid_t loc, const std::string& name);
bool is_dataset(hid_t loc, const std::string& name);

}  // namespace shiftlab::features::h5
