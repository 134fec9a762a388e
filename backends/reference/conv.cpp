// conv2d: direct convolution over NCHW / OIHW with stride, asymmetric padding, dilation,
// groups and an optional bias. Each (input channel, kernel tap) adds a scaled, shifted input
// row to a contiguous output row, so the inner loop is unit-stride for stride 1. The two
// backward ops walk the same (tap, row) runs: the data gradient scatters dy back along them,
// the weight gradient correlates x with dy along them.
#include <algorithm>
#include <vector>

#include "backends/reference/activations.h"
#include "backends/reference/kernels.h"

namespace kiln::backends::reference {

using namespace ir;

namespace {

struct ConvGeometry {
  int64_t n, c, h, w;     // input
  int64_t o, cg, kh, kw;  // weight [O, C/groups, KH, KW]
  int64_t oh, ow;         // output
  int64_t groups;
  int64_t strideH, strideW, padTop, padLeft, dilH, dilW;
};

/// Visits every (image, output channel, input channel, kernel tap, output row) of a conv with
/// the contiguous run of output columns whose input columns lie inside the image:
/// f(n, o, channel, ky, kx, inputRowOffset, outputRowOffset, len) where the input row offset
/// is that of the first column of the run (the run steps by strideW in the input).
template <typename F>
void forEachTapRow(const ConvGeometry& g, F&& f) {
  const int64_t outPerGroup = g.o / g.groups;
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t o = 0; o < g.o; ++o) {
      const int64_t firstChannel = (o / outPerGroup) * g.cg;
      for (int64_t ci = 0; ci < g.cg; ++ci) {
        const int64_t channel = firstChannel + ci;
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            // Output columns whose input column ox*stride - padLeft + kx*dil lies in [0, w).
            const int64_t shift = kx * g.dilW - g.padLeft;
            const int64_t oxBegin = std::max<int64_t>(0, ceilDiv(-shift, g.strideW));
            const int64_t oxEnd = std::min<int64_t>(g.ow, floorDiv(g.w - 1 - shift, g.strideW) + 1);
            if (oxBegin >= oxEnd) continue;
            for (int64_t oy = 0; oy < g.oh; ++oy) {
              const int64_t iy = oy * g.strideH - g.padTop + ky * g.dilH;
              if (iy < 0 || iy >= g.h) continue;
              f(n, o, ci, ky, kx,
                ((n * g.c + channel) * g.h + iy) * g.w + oxBegin * g.strideW + shift,
                ((n * g.o + o) * g.oh + oy) * g.ow + oxBegin, oxEnd - oxBegin);
            }
          }
        }
      }
    }
  }
}

template <typename T>
void conv2d(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t plane = g.oh * g.ow;
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t o = 0; o < g.o; ++o) {
      T* yp = y + (n * g.o + o) * plane;
      const T b = bias ? bias[o] : T(0);
      for (int64_t i = 0; i < plane; ++i) yp[i] = b;
    }
  forEachTapRow(g, [&](int64_t, int64_t o, int64_t ci, int64_t ky, int64_t kx, int64_t xOff,
                       int64_t yOff, int64_t len) {
    const T wv = w[((o * g.cg + ci) * g.kh + ky) * g.kw + kx];
    const T* xr = x + xOff;
    T* yr = y + yOff;
    if (g.strideW == 1) {
      for (int64_t i = 0; i < len; ++i) yr[i] += wv * xr[i];
    } else {
      for (int64_t i = 0; i < len; ++i) yr[i] += wv * xr[i * g.strideW];
    }
  });
}

/// dx (zero-filled) += the transposed conv of dy: each tap scatters back where it gathered.
template <typename T>
void conv2dBackwardData(const ConvGeometry& g, const T* dy, const T* w, T* dx) {
  forEachTapRow(g, [&](int64_t, int64_t o, int64_t ci, int64_t ky, int64_t kx, int64_t xOff,
                       int64_t yOff, int64_t len) {
    const T wv = w[((o * g.cg + ci) * g.kh + ky) * g.kw + kx];
    T* xr = dx + xOff;
    const T* yr = dy + yOff;
    for (int64_t i = 0; i < len; ++i) xr[i * g.strideW] += wv * yr[i];
  });
}

