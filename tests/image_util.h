// tests/image_util.h — small JPEG/PNG encoders (libjpeg-turbo, libpng) for tests that need
// image files without Python: fuzz seeds and formats PIL cannot write (Adam7 interlacing).
#pragma once

// clang-format off: jpeglib.h needs FILE and size_t declared first
#include <jpeglib.h>
#include <png.h>

#include <cstdio>
// clang-format on

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

namespace kiln::testing {

/// Smooth gradients plus seeded noise, `channels` interleaved samples per pixel.
inline std::vector<uint8_t> testPixels(int w, int h, int channels, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> p(static_cast<size_t>(w * h * channels));
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c)
        p[static_cast<size_t>((y * w + x) * channels + c)] =
            static_cast<uint8_t>(x * (7 + 3 * c) + y * (5 - c) + static_cast<int>(rng() % 24));
  return p;
}

/// A JPEG of `pixels` (gray, RGB or CMYK by `components`).
inline std::vector<std::byte> encodeJpeg(const std::vector<uint8_t>& pixels, int w, int h,
                                         int components, bool progressive = false) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);  // test inputs are valid: libjpeg's exit() is fine here
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(w);
  cinfo.image_height = static_cast<JDIMENSION>(h);
  cinfo.input_components = components;
  cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 90, TRUE);
  if (progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(
        &pixels[static_cast<size_t>(cinfo.next_scanline) * static_cast<size_t>(w * components)]);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<std::byte> out(reinterpret_cast<std::byte*>(buffer),
                             reinterpret_cast<std::byte*>(buffer) + size);
  std::free(buffer);
  return out;
}

struct PngOptions {
  int colorType = PNG_COLOR_TYPE_RGB;
  int bitDepth = 8;
  bool interlaced = false;
  std::vector<png_color> palette;     // for PNG_COLOR_TYPE_PALETTE
  std::vector<uint8_t> transparency;  // tRNS entries of a palette

  static PngOptions of(int colorType, int bitDepth = 8, bool interlaced = false) {
    PngOptions o;
    o.colorType = colorType;
    o.bitDepth = bitDepth;
    o.interlaced = interlaced;
    return o;
  }
};

/// A PNG of `data`: the rows back to back as the format stores them (samples packed for
/// bit depths < 8, big-endian for 16).
inline std::vector<std::byte> encodePng(const std::vector<uint8_t>& data, int w, int h,
                                        const PngOptions& o) {
  std::vector<std::byte> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep bytes, size_t n) {
        auto* v = static_cast<std::vector<std::byte>*>(png_get_io_ptr(p));
        v->insert(v->end(), reinterpret_cast<std::byte*>(bytes),
                  reinterpret_cast<std::byte*>(bytes) + n);
      },
      nullptr);
  png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), o.bitDepth,
               o.colorType, o.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!o.palette.empty())
    png_set_PLTE(png, info, o.palette.data(), static_cast<int>(o.palette.size()));
  if (!o.transparency.empty())
    png_set_tRNS(png, info, o.transparency.data(), static_cast<int>(o.transparency.size()),
                 nullptr);
  png_write_info(png, info);
  const size_t rowBytes = data.size() / static_cast<size_t>(h);
  std::vector<png_bytep> rows(static_cast<size_t>(h));
  for (int y = 0; y < h; ++y)
    rows[static_cast<size_t>(y)] = const_cast<png_bytep>(&data[static_cast<size_t>(y) * rowBytes]);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

}  // namespace kiln::testing
