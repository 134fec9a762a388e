// batch_norm in inference form: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias,
// computed like PyTorch's CPU kernel as one per-channel scale and shift.
#include <cmath>

#include "backends/reference/kernels.h"

namespace kiln::backends::reference {

using namespace ir;

template <>
Status kernel<OpKind::BatchNorm>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const double eps = ctx.attrs<BatchNormAttrs>().epsilon;
  const Tensor& x = ctx.in[0];
  return dispatchFloat(ctx, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // operands: x, weight (scale), bias, running_mean, running_var
    const T* px = x.data<T>();
    const T* weight = ctx.in[1].data<T>();
    const T* bias = ctx.in[2].data<T>();
    const T* mean = ctx.in[3].data<T>();
    const T* var = ctx.in[4].data<T>();
    T* py = ctx.out[0].data<T>();
    const int64_t n = x.shape()[0], c = x.shape()[1];
    const int64_t inner = product(x.shape(), 2, x.shape().rank());
    for (int64_t j = 0; j < c; ++j) {
      const T scale = weight[j] / std::sqrt(var[j] + T(eps));
      const T shift = bias[j] - mean[j] * scale;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t base = (i * c + j) * inner;
        for (int64_t k = 0; k < inner; ++k) py[base + k] = px[base + k] * scale + shift;
      }
    }
    return Status::ok();
  });
}

}  // namespace kiln::backends::reference
