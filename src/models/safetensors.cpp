#include "models/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "core/format.h"
#include "core/error.h"
#include "core/fs.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shiftlab's safetensors reader assumes a little-endian host"
#endif

namespace shiftlab::models {

using core::Error;
using nlohmann::json;

namespace {

struct DtypeInfo {
  const char* code;
  size_t size;
  bool supported;  // torch (1.13) has a matching dtype
  torch::Dtype dtype;
};

const DtypeInfo kDtypes[] = {
    {"F64", 8, true, torch::kFloat64},  {"F32", 4, true, torch::kFloat32},
    {"F16", 2, true, torch::kFloat16},  {"BF16", 2, true, torch::kBFloat16},
    {"I64", 8, true, torch::kInt64},    {"I32", 4, true, torch::kInt32},
    {"I16", 2, true, torch::kInt16},    {"I8", 1, true, torch::kInt8},
    {"U8", 1, true, torch::kUInt8},     {"BOOL", 1, true, torch::kBool},
    // valid in the format, but libtorch 1.13 has no such dtype
    {"U16", 2, false, torch::kUInt8},   {"U32", 4, false, torch::kUInt8},
    {"U64", 8, false, torch::kUInt8},   {"F8_E4M3", 1, false, torch::kUInt8},
    {"F8_E5M2", 1, false, torch::kUInt8},
};

const DtypeInfo* find_dtype(const std::string& code) {
  for (auto& d : kDtypes)
    if (code == d.code) return &d;
  return nullptr;
}

// A random-access byte source: a file (pread) or a memory image.
struct Source {
  std::string what;
  uint64_t size = 0;
  std::function<void(uint64_t off, uint64_t n, void* dst)> read;
};

class FileSource {
 public:
  explicit FileSource(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw Error(core::str("cannot open weights file '", path, "': ", std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw Error(core::str("'", path, "' is not a regular file"));
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~FileSource() { ::close(fd_); }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  Source source() {
    Source s;
    s.what = path_;
    s.size = size_;
    s.read = [this](uint64_t off, uint64_t n, void* dst) {
      char* p = static_cast<char*>(dst);
      while (n > 0) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1ull << 30));
        ssize_t got = ::pread(fd_, p, chunk, static_cast<off_t>(off));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0)
          throw Error(core::str("'", path_, "': read failed at byte ", off,
                          got < 0 ? core::str(": ", std::strerror(errno)) : std::string(" (file truncated?)")));
        p += got;
        off += static_cast<uint64_t>(got);
        n -= static_cast<uint64_t>(got);
      }
    };
    return s;
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

Source memory_source(const std::string& bytes, const std::string& what) {
  Source s;
  s.what = what;
  s.size = bytes.size();
  s.read = [&bytes, what](uint64_t off, uint64_t n, void* dst) {
    if (off > bytes.size() || n > bytes.size() - off) throw Error(core::str("'", what, "': read past the end"));
    std::memcpy(dst, bytes.data() + off, static_cast<size_t>(n));
  };
  return s;
}

SafetensorsHeader read_header(const Source& src) {
  const std::string& f = src.what;
  if (src.size < 8)
    throw Error(core::str("'", f, "' is not a safetensors file: ", src.size, " bytes, shorter than the 8-byte header length"));
  unsigned char len_bytes[8];
  src.read(0, 8, len_bytes);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len_bytes[i];
  if (n > src.size - 8)
    throw Error(core::str("'", f, "': safetensors header length ", n, " exceeds the file (", src.size - 8,
                    " bytes after the length field) — truncated or not a safetensors file"));
  if (n > kSafetensorsMaxHeader)
    throw Error(core::str("'", f, "': safetensors header length ", n, " exceeds the ", kSafetensorsMaxHeader, "-byte limit"));
  if (n < 2) throw Error(core::str("'", f, "': safetensors header of ", n, " bytes cannot hold a JSON object"));
  std::string text(static_cast<size_t>(n), '\0');
  src.read(8, n, text.data());
  SafetensorsHeader h = parse_safetensors_header(text, src.size - 8 - n, f);
  h.data_start = 8 + n;
  h.file_size = src.size;
  return h;
}

TensorMap load_from(const Source& src, std::map<std::string, std::string>* metadata) {
  SafetensorsHeader h = read_header(src);
  TensorMap out;
  for (const auto& e : h.entries) {
    const DtypeInfo* d = find_dtype(e.dtype);  // validated by the header parser
    auto t = torch::empty(e.shape, torch::TensorOptions().dtype(d->dtype));
    uint64_t nbytes = e.end - e.begin;
    if (static_cast<uint64_t>(t.nbytes()) != nbytes)
      throw Error(core::str("'", src.what, "': tensor '", e.name, "' size mismatch after allocation"));
    if (nbytes) src.read(h.data_start + e.begin, nbytes, t.data_ptr());
    if (d->dtype == torch::kBool) {
      const auto* p = static_cast<const unsigned char*>(t.data_ptr());
      for (uint64_t i = 0; i < nbytes; ++i)
        if (p[i] > 1)
          throw Error(core::str("'", src.what, "': BOOL tensor '", e.name, "' holds byte value ", int(p[i]),
                          " at element ", i, " (only 0 and 1 are booleans)"));
    }
    out.emplace(e.name, std::move(t));
  }
  if (metadata) *metadata = h.metadata;
  return out;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& code) {
  const DtypeInfo* d = find_dtype(code);
  return d ? d->size : 0;
}

torch::Dtype safetensors_dtype(const std::string& code, const std::string& context) {
  const DtypeInfo* d = find_dtype(code);
  if (!d) {
    std::string known;
    for (auto& k : kDtypes)
      if (k.supported) known += (known.empty() ? "" : ", ") + std::string(k.code);
    throw Error(core::str(context, ": unknown dtype '", code, "' (known: ", known, ")"));
  }
  if (!d->supported) throw Error(core::str(context, ": dtype '", code, "' is not supported by this libtorch"));
  return d->dtype;
}

std::string safetensors_dtype_code(torch::Dtype dtype, const std::string& context) {
  for (auto& d : kDtypes)
    if (d.supported && d.dtype == dtype) return d.code;
  throw Error(core::str(context, ": dtype ", c10::toString(dtype), " cannot be stored in safetensors"));
}

SafetensorsHeader parse_safetensors_header(const std::string& text, uint64_t data_size, const std::string& f) {
  // Reject duplicate top-level names (nlohmann would silently keep the last one).
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      auto k = parsed.get<std::string>();
      if (!seen.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, cb, /*allow_exceptions=*/true);
  } catch (const json::exception& e) {
    throw Error(core::str("'", f, "': safetensors header is not valid JSON: ", e.what()));
  }
  if (!duplicate.empty()) throw Error(core::str("'", f, "': safetensors header names tensor '", duplicate, "' twice"));
  if (!j.is_object()) throw Error(core::str("'", f, "': safetensors header is JSON but not an object"));

