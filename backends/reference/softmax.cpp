// softmax and log_softmax over one axis, numerically stable: the row maximum is subtracted
// before exponentiating, so large logits neither overflow nor lose the small terms.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/reference/kernels.h"

namespace kiln::backends::reference {

using namespace ir;

namespace {

template <bool Log>
Status softmax(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const Shape& s = ctx.in[0].shape();
  int64_t axis = ctx.attrs<AxisAttrs>().axis;
  if (axis < 0) axis += static_cast<int64_t>(s.rank());
  const int64_t outer = product(s, 0, axis), len = s[axis], inner = product(s, axis + 1, s.rank());
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = ctx.in[0].data<T>();
    T* y = ctx.out[0].data<T>();
    // The reduction runs along a strided axis; keep one running max/sum per inner position
    // so the inner loops stay contiguous.
    std::vector<T> mx(inner), sum(inner);
    for (int64_t o = 0; o < outer; ++o) {
      const T* xo = x + o * len * inner;
      T* yo = y + o * len * inner;
      std::fill(mx.begin(), mx.end(), -std::numeric_limits<T>::infinity());
      std::fill(sum.begin(), sum.end(), T(0));
      for (int64_t l = 0; l < len; ++l)
        for (int64_t i = 0; i < inner; ++i)
          if (xo[l * inner + i] > mx[i] || std::isnan(xo[l * inner + i])) mx[i] = xo[l * inner + i];
      for (int64_t l = 0; l < len; ++l) {
        for (int64_t i = 0; i < inner; ++i) {
          const T e = std::exp(xo[l * inner + i] - mx[i]);
          if constexpr (!Log) yo[l * inner + i] = e;
          sum[i] += e;
        }
      }
      if constexpr (Log) {
        for (int64_t i = 0; i < inner; ++i) sum[i] = std::log(sum[i]);
        for (int64_t l = 0; l < len; ++l)
          for (int64_t i = 0; i < inner; ++i)
            yo[l * inner + i] = xo[l * inner + i] - mx[i] - sum[i];
      } else {
        for (int64_t l = 0; l < len; ++l)
          for (int64_t i = 0; i < inner; ++i) yo[l * inner + i] /= sum[i];
      }
    }
    return Status::ok();
  });
}

}  // namespace

template <>
Status kernel<OpKind::Softmax>(const KernelContext& ctx) {
  return softmax<false>(ctx);
}

template <>
Status kernel<OpKind::LogSoftmax>(const KernelContext& ctx) {
  return softmax<true>(ctx);
}

}  // namespace kiln::backends::reference
