// torchvision-on-PIL preprocessing. The resampler follows Pillow's libImaging/Resample.c
// (precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal/Vertical_8bpc) so the
// 8-bit output is identical, not merely close.
#include "runtime/image_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace kiln::runtime {

namespace {

// Pillow: 32 bits of accumulator minus 8 for the pixel and 2 for bicubic's overshoot.
constexpr int kPrecisionBits = 32 - 8 - 2;

double bilinearFilter(double x) {
  x = std::abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

double bicubicFilter(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// For each output position: the first input index, the tap count and ksize fixed-point weights.
struct Coefficients {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;  // outSize * ksize
};

Coefficients precomputeCoefficients(int inSize, int outSize, Interpolation interpolation) {
  const bool bicubic = interpolation == Interpolation::Bicubic;
  const double filterSupport = bicubic ? 2.0 : 1.0;
  // Pillow's box is float: (in1 - in0) is computed in float, then widened.
  const double scale = static_cast<double>(static_cast<float>(inSize) - 0.0f) / outSize;
  const double filterScale = std::max(scale, 1.0);
  const double support = filterSupport * filterScale;
  Coefficients c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(static_cast<size_t>(outSize));
  c.count.resize(static_cast<size_t>(outSize));
  c.weights.assign(static_cast<size_t>(outSize) * static_cast<size_t>(c.ksize), 0);
  std::vector<double> k(static_cast<size_t>(c.ksize));
  for (int xx = 0; xx < outSize; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterScale;
    int xmin = static_cast<int>(center - support + 0.5);
    xmin = std::max(xmin, 0);
    int xmax = static_cast<int>(center + support + 0.5);
    xmax = std::min(xmax, inSize) - xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bicubic ? bicubicFilter((x + xmin - center + 0.5) * ss)
                               : bilinearFilter((x + xmin - center + 0.5) * ss);
      k[static_cast<size_t>(x)] = w;
      ww += w;
    }
    int32_t* out = &c.weights[static_cast<size_t>(xx) * static_cast<size_t>(c.ksize)];
    for (int x = 0; x < xmax; ++x) {
      double w = k[static_cast<size_t>(x)];
      if (ww != 0.0) w /= ww;
      const double fixed = w * (1 << kPrecisionBits);
      out[x] = static_cast<int32_t>(w < 0 ? -0.5 + fixed : 0.5 + fixed);
    }
    c.first[static_cast<size_t>(xx)] = xmin;
    c.count[static_cast<size_t>(xx)] = xmax;
  }
  return c;
}

uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

// Rows [y0, y0 + out.height) of `in` resampled horizontally into `out`; C channels (0: any).
// The sums run in Pillow's order, so even the int32 intermediate values are Pillow's.
template <int C>
void resampleHorizontal(const Image& in, int64_t y0, const Coefficients& c, Image& out) {
  const int64_t ch = C ? C : in.channels;
  std::vector<int32_t> ss(static_cast<size_t>(ch));
  for (int64_t y = 0; y < out.height; ++y) {
    const uint8_t* src = in.row(y0 + y);
    uint8_t* dst = out.row(y);
    for (int64_t xx = 0; xx < out.width; ++xx) {
      const int32_t* k = &c.weights[static_cast<size_t>(xx * c.ksize)];
      const uint8_t* s = src + c.first[static_cast<size_t>(xx)] * ch;
      const int n = c.count[static_cast<size_t>(xx)];
      if constexpr (C > 0) {
        int32_t acc[C];
        for (int ci = 0; ci < C; ++ci) acc[ci] = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < n; ++x)
          for (int ci = 0; ci < C; ++ci) acc[ci] += s[x * C + ci] * k[x];
        for (int ci = 0; ci < C; ++ci) dst[xx * C + ci] = clip8(acc[ci]);
      } else {
        std::fill(ss.begin(), ss.end(), 1 << (kPrecisionBits - 1));
        for (int x = 0; x < n; ++x)
          for (int64_t ci = 0; ci < ch; ++ci) ss[static_cast<size_t>(ci)] += s[x * ch + ci] * k[x];
        for (int64_t ci = 0; ci < ch; ++ci) dst[xx * ch + ci] = clip8(ss[static_cast<size_t>(ci)]);
      }
    }
  }
}

// `c.first` is relative to row `y0` of `in`. Whole rows are accumulated at once (the same
// sums as Pillow's per-pixel loop, in the same order), which vectorizes.
void resampleVertical(const Image& in, int64_t y0, const Coefficients& c, Image& out) {
  const int64_t rowLen = in.width * in.channels;
  std::vector<int32_t> acc(static_cast<size_t>(rowLen));
  for (int64_t yy = 0; yy < out.height; ++yy) {
    const int32_t* k = &c.weights[static_cast<size_t>(yy * c.ksize)];
    const int64_t ymin = c.first[static_cast<size_t>(yy)] - y0;
    const int n = c.count[static_cast<size_t>(yy)];
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0; y < n; ++y) {
      const uint8_t* src = in.row(ymin + y);
      const int32_t w = k[y];
      for (int64_t i = 0; i < rowLen; ++i) acc[static_cast<size_t>(i)] += src[i] * w;
    }
    uint8_t* dst = out.row(yy);
    for (int64_t i = 0; i < rowLen; ++i) dst[i] = clip8(acc[static_cast<size_t>(i)]);
  }
}

