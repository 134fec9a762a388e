// Training kernels: reduce_sum, softmax_cross_entropy and its backward, count_correct, the
// optimizer updates (sgd, rmsprop, adamw, ema) and global_norm. Reductions accumulate in
// double; the rmsprop / adamw / ema formulas are evaluated in double per element.
#include <cmath>
#include <limits>

#include "backends/reference/kernels.h"

namespace kiln::backends::reference {

using namespace ir;

template <>
Status kernel<OpKind::ReduceSum>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const Shape& xs = ctx.in[0].shape();
  std::vector<bool> reduced(xs.rank(), false);
  const auto& a = ctx.attrs<ReduceAttrs>();
  for (int64_t axis : a.axes)
    reduced[axis < 0 ? axis + static_cast<int64_t>(xs.rank()) : axis] = true;
  if (a.axes.empty()) reduced.assign(xs.rank(), true);
  // The result viewed with keepdims: reduced dims have stride 0, so every input element
  // lands on its result element.
  Shape kept = xs;
  for (size_t d = 0; d < xs.rank(); ++d)
    if (reduced[d]) kept[d] = 1;
  Strided<2> space{xs.dims(), {broadcastStrides(kept, xs), rowMajorStrides(xs)}};
  std::vector<double> acc(static_cast<size_t>(ctx.out[0].numElements()), 0.0);
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = ctx.in[0].data<T>();
    forEachRow(coalesce(space), [&](const std::array<int64_t, 2>& off, int64_t len,
                                    const std::array<int64_t, 2>& inner) {
      for (int64_t i = 0; i < len; ++i) acc[off[0] + i * inner[0]] += x[off[1] + i * inner[1]];
    });
    T* y = ctx.out[0].data<T>();
    for (size_t i = 0; i < acc.size(); ++i) y[i] = T(acc[i]);
    return Status::ok();
  });
}

namespace {

/// Per row of [N, K] logits: the smoothed target t~ = (1 - s) * t + s / K, from class ids
/// (t one-hot) or probabilities. `f(row, k, tk)` sees every target entry.
struct Targets {
  const KernelContext& ctx;
  const Tensor& t;
  double smoothing;
  int64_t k;

  bool ids() const { return t.dtype() == DType::I64; }
  /// The class id of a row, checked against [0, K).
  Expected<int64_t> classId(int64_t row) const {
    const int64_t id = t.data<int64_t>()[row];
    if (id < 0 || id >= k)
      return error(ctx.node.loc(), "{}: class id {} of row {} is outside [0, {})", ctx.op(), id,
                   row, k);
    return id;
  }
  /// t~ of row `row`, written to `out` (size K).
  Status smoothed(int64_t row, std::vector<double>& out) const {
    if (ids()) {
      KILN_ASSIGN_OR_RETURN(int64_t id, classId(row));
      std::fill(out.begin(), out.end(), smoothing / static_cast<double>(k));
      out[id] += 1.0 - smoothing;
      return Status::ok();
    }
    for (int64_t j = 0; j < k; ++j)
      out[j] = (1.0 - smoothing) * t.at(row * k + j) + smoothing / static_cast<double>(k);
    return Status::ok();
  }
};

/// log_softmax of one row, in double.
template <typename T>
void logSoftmax(const T* z, int64_t k, std::vector<double>& out) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < k; ++j)
    if (z[j] > mx || std::isnan(static_cast<double>(z[j]))) mx = z[j];
  double sum = 0;
  for (int64_t j = 0; j < k; ++j) sum += std::exp(z[j] - mx);
  const double lse = mx + std::log(sum);
  for (int64_t j = 0; j < k; ++j) out[j] = z[j] - lse;
}

}  // namespace

