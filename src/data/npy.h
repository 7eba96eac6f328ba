// NumPy .npy files (format 1.0/2.0/3.0): reading any little-endian numeric array and writing
// C-ordered arrays atomically. Used for prepared datasets and the "npy" dataset kind.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace shiftlab::data {

/// A whole .npy array in memory. dtype is normalised to kind+bytes: "u1", "u2", "i2", "i4", "i8",
/// "u4", "u8", "f4", "f8", "b1".
struct NpyArray {
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<char> data;  ///< C order, little-endian
  int64_t numel() const;
  size_t item_size() const;
  /// Element i converted to double / int64 (any numeric dtype).
  double get_double(size_t i) const;
  int64_t get_int(size_t i) const;
};

/// Reads `path`; throws Error naming the file for a bad header, big-endian or Fortran-order
/// data, or truncation. Nothing is allocated that the file does not hold: the header is parsed by
/// a small parser of numpy's dict literal (no regex, no eval) and the data size it implies is
/// checked against the file size first.
NpyArray read_npy(const std::string& path);
/// The same on a whole file image in memory; `name` is used in errors (tests and the fuzzer).
NpyArray parse_npy(const std::string& bytes, const std::string& name);
/// Parses only the header (dtype, shape) — cheap, for describing files.
NpyArray read_npy_header(const std::string& path, size_t* data_offset = nullptr);
/// Writes a C-ordered array atomically (temp file + rename). dtype as in NpyArray.
void write_npy(const std::string& path, const std::string& dtype, const std::vector<int64_t>& shape,
               const void* data, size_t bytes);

}  // namespace shiftlab::data
