// Pooling over NCHW: max_pool2d and avg_pool2d (PyTorch's ceil_mode, padding and divisor
// rules), global_avg_pool and adaptive_avg_pool2d (PyTorch's window bounds), and the backward
// ops of max_pool2d and avg_pool2d (the same windows, run in reverse).
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

/// Index (iy * w + ix) of the first maximum of max-pool window (oy, ox) in a plane, or -1
/// when the window holds no input pixel. Padding is -inf and never wins; NaN wins and sticks,
/// as in PyTorch. The backward op routes the gradient to the same element.
template <typename T>
int64_t maxWindowIndex(const T* xp, const Planes& p, const MaxPool2dAttrs& a, int64_t oy,
                       int64_t ox) {
  int64_t best = -1;
  T bestValue = -std::numeric_limits<T>::infinity();
  for (int64_t ky = 0; ky < a.kernel[0]; ++ky) {
    const int64_t iy = oy * a.stride[0] - a.pad[0] + ky * a.dilation[0];
    if (iy < 0 || iy >= p.h) continue;
    for (int64_t kx = 0; kx < a.kernel[1]; ++kx) {
      const int64_t ix = ox * a.stride[1] - a.pad[1] + kx * a.dilation[1];
      if (ix < 0 || ix >= p.w) continue;
      const T v = xp[iy * p.w + ix];
      if (best < 0 || v > bestValue || std::isnan(v)) {
        best = iy * p.w + ix;
        bestValue = v;
      }
    }
  }
  return best;
}

/// The input rows [y0, y1) x columns [x0, x1) of avg-pool window (oy, ox) and its divisor
/// (0: the window holds no input pixel). PyTorch: the window is clipped to input + padding (a
/// ceil_mode window may run past it; that part counts for nothing), then to the input.
struct AvgWindow {
  int64_t y0, y1, x0, x1, divisor;
};

template <typename A>
AvgWindow avgWindow(const Planes& p, const A& a, int64_t oy, int64_t ox) {
  AvgWindow w;
  w.y0 = oy * a.stride[0] - a.pad[0];
  w.y1 = std::min(w.y0 + a.kernel[0], p.h + a.pad[2]);
  w.x0 = ox * a.stride[1] - a.pad[1];
  w.x1 = std::min(w.x0 + a.kernel[1], p.w + a.pad[3]);
  const int64_t padded = (w.y1 - w.y0) * (w.x1 - w.x0);
  w.y0 = std::max<int64_t>(w.y0, 0);
  w.y1 = std::min(w.y1, p.h);
  w.x0 = std::max<int64_t>(w.x0, 0);
  w.x1 = std::min(w.x1, p.w);
  if (w.y0 >= w.y1 || w.x0 >= w.x1)
    w.divisor = 0;
  else
    w.divisor = a.count_include_pad ? padded : (w.y1 - w.y0) * (w.x1 - w.x0);
  return w;
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
      const int64_t i = maxWindowIndex(xp, p, a, oy, ox);
      return i < 0 ? -std::numeric_limits<T>::infinity() : xp[i];
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
      const AvgWindow w = avgWindow(p, a, oy, ox);
      if (w.divisor == 0) return T(0);
      return windowSum(xp, p.w, w.y0, w.y1, w.x0, w.x1) / T(w.divisor);
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

// ---- backward --------------------------------------------------------------------

template <>
Status kernel<OpKind::MaxPool2dBackward>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& a = ctx.attrs<MaxPool2dAttrs>();
  const Shape& dys = ctx.in[0].shape();
  const Shape& xs = ctx.in[1].shape();
  const Planes p{xs[0] * xs[1], xs[2], xs[3], dys[2], dys[3]};
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* dy = ctx.in[0].data<T>();
    const T* x = ctx.in[1].data<T>();
    T* dx = ctx.out[0].data<T>();  // zero-filled
    for (int64_t plane = 0; plane < p.count; ++plane) {
      const T* xp = x + plane * p.h * p.w;
      const T* dyp = dy + plane * p.oh * p.ow;
      T* dxp = dx + plane * p.h * p.w;
      for (int64_t oy = 0; oy < p.oh; ++oy) {
        for (int64_t ox = 0; ox < p.ow; ++ox) {
          const int64_t best = maxWindowIndex(xp, p, a, oy, ox);
          if (best >= 0) dxp[best] += dyp[oy * p.ow + ox];
        }
      }
    }
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::AvgPool2dBackward>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& a = ctx.attrs<AvgPool2dBackwardAttrs>();
  const Shape& dys = ctx.in[0].shape();
  const Shape& xs = ctx.out[0].shape();
  const Planes p{xs[0] * xs[1], xs[2], xs[3], dys[2], dys[3]};
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* dy = ctx.in[0].data<T>();
    T* dx = ctx.out[0].data<T>();  // zero-filled
    for (int64_t plane = 0; plane < p.count; ++plane) {
      const T* dyp = dy + plane * p.oh * p.ow;
      T* dxp = dx + plane * p.h * p.w;
      for (int64_t oy = 0; oy < p.oh; ++oy) {
        for (int64_t ox = 0; ox < p.ow; ++ox) {
          const AvgWindow w = avgWindow(p, a, oy, ox);  // the forward kernel's window
          if (w.divisor == 0) continue;
          const T share = dyp[oy * p.ow + ox] / T(w.divisor);
          for (int64_t iy = w.y0; iy < w.y1; ++iy)
            for (int64_t ix = w.x0; ix < w.x1; ++ix) dxp[iy * p.w + ix] += share;
        }
      }
    }
    return Status::ok();
  });
}

}  // namespace kiln::backends::reference
