// Fuzz target: the HDF5 feature-cache reader on a file image in memory (HDF5's core driver):
// format attributes, the block listing with its rows / rows_done attributes, the root attributes,
// and every small block read back. Any image must read or throw core::Error — never crash or
// allocate what an attribute or a dataspace merely claims.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "features/cache.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shiftlab;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    auto reader = features::CacheReader::from_image(bytes, "fuzz.h5");
    (void)reader.attributes();
    for (auto& e : reader.list()) {
      if (e.rows_done < 0 || e.rows_done > e.rows) __builtin_trap();
      if (e.rows_done * e.dim > (1 << 20)) continue;  // a large block is fine but slow to fuzz
      auto b = reader.read(e.domain, e.split, e.tap);
      if (b.X.rows() != e.rows_done || static_cast<int64_t>(b.labels.size()) != e.rows_done) __builtin_trap();
    }
  } catch (const core::Error&) {
  }
  return 0;
}
