// Image preprocessing with torchvision's semantics on PIL images, bit for bit: Resize (PIL's
// antialiased bilinear/bicubic resampling in 8-bit fixed point), CenterCrop, PIL's
// convert("L"), ToTensor and Normalize. The model registry says which numbers each model uses.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "ir/status.h"
#include "ir/tensor.h"
#include "runtime/image.h"

namespace kiln::runtime {

enum class Interpolation { Bilinear, Bicubic };

std::string_view interpolationName(Interpolation i);
std::optional<Interpolation> parseInterpolation(std::string_view name);

/// PIL's `Image.resize((width, height), BILINEAR|BICUBIC)` for 8-bit images: separable
/// filters whose support grows with the downscale factor (antialiasing), bicubic with
/// a = -0.5, coefficients in 22-bit fixed point, each pass rounded and clamped to 0..255;
/// horizontal pass first. Equal sizes return a copy.
Image resize(const Image& in, int64_t width, int64_t height, Interpolation interpolation);

/// torchvision `Resize(size)`: the shorter side becomes `size`, the longer
/// `int(size * long / short)`.
Image resizeShorterSide(const Image& in, int64_t size, Interpolation interpolation);

/// torchvision `CenterCrop((height, width))`: an image smaller than the crop is first padded
/// with zeros (left/top get the floor of half the shortfall); the offsets are
/// `int(round((in - crop) / 2.0))` with Python's round-half-to-even.
Image centerCrop(const Image& in, int64_t width, int64_t height);

/// PIL's RGB → "L": (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. Gray input is returned as is.
Image toGray(const Image& in);

/// How a model wants its images (models::Preprocess, converted by the caller).
struct ImagePreprocess {
  int64_t resize = 256;  // shorter side before cropping; 0: no resize
  int64_t crop = 224;    // square center crop; 0: none (every image must then have one size)
  Interpolation interpolation = Interpolation::Bilinear;
  int64_t channels = 3;  // 3: RGB; 1: PIL convert("L") first
  std::array<double, 3> mean{0.485, 0.456, 0.406};
  std::array<double, 3> std{0.229, 0.224, 0.225};
};

/// The 8-bit image a model sees: gray conversion (channels 1), resize, center crop.
Image preprocessPixels(const Image& rgb, const ImagePreprocess& p);

/// torchvision ToTensor + Normalize of preprocessed images into one f32[N,C,H,W]{nchw}
/// batch, in f32 like torch: (x / 255 - mean) / std. Images must share one size and have
/// p.channels channels.
Expected<ir::Tensor> toTensor(std::span<const Image> images, const ImagePreprocess& p);

/// toTensor of one image into `out` (channels * height * width floats, planar), optionally
/// mirrored left to right; the image must have p.channels channels.
void normalizeInto(const Image& img, const ImagePreprocess& p, float* out, bool flip = false);

}  // namespace kiln::runtime
