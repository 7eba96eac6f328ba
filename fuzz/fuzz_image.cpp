// Fuzz target: the image decoders (JPEG via libjpeg-turbo, PNG via libpng, TIFF via libtiff from
// memory), chosen by magic bytes as for files. Any input must decode to a consistent image or
// throw core::Error — never crash, hang, or allocate for dimensions the data cannot back beyond
// kMaxImageSamples. The last input byte's low bit asks for JPEG DCT downscaling.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shiftlab;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  data::DecodeHint hint;
  if (size && (data[size - 1] & 1)) hint.min_short_side = 8;
  try {
    data::Image im = data::decode_bytes(bytes, "fuzz.img", hint);
    const size_t n = im.numel();
    if (im.h <= 0 || im.w <= 0 || im.c <= 0) __builtin_trap();
    if (im.type == data::PixelType::U8 ? im.u8.size() != n : im.f32.size() != n) __builtin_trap();
    volatile float sink = im.at(im.h - 1, im.w - 1, im.c - 1);  // the last sample is there
    (void)sink;
  } catch (const core::Error&) {
  }
  return 0;
}
