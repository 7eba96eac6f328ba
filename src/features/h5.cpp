#include "features/h5.h"

#include <cstring>

namespace shiftlab::features::h5 {

std::string read_str_attr(hid_t obj, const std::string& name, const std::string& what) {
  core::check(has_attr(obj, name), what, " has no attribute '", name, "'");
  Handle a{H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose};
  core::check(a.ok(), what, ": cannot open attribute '", name, "'");
  Handle t{H5Aget_type(a), H5Tclose};
  core::check(H5Tget_class(t) == H5T_STRING, what, ": attribute '", name, "' is not a string");
  Handle sp{H5Aget_space(a), H5Sclose};
  core::check(H5Sget_simple_extent_npoints(sp) == 1, what, ": attribute '", name, "' is not a scalar");
  if (H5Tis_variable_str(t) > 0) {
    Handle mt{H5Tcopy(H5T_C_S1), H5Tclose};
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t));
    char* s = nullptr;
    core::check(H5Aread(a, mt, &s) >= 0, what, ": cannot read attribute '", name, "'");
    std::string v = s ? s : "";
    H5free_memory(s);
    return v;
  }
  size_t n = H5Tget_size(t);
  // a fixed-length string attribute is allocated as the file says: bound it first
  core::check(n > 0 && n <= (size_t{64} << 20), what, ": attribute '", name, "' is a string of ", n, " bytes");
  std::string v(n, '\0');
  Handle mt{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(mt, n);
  H5Tset_cset(mt, H5Tget_cset(t));
  H5Tset_strpad(mt, H5Tget_strpad(t));
  core::check(H5Aread(a, mt, v.data()) >= 0, what, ": cannot read attribute '", name, "'");
  auto end = v.find('\0');
  if (end != std::string::npos) v.resize(end);
  return v;
}

int64_t read_int_attr(hid_t obj, const std::string& name, const std::string& what) {
  core::check(has_attr(obj, name), what, " has no attribute '", name, "'");
  Handle a{H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose};
  core::check(a.ok(), what, ": cannot open attribute '", name, "'");
  Handle t{H5Aget_type(a), H5Tclose};
  core::check(H5Tget_class(t) == H5T_INTEGER, what, ": attribute '", name, "' is not an integer");
  // H5Aread writes every element: exactly one fits in v
  Handle sp{H5Aget_space(a), H5Sclose};
  core::check(H5Sget_simple_extent_npoints(sp) == 1, what, ": attribute '", name, "' is not a scalar");
  int64_t v = 0;
  core::check(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0, what, ": cannot read attribute '", name, "'");
  return v;
}

void write_str_attr(hid_t obj, const std::string& name, const std::string& value) {
  if (has_attr(obj, name)) H5Adelete(obj, name.c_str());
  Handle t{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  Handle sp{H5Screate(H5S_SCALAR), H5Sclose};
  Handle a{H5Acreate2(obj, name.c_str(), t, sp, H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  const char* p = value.c_str();
  core::check(a.ok() && H5Awrite(a, t, &p) >= 0, "cannot write attribute '", name, "'");
}

void write_int_attr(hid_t obj, const std::string& name, int64_t value) {
  Handle a;
  if (has_attr(obj, name)) {
    a = Handle{H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose};
  } else {
    Handle sp{H5Screate(H5S_SCALAR), H5Sclose};
    a = Handle{H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT), H5Aclose};
  }
  core::check(a.ok() && H5Awrite(a, H5T_NATIVE_INT64, &value) >= 0, "cannot write attribute '", name, "'");
}

hid_t half_type() {
  // the recipe h5py uses for numpy float16: sign bit 15, exponent 10..14, mantissa 0..9, bias 15
  hid_t t = H5Tcopy(H5T_IEEE_F32LE);
  H5Tset_fields(t, 15, 10, 5, 0, 10);
  H5Tset_size(t, 2);
  H5Tset_ebias(t, 15);
  return t;
}

std::string float_kind(hid_t type) {
  if (H5Tget_class(type) != H5T_FLOAT) return "";
  if (H5Tget_size(type) == 4) return "float32";
  if (H5Tget_size(type) == 2) return "float16";
  return "";
}

static herr_t collect(hid_t, const char* name, const H5L_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

std::vector<std::string> children(hid_t loc) {
  std::vector<std::string> v;
  hsize_t idx = 0;
  H5Literate(loc, H5_INDEX_NAME, H5_ITER_INC, &idx, collect, &v);
  return v;
}

static H5O_type_t object_type(hid_t loc, const std::string& name) {
  if (!has_link(loc, name)) return H5O_TYPE_UNKNOWN;
  H5O_info_t info;
#if H5_VERSION_GE(1, 12, 0)
  if (H5Oget_info_by_name3(loc, name.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return H5O_TYPE_UNKNOWN;
#else
  if (H5Oget_info_by_name(loc, name.c_str(), &info, H5P_DEFAULT) < 0) return H5O_TYPE_UNKNOWN;
#endif
  return info.type;
}

bool is_group(hid_t loc, const std::string& name) { return object_type(loc, name) == H5O_TYPE_GROUP; }
bool is_dataset(hid_t loc, const std::string& name) { return object_type(loc, name) == H5O_TYPE_DATASET; }

}  // namespace shiftlab::features::h5