int64_t roundHalfEvenHalf(int64_t d) {  // Python's round(d / 2.0) for d >= 0
  const int64_t q = d / 2;
  return d % 2 == 0 || q % 2 == 0 ? q : q + 1;
}

}  // namespace

std::string_view interpolationName(Interpolation i) {
  switch (i) {
    case Interpolation::Bilinear:
      return "bilinear";
    case Interpolation::Bicubic:
      return "bicubic";
  }
  return "?";
}

std::optional<Interpolation> parseInterpolation(std::string_view name) {
  if (name == "bilinear") return Interpolation::Bilinear;
  if (name == "bicubic") return Interpolation::Bicubic;
  return std::nullopt;
}

Image resize(const Image& in, int64_t width, int64_t height, Interpolation interpolation) {
  KILN_ASSERT(width > 0 && height > 0 && in.width > 0 && in.height > 0, "resize: empty image");
  const bool horizontal = width != in.width;
  const bool vertical = height != in.height;
  if (!horizontal && !vertical) return in;
  const Coefficients h =
      precomputeCoefficients(static_cast<int>(in.width), static_cast<int>(width), interpolation);
  const Coefficients v =
      precomputeCoefficients(static_cast<int>(in.height), static_cast<int>(height), interpolation);
  if (!horizontal) {
    Image out(width, height, in.channels);
    resampleVertical(in, 0, v, out);
    return out;
  }
  // Only the input rows the vertical pass reads go through the horizontal one.
  const int64_t yFirst = v.first.front();
  const int64_t yLast = v.first.back() + v.count.back();
  Image tmp(width, vertical ? yLast - yFirst : in.height, in.channels);
  const int64_t y0 = vertical ? yFirst : 0;
  if (in.channels == 3) {
    resampleHorizontal<3>(in, y0, h, tmp);
  } else if (in.channels == 1) {
    resampleHorizontal<1>(in, y0, h, tmp);
  } else {
    resampleHorizontal<0>(in, y0, h, tmp);
  }
  if (!vertical) return tmp;
  Image out(width, height, in.channels);
  resampleVertical(tmp, yFirst, v, out);
  return out;
}

Image resizeShorterSide(const Image& in, int64_t size, Interpolation interpolation) {
  const bool wide = in.width > in.height;
  const int64_t shorter = wide ? in.height : in.width, longer = wide ? in.width : in.height;
  // Python: int(size * long / short) — exact integer product, correctly rounded division.
  const auto newLong =
      static_cast<int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  const int64_t w = wide ? newLong : size, h = wide ? size : newLong;
  if (w == in.width && h == in.height) return in;
  return resize(in, w, h, interpolation);
}

