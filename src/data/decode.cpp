#include "data/decode.h"

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <tiffio.h>

#include <algorithm>
#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "core/error.h"
#include "core/fs.h"

namespace shiftlab::data {

using core::check;
using core::str;

FileFormat sniff_format(const std::string& b) {
  auto u = [&](size_t i) { return i < b.size() ? static_cast<unsigned char>(b[i]) : 0u; };
  if (u(0) == 0xFF && u(1) == 0xD8) return FileFormat::Jpeg;
  if (b.size() >= 8 && std::memcmp(b.data(), "\x89PNG\r\n\x1a\n", 8) == 0) return FileFormat::Png;
  if (b.size() >= 4 && (std::memcmp(b.data(), "II*\0", 4) == 0 || std::memcmp(b.data(), "MM\0*", 4) == 0 ||
                        std::memcmp(b.data(), "II+\0", 4) == 0 || std::memcmp(b.data(), "MM\0+", 4) == 0))
    return FileFormat::Tiff;
  return FileFormat::Unknown;
}

Image decode_file(const std::string& path, const DecodeHint& hint) {
  std::string bytes;
  try {
    bytes = core::read_file(path);
  } catch (const core::Error&) {
    throw core::Error(str("cannot read image '", path, "'"));
  }
  return decode_bytes(bytes, path, hint);
}

namespace {
// Refuses an image whose header claims more than kMaxImageSamples samples (before allocating).
void check_size(const char* format, const std::string& name, int64_t w, int64_t h, int64_t c) {
  check(w > 0 && h > 0 && c > 0, "corrupt ", format, " '", name, "': bad size ", w, "×", h, "×", c);
  check(w <= kMaxImageSamples / h && w * h <= kMaxImageSamples / c, format, " '", name, "': ", w, "×", h, "×", c,
        " exceeds the limit of ", kMaxImageSamples, " samples (a decompression bomb, or not an image to train on)");
}
// Compressed formats cannot hold more than so many samples per byte of file (deflate peaks near
// 1032:1 on 8-bit data, CCITT G4 on a blank 1-bit page near 20,000 pixels per byte): a header
// claiming far more is refused before its buffers are allocated and filled.
constexpr int64_t kMaxSamplesPerFileByte = int64_t{1} << 16;
void check_backed(const char* format, const std::string& name, int64_t samples, size_t file_bytes) {
  check(samples <= kMaxSamplesPerFileByte * static_cast<int64_t>(file_bytes) + (int64_t{1} << 20), "corrupt ", format,
        " '", name, "': its header claims ", samples, " samples, more than its ", file_bytes, " bytes can encode");
}
}  // namespace

Image decode_bytes(const std::string& bytes, const std::string& name, const DecodeHint& hint) {
  switch (sniff_format(bytes)) {
    case FileFormat::Jpeg: return decode_jpeg(bytes, name, hint);
    case FileFormat::Png: return decode_png(bytes, name);
    case FileFormat::Tiff: return decode_tiff_bytes(bytes, name);
    default: break;
  }
  throw core::Error(str("'", name, "': not a JPEG, PNG or TIFF image",
                        bytes.empty() ? " (empty file)" : "", " (unrecognised header bytes)"));
}

// ------------------------------------------------------------------ JPEG
namespace {
struct JpegErr {
  jpeg_error_mgr pub;
  std::jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
  bool truncated;
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegErr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->msg);
  std::longjmp(e->jb, 1);
}

void jpeg_emit(j_common_ptr cinfo, int level) {
  auto* e = reinterpret_cast<JpegErr*>(cinfo->err);
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF && !e->truncated) {
    // a truncated file is an error anyway: stop now rather than decode the rest as grey (a tiny
    // file claiming a huge image would otherwise cost the whole decode)
    e->truncated = true;
    (*cinfo->err->format_message)(cinfo, e->msg);
    std::snprintf(e->msg + std::strlen(e->msg), sizeof(e->msg) - std::strlen(e->msg), " (truncated file)");
    std::longjmp(e->jb, 1);
  }
}
}  // namespace

