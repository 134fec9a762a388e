// JPEG (libjpeg-turbo) and PNG (libpng) decoding to RGB. Both libraries report errors by
// longjmp; each setjmp lives in a function whose locals are C structs only, and everything
// with a destructor is owned by the caller, so a jump skips no destructor.
#include "runtime/image.h"

// clang-format off: jpeglib.h needs FILE and size_t declared first
#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include <csetjmp>
#include <cstdio>
// clang-format on

#include <algorithm>
#include <cstring>

#include "ir/proto_io.h"

namespace kiln::runtime {

namespace {

bool startsWith(std::span<const std::byte> bytes, std::string_view magic) {
  return bytes.size() >= magic.size() && std::memcmp(bytes.data(), magic.data(), magic.size()) == 0;
}
bool startsWith(std::string_view s, std::span<const std::byte> prefix) {
  return startsWith(std::as_bytes(std::span(s.data(), s.size())),
                    std::string_view(reinterpret_cast<const char*>(prefix.data()), prefix.size()));
}

Status checkSize(int64_t width, int64_t height, int64_t maxPixels, std::string_view what) {
  if (width < 1 || height < 1) return error("{}: image has no pixels ({}x{})", what, width, height);
  if (width * height > maxPixels)
    return error("{}: image is {}x{} = {} pixels, more than the limit of {}", what, width, height,
                 width * height, maxPixels);
  return Status::ok();
}

// ---- JPEG ----

struct JpegErrorManager {
  jpeg_error_mgr mgr;  // first member: libjpeg hands back a pointer to it
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

[[noreturn]] void jpegErrorExit(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings (corrupt-data recoveries) are ignored, as PIL does, except running out of data:
// libjpeg would pad the image with gray, where PIL reports "image file is truncated".
void jpegEmitMessage(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace output
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
    auto* e = reinterpret_cast<JpegErrorManager*>(cinfo->err);
    e->truncated = true;
    (*cinfo->err->format_message)(cinfo, e->message);
    std::longjmp(e->jump, 1);
  }
  ++cinfo->err->num_warnings;
}

// PIL's cmyk2rgb on inverted ("CMYK;I", Adobe) samples: PIL reads every CMYK JPEG that way.
void cmykRowToRgb(const uint8_t* in, uint8_t* out, int64_t width) {
  for (int64_t x = 0; x < width; ++x, in += 4, out += 3) {
    const int nk = in[3];  // 255 - (255 - k)
    for (int c = 0; c < 3; ++c) {
      const int tmp = (255 - in[c]) * nk + 128;
      const int v = nk - (((tmp >> 8) + tmp) >> 8);
      out[c] = static_cast<uint8_t>(std::clamp(v, 0, 255));
    }
  }
}

struct JpegResult {
  int64_t width = 0, height = 0;
  char message[JMSG_LENGTH_MAX] = {};
  bool truncated = false;
};

// Returns false on a libjpeg error (message in `r`). `out` is the caller's.
bool decodeJpegRaw(std::span<const std::byte> bytes, int64_t maxPixels, Image& out, JpegResult& r) {
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpegErrorExit;
  err.mgr.emit_message = jpegEmitMessage;
  err.message[0] = '\0';
  err.truncated = false;
  jpeg_create_decompress(&cinfo);
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    std::memcpy(r.message, err.message, sizeof r.message);
    r.truncated = err.truncated;
    return false;
  }
  jpeg_mem_src(&cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  r.width = cinfo.image_width;
  r.height = cinfo.image_height;
  if (r.width * r.height > maxPixels) {  // the caller's checkSize reports it
    jpeg_destroy_decompress(&cinfo);
    return true;
  }
  jpeg_start_decompress(&cinfo);
  const int comps = cinfo.output_components;
  if (!((cinfo.out_color_space == JCS_GRAYSCALE && comps == 1) ||
        (cinfo.out_color_space == JCS_RGB && comps == 3) ||
        (cinfo.out_color_space == JCS_CMYK && comps == 4))) {
    std::snprintf(r.message, sizeof r.message, "unsupported color space %d with %d components",
                  static_cast<int>(cinfo.out_color_space), comps);
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  out.width = cinfo.output_width;
  out.height = cinfo.output_height;
  out.channels = 3;
  out.pixels.resize(static_cast<size_t>(out.width * out.height * 3));
  JSAMPARRAY line = (*cinfo.mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(&cinfo), JPOOL_IMAGE,
                                               cinfo.output_width * comps, 1);
  while (cinfo.output_scanline < cinfo.output_height) {
    const int64_t y = cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, line, 1);
    const uint8_t* in = line[0];
    uint8_t* o = out.row(y);
    if (comps == 3) {
      std::memcpy(o, in, static_cast<size_t>(out.width * 3));
    } else if (comps == 1) {
      for (int64_t x = 0; x < out.width; ++x) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = in[x];
    } else {
      cmykRowToRgb(in, o, out.width);
    }
  }
  // No jpeg_finish_decompress: every row is in, and a missing EOI after them is harmless.
  jpeg_destroy_decompress(&cinfo);
  return true;
}

Expected<Image> decodeJpeg(std::span<const std::byte> bytes, std::string_view what,
                           int64_t maxPixels) {
  Image out;
  JpegResult r;
  if (!decodeJpegRaw(bytes, maxPixels, out, r)) {
    if (r.truncated) return error("{}: truncated JPEG (the data ends before the image)", what);
    return error("{}: corrupt or unsupported JPEG: {}", what, r.message);
  }
  KILN_TRY(checkSize(r.width, r.height, maxPixels, what));
  return out;
}

// ---- PNG ----

struct PngState {
  std::span<const std::byte> bytes;
  size_t pos = 0;
  char message[256] = {};
  bool truncated = false;
  int64_t maxPixels = kMaxImagePixels;
  int64_t width = 0, height = 0;
  // What the transforms leave: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA, 8 bits each.
  int channels = 0;
  std::vector<uint8_t> raw;
  std::vector<png_bytep> rows;
};

void pngRead(png_structp png, png_bytep out, size_t n) {
  auto* s = static_cast<PngState*>(png_get_io_ptr(png));
  if (n > s->bytes.size() - s->pos) {
    s->truncated = true;
    png_error(png, "the data ends early");
  }
  std::memcpy(out, s->bytes.data() + s->pos, n);
  s->pos += n;
}

[[noreturn]] void pngError(png_structp png, png_const_charp message) {
  auto* s = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof s->message, "%s", message);
  png_longjmp(png, 1);
}

void pngWarning(png_structp, png_const_charp) {}

bool decodePngRaw(PngState& s) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, pngError, pngWarning);
  if (!png) {
    std::snprintf(s.message, sizeof s.message, "cannot create a libpng reader");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(s.message, sizeof s.message, "cannot create a libpng reader");
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, &s, pngRead);
  png_read_info(png, info);
  s.width = png_get_image_width(png, info);
  s.height = png_get_image_height(png, info);
  if (s.width * s.height > s.maxPixels) {  // the caller's checkSize reports it
    png_destroy_read_struct(&png, &info, nullptr);
    return true;
  }
  const int colorType = png_get_color_type(png, info);
  const int bitDepth = png_get_bit_depth(png, info);
  // Palette entries become RGB (libpng adds alpha from tRNS; it is dropped below), low-bit
  // gray is scaled to 0..255, 16-bit samples keep their high byte (PIL's "RGB;16B").
  if (colorType == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (colorType == PNG_COLOR_TYPE_GRAY && bitDepth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (bitDepth == 16) png_set_strip_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  s.channels = png_get_channels(png, info);
  const size_t rowBytes = png_get_rowbytes(png, info);
  if (png_get_bit_depth(png, info) != 8 || s.channels < 1 || s.channels > 4 ||
      rowBytes != static_cast<size_t>(s.width) * static_cast<size_t>(s.channels)) {
    std::snprintf(s.message, sizeof s.message, "unsupported layout after expansion (%d channels)",
                  s.channels);
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  s.raw.resize(rowBytes * static_cast<size_t>(s.height));
  s.rows.resize(static_cast<size_t>(s.height));
  for (int64_t y = 0; y < s.height; ++y)
    s.rows[static_cast<size_t>(y)] = s.raw.data() + y * rowBytes;
  png_read_image(png, s.rows.data());
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

Expected<Image> decodePng(std::span<const std::byte> bytes, std::string_view what,
                          int64_t maxPixels) {
  PngState s;
  s.bytes = bytes;
  s.maxPixels = maxPixels;
  if (!decodePngRaw(s)) {
    if (s.truncated) return error("{}: truncated PNG (the data ends before the image)", what);
    return error("{}: corrupt or unsupported PNG: {}", what, s.message);
  }
  KILN_TRY(checkSize(s.width, s.height, maxPixels, what));
  Image out(s.width, s.height, 3);
  const size_t n = static_cast<size_t>(s.width * s.height);
  const uint8_t* in = s.raw.data();
  uint8_t* o = out.pixels.data();
  const int c = s.channels;
  for (size_t i = 0; i < n; ++i, in += c, o += 3) {
    if (c >= 3) {
      o[0] = in[0], o[1] = in[1], o[2] = in[2];
    } else {
      o[0] = o[1] = o[2] = in[0];
    }
  }
  return out;
}

std::string_view otherFormat(std::span<const std::byte> bytes) {
  if (startsWith(bytes, "GIF8")) return " (it is a GIF)";
  if (startsWith(bytes, "BM")) return " (it looks like a BMP)";
  if (startsWith(bytes, "II*") || startsWith(bytes, std::string_view("MM\0*", 4)))
    return " (it is a TIFF)";
  if (startsWith(bytes, "RIFF") && bytes.size() >= 12 &&
      std::memcmp(bytes.data() + 8, "WEBP", 4) == 0)
    return " (it is a WebP)";
  return "";
}

}  // namespace

Expected<Image> decodeImage(std::span<const std::byte> bytes, std::string_view what,
                            int64_t maxPixels) {
  if (bytes.empty()) return error("{}: empty file, not an image", what);
  constexpr std::string_view kJpeg = "\xFF\xD8\xFF", kPng = "\x89PNG\r\n\x1A\n";
  if (startsWith(bytes, kJpeg)) return decodeJpeg(bytes, what, maxPixels);
  if (startsWith(bytes, kPng)) return decodePng(bytes, what, maxPixels);
  for (auto [magic, format] : {std::pair{kJpeg, "JPEG"}, std::pair{kPng, "PNG"}})
    if (bytes.size() < magic.size() && startsWith(magic.substr(0, bytes.size()), bytes))
      return error("{}: truncated {} (the data ends in the signature)", what, format);
  return error("{}: not a JPEG or PNG image{}", what, otherFormat(bytes));
}

Expected<Image> readImage(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, ir::readFileBytes(path));
  return decodeImage(bytes, path);
}

}  // namespace kiln::runtime
