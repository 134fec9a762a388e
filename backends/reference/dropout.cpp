// dropout: identity in inference; in training a Bernoulli(1 - p) keep-mask scaled by
// 1 / (1 - p), drawn from std::mt19937_64 seeded with the `seed` attribute. The standard
// fixes mt19937_64's output sequence, so a seed gives the same mask on every platform.
#include <random>

#include "backends/reference/kernels.h"

namespace kiln::backends::reference {

using namespace ir;

template <>
Status kernel<OpKind::Dropout>(const KernelContext& ctx) {
  const auto& a = ctx.attrs<DropoutAttrs>();
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = ctx.in[0].data<T>();
    T* y = ctx.out[0].data<T>();
    const int64_t n = ctx.in[0].numElements();
    if (!a.training || a.p == 0.0) {
      for (int64_t i = 0; i < n; ++i) y[i] = x[i];
      return Status::ok();
    }
    std::mt19937_64 rng(static_cast<uint64_t>(a.seed));
    const T scale = T(1.0 / (1.0 - a.p));
    for (int64_t i = 0; i < n; ++i) {
      // 53 random bits -> u uniform in [0, 1); element dropped with probability p.
      const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
      y[i] = u < a.p ? T(0) : x[i] * scale;
    }
    return Status::ok();
  });
}

}  // namespace kiln::backends::reference
