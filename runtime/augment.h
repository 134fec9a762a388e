// Training augmentations with torchvision's algorithms (RandomResizedCrop, RandomHorizontalFlip)
// driven by a counter-based RNG, so a sample's augmentation depends only on (seed, epoch,
// sample index), never on which thread decodes it or when.
#pragma once

#include <array>
#include <cstdint>

#include "runtime/image.h"
#include "runtime/image_ops.h"

namespace kiln::runtime {

/// SplitMix64 over a key hashed from its parts: reproducible on every platform (the standard
/// distributions are not), cheap to create per sample.
class SampleRng {
 public:
  SampleRng(uint64_t seed, int64_t epoch, int64_t index);
  uint64_t nextU64();
  /// Uniform in [lo, hi) with 53 random bits.
  double uniform(double lo, double hi);
  /// Uniform integer in [lo, hi] (inclusive), unbiased; requires lo <= hi.
  int64_t uniformInt(int64_t lo, int64_t hi);

 private:
  uint64_t state_;
};

/// A rectangle of an image: rows [top, top + height), columns [left, left + width).
struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
  friend bool operator==(const CropBox&, const CropBox&) = default;
};

struct RandomResizedCropOptions {
  std::array<double, 2> scale{0.08, 1.0};             // fraction of the area
  std::array<double, 2> ratio{3.0 / 4.0, 4.0 / 3.0};  // width / height
};

/// torchvision `RandomResizedCrop.get_params`: up to 10 tries of an area fraction uniform in
/// `scale` and a log-uniform aspect ratio, w = round(sqrt(area * ratio)),
/// h = round(sqrt(area / ratio)) (Python's round), accepted when 0 < w <= width and
/// 0 < h <= height, then a uniform position; otherwise the fallback: the whole image, clamped
/// to the ratio range and centered.
CropBox randomResizedCropBox(int64_t width, int64_t height, SampleRng& rng,
                             const RandomResizedCropOptions& o = {});

/// The pixels of `box` (which must lie inside the image), as PIL's Image.crop.
Image crop(const Image& in, const CropBox& box);

/// Mirrors the image left to right in place.
void flipHorizontal(Image& img);

/// The training view of one image, as torchvision's
/// `RandomResizedCrop(size, interpolation) → RandomHorizontalFlip()` (after PIL's
/// convert("L") when p.channels is 1): a `p.crop`-square image.
Image randomResizedCropAndFlip(const Image& rgb, const ImagePreprocess& p, SampleRng& rng,
                               const RandomResizedCropOptions& o = {});

}  // namespace kiln::runtime
