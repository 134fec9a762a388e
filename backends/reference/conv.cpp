// conv2d: direct convolution over NCHW / OIHW with stride, asymmetric padding, dilation,
// groups and an optional bias. Each (input channel, kernel tap) adds a scaled, shifted input
// row to a contiguous output row, so the inner loop is unit-stride for stride 1.
#include <algorithm>

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

template <typename T>
void conv2d(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t outPerGroup = g.o / g.groups;
  const int64_t plane = g.oh * g.ow;
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t o = 0; o < g.o; ++o) {
      T* yp = y + (n * g.o + o) * plane;
      const T b = bias ? bias[o] : T(0);
      for (int64_t i = 0; i < plane; ++i) yp[i] = b;
      const int64_t firstChannel = (o / outPerGroup) * g.cg;
      for (int64_t ci = 0; ci < g.cg; ++ci) {
        const T* xp = x + (n * g.c + firstChannel + ci) * g.h * g.w;
        const T* wp = w + (o * g.cg + ci) * g.kh * g.kw;
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            const T wv = wp[ky * g.kw + kx];
            // Output columns whose input column ox*stride - padLeft + kx*dil lies in [0, w).
            const int64_t shift = kx * g.dilW - g.padLeft;
            const int64_t oxBegin = std::max<int64_t>(0, ceilDiv(-shift, g.strideW));
            const int64_t oxEnd = std::min<int64_t>(g.ow, floorDiv(g.w - 1 - shift, g.strideW) + 1);
            if (oxBegin >= oxEnd) continue;
            for (int64_t oy = 0; oy < g.oh; ++oy) {
              const int64_t iy = oy * g.strideH - g.padTop + ky * g.dilH;
              if (iy < 0 || iy >= g.h) continue;
              const T* xr = xp + iy * g.w + oxBegin * g.strideW + shift;
              T* yr = yp + oy * g.ow + oxBegin;
              const int64_t len = oxEnd - oxBegin;
              if (g.strideW == 1) {
                for (int64_t i = 0; i < len; ++i) yr[i] += wv * xr[i];
              } else {
                for (int64_t i = 0; i < len; ++i) yr[i] += wv * xr[i * g.strideW];
              }
            }
          }
        }
      }
    }
  }
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
  const bool hasBias = ctx.in.size() == 3;
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    conv2d<T>(g, ctx.in[0].data<T>(), ctx.in[1].data<T>(), hasBias ? ctx.in[2].data<T>() : nullptr,
              ctx.out[0].data<T>());
    return Status::ok();
  });
}

}  // namespace kiln::backends::reference