Image centerCrop(const Image& in, int64_t width, int64_t height) {
  const int64_t padLeft = width > in.width ? (width - in.width) / 2 : 0;
  const int64_t padTop = height > in.height ? (height - in.height) / 2 : 0;
  const int64_t paddedW = std::max(in.width, width), paddedH = std::max(in.height, height);
  const int64_t left = roundHalfEvenHalf(paddedW - width) - padLeft;
  const int64_t top = roundHalfEvenHalf(paddedH - height) - padTop;
  Image out(width, height, in.channels);
  const int64_t ch = in.channels;
  for (int64_t y = 0; y < height; ++y) {
    const int64_t sy = y + top;
    if (sy < 0 || sy >= in.height) continue;
    const int64_t x0 = std::max<int64_t>(0, -left), x1 = std::min(width, in.width - left);
    if (x1 > x0) std::copy_n(in.row(sy) + (x0 + left) * ch, (x1 - x0) * ch, out.row(y) + x0 * ch);
  }
  return out;
}

Image toGray(const Image& in) {
  if (in.channels == 1) return in;
  KILN_ASSERT(in.channels == 3, "toGray: expected an RGB image");
  Image out(in.width, in.height, 1);
  const uint8_t* p = in.pixels.data();
  for (uint8_t& o : out.pixels) {
    o = static_cast<uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
    p += 3;
  }
  return out;
}

Image preprocessPixels(const Image& rgb, const ImagePreprocess& p) {
  Image img = p.channels == 1 ? toGray(rgb) : rgb;
  if (p.resize > 0) img = resizeShorterSide(img, p.resize, p.interpolation);
  if (p.crop > 0) img = centerCrop(img, p.crop, p.crop);
  return img;
}

Expected<ir::Tensor> toTensor(std::span<const Image> images, const ImagePreprocess& p) {
  if (images.empty()) return error("toTensor: no images");
  if (p.channels != 1 && p.channels != 3)
    return error("toTensor: {} channels; images have 1 (gray) or 3 (RGB)", p.channels);
  const int64_t w = images[0].width, h = images[0].height, c = p.channels;
  for (const Image& img : images) {
    if (img.channels != c)
      return error("toTensor: an image has {} channels, expected {}", img.channels, c);
    if (img.width != w || img.height != h)
      return error("toTensor: images of different sizes ({}x{} and {}x{}) cannot share a batch", w,
                   h, img.width, img.height);
  }
  const auto n = static_cast<int64_t>(images.size());
  ir::Tensor t(ir::DType::F32, ir::Shape({n, c, h, w}), ir::Layout::NCHW);
  float* out = t.data<float>();
  for (const Image& img : images) {
    normalizeInto(img, p, out);
    out += c * h * w;
  }
  return t;
}

void normalizeInto(const Image& img, const ImagePreprocess& p, float* out, bool flip) {
  KILN_ASSERT(img.channels == p.channels, "normalizeInto: channel mismatch");
  const int64_t c = img.channels, w = img.width, h = img.height;
  for (int64_t ci = 0; ci < c; ++ci) {
    const auto mean = static_cast<float>(p.mean[static_cast<size_t>(ci)]);
    const auto stdev = static_cast<float>(p.std[static_cast<size_t>(ci)]);
    for (int64_t y = 0; y < h; ++y) {
      const uint8_t* row = img.row(y);
      for (int64_t x = 0; x < w; ++x) {
        const int64_t sx = flip ? w - 1 - x : x;
        const float v = static_cast<float>(row[sx * c + ci]) / 255.0f;
        *out++ = (v - mean) / stdev;
      }
    }
  }
}

}  // namespace kiln::runtime