/// dw (zero-filled) += the correlation of x and dy per tap, summed in double.
template <typename T>
void conv2dBackwardWeight(const ConvGeometry& g, const T* x, const T* dy, T* dw) {
  std::vector<double> acc(static_cast<size_t>(g.o * g.cg * g.kh * g.kw), 0.0);
  forEachTapRow(g, [&](int64_t, int64_t o, int64_t ci, int64_t ky, int64_t kx, int64_t xOff,
                       int64_t yOff, int64_t len) {
    const T* xr = x + xOff;
    const T* yr = dy + yOff;
    double sum = 0;
    for (int64_t i = 0; i < len; ++i) sum += static_cast<double>(xr[i * g.strideW]) * yr[i];
    acc[((o * g.cg + ci) * g.kh + ky) * g.kw + kx] += sum;
  });
  for (size_t i = 0; i < acc.size(); ++i) dw[i] = T(acc[i]);
}

}  // namespace

template <>
Status kernel<OpKind::Conv2d>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& a = ctx.attrs<Conv2dAttrs>();
  const Shape& xs = ctx.in[0].shape();
  const Shape& ws = ctx.in[1].shape();
  const Shape& ys = ctx.out[0].shape();
  const ConvGeometry g{xs[0],       xs[1],    xs[2],    xs[3],         ws[0],        ws[1],
                       ws[2],       ws[3],    ys[2],    ys[3],         a.groups,     a.stride[0],
                       a.stride[1], a.pad[0], a.pad[1], a.dilation[0], a.dilation[1]};
  const Value* bias = convBias(ctx.node);
  const bool hasSum = convSummand(ctx.node) != nullptr;
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* y = ctx.out[0].data<T>();
    conv2d<T>(g, ctx.in[0].data<T>(), ctx.in[1].data<T>(), bias ? ctx.in[2].data<T>() : nullptr, y);
    // Post-ops in order over the finished convolution (a flat loop: the summand has y's type).
    const T* summand = hasSum ? ctx.in.back().data<T>() : nullptr;
    const int64_t n = ctx.out[0].numElements();
    for (const PostOp& p : a.post_ops) {
      if (p.kind == PostOpKind::Sum) {
        for (int64_t i = 0; i < n; ++i) y[i] += summand[i];
      } else {
        for (int64_t i = 0; i < n; ++i) y[i] = act::postOp(p, y[i]);
      }
    }
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::Conv2dBackwardData>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& a = ctx.attrs<Conv2dBackwardDataAttrs>();
  const Shape& dys = ctx.in[0].shape();
  const Shape& ws = ctx.in[1].shape();
  const Shape& xs = ctx.out[0].shape();
  const ConvGeometry g{xs[0],       xs[1],    xs[2],    xs[3],         ws[0],        ws[1],
                       ws[2],       ws[3],    dys[2],   dys[3],        a.groups,     a.stride[0],
                       a.stride[1], a.pad[0], a.pad[1], a.dilation[0], a.dilation[1]};
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    conv2dBackwardData<T>(g, ctx.in[0].data<T>(), ctx.in[1].data<T>(), ctx.out[0].data<T>());
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::Conv2dBackwardWeight>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& a = ctx.attrs<Conv2dBackwardWeightAttrs>();
  const Shape& xs = ctx.in[0].shape();
  const Shape& dys = ctx.in[1].shape();
  const Shape& ws = ctx.out[0].shape();
  const ConvGeometry g{xs[0],       xs[1],    xs[2],    xs[3],         ws[0],        ws[1],
                       ws[2],       ws[3],    dys[2],   dys[3],        a.groups,     a.stride[0],
                       a.stride[1], a.pad[0], a.pad[1], a.dilation[0], a.dilation[1]};
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    conv2dBackwardWeight<T>(g, ctx.in[0].data<T>(), ctx.in[1].data<T>(), ctx.out[0].data<T>());
    return Status::ok();
  });
}

}  // namespace kiln::backends::reference
