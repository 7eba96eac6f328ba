// Fuzz target: the .pth / .pt loader entry (load_pth: zip archives through torch's archive reader,
// legacy pickles, both through shiftlab's restricted unpickler). load_pth reads a path, so each
// input is written to one private temp file first. Any input must load or throw core::Error —
// never crash, execute anything, recurse without bound or allocate beyond the file's size.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "models/weights.h"

namespace {
const std::string& temp_path() {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/shiftlab_fuzz_pth_XXXXXX";
    int fd = ::mkstemp(tmpl.data());
    if (fd < 0) std::abort();
    ::close(fd);
    std::atexit([] { std::remove(temp_path().c_str()); });
    return tmpl;
  }();
  return path;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = temp_path();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  try {
    auto tensors = shiftlab::models::load_pth(path);
    for (auto& [name, t] : tensors) {
      // every element of what loaded is readable
      auto c = t.contiguous();
      if (c.numel() != t.numel()) __builtin_trap();
    }
  } catch (const shiftlab::core::Error&) {
  }
  return 0;
}
