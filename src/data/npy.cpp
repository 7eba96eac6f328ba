#include "data/npy.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <algorithm>

#include "core/error.h"
#include "core/fs.h"

namespace shiftlab::data {

using core::check;
using core::str;

int64_t NpyArray::numel() const {
  // the readers have checked that numel × item size fits the file, so this cannot overflow
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

namespace {

// numpy writes the header as a Python dict literal:
//   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 28, 28), }
// This parser accepts exactly that grammar (strings, True/False, tuples of integers) and nothing
// else: no regex (libstdc++'s recursion overflows the stack on long inputs), no evaluation.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& name) : s_(text), name_(name) {}

  NpyArray parse() {
    std::string descr;
    bool have_descr = false, have_order = false, have_shape = false, fortran = false;
    std::vector<int64_t> shape;
    ws();
    expect('{');
    for (;;) {
      ws();
      if (peek() == '}') break;
      std::string key = string_literal();
      ws();
      expect(':');
      ws();
      if (key == "descr") {
        if (peek() != '\'' && peek() != '"') fail("'descr' is not a plain dtype string (structured arrays are not supported)");
        descr = string_literal();
        have_descr = true;
      } else if (key == "fortran_order") {
        fortran = boolean();
        have_order = true;
      } else if (key == "shape") {
        shape = tuple();
        have_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      ws();
      if (peek() != '}') fail("expected ',' or '}'");
    }
    check(have_descr, "'", name_, "': cannot read dtype from .npy header");
    check(have_order, "'", name_, "': no fortran_order in .npy header");
    check(have_shape, "'", name_, "': no shape in .npy header");
    check(!fortran, "'", name_, "': Fortran-ordered .npy arrays are not supported (save with np.ascontiguousarray)");
    NpyArray a;
    check(descr.size() >= 3 && std::string("<>|=").find(descr[0]) != std::string::npos, "'", name_,
          "': cannot read dtype from .npy header ('", descr, "')");
    std::string bytes = descr.substr(2);
    check(descr[0] != '>' || bytes == "1", "'", name_, "': big-endian .npy arrays are not supported");
    a.dtype = descr.substr(1);
    static const char* ok[] = {"u1", "i1", "b1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"};
    bool good = false;
    for (auto* d : ok) good |= a.dtype == d;
    check(good, "'", name_, "': unsupported .npy dtype '", descr, "'");
    a.shape = std::move(shape);
    return a;
  }

 private:
  template <typename... A>
  [[noreturn]] void fail(const A&... a) const {
    throw core::Error(str("'", name_, "': cannot parse the .npy header at byte ", i_, ": ", a...));
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail("expected '", c, "'");
    ++i_;
  }
  std::string string_literal() {
    char q = peek();
    if (q != '\'' && q != '"') fail("expected a string");
    size_t end = s_.find(q, i_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string v = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return v;
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) return i_ += 4, true;
    if (s_.compare(i_, 5, "False") == 0) return i_ += 5, false;
    fail("expected True or False");
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> v;
    expect('(');
    for (;;) {
      ws();
      if (peek() == ')') break;
      if (v.size() >= 64) fail("more than 64 dimensions");
      size_t b = i_;
      int64_t x = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (i_ - b >= 18) fail("dimension too large");
        x = x * 10 + (s_[i_++] - '0');
      }
      if (i_ == b) fail("expected a non-negative integer dimension");
      if (peek() == 'L') ++i_;  // Python 2 long
      v.push_back(x);
      ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() != ')') fail("expected ',' or ')' in the shape");
    }
    ++i_;
    return v;
  }

  const std::string& s_;
  const std::string& name_;
  size_t i_ = 0;
};

// Magic, version and header of a .npy file whose first `n` bytes are at `p` (n may be the whole
// file); `*data_offset` receives where the data starts. Throws when the header lies beyond n.
NpyArray parse_header_bytes(const char* p, size_t n, const std::string& name, size_t* data_offset) {
  check(n >= 10 && std::memcmp(p, "\x93NUMPY", 6) == 0, "'", name, "' is not a .npy file (bad magic)");
  int major = static_cast<unsigned char>(p[6]);
  check(major >= 1 && major <= 3, "'", name, "': unsupported .npy format version ", major);
  size_t hlen = 0, off = 0;
  auto b = [&](size_t i) { return static_cast<size_t>(static_cast<unsigned char>(p[i])); };
  if (major == 1) {
    hlen = b(8) | (b(9) << 8);
    off = 10;
  } else {
    check(n >= 12, "'", name, "': truncated .npy header");
    hlen = b(8) | (b(9) << 8) | (b(10) << 16) | (b(11) << 24);
    off = 12;
  }
  check(hlen < (1u << 24) && hlen <= n - off, "'", name, "': truncated .npy header (", hlen, " header bytes claimed)");
  NpyArray a = HeaderParser(std::string(p + off, hlen), name).parse();
  *data_offset = off + hlen;
  return a;
}

// Data bytes the header implies, refusing overflow and anything beyond `available` bytes.
size_t data_bytes(const NpyArray& a, size_t available, const std::string& name) {
  // even an empty array's other dimensions must multiply without overflow (numel(), shapes)
  size_t prod = a.item_size();
  for (auto d : a.shape)
    if (d > 0) {
      check(prod <= (size_t{1} << 62) / static_cast<size_t>(d), "'", name, "': .npy shape too large");
      prod *= static_cast<size_t>(d);
    }
  size_t bytes = a.item_size();
  bool empty = false;
  for (auto d : a.shape) empty |= d == 0;
  if (empty) return 0;
  for (auto d : a.shape) {
    check(bytes <= available / static_cast<size_t>(d), "'", name, "': truncated .npy data (the header's shape needs more than the ",
          available, " bytes the file holds)");
    bytes *= static_cast<size_t>(d);
  }
  check(bytes <= available, "'", name, "': truncated .npy data (expected ", bytes, " bytes, got ", available, ")");
  return bytes;
}

}  // namespace