Image decode_jpeg(const std::string& bytes, const std::string& name, const DecodeHint& hint) {
  Image im;
  std::vector<uint8_t> buf;  // declared before setjmp so a longjmp skips no destructor
  jpeg_decompress_struct cinfo;
  JpegErr jerr;
  jerr.truncated = false;
  jerr.msg[0] = 0;
  cinfo.err = jpeg_std_error(&jerr.pub);
  jerr.pub.error_exit = jpeg_error_exit;
  jerr.pub.emit_message = jpeg_emit;
  if (setjmp(jerr.jb)) {
    jpeg_destroy_decompress(&cinfo);
    throw core::Error(str("corrupt JPEG '", name, "': ", jerr.msg));
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  if (static_cast<int64_t>(cinfo.image_width) * cinfo.image_height * std::max(1, cinfo.num_components) > kMaxImageSamples) {
    std::string m = str("JPEG '", name, "': ", cinfo.image_width, "×", cinfo.image_height, "×", cinfo.num_components,
                        " exceeds the limit of ", kMaxImageSamples, " samples (a decompression bomb?)");
    jpeg_destroy_decompress(&cinfo);
    throw core::Error(m);
  }
  // libjpeg's own work memory (progressive coefficient buffers, ...) stays bounded too
  cinfo.mem->max_memory_to_use = 2L << 30;
  bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : (cmyk ? JCS_CMYK : JCS_RGB);
  cinfo.dct_method = JDCT_ISLOW;
  if (hint.min_short_side > 0) {
    int64_t shorter = std::min<int64_t>(cinfo.image_width, cinfo.image_height);
    unsigned denom = 1;
    for (unsigned d : {8u, 4u, 2u})
      if ((shorter + d - 1) / d >= hint.min_short_side) {
        denom = d;
        break;
      }
    cinfo.scale_num = 1;
    cinfo.scale_denom = denom;
  }
  jpeg_start_decompress(&cinfo);
  const int64_t w = cinfo.output_width, h = cinfo.output_height, c = cinfo.output_components;
  if (w <= 0 || h <= 0 || c <= 0 || w * h * c > kMaxImageSamples) {
    jpeg_destroy_decompress(&cinfo);
    throw core::Error(str("corrupt JPEG '", name, "': bad output size ", w, "×", h, "×", c));
  }
  buf.resize(static_cast<size_t>(w * h * c));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = buf.data() + static_cast<size_t>(cinfo.output_scanline) * static_cast<size_t>(w * c);
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  if (c == 4) {  // CMYK (Adobe, inverted) -> RGB
    im = Image::make_u8(h, w, 3);
    for (int64_t i = 0; i < h * w; ++i) {
      const uint8_t* p = buf.data() + i * 4;
      for (int b = 0; b < 3; ++b) im.u8[static_cast<size_t>(i * 3 + b)] = static_cast<uint8_t>((p[b] * p[3] + 127) / 255);
    }
    return im;
  }
  im.h = h, im.w = w, im.c = c, im.type = PixelType::U8;
  im.u8 = std::move(buf);
  return im;
}

void write_jpeg(const std::string& path, const Image& im, int quality) {
  check(im.type == PixelType::U8 && (im.c == 1 || im.c == 3), "write_jpeg: need an 8-bit grey or RGB image for '", path, "'");
  core::atomic_write_with(path, [&](const std::string& tmp) {
    FILE* f = std::fopen(tmp.c_str(), "wb");
    check(f != nullptr, "cannot write '", path, "'");
    jpeg_compress_struct cinfo;
    jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = static_cast<JDIMENSION>(im.w);
    cinfo.image_height = static_cast<JDIMENSION>(im.h);
    cinfo.input_components = static_cast<int>(im.c);
    cinfo.in_color_space = im.c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
      JSAMPROW row = const_cast<uint8_t*>(im.u8.data()) + static_cast<size_t>(cinfo.next_scanline) * static_cast<size_t>(im.w * im.c);
      jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    bool ok = std::fclose(f) == 0;
    check(ok, "cannot write '", path, "'");
  });
}

// ------------------------------------------------------------------ PNG
namespace {
struct PngState {
  const std::string* bytes;
  size_t pos;
  char msg[256];
};

void png_read_mem(png_structp p, png_bytep out, png_size_t n) {
  auto* s = static_cast<PngState*>(png_get_io_ptr(p));
  if (s->pos + n > s->bytes->size()) png_error(p, "unexpected end of file (truncated)");
  std::memcpy(out, s->bytes->data() + s->pos, n);
  s->pos += n;
}

void png_err(png_structp p, png_const_charp msg) {
  auto* s = static_cast<PngState*>(png_get_error_ptr(p));
  std::snprintf(s->msg, sizeof(s->msg), "%s", msg);
  png_longjmp(p, 1);
}
void png_warn(png_structp, png_const_charp) {}
}  // namespace

Image decode_png(const std::string& bytes, const std::string& name) {
  Image im;
  std::vector<uint8_t> buf;
  std::vector<png_bytep> rows;
  PngState st{&bytes, 0, {0}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, png_err, png_warn);
  check(png != nullptr, "libpng init failed for '", name, "'");
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw core::Error(str("libpng init failed for '", name, "'"));
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw core::Error(str("corrupt PNG '", name, "': ", st.msg));
  }
  png_set_read_fn(png, &st, png_read_mem);
  // ancillary chunks (zTXt, iCCP, ...) decompress to at most 8 MB; at most 1000 of them
  png_set_chunk_malloc_max(png, 8 << 20);
  png_set_chunk_cache_max(png, 1000);
  png_read_info(png, info);
  {
    const int64_t hw = png_get_image_width(png, info), hh = png_get_image_height(png, info);
    const int64_t hc = png_get_channels(png, info) + 1;  // + 1: tRNS / palette expansion may add alpha
    if (hw <= 0 || hh <= 0 || hw > kMaxImageSamples / hh || hw * hh > kMaxImageSamples / std::max<int64_t>(3, hc))
      png_error(png, "image dimensions exceed the sample limit (a decompression bomb?)");
    if (hw * hh * hc > kMaxSamplesPerFileByte * static_cast<int64_t>(bytes.size()) + (int64_t{1} << 20))
      png_error(png, "the header claims more pixels than the file can encode (a decompression bomb?)");
  }
  int color = png_get_color_type(png, info);
  int depth = png_get_bit_depth(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (depth == 16) png_set_swap(png);  // host (little-endian) order
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int64_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  const int64_t c = png_get_channels(png, info);
  const int out_depth = png_get_bit_depth(png, info);
  const size_t rowbytes = png_get_rowbytes(png, info);
  if (out_depth != 8 && out_depth != 16) png_error(png, "unsupported bit depth after expansion");
  if (rowbytes < static_cast<size_t>(w * c * (out_depth == 16 ? 2 : 1))) png_error(png, "inconsistent row size");
  buf.resize(rowbytes * static_cast<size_t>(h));
  rows.resize(static_cast<size_t>(h));
  for (int64_t y = 0; y < h; ++y) rows[static_cast<size_t>(y)] = buf.data() + static_cast<size_t>(y) * rowbytes;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  if (out_depth == 16) {
    im = Image::make_f32(h, w, c);
    const uint16_t* p = reinterpret_cast<const uint16_t*>(buf.data());
    for (size_t i = 0; i < im.f32.size(); ++i) im.f32[i] = static_cast<float>(p[i]) / 65535.f;
    return im;
  }
  im.h = h, im.w = w, im.c = c, im.type = PixelType::U8;
  im.u8 = std::move(buf);
  return im;
}

// ------------------------------------------------------------------ TIFF
namespace {

// A file image read by libtiff through client callbacks.
struct TiffMem {
  const std::string* bytes = nullptr;
  uint64_t pos = 0;
  std::string error;  // the first error libtiff reported
};

tmsize_t tiff_read(thandle_t h, void* buf, tmsize_t n) {
  auto* m = static_cast<TiffMem*>(h);
  if (n <= 0 || m->pos >= m->bytes->size()) return 0;
  uint64_t k = std::min<uint64_t>(static_cast<uint64_t>(n), m->bytes->size() - m->pos);
  std::memcpy(buf, m->bytes->data() + m->pos, static_cast<size_t>(k));
  m->pos += k;
  return static_cast<tmsize_t>(k);
}
tmsize_t tiff_write(thandle_t, void*, tmsize_t) { return -1; }  // read-only
toff_t tiff_seek(thandle_t h, toff_t off, int whence) {
  auto* m = static_cast<TiffMem*>(h);
  uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->bytes->size();
  uint64_t to = base + off;  // toff_t is unsigned: a "negative" offset wraps
  if (whence != SEEK_SET && static_cast<int64_t>(off) < 0) {
    uint64_t back = static_cast<uint64_t>(-static_cast<int64_t>(off));
    if (back > base) return static_cast<toff_t>(-1);
    to = base - back;
  }
  m->pos = to;  // past the end is allowed (reads then return 0)
  return m->pos;
}
int tiff_close(thandle_t) { return 0; }
toff_t tiff_size(thandle_t h) { return static_cast<TiffMem*>(h)->bytes->size(); }
int tiff_map(thandle_t, void**, toff_t*) { return 0; }  // no mapping: libtiff copies what it reads
void tiff_unmap(thandle_t, void*, toff_t) {}

struct TiffCloser {
  TIFF* t;
  ~TiffCloser() {
    if (t) TIFFClose(t);
  }
};

#if TIFFLIB_VERSION >= 20221213
// libtiff >= 4.5: errors go to a per-file handler, and no single allocation may exceed 1 GiB
int tiff_error_r(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  auto* m = static_cast<TiffMem*>(user);
  if (m->error.empty()) {
    char buf[512];
    std::vsnprintf(buf, sizeof(buf), fmt, ap);
    m->error = module ? str(module, ": ", buf) : std::string(buf);
  }
  return 1;
}
int tiff_warning_r(TIFF*, void*, const char*, const char*, va_list) { return 1; }

TIFF* tiff_open(TiffMem& m, const std::string& name) {
  TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetMaxSingleMemAlloc(opts, tmsize_t{1} << 30);
  TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_error_r, &m);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_warning_r, &m);
  TIFF* t = TIFFClientOpenExt(name.c_str(), "rm", &m, tiff_read, tiff_write, tiff_seek, tiff_close, tiff_size, tiff_map,
                              tiff_unmap, opts);
  TIFFOpenOptionsFree(opts);
  return t;
}
const std::string& tiff_error(const TiffMem& m) { return m.error; }
#else
// older libtiff: one process-wide handler writing to a thread-local message
thread_local std::string g_tiff_error;
void tiff_error_handler(const char* module, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  if (g_tiff_error.empty()) g_tiff_error = module ? str(module, ": ", buf) : std::string(buf);
}
TIFF* tiff_open(TiffMem& m, const std::string& name) {
  static std::once_flag once;
  std::call_once(once, [] {
    TIFFSetErrorHandler(tiff_error_handler);
    TIFFSetWarningHandler(nullptr);
  });
  g_tiff_error.clear();
  return TIFFClientOpen(name.c_str(), "rm", &m, tiff_read, tiff_write, tiff_seek, tiff_close, tiff_size, tiff_map,
                        tiff_unmap);
}
const std::string& tiff_error(const TiffMem&) { return g_tiff_error; }
#endif

}  // namespace