  SafetensorsHeader h;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) throw Error(core::str("'", f, "': __metadata__ must be an object of strings"));
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          throw Error(core::str("'", f, "': __metadata__ value for '", m.key(), "' is not a string"));
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    std::string ctx = core::str("'", f, "': tensor '", name, "'");
    if (!v.is_object()) throw Error(core::str(ctx, ": header entry is not an object"));
    for (auto k = v.begin(); k != v.end(); ++k)
      if (k.key() != "dtype" && k.key() != "shape" && k.key() != "data_offsets")
        throw Error(core::str(ctx, ": unexpected field '", k.key(), "'"));
    if (!v.contains("dtype") || !v["dtype"].is_string()) throw Error(core::str(ctx, ": missing or non-string 'dtype'"));
    if (!v.contains("shape") || !v["shape"].is_array()) throw Error(core::str(ctx, ": missing or non-array 'shape'"));
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      throw Error(core::str(ctx, ": 'data_offsets' must be an array [begin, end]"));
    SafetensorsEntry e;
    e.name = name;
    e.dtype = v["dtype"].get<std::string>();
    safetensors_dtype(e.dtype, ctx);  // throws for unknown / unsupported
    size_t esize = safetensors_dtype_size(e.dtype);
    const json& shape = v["shape"];
    if (shape.size() > 64) throw Error(core::str(ctx, ": shape has ", shape.size(), " dimensions"));
    // numel, refusing anything that could not fit the data section (no overflow possible:
    // the running byte count stays <= data_size before each multiplication).
    uint64_t bytes = esize;
    bool zero = false;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        throw Error(core::str(ctx, ": shape entry ", d.dump(), " is not a non-negative integer"));
      uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX)) throw Error(core::str(ctx, ": shape entry ", dim, " too large"));
      e.shape.push_back(static_cast<int64_t>(dim));
      if (dim == 0) zero = true;
    }
    if (zero) {
      bytes = 0;
    } else {
      for (int64_t dim : e.shape) {
        uint64_t ud = static_cast<uint64_t>(dim);
        if (bytes > data_size / ud)
          throw Error(core::str(ctx, ": shape ", core::shape_str(e.shape), " of ", e.dtype, " needs more bytes than the ",
                          data_size, "-byte data section holds"));
        bytes *= ud;
      }
    }
    const json& off = v["data_offsets"];
    for (const auto& o : off)
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0))
        throw Error(core::str(ctx, ": data_offsets entry ", o.dump(), " is not a non-negative integer"));
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.end < e.begin) throw Error(core::str(ctx, ": data_offsets [", e.begin, ", ", e.end, "] end before begin"));
    if (e.end > data_size)
      throw Error(core::str(ctx, ": data_offsets [", e.begin, ", ", e.end, "] run past the end of the ", data_size,
                      "-byte data section"));
    if (e.end - e.begin != bytes)
      throw Error(core::str(ctx, ": shape ", core::shape_str(e.shape), " × ", e.dtype, " is ", bytes, " bytes but data_offsets [",
                      e.begin, ", ", e.end, "] span ", e.end - e.begin));
    h.entries.push_back(std::move(e));
  }
  std::sort(h.entries.begin(), h.entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const SafetensorsEntry* prev = nullptr;
  for (const auto& e : h.entries) {
    if (e.begin == e.end) continue;  // empty tensors occupy nothing
    if (prev && e.begin < prev->end)
      throw Error(core::str("'", f, "': tensors '", prev->name, "' [", prev->begin, ", ", prev->end, ") and '", e.name,
                      "' [", e.begin, ", ", e.end, ") overlap"));
    prev = &e;
  }
  return h;
}

