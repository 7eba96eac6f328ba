#include "data/npy.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "core/fs.h"

namespace shiftlab::data {

using core::check;
using core::str;

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

size_t NpyArray::item_size() const { return static_cast<size_t>(std::stoi(dtype.substr(1))); }

double NpyArray::get_double(size_t i) const {
  const char* p = data.data() + i * item_size();
  auto rd = [&](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return static_cast<double>(v);
  };
  if (dtype == "u1" || dtype == "b1") return rd(uint8_t{});
  if (dtype == "i1") return rd(int8_t{});
  if (dtype == "u2") return rd(uint16_t{});
  if (dtype == "i2") return rd(int16_t{});
  if (dtype == "u4") return rd(uint32_t{});
  if (dtype == "i4") return rd(int32_t{});
  if (dtype == "u8") return rd(uint64_t{});
  if (dtype == "i8") return rd(int64_t{});
  if (dtype == "f4") return rd(float{});
  if (dtype == "f8") return rd(double{});
  throw core::Error(str("npy: unsupported dtype '", dtype, "'"));
}

int64_t NpyArray::get_int(size_t i) const {
  const char* p = data.data() + i * item_size();
  auto rd = [&](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return static_cast<int64_t>(v);
  };
  if (dtype == "i8") return rd(int64_t{});
  if (dtype == "i4") return rd(int32_t{});
  if (dtype == "u1" || dtype == "b1") return rd(uint8_t{});
  if (dtype == "i1") return rd(int8_t{});
  if (dtype == "u2") return rd(uint16_t{});
  if (dtype == "i2") return rd(int16_t{});
  if (dtype == "u4") return rd(uint32_t{});
  if (dtype == "u8") return rd(uint64_t{});
  return static_cast<int64_t>(std::llround(get_double(i)));
}

static NpyArray parse_header(std::istream& in, const std::string& path, size_t* offset) {
  char magic[8];
  in.read(magic, 8);
  check(in && std::memcmp(magic, "\x93NUMPY", 6) == 0, "'", path, "' is not a .npy file (bad magic)");
  int major = static_cast<unsigned char>(magic[6]);
  uint32_t hlen = 0;
  if (major == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    hlen = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    hlen = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  }
  check(in && hlen < (1u << 24), "'", path, "': truncated .npy header");
  std::string header(hlen, '\0');
  in.read(header.data(), hlen);
  check(static_cast<bool>(in), "'", path, "': truncated .npy header");
  if (offset) *offset = static_cast<size_t>(in.tellg());
  std::smatch m;
  NpyArray a;
  check(std::regex_search(header, m, std::regex("'descr'\\s*:\\s*'([<>|=])([a-z])(\\d+)'")), "'", path,
        "': cannot read dtype from .npy header");
  std::string endian = m[1], kind = m[2], bytes = m[3];
  check(endian != ">" || bytes == "1", "'", path, "': big-endian .npy arrays are not supported");
  a.dtype = kind + bytes;
  static const char* ok[] = {"u1", "i1", "b1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"};
  bool good = false;
  for (auto* d : ok) good |= a.dtype == d;
  check(good, "'", path, "': unsupported .npy dtype '", m[1], a.dtype, "'");
  check(std::regex_search(header, m, std::regex("'fortran_order'\\s*:\\s*(True|False)")), "'", path,
        "': no fortran_order in .npy header");
  check(m[1] == "False", "'", path, "': Fortran-ordered .npy arrays are not supported (save with np.ascontiguousarray)");
  check(std::regex_search(header, m, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")), "'", path,
        "': no shape in .npy header");
  std::string dims = m[1];
  std::regex num("(\\d+)");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator(); ++it)
    a.shape.push_back(std::stoll((*it)[1]));
  return a;
}

NpyArray read_npy_header(const std::string& path, size_t* data_offset) {
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), "cannot read '", path, "'");
  return parse_header(in, path, data_offset);
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), "cannot read '", path, "'");
  NpyArray a = parse_header(in, path, nullptr);
  size_t bytes = static_cast<size_t>(a.numel()) * a.item_size();
  a.data.resize(bytes);
  in.read(a.data.data(), static_cast<std::streamsize>(bytes));
  check(static_cast<size_t>(in.gcount()) == bytes, "'", path, "': truncated .npy data (expected ", bytes,
        " bytes, got ", in.gcount(), ")");
  return a;
}

void write_npy(const std::string& path, const std::string& dtype, const std::vector<int64_t>& shape,
               const void* data, size_t bytes) {
  std::string descr = (dtype == "u1" || dtype == "i1" || dtype == "b1" ? "|" : "<") + dtype;
  std::string sh = "(";
  for (size_t i = 0; i < shape.size(); ++i) sh += std::to_string(shape[i]) + (shape.size() == 1 ? "," : (i + 1 < shape.size() ? ", " : ""));
  sh += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + sh + ", }";
  size_t total = 10 + header.size() + 1;
  size_t pad = (64 - total % 64) % 64;
  header += std::string(pad, ' ') + "\n";
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  core::atomic_write_with(path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    check(static_cast<bool>(f), "cannot write '", path, "'");
    f.write(out.data(), static_cast<std::streamsize>(out.size()));
    f.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
    f.flush();
    check(static_cast<bool>(f), "cannot write '", path, "' (disk full?)");
  });
}

}  // namespace shiftlab::data