NpyArray parse_npy(const std::string& bytes, const std::string& name) {
  size_t off = 0;
  NpyArray a = parse_header_bytes(bytes.data(), bytes.size(), name, &off);
  size_t n = data_bytes(a, bytes.size() - off, name);
  a.data.assign(bytes.data() + off, bytes.data() + off + n);
  return a;
}

// Reads the header part of an open file (at most what the header length field says).
static NpyArray read_header(std::ifstream& in, const std::string& path, size_t file_size, size_t* offset) {
  std::string head(std::min<size_t>(file_size, 12), '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  check(static_cast<bool>(in), "cannot read '", path, "'");
  size_t need = 10;
  if (head.size() >= 10 && std::memcmp(head.data(), "\x93NUMPY", 6) == 0) {
    auto b = [&](size_t i) { return static_cast<size_t>(static_cast<unsigned char>(head[i])); };
    need = head[6] == 1 ? 10 + (b(8) | (b(9) << 8))
                        : (head.size() >= 12 ? 12 + (b(8) | (b(9) << 8) | (b(10) << 16) | (b(11) << 24)) : 12);
  }
  need = std::min(need, file_size);
  if (need > head.size()) {
    size_t have = head.size();
    head.resize(need);
    in.read(head.data() + have, static_cast<std::streamsize>(need - have));
    check(static_cast<bool>(in), "cannot read '", path, "'");
  }
  return parse_header_bytes(head.data(), head.size(), path, offset);
}

NpyArray read_npy_header(const std::string& path, size_t* data_offset) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  check(static_cast<bool>(in), "cannot read '", path, "'");
  auto size = static_cast<size_t>(in.tellg());
  in.seekg(0);
  size_t off = 0;
  NpyArray a = read_header(in, path, size, &off);
  if (data_offset) *data_offset = off;
  return a;
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  check(static_cast<bool>(in), "cannot read '", path, "'");
  auto size = static_cast<size_t>(in.tellg());
  in.seekg(0);
  size_t off = 0;
  NpyArray a = read_header(in, path, size, &off);
  size_t bytes = data_bytes(a, size - off, path);
  in.seekg(static_cast<std::streamoff>(off));
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