SafetensorsHeader read_safetensors_header(const std::string& path) {
  FileSource fsrc(path);
  return read_header(fsrc.source());
}

TensorMap load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  FileSource fsrc(path);
  return load_from(fsrc.source(), metadata);
}

TensorMap load_safetensors_bytes(const std::string& bytes, const std::string& what,
                                 std::map<std::string, std::string>* metadata) {
  return load_from(memory_source(bytes, what), metadata);
}

namespace {

struct Prepared {
  std::string header;               // padded JSON, including the 8-byte length prefix
  std::vector<torch::Tensor> data;  // contiguous CPU tensors in offset order
};

Prepared prepare(const TensorMap& tensors, const std::map<std::string, std::string>& metadata,
                 const std::string& what) {
  Prepared p;
  json j = json::object();
  if (!metadata.empty()) {
    json m = json::object();
    for (auto& [k, v] : metadata) m[k] = v;
    j["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (auto& [name, t0] : tensors) {
    std::string ctx = core::str("'", what, "': tensor '", name, "'");
    if (name == "__metadata__") throw Error(core::str(ctx, ": the name is reserved"));
    if (!t0.defined()) throw Error(core::str(ctx, ": undefined tensor"));
    std::string code = safetensors_dtype_code(t0.scalar_type(), ctx);
    auto t = t0.detach().to(torch::kCPU).contiguous();
    uint64_t n = static_cast<uint64_t>(t.nbytes());
    json e;
    e["dtype"] = code;
    e["shape"] = t.sizes().vec();
    e["data_offsets"] = {offset, offset + n};
    j[name] = e;
    offset += n;
    p.data.push_back(t);
  }
  std::string text = j.dump();
  while ((text.size() + 8) % 8) text += ' ';
  uint64_t n = text.size();
  p.header.resize(8);
  for (int i = 0; i < 8; ++i) p.header[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  p.header += text;
  return p;
}

}  // namespace

std::string safetensors_bytes(const TensorMap& tensors, const std::map<std::string, std::string>& metadata) {
  Prepared p = prepare(tensors, metadata, "<memory>");
  std::string out = p.header;
  for (auto& t : p.data) out.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return out;
}

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  Prepared p = prepare(tensors, metadata, path);
  core::atomic_write_with(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(core::str("cannot write '", path, "': ", std::strerror(errno)));
    out.write(p.header.data(), static_cast<std::streamsize>(p.header.size()));
    for (auto& t : p.data) out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
    out.flush();
    if (!out) throw Error(core::str("cannot write '", path, "' (disk full?)"));
  });
}

}  // namespace shiftlab::models
