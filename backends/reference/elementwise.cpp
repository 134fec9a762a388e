// Elementwise kernels: activations, clip, the broadcasting binaries, channel_scale and the
// activation gradients. The scalar formulas live in activations.h (shared with conv2d's
// post-ops).
// Formulas follow PyTorch's CPU kernels; NaN inputs propagate (relu(NaN) is NaN, as in
// PyTorch), which is why comparisons are written `x < 0 ? 0 : x` and not std::max.
#include <cmath>

#include "backends/reference/activations.h"
#include "backends/reference/kernels.h"

namespace kiln::backends::reference {

using namespace ir;

namespace {

/// y[i] = f(x[i]). Memory order does not matter, so any layout is accepted (the result
/// keeps the operand's layout).
template <typename F>
Status unary(const KernelContext& ctx, F f) {
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = ctx.in[0].data<T>();
    T* y = ctx.out[0].data<T>();
    const int64_t n = ctx.in[0].numElements();
    for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
    return Status::ok();
  });
}

/// y = f(a, b) with numpy broadcasting. Equal shapes in one shared layout run as a flat loop
/// in any layout; anything that broadcasts needs row-major operands.
template <typename F>
Status binary(const KernelContext& ctx, F f) {
  const Tensor& a = ctx.in[0];
  const Tensor& b = ctx.in[1];
  Tensor& y = ctx.out[0];
  const bool flat = a.shape() == y.shape() && b.shape() == y.shape() && a.layout() == y.layout() &&
                    b.layout() == y.layout();
  if (!flat) KILN_TRY(checkRowMajor(ctx));
  return dispatchFloat(ctx, a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* py = y.data<T>();
    if (flat) {
      const int64_t n = y.numElements();
      for (int64_t i = 0; i < n; ++i) py[i] = f(pa[i], pb[i]);
      return Status::ok();
    }
    Strided<3> space{y.shape().dims(),
                     {rowMajorStrides(y.shape()), broadcastStrides(a.shape(), y.shape()),
                      broadcastStrides(b.shape(), y.shape())}};
    forEachRow(coalesce(space), [&](const std::array<int64_t, 3>& off, int64_t len,
                                    const std::array<int64_t, 3>& inner) {
      T* yr = py + off[0];  // the output is contiguous: its inner stride is 1
      const T* ar = pa + off[1];
      const T* br = pb + off[2];
      const int64_t sa = inner[1], sb = inner[2];
      for (int64_t i = 0; i < len; ++i) yr[i] = f(ar[i * sa], br[i * sb]);
    });
    return Status::ok();
  });
}

}  // namespace

template <>
Status kernel<OpKind::Relu>(const KernelContext& ctx) {
  return unary(ctx, [](auto x) { return act::relu(x); });
}

template <>
Status kernel<OpKind::Relu6>(const KernelContext& ctx) {
  return unary(ctx, [](auto x) { return act::relu6(x); });
}

template <>
Status kernel<OpKind::Sigmoid>(const KernelContext& ctx) {
  return unary(ctx, [](auto x) { return act::sigmoid(x); });
}

template <>
Status kernel<OpKind::Swish>(const KernelContext& ctx) {
  return unary(ctx, [](auto x) { return act::swish(x); });
}

template <>
Status kernel<OpKind::HardSwish>(const KernelContext& ctx) {
  return unary(ctx, [](auto x) { return act::hardswish(x); });
}

template <>
Status kernel<OpKind::HardSigmoid>(const KernelContext& ctx) {
  const auto& a = ctx.attrs<HardSigmoidAttrs>();
  return unary(ctx, [alpha = a.alpha, beta = a.beta](auto x) { return act::hardsigmoid(x, alpha, beta); });
}

template <>
Status kernel<OpKind::Tanh>(const KernelContext& ctx) {
  return unary(ctx, [](auto x) { return std::tanh(x); });
}

