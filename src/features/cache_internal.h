// Private to src/features/*.cpp: opening a cache file with its format checks (HDF5 types inside).
#pragma once

#include <string>

#include "features/h5.h"

namespace shiftlab::features {

/// The value of the root attribute "format".
inline constexpr const char* kCacheFormat = "shiftlab-features";

/// Opens `path` (read-only or read-write) after checking it is an HDF5 file, a shiftlab feature
/// cache and of this format version; one-line Error naming the file otherwise.
h5::Handle open_cache_file(const std::string& path, bool write);
/// The format and version checks of an open file; `what` names it in errors.
void check_cache_format(hid_t f, const std::string& what);

}  // namespace shiftlab::features
