// The .safetensors weight format (https://github.com/huggingface/safetensors), read defensively.
//
// Layout: u64 little-endian N | N bytes of UTF-8 JSON header | data section.
// Header: {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//          "__metadata__": {"key": "value", ...}}   (offsets relative to the data section).
//
// The reader trusts nothing the header says: N is bounded by the file size and a 100 MB cap,
// the JSON is parsed and type-checked, every dtype must be known, shape × dtype size must equal
// the byte span, every span must lie inside the data section, spans must not overlap, and memory
// is allocated only for spans already checked against the real file size. Errors name the file
// and the tensor.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace shiftlab::models {

/// Named tensors, ordered by name (a state dict).
using TensorMap = std::map<std::string, torch::Tensor>;

/// One tensor entry of a safetensors header (validated).
struct SafetensorsEntry {
  std::string name;
  std::string dtype;            ///< "F32", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  ///< byte span within the data section
};

/// A validated header: entries ordered by offset, metadata, and where the data section starts.
struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  ///< 8 + header length
  uint64_t file_size = 0;
};

/// The largest header accepted (the reference implementation's limit).
constexpr uint64_t kSafetensorsMaxHeader = 100ull << 20;

/// Reads and validates the header only (cheap: for `weights info`). Throws core::Error.
SafetensorsHeader read_safetensors_header(const std::string& path);

/// Parses and validates a header given as bytes, against a data section of `data_size` bytes.
/// `what` names the source in errors. (Exposed for tests and the fuzzer.)
SafetensorsHeader parse_safetensors_header(const std::string& json_text, uint64_t data_size,
                                           const std::string& what);

/// Loads every tensor (CPU, contiguous). `metadata` receives __metadata__ when given.
TensorMap load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);

/// Loads from an in-memory file image (same checks; for tests and the fuzzer).
TensorMap load_safetensors_bytes(const std::string& bytes, const std::string& what,
                                 std::map<std::string, std::string>* metadata = nullptr);

/// Writes tensors (any device, any layout; stored contiguous, little-endian) in name order,
/// header padded with spaces to a multiple of 8. Atomic: the old file or the new, never half.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// The file image save_safetensors writes (for tests).
std::string safetensors_bytes(const TensorMap& tensors, const std::map<std::string, std::string>& metadata = {});

/// "F32" -> torch::kFloat32 etc.; throws core::Error for dtypes torch cannot hold.
torch::Dtype safetensors_dtype(const std::string& code, const std::string& context);
/// torch::kFloat32 -> "F32"; throws for dtypes the format cannot hold.
std::string safetensors_dtype_code(torch::Dtype dtype, const std::string& context);
/// Bytes per element of a dtype code (0 for unknown codes).
size_t safetensors_dtype_size(const std::string& code);

}  // namespace shiftlab::models
