// Image file decoders: JPEG (libjpeg-turbo, with DCT-domain downscaling when the caller needs
// much less resolution), PNG (libpng; 1/2/4/8/16-bit grey, grey+alpha, RGB, RGBA, palette) and
// TIFF (libtiff; any samples per pixel, 8/16-bit unsigned, 16-bit signed, 32/64-bit float,
// strips or tiles, contiguous or planar). The format is chosen by the file's magic bytes.
//
// Output (see image.h): 8-bit files -> U8; 16-bit -> F32 scaled to [0,1] (v/65535, signed
// v/32767); float -> F32 as stored. Bands are returned as stored (alpha included).
// A corrupt or truncated file throws core::Error naming the file (libjpeg's "premature end of
// data" warning counts as an error, as in PIL). Images larger than kMaxImageSamples (width ×
// height × bands) are refused from their header, before any pixel buffer is allocated (a
// decompression bomb — a small file claiming huge dimensions — costs nothing).
#pragma once

#include <cstdint>
#include <string>

#include "data/image.h"

namespace shiftlab::data {

/// The largest image accepted, in samples (width × height × bands): 2^29, e.g. 13,377 × 13,377
/// RGB — PIL's decompression-bomb error threshold (2 × 89.5 M pixels) for RGB images.
constexpr int64_t kMaxImageSamples = int64_t{1} << 29;

struct DecodeHint {
  /// When > 0 the JPEG decoder may downscale by 1/2, 1/4 or 1/8 in the DCT domain as long as
  /// the shorter side stays >= min_short_side.
  int64_t min_short_side = 0;
};

enum class FileFormat { Unknown, Jpeg, Png, Tiff };
FileFormat sniff_format(const std::string& bytes);

/// Decodes a whole file (read from `path`).
Image decode_file(const std::string& path, const DecodeHint& hint = {});
/// Decodes bytes in memory (any of the three formats); `name` is used in error messages.
Image decode_bytes(const std::string& bytes, const std::string& name, const DecodeHint& hint = {});

Image decode_jpeg(const std::string& bytes, const std::string& name, const DecodeHint& hint);
Image decode_png(const std::string& bytes, const std::string& name);
/// TIFF from a file image in memory (libtiff reads through client callbacks; nothing is mapped).
Image decode_tiff_bytes(const std::string& bytes, const std::string& name);
/// TIFF from a file.
Image decode_tiff(const std::string& path);

/// Writes an 8-bit grey or RGB JPEG (for benchmarks and tools).
void write_jpeg(const std::string& path, const Image& im, int quality = 90);

}  // namespace shiftlab::data
