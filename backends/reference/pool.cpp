// Pooling over NCHW: max_pool2d and avg_pool2d (PyTorch's ceil_mode, padding and divisor
// rules), global_avg_pool and adaptive_avg_pool2d (PyTorch's window bounds).
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/reference/kernels.h"

namespace kiln::backends::reference {

using namespace ir;

namespace {

/// The planes (n, c) of an NCHW tensor and their sizes.
struct Planes {
  int64_t count, h, w, oh, ow;
};

Planes planesOf(const KernelContext& ctx) {
  const Shape& x = ctx.in[0].shape();
  const Shape& y = ctx.out[0].shape();
  return Planes{x[0] * x[1], x[2], x[3], y[2], y[3]};
}

/// Stores `f(xp, oy, ox)` at every output pixel (oy, ox) of every plane; `xp` is the plane's
/// input.
template <typename T, typename F>
void forEachOutput(const KernelContext& ctx, const Planes& p, F&& f) {
  const T* x = ctx.in[0].data<T>();
  T* y = ctx.out[0].data<T>();
  for (int64_t plane = 0; plane < p.count; ++plane) {
    const T* xp = x + plane * p.h * p.w;
    T* yp = y + plane * p.oh * p.ow;
    for (int64_t oy = 0; oy < p.oh; ++oy)
      for (int64_t ox = 0; ox < p.ow; ++ox) yp[oy * p.ow + ox] = f(xp, oy, ox);
  }
}

/// The sum of rows [y0, y1) x columns [x0, x1) of a plane `w` wide, row by row.
template <typename T>
T windowSum(const T* xp, int64_t w, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
  T sum = T(0);
  for (int64_t iy = y0; iy < y1; ++iy)
    for (int64_t ix = x0; ix < x1; ++ix) sum += xp[iy * w + ix];
  return sum;
}

}  // namespace

template <>
Status kernel<OpKind::MaxPool2d>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& a = ctx.attrs<MaxPool2dAttrs>();
  const Planes p = planesOf(ctx);
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    forEachOutput<T>(ctx, p, [&](const T* xp, int64_t oy, int64_t ox) {
      const int64_t y0 = oy * a.stride[0] - a.pad[0];
      const int64_t x0 = ox * a.stride[1] - a.pad[1];
      // Padding is -inf: it never wins. NaN wins and sticks, as in PyTorch.
      T best = -std::numeric_limits<T>::infinity();
      for (int64_t ky = 0; ky < a.kernel[0]; ++ky) {
        const int64_t iy = y0 + ky * a.dilation[0];
        if (iy < 0 || iy >= p.h) continue;
        for (int64_t kx = 0; kx < a.kernel[1]; ++kx) {
          const int64_t ix = x0 + kx * a.dilation[1];
          if (ix < 0 || ix >= p.w) continue;
          const T v = xp[iy * p.w + ix];
          if (v > best || std::isnan(v)) best = v;
        }
      }
      return best;
    });
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::AvgPool2d>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& a = ctx.attrs<AvgPool2dAttrs>();
  const Planes p = planesOf(ctx);
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    forEachOutput<T>(ctx, p, [&](const T* xp, int64_t oy, int64_t ox) {
      // PyTorch: the window is clipped to input + padding (a ceil_mode window may run past
      // it; that part counts for nothing), then to the input for the sum.
      int64_t y0 = oy * a.stride[0] - a.pad[0];
      int64_t y1 = std::min(y0 + a.kernel[0], p.h + a.pad[2]);
      int64_t x0 = ox * a.stride[1] - a.pad[1];
      int64_t x1 = std::min(x0 + a.kernel[1], p.w + a.pad[3]);
      const int64_t padded = (y1 - y0) * (x1 - x0);
      y0 = std::max<int64_t>(y0, 0);
      y1 = std::min(y1, p.h);
      x0 = std::max<int64_t>(x0, 0);
      x1 = std::min(x1, p.w);
      if (y0 >= y1 || x0 >= x1) return T(0);
      const int64_t divisor = a.count_include_pad ? padded : (y1 - y0) * (x1 - x0);
      return windowSum(xp, p.w, y0, y1, x0, x1) / T(divisor);
    });
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::GlobalAvgPool>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const Shape& xs = ctx.in[0].shape();
  const int64_t planes = xs[0] * xs[1], size = product(xs, 2, xs.rank());
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = ctx.in[0].data<T>();
    T* y = ctx.out[0].data<T>();
    for (int64_t plane = 0; plane < planes; ++plane) {
      const T* xp = x + plane * size;
      T sum = T(0);
      for (int64_t i = 0; i < size; ++i) sum += xp[i];
      y[plane] = sum / T(size);
    }
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::AdaptiveAvgPool2d>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const Planes p = planesOf(ctx);
  // PyTorch: window i covers [floor(i * in / out), ceil((i + 1) * in / out)).
  auto begin = [](int64_t i, int64_t in, int64_t out) { return (i * in) / out; };
  auto end = [](int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; };
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    forEachOutput<T>(ctx, p, [&](const T* xp, int64_t oy, int64_t ox) {
      const int64_t y0 = begin(oy, p.h, p.oh), y1 = end(oy, p.h, p.oh);
      const int64_t x0 = begin(ox, p.w, p.ow), x1 = end(ox, p.w, p.ow);
      const int64_t count = (y1 - y0) * (x1 - x0);
      return count ? windowSum(xp, p.w, y0, y1, x0, x1) / T(count) : T(0);
    });
    return Status::ok();
  });
}

}  // namespace kiln::backends::reference