template <>
Status kernel<OpKind::SoftmaxCrossEntropy>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const Tensor& logits = ctx.in[0];
  const int64_t n = logits.shape()[0], k = logits.shape()[1];
  const Targets targets{ctx, ctx.in[1], ctx.attrs<CrossEntropyAttrs>().label_smoothing, k};
  return dispatchFloat(ctx, logits.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    std::vector<double> logp(k), t(k);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
      logSoftmax(logits.data<T>() + i * k, k, logp);
      KILN_TRY(targets.smoothed(i, t));
      for (int64_t j = 0; j < k; ++j)
        if (t[j] != 0) total -= t[j] * logp[j];
    }
    // mean over the batch (an empty batch gives NaN, like PyTorch)
    ctx.out[0].data<T>()[0] = T(total / static_cast<double>(n));
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::SoftmaxCrossEntropyBackward>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const Tensor& logits = ctx.in[1];
  const int64_t n = logits.shape()[0], k = logits.shape()[1];
  const Targets targets{ctx, ctx.in[2], ctx.attrs<CrossEntropyAttrs>().label_smoothing, k};
  return dispatchFloat(ctx, logits.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    // d/dz of -sum_j t~_j log p_j is p * sum(t~) - t~; the mean divides by N.
    const double scale = ctx.in[0].at(0) / static_cast<double>(n);
    std::vector<double> logp(k), t(k);
    T* dz = ctx.out[0].data<T>();
    for (int64_t i = 0; i < n; ++i) {
      logSoftmax(logits.data<T>() + i * k, k, logp);
      KILN_TRY(targets.smoothed(i, t));
      double mass = 0;
      for (int64_t j = 0; j < k; ++j) mass += t[j];
      for (int64_t j = 0; j < k; ++j) dz[i * k + j] = T(scale * (std::exp(logp[j]) * mass - t[j]));
    }
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::CountCorrect>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const Tensor& logits = ctx.in[0];
  const int64_t n = logits.shape()[0], k = logits.shape()[1];
  const Targets targets{ctx, ctx.in[1], 0.0, k};
  // The first maximum of a row (a NaN counts as the maximum, as in torch.argmax).
  auto argmax = [k](const Tensor& t, int64_t row) {
    int64_t best = 0;
    for (int64_t j = 1; j < k; ++j) {
      const double v = t.at(row * k + j), b = t.at(row * k + best);
      if (!std::isnan(b) && (v > b || std::isnan(v))) best = j;
    }
    return best;
  };
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t want = 0;
    if (targets.ids()) {
      KILN_ASSIGN_OR_RETURN(want, targets.classId(i));
    } else {
      want = argmax(ctx.in[1], i);
    }
    if (k > 0 && argmax(logits, i) == want) ++correct;
  }
  ctx.out[0].data<int64_t>()[0] = correct;
  return Status::ok();
}

