// Fuzz target: the .safetensors reader. Any byte string must either load or throw core::Error —
// never crash, hang, read out of bounds or allocate what the header merely claims; what loads
// must write and read back to the same tensors. (Build and run: fuzz/README.md.)
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "models/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    auto t = shiftlab::models::load_safetensors_bytes(bytes, "fuzz.safetensors");
    // (compared as bytes: NaN payloads are data too, and NaN != NaN)
    auto image = shiftlab::models::safetensors_bytes(t);
    auto again = shiftlab::models::load_safetensors_bytes(image, "fuzz2");
    if (again.size() != t.size() || shiftlab::models::safetensors_bytes(again) != image) __builtin_trap();
  } catch (const shiftlab::core::Error&) {
  }
  return 0;
}
