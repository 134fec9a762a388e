// Scalar activation formulas, shared by the elementwise kernels and conv2d's post-ops.
// They follow PyTorch's CPU kernels; NaN propagates (relu(NaN) is NaN, as in PyTorch), which
// is why comparisons are written `x < 0 ? 0 : x` and not std::max.
#pragma once

#include <cmath>

#include "ir/attrs.h"

namespace kiln::backends::reference::act {

template <typename T>
T clamp(T x, T lo, T hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}
template <typename T>
T relu(T x) {
  return x < T(0) ? T(0) : x;
}
template <typename T>
T relu6(T x) {
  return clamp(x, T(0), T(6));
}
/// exp(-x) overflows to inf for x < -88 (f32), giving exactly 0: no NaN either way.
template <typename T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}
/// PyTorch's silu: x / (1 + exp(-x)).
template <typename T>
T swish(T x) {
  return x / (T(1) + std::exp(-x));
}
/// PyTorch: x * min(max(x + 3, 0), 6) / 6.
template <typename T>
T hardswish(T x) {
  return x * clamp(x + T(3), T(0), T(6)) / T(6);
}
template <typename T>
T hardsigmoid(T x, double alpha, double beta) {
  return clamp(T(alpha) * x + T(beta), T(0), T(1));
}

/// One elementwise post-op of a fused conv2d (not `sum`, which needs the summand).
template <typename T>
T postOp(const ir::PostOp& p, T x) {
  using K = ir::PostOpKind;
  switch (p.kind) {
    case K::Relu:
      return relu(x);
    case K::Relu6:
      return relu6(x);
    case K::Sigmoid:
      return sigmoid(x);
    case K::Swish:
      return swish(x);
    case K::HardSwish:
      return hardswish(x);
    case K::Tanh:
      return std::tanh(x);
    case K::HardSigmoid:
      return hardsigmoid(x, p.alpha, p.beta);
    case K::Clip:
      return clamp(x, T(p.alpha), T(p.beta));
    case K::Sum:
      break;
  }
  return x;
}

}  // namespace kiln::backends::reference::act
