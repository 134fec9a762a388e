// batch_norm in inference form: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias,
// computed like PyTorch's CPU kernel as one per-channel scale and shift; batch_norm_train
// (batch statistics, PyTorch's running-statistics update) and batch_norm_backward.
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

// ---- training ------------------------------------------------------------------
// Statistics over every dim but 1 (n = N * H * W values per channel), accumulated in double.

namespace {

struct ChannelView {
  int64_t n, c, inner;  // x viewed as [n, c, inner]
  int64_t count() const { return n * inner; }
};

ChannelView channelView(const Tensor& x) {
  return ChannelView{x.shape()[0], x.shape()[1], product(x.shape(), 2, x.shape().rank())};
}

/// Calls f(index) for every element of channel j.
template <typename F>
void forChannel(const ChannelView& v, int64_t j, F&& f) {
  for (int64_t i = 0; i < v.n; ++i) {
    const int64_t base = (i * v.c + j) * v.inner;
    for (int64_t k = 0; k < v.inner; ++k) f(base + k);
  }
}

}  // namespace

template <>
Status kernel<OpKind::BatchNormTrain>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& a = ctx.attrs<BatchNormTrainAttrs>();
  const Tensor& x = ctx.in[0];
  const ChannelView v = channelView(x);
  if (v.count() < 2)
    return error(ctx.node.loc(),
                 "{}: batch statistics need more than 1 value per channel, got input {}", ctx.op(),
                 x.type().str());
  return dispatchFloat(ctx, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const T* weight = ctx.in[1].data<T>();
    const T* bias = ctx.in[2].data<T>();
    const T* runMean = ctx.in[3].data<T>();
    const T* runVar = ctx.in[4].data<T>();
    T* py = ctx.out[0].data<T>();
    T* mean = ctx.out[1].data<T>();
    T* var = ctx.out[2].data<T>();
    T* newMean = ctx.out[3].data<T>();
    T* newVar = ctx.out[4].data<T>();
    const double count = static_cast<double>(v.count());
    for (int64_t j = 0; j < v.c; ++j) {
      double sum = 0, sq = 0;
      forChannel(v, j, [&](int64_t i) { sum += px[i]; });
      const double m = sum / count;
      forChannel(v, j, [&](int64_t i) { sq += (px[i] - m) * (px[i] - m); });
      const double biased = sq / count;
      const double scale = static_cast<double>(weight[j]) / std::sqrt(biased + a.epsilon);
      forChannel(v, j, [&](int64_t i) { py[i] = T((px[i] - m) * scale + bias[j]); });
      mean[j] = T(m);
      var[j] = T(biased);
      newMean[j] = T((1 - a.momentum) * runMean[j] + a.momentum * m);
      newVar[j] = T((1 - a.momentum) * runVar[j] + a.momentum * sq / (count - 1));
    }
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::BatchNormBackward>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const double eps = ctx.attrs<BatchNormAttrs>().epsilon;
  const ChannelView v = channelView(ctx.in[1]);
  return dispatchFloat(ctx, ctx.in[1].dtype(), [&](auto tag) {
    using T = decltype(tag);
    // operands: dy, x, weight, batch mean, batch variance; results: dx, dweight, dbias
    const T* dy = ctx.in[0].data<T>();
    const T* x = ctx.in[1].data<T>();
    const T* weight = ctx.in[2].data<T>();
    const T* mean = ctx.in[3].data<T>();
    const T* var = ctx.in[4].data<T>();
    T* dx = ctx.out[0].data<T>();
    T* dweight = ctx.out[1].data<T>();
    T* dbias = ctx.out[2].data<T>();
    const double count = static_cast<double>(v.count());
    for (int64_t j = 0; j < v.c; ++j) {
      const double invstd = 1.0 / std::sqrt(static_cast<double>(var[j]) + eps);
      const double m = mean[j];
      double sumDy = 0, sumDyXhat = 0;
      forChannel(v, j, [&](int64_t i) {
        sumDy += dy[i];
        sumDyXhat += dy[i] * (x[i] - m) * invstd;
      });
      // dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))
      const double k = weight[j] * invstd;
      forChannel(v, j, [&](int64_t i) {
        const double xhat = (x[i] - m) * invstd;
        dx[i] = T(k * (dy[i] - sumDy / count - xhat * sumDyXhat / count));
      });
      dweight[j] = T(sumDyXhat);
      dbias[j] = T(sumDy);
    }
    return Status::ok();
  });
}

}  // namespace kiln::backends::reference
