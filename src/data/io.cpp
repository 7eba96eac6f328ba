#include "data/io.h"

#include <zlib.h>

#include <cstdio>
#include <sys/wait.h>

#include "core/error.h"
#include "core/fs.h"

namespace shiftlab::data {

using core::check;

std::string read_maybe_gz(const std::string& path) {
  std::string raw = core::read_file(path);
  if (raw.size() < 2 || static_cast<unsigned char>(raw[0]) != 0x1f || static_cast<unsigned char>(raw[1]) != 0x8b)
    return raw;
  z_stream zs{};
  check(inflateInit2(&zs, 15 + 32) == Z_OK, "zlib init failed for '", path, "'");
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs.avail_in = static_cast<uInt>(raw.size());
  char buf[1 << 16];
  int rc = Z_OK;
  while (true) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) break;
      inflateReset(&zs);  // concatenated gzip members
      continue;
    }
    if (rc != Z_OK) break;
    if (zs.avail_in == 0 && zs.avail_out != 0) break;
  }
  inflateEnd(&zs);
  check(rc == Z_STREAM_END, "'", path, "': corrupt or truncated gzip data");
  return out;
}

IdxArray parse_idx(const std::string& b, const std::string& path) {
  check(b.size() >= 4 && b[0] == 0 && b[1] == 0, "'", path, "' is not an IDX file (bad magic)");
  check(static_cast<unsigned char>(b[2]) == 0x08, "'", path, "': only unsigned-byte IDX data (type 0x08) is supported");
  int nd = static_cast<unsigned char>(b[3]);
  check(nd >= 1 && b.size() >= 4 + 4 * static_cast<size_t>(nd), "'", path, "': truncated IDX header");
  IdxArray a;
  size_t n = 1;
  for (int i = 0; i < nd; ++i) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(b.data()) + 4 + 4 * i;
    int64_t d = (int64_t(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
    a.dims.push_back(d);
    n *= static_cast<size_t>(d);
  }
  size_t off = 4 + 4 * static_cast<size_t>(nd);
  check(b.size() == off + n, "'", path, "': IDX size mismatch (header says ", n, " bytes of data, file has ",
        b.size() - off, ")");
  a.data = b.substr(off);
  return a;
}

std::string shell_quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) {
    if (c == '\'') o += "'\\''";
    else o += c;
  }
  return o + "'";
}

int run_command(const std::string& cmd, std::string* output) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  check(p != nullptr, "cannot run '", cmd, "'");
  char buf[4096];
  std::string out;
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  if (output) *output = out;
  if (st == -1) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

}  // namespace shiftlab::data