template <>
Status kernel<OpKind::SgdUpdate>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& a = ctx.attrs<SgdAttrs>();
  const bool hasBuffer = ctx.in.size() == 4;
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    // torch.optim.SGD (dampening 0): g += wd * p; buf = momentum * buf + g;
    // d = nesterov ? g + momentum * buf : buf; p -= lr * d. A zero buffer makes the first
    // step's buf equal g, which is how torch initializes it.
    const T* p = ctx.in[0].data<T>();
    const T* grad = ctx.in[1].data<T>();
    const T lr = ctx.in[2].data<T>()[0];
    const T* buf = hasBuffer ? ctx.in[3].data<T>() : nullptr;
    T* newP = ctx.out[0].data<T>();
    T* newBuf = hasBuffer ? ctx.out[1].data<T>() : nullptr;
    const T wd = T(a.weight_decay), m = T(a.momentum);
    const int64_t count = ctx.in[0].numElements();
    for (int64_t i = 0; i < count; ++i) {
      T g = a.weight_decay != 0.0 ? grad[i] + wd * p[i] : grad[i];
      if (hasBuffer) {
        const T b = m * buf[i] + g;
        newBuf[i] = b;
        g = a.nesterov ? g + m * b : b;
      }
      newP[i] = p[i] - lr * g;
    }
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::RmsPropUpdate>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& a = ctx.attrs<RmsPropAttrs>();
  const bool hasBuffer = ctx.in.size() == 5;
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = ctx.in[0].data<T>();
    const T* grad = ctx.in[1].data<T>();
    const double lr = ctx.in[2].data<T>()[0];
    const T* sq = ctx.in[3].data<T>();
    const T* buf = hasBuffer ? ctx.in[4].data<T>() : nullptr;
    T* newP = ctx.out[0].data<T>();
    T* newSq = ctx.out[1].data<T>();
    T* newBuf = hasBuffer ? ctx.out[2].data<T>() : nullptr;
    const int64_t count = ctx.in[0].numElements();
    for (int64_t i = 0; i < count; ++i) {
      const double g = a.weight_decay != 0.0 ? grad[i] + a.weight_decay * p[i] : double(grad[i]);
      double s = 0, step = 0;
      if (a.tf) {
        // timm RMSpropTF: TensorFlow's order, eps inside the root, lr inside the buffer.
        s = sq[i] + (1.0 - a.alpha) * (g * g - sq[i]);
        const double d = g / std::sqrt(s + a.eps);
        step = hasBuffer ? a.momentum * buf[i] + lr * d : lr * d;
        if (hasBuffer) newBuf[i] = T(step);
      } else {
        // torch.optim.RMSprop (not centered).
        s = a.alpha * sq[i] + (1.0 - a.alpha) * g * g;
        const double d = g / (std::sqrt(s) + a.eps);
        const double b = hasBuffer ? a.momentum * buf[i] + d : d;
        if (hasBuffer) newBuf[i] = T(b);
        step = lr * b;
      }
      newSq[i] = T(s);
      newP[i] = T(p[i] - step);
    }
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::AdamWUpdate>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& a = ctx.attrs<AdamWAttrs>();
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = ctx.in[0].data<T>();
    const T* grad = ctx.in[1].data<T>();
    const double lr = ctx.in[2].data<T>()[0];
    const T* m = ctx.in[3].data<T>();
    const T* v = ctx.in[4].data<T>();
    const double t = ctx.in[5].data<T>()[0] + 1.0;  // this update's number
    T* newP = ctx.out[0].data<T>();
    T* newM = ctx.out[1].data<T>();
    T* newV = ctx.out[2].data<T>();
    // torch.optim.AdamW: p *= 1 - lr wd; m = lerp(m, g, 1 - b1); v = b2 v + (1 - b2) g^2;
    // p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps), t = step + 1.
    const double stepSize = lr / (1.0 - std::pow(a.beta1, t));
    const double bc2Sqrt = std::sqrt(1.0 - std::pow(a.beta2, t));
    const double shrink = 1.0 - lr * a.weight_decay;
    const int64_t count = ctx.in[0].numElements();
    for (int64_t i = 0; i < count; ++i) {
      const double g = grad[i];
      const double mi = m[i] + (1.0 - a.beta1) * (g - m[i]);
      const double vi = a.beta2 * v[i] + (1.0 - a.beta2) * g * g;
      newM[i] = T(mi);
      newV[i] = T(vi);
      newP[i] = T(p[i] * shrink - stepSize * mi / (std::sqrt(vi) / bc2Sqrt + a.eps));
    }
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::EmaUpdate>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const double decay = ctx.attrs<EmaAttrs>().decay;
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* ema = ctx.in[0].data<T>();
    const T* x = ctx.in[1].data<T>();
    T* y = ctx.out[0].data<T>();
    const int64_t count = ctx.in[0].numElements();
    for (int64_t i = 0; i < count; ++i) y[i] = T(decay * ema[i] + (1.0 - decay) * x[i]);
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::GlobalNorm>(const KernelContext& ctx) {
  // Every element once, in any layout (the order of the sum is not observable beyond
  // rounding, and it is accumulated in double).
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    double sum = 0;
    for (const Tensor& t : ctx.in) {
      const T* x = t.data<T>();
      const int64_t count = t.numElements();
      for (int64_t i = 0; i < count; ++i) sum += static_cast<double>(x[i]) * x[i];
    }
    ctx.out[0].data<T>()[0] = T(std::sqrt(sum));
    return Status::ok();
  });
}

}  // namespace kiln::backends::reference
