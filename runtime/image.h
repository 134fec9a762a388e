// 8-bit images and JPEG/PNG decoding (libjpeg-turbo, libpng) into RGB the way PIL's
// `Image.open(f).convert("RGB")` gives it, so kiln sees the pixels torchvision does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/status.h"

namespace kiln::runtime {

/// Interleaved 8-bit pixels, row-major HWC (channels 1 = gray, 3 = RGB).
struct Image {
  int64_t width = 0;
  int64_t height = 0;
  int64_t channels = 0;
  std::vector<uint8_t> pixels;  // height * width * channels

  Image() = default;
  Image(int64_t w, int64_t h, int64_t c)
      : width(w), height(h), channels(c), pixels(static_cast<size_t>(w * h * c)) {}
  uint8_t* row(int64_t y) { return pixels.data() + y * width * channels; }
  const uint8_t* row(int64_t y) const { return pixels.data() + y * width * channels; }
};

/// Largest width * height accepted (PIL's decompression-bomb error threshold, 2 * 89,478,485).
inline constexpr int64_t kMaxImagePixels = 2 * 89'478'485;

/// Decodes a JPEG or PNG (recognized by its signature, not its name) into 3-channel RGB:
/// - JPEG: gray is replicated; CMYK/YCCK is inverted (PIL's Adobe convention) and converted
///   with PIL's cmyk2rgb; decoding uses libjpeg's defaults (ISLOW DCT, fancy upsampling),
///   the same library and settings as PIL, so pixels are identical.
/// - PNG: palettes are expanded, alpha is dropped (not composited, like PIL's convert),
///   1/2/4-bit gray is scaled to 0..255, 16-bit samples keep their high byte. (PIL keeps
///   the high byte of 16-bit RGB too, but clips 16-bit gray to 0..255 — mostly white —
///   where kiln takes the high byte.) Gamma and colour profiles are ignored, as in PIL.
/// Corrupt, truncated or unsupported data is an error naming `what` (a path or a name), and
/// so is an image of more than `maxPixels` pixels (checked before its pixels are allocated).
Expected<Image> decodeImage(std::span<const std::byte> bytes, std::string_view what,
                            int64_t maxPixels = kMaxImagePixels);

/// Reads and decodes the file at `path` (see decodeImage).
Expected<Image> readImage(const std::string& path);

}  // namespace kiln::runtime