Image decode_tiff(const std::string& path) {
  std::string bytes;
  try {
    bytes = core::read_file(path);
  } catch (const core::Error&) {
    throw core::Error(str("cannot read image '", path, "'"));
  }
  return decode_tiff_bytes(bytes, path);
}

Image decode_tiff_bytes(const std::string& bytes, const std::string& path) {
  TiffMem mem;
  mem.bytes = &bytes;
  TIFF* t = tiff_open(mem, path);
  if (!t) throw core::Error(str("corrupt TIFF '", path, "': ", tiff_error(mem).empty() ? "cannot open" : tiff_error(mem)));
  TiffCloser closer{t};
  auto fail = [&](const std::string& what) {
    return core::Error(str("corrupt TIFF '", path, "': ", what, tiff_error(mem).empty() ? "" : ": " + tiff_error(mem)));
  };
  uint32_t w = 0, h = 0;
  uint16_t spp = 1, bps = 1, fmt = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG, photo = PHOTOMETRIC_MINISBLACK,
           compression = COMPRESSION_NONE;
  TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bps);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &fmt);
  TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &compression);
  if (!TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photo)) photo = PHOTOMETRIC_MINISBLACK;
  check_size("TIFF", path, w, h, spp);
  check_backed("TIFF", path, int64_t{w} * h * spp, bytes.size());

  if (bps < 8 || photo == PHOTOMETRIC_PALETTE || (photo == PHOTOMETRIC_YCBCR && compression != COMPRESSION_JPEG)) {
    // bilevel, palette and subsampled YCbCr: let libtiff convert to RGBA
    check_size("TIFF", path, w, h, 4);
    std::vector<uint32_t> rgba(static_cast<size_t>(w) * h);
    // stop at the first strip or tile that cannot be read (instead of filling the rest in)
    if (!TIFFReadRGBAImageOriented(t, w, h, rgba.data(), ORIENTATION_TOPLEFT, /*stop_on_error=*/1))
      throw fail("cannot decode");
    bool grey = photo == PHOTOMETRIC_MINISBLACK || photo == PHOTOMETRIC_MINISWHITE;
    Image im = Image::make_u8(h, w, grey ? 1 : 3);
    for (size_t i = 0; i < rgba.size(); ++i) {
      if (grey) im.u8[i] = static_cast<uint8_t>(TIFFGetR(rgba[i]));
      else {
        im.u8[i * 3] = static_cast<uint8_t>(TIFFGetR(rgba[i]));
        im.u8[i * 3 + 1] = static_cast<uint8_t>(TIFFGetG(rgba[i]));
        im.u8[i * 3 + 2] = static_cast<uint8_t>(TIFFGetB(rgba[i]));
      }
    }
    return im;
  }
  if (photo == PHOTOMETRIC_YCBCR && compression == COMPRESSION_JPEG) TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
  bool u8 = bps == 8 && fmt == SAMPLEFORMAT_UINT;
  bool ok = u8 || (bps == 16 && (fmt == SAMPLEFORMAT_UINT || fmt == SAMPLEFORMAT_INT)) ||
            ((bps == 32 || bps == 64) && fmt == SAMPLEFORMAT_IEEEFP) || (bps == 8 && fmt == SAMPLEFORMAT_INT);
  check(ok, "unsupported TIFF '", path, "': ", bps, "-bit samples of format ", fmt,
        " (supported: 8/16-bit integer, 32/64-bit float)");
  const size_t bytes_ps = bps / 8;
  const int64_t C = spp;
  // raw samples, H×W×C, in the file's type
  std::vector<uint8_t> raw(static_cast<size_t>(w) * h * static_cast<size_t>(C) * bytes_ps);
  auto put = [&](const uint8_t* src, uint32_t y, uint32_t x, int64_t sample, int64_t nsamp) {
    // copies nsamp samples (starting at band `sample`) of pixel (y, x)
    size_t dst = ((static_cast<size_t>(y) * w + x) * static_cast<size_t>(C) + static_cast<size_t>(sample)) * bytes_ps;
    std::memcpy(raw.data() + dst, src, static_cast<size_t>(nsamp) * bytes_ps);
  };
  const bool separate = planar == PLANARCONFIG_SEPARATE && C > 1;
  const int64_t nplanes = separate ? C : 1, per_px = separate ? 1 : C;
  if (TIFFIsTiled(t)) {
    uint32_t tw = 0, th = 0;
    TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
    if (tw == 0 || th == 0) throw fail(str("bad tile size ", tw, "×", th));
    // the tile buffer libtiff fills must hold every sample we copy out of it
    const tmsize_t tile_bytes = TIFFTileSize(t);
    if (tile_bytes <= 0 || static_cast<uint64_t>(tile_bytes) < uint64_t{tw} * th * static_cast<uint64_t>(per_px) * bytes_ps)
      throw fail(str("tile of ", tile_bytes, " bytes is too small for ", tw, "×", th, "×", per_px, " samples"));
    std::vector<uint8_t> tile(static_cast<size_t>(tile_bytes));
    for (int64_t s = 0; s < nplanes; ++s)
      for (uint64_t ty = 0; ty < h; ty += th)
        for (uint64_t tx = 0; tx < w; tx += tw) {
          if (TIFFReadTile(t, tile.data(), static_cast<uint32_t>(tx), static_cast<uint32_t>(ty), 0, static_cast<uint16_t>(s)) < 0)
            throw fail(str("cannot read tile at ", tx, ",", ty));
          for (uint64_t y = ty; y < std::min<uint64_t>(h, ty + th); ++y)
            for (uint64_t x = tx; x < std::min<uint64_t>(w, tx + tw); ++x)
              put(tile.data() + ((static_cast<size_t>(y - ty) * tw + (x - tx)) * static_cast<size_t>(per_px)) * bytes_ps,
                  static_cast<uint32_t>(y), static_cast<uint32_t>(x), separate ? s : 0, per_px);
        }
  } else {
    const tmsize_t line_bytes = TIFFScanlineSize(t);
    if (line_bytes <= 0 || static_cast<uint64_t>(line_bytes) < uint64_t{w} * static_cast<uint64_t>(per_px) * bytes_ps)
      throw fail(str("scanline of ", line_bytes, " bytes is too small for ", w, "×", per_px, " samples"));
    std::vector<uint8_t> line(static_cast<size_t>(line_bytes));
    for (int64_t s = 0; s < nplanes; ++s)
      for (uint32_t y = 0; y < h; ++y) {
        if (TIFFReadScanline(t, line.data(), y, static_cast<uint16_t>(s)) < 0) throw fail(str("cannot read row ", y));
        for (uint32_t x = 0; x < w; ++x)
          put(line.data() + static_cast<size_t>(x) * static_cast<size_t>(per_px) * bytes_ps, y, x, separate ? s : 0, per_px);
      }
  }
  if (!tiff_error(mem).empty()) throw fail("decode error");
  const bool invert = photo == PHOTOMETRIC_MINISWHITE;
  if (u8) {
    Image im = Image::make_u8(h, w, C);
    im.u8 = std::move(raw);
    if (invert)
      for (auto& v : im.u8) v = static_cast<uint8_t>(255 - v);
    return im;
  }
  Image im = Image::make_f32(h, w, C);
  const size_t n = im.f32.size();
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = raw.data() + i * bytes_ps;
    float v = 0;
    if (bps == 8) v = static_cast<float>(*reinterpret_cast<const int8_t*>(p)) / 127.f;
    else if (bps == 16 && fmt == SAMPLEFORMAT_UINT) {
      uint16_t u;
      std::memcpy(&u, p, 2);
      v = invert ? static_cast<float>(65535 - u) / 65535.f : static_cast<float>(u) / 65535.f;
    } else if (bps == 16) {
      int16_t s;
      std::memcpy(&s, p, 2);
      v = static_cast<float>(s) / 32767.f;
    } else if (bps == 32) std::memcpy(&v, p, 4);
    else {
      double d;
      std::memcpy(&d, p, 8);
      v = static_cast<float>(d);
    }
    im.f32[i] = v;
  }
  return im;
}

}  // namespace shiftlab::data
