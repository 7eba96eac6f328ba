// Fuzz target: the .npy reader (data::parse_npy, the same header parser and size checks as
// read_npy). Any input must parse or throw core::Error; a parsed array holds exactly
// numel × item_size bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shiftlab;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    data::NpyArray a = data::parse_npy(bytes, "fuzz.npy");
    if (a.numel() < 0 || a.data.size() != static_cast<size_t>(a.numel()) * a.item_size()) __builtin_trap();
    double sum = 0;
    for (int64_t i = 0; i < a.numel() && i < 64; ++i) sum += a.get_double(static_cast<size_t>(i));
    volatile double sink = sum;
    (void)sink;
  } catch (const core::Error&) {
  }
  return 0;
}
