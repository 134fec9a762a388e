// RandomResizedCrop / RandomHorizontalFlip, following torchvision/transforms/transforms.py.
#include "runtime/augment.h"

#include <algorithm>
#include <cmath>

namespace kiln::runtime {

namespace {

uint64_t splitMix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Python's int(round(x)) for the non-negative values here: halves go to the even neighbour,
// which is what the default rounding mode does.
int64_t pyRound(double x) {
  return static_cast<int64_t>(std::nearbyint(x));
}

}  // namespace

SampleRng::SampleRng(uint64_t seed, int64_t epoch, int64_t index) {
  uint64_t s = seed;
  uint64_t h = splitMix(s);
  s = h ^ static_cast<uint64_t>(epoch);
  h = splitMix(s);
  s = h ^ static_cast<uint64_t>(index);
  state_ = splitMix(s);
}

uint64_t SampleRng::nextU64() {
  return splitMix(state_);
}

double SampleRng::uniform(double lo, double hi) {
  const double u = static_cast<double>(nextU64() >> 11) * 0x1.0p-53;
  return lo + (hi - lo) * u;
}

int64_t SampleRng::uniformInt(int64_t lo, int64_t hi) {
  const uint64_t range = static_cast<uint64_t>(hi - lo) + 1;
  if (range == 0) return static_cast<int64_t>(nextU64());  // the whole 64-bit range
  // Rejection sampling: drop the top values that would make the modulo biased.
  const uint64_t limit = ~uint64_t{0} - (~uint64_t{0} % range);
  uint64_t r;
  do r = nextU64();
  while (r >= limit);
  return lo + static_cast<int64_t>(r % range);
}

CropBox randomResizedCropBox(int64_t width, int64_t height, SampleRng& rng,
                             const RandomResizedCropOptions& o) {
  const double area = static_cast<double>(width) * static_cast<double>(height);
  const double logLo = std::log(o.ratio[0]), logHi = std::log(o.ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double targetArea = area * rng.uniform(o.scale[0], o.scale[1]);
    const double aspect = std::exp(rng.uniform(logLo, logHi));
    const int64_t w = pyRound(std::sqrt(targetArea * aspect));
    const int64_t h = pyRound(std::sqrt(targetArea / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int64_t top = rng.uniformInt(0, height - h);
      const int64_t left = rng.uniformInt(0, width - w);
      return {top, left, h, w};
    }
  }
  // Fallback to a central crop.
  const double inRatio = static_cast<double>(width) / static_cast<double>(height);
  const double minRatio = std::min(o.ratio[0], o.ratio[1]);
  const double maxRatio = std::max(o.ratio[0], o.ratio[1]);
  int64_t w = width, h = height;
  if (inRatio < minRatio) {
    h = pyRound(static_cast<double>(w) / minRatio);
  } else if (inRatio > maxRatio) {
    w = pyRound(static_cast<double>(h) * maxRatio);
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

Image crop(const Image& in, const CropBox& box) {
  KILN_ASSERT(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0 &&
                  box.top + box.height <= in.height && box.left + box.width <= in.width,
              "crop: box outside the image");
  Image out(box.width, box.height, in.channels);
  const int64_t c = in.channels;
  for (int64_t y = 0; y < box.height; ++y)
    std::copy_n(in.row(box.top + y) + box.left * c, box.width * c, out.row(y));
  return out;
}

void flipHorizontal(Image& img) {
  const int64_t c = img.channels;
  for (int64_t y = 0; y < img.height; ++y) {
    uint8_t* row = img.row(y);
    for (int64_t l = 0, r = img.width - 1; l < r; ++l, --r)
      std::swap_ranges(row + l * c, row + (l + 1) * c, row + r * c);
  }
}

Image randomResizedCropAndFlip(const Image& rgb, const ImagePreprocess& p, SampleRng& rng,
                               const RandomResizedCropOptions& o) {
  const Image gray = p.channels == 1 ? toGray(rgb) : Image{};
  const Image& img = p.channels == 1 ? gray : rgb;
  const CropBox box = randomResizedCropBox(img.width, img.height, rng, o);
  Image out = resize(crop(img, box), p.crop, p.crop, p.interpolation);
  // RandomHorizontalFlip(p=0.5): torch.rand(1) < 0.5.
  if (rng.uniform(0.0, 1.0) < 0.5) flipHorizontal(out);
  return out;
}

}  // namespace kiln::runtime
