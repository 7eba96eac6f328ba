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
    auto again = shiftlab::models::load_safetensors_bytes(shiftlab::models::safetensors_bytes(t), "fuzz2");
    if (again.size() != t.size()) __builtin_trap();
    for (auto& [name, tensor] : t)
      if (!again.count(name) || !again.at(name).equal(tensor)) __builtin_trap();
  } catch (const shiftlab::core::Error&) {
  }
  return 0;
}
