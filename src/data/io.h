// Small I/O helpers for the data module: gzip-transparent reads, IDX parsing, running the
// package tools (npm, apt-get, dpkg, tar) that `data prepare` uses.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shiftlab::data {

/// Whole file; gunzipped when it starts with the gzip magic. Throws Error naming the file.
std::string read_maybe_gz(const std::string& path);

/// An IDX array (MNIST format): unsigned-byte data only (type 0x08), any number of dims.
struct IdxArray {
  std::vector<int64_t> dims;
  std::string data;
};
/// Parses IDX bytes read from `path` (the name is used in errors); checks the size.
IdxArray parse_idx(const std::string& bytes, const std::string& path);

/// Quotes a string for /bin/sh.
std::string shell_quote(const std::string& s);
/// Runs a /bin/sh command, capturing stdout+stderr; returns the exit status.
int run_command(const std::string& cmd, std::string* output = nullptr);

}  // namespace shiftlab::data
