// Fuzz target: the TLlib / Office list-file parser (data::parse_list_file). Any text must parse
// or throw core::Error; parsed entries pair every path with a label in [-1, kMaxClasses).
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/list_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shiftlab;
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto e = data::parse_list_file(text, "fuzz.txt", "/data/root");
    if (e.paths.size() != e.labels.size()) __builtin_trap();
    for (auto l : e.labels)
      if (l < -1 || l >= data::kMaxClasses) __builtin_trap();
    for (auto& p : e.paths)
      if (p.empty()) __builtin_trap();
  } catch (const core::Error&) {
  }
  return 0;
}