template <>
Status kernel<OpKind::Clip>(const KernelContext& ctx) {
  const auto& a = ctx.attrs<ClipAttrs>();
  return unary(ctx, [lo = a.min, hi = a.max](auto x) {
    using T = decltype(x);
    return act::clamp(x, T(lo), T(hi));
  });
}

template <>
Status kernel<OpKind::Add>(const KernelContext& ctx) {
  return binary(ctx, [](auto a, auto b) { return a + b; });
}

template <>
Status kernel<OpKind::Sub>(const KernelContext& ctx) {
  return binary(ctx, [](auto a, auto b) { return a - b; });
}

template <>
Status kernel<OpKind::Mul>(const KernelContext& ctx) {
  return binary(ctx, [](auto a, auto b) { return a * b; });
}

template <>
Status kernel<OpKind::Div>(const KernelContext& ctx) {
  return binary(ctx, [](auto a, auto b) { return a / b; });
}

template <>
Status kernel<OpKind::ChannelScale>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const Tensor& x = ctx.in[0];
  const Tensor& s = ctx.in[1];
  return dispatchFloat(ctx, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const int64_t n = x.shape()[0], c = x.shape()[1], plane = product(x.shape(), 2, 4);
    const bool perSample = s.shape()[0] != 1;  // s is [N,C,1,1] or [1,C,1,1]
    const T* px = x.data<T>();
    const T* ps = s.data<T>();
    T* py = ctx.out[0].data<T>();
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < c; ++j) {
        const T scale = ps[(perSample ? i * c : 0) + j];
        const int64_t base = (i * c + j) * plane;
        for (int64_t k = 0; k < plane; ++k) py[base + k] = px[base + k] * scale;
      }
    }
    return Status::ok();
  });
}

// ---- activation gradients: f(dy, x), PyTorch's *_backward formulas ----------------------

template <>
Status kernel<OpKind::ReluBackward>(const KernelContext& ctx) {
  // threshold_backward: 0 where x <= 0 (a NaN x passes dy, as in PyTorch)
  return binary(ctx, [](auto dy, auto x) {
    using T = decltype(x);
    return x <= T(0) ? T(0) : dy;
  });
}

template <>
Status kernel<OpKind::ClipBackward>(const KernelContext& ctx) {
  // hardtanh_backward: dy strictly inside (min, max), 0 at and beyond the bounds
  const auto& a = ctx.attrs<ClipAttrs>();
  return binary(ctx, [lo = a.min, hi = a.max](auto dy, auto x) {
    using T = decltype(x);
    return x <= T(lo) || x >= T(hi) ? T(0) : dy;
  });
}

template <>
Status kernel<OpKind::SwishBackward>(const KernelContext& ctx) {
  // silu_backward: dy * s * (1 + x * (1 - s)), s = sigmoid(x)
  return binary(ctx, [](auto dy, auto x) {
    using T = decltype(x);
    const T s = T(1) / (T(1) + std::exp(-x));
    return dy * s * (T(1) + x * (T(1) - s));
  });
}

template <>
Status kernel<OpKind::HardSwishBackward>(const KernelContext& ctx) {
  // hardswish_backward: 0 below -3, dy * (x / 3 + 1/2) below 3, dy from 3 on. (PyTorch's
  // vectorized kernel gives dy at exactly 3, its scalar tail 1.5 * dy; we follow the former.)
  return binary(ctx, [](auto dy, auto x) {
    using T = decltype(x);
    if (x < T(-3)) return T(0);
    if (x < T(3)) return dy * (x / T(3) + T(0.5));
    return dy;
  });
}

template <>
Status kernel<OpKind::HardSigmoidBackward>(const KernelContext& ctx) {
  // hardsigmoid_backward: dy * alpha where 0 < alpha * x + beta < 1
  const auto& a = ctx.attrs<HardSigmoidAttrs>();
  return binary(ctx, [alpha = a.alpha, beta = a.beta](auto dy, auto x) {
    using T = decltype(x);
    const T v = T(alpha) * x + T(beta);
    return v > T(0) && v < T(1) ? dy * T(alpha) : T(0);
  });
}

}  // namespace kiln::backends::reference
