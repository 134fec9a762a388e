// Dense kernels: matmul with numpy batch broadcasting, and linear (y = x W^T + b, W [out, in]).
#include "backends/reference/kernels.h"

namespace kiln::backends::reference {

using namespace ir;

namespace {

/// Offsets (in elements) of each batch matrix of an operand, for every batch index of the
/// result: operand batch dims are right-aligned and broadcast numpy-style.
std::vector<int64_t> batchOffsets(const Shape& operand, const Shape& result, int64_t matrixSize) {
  const size_t batchRank = result.rank() - 2;
  const Shape batch(std::vector<Dim>(operand.dims().begin(), operand.dims().end() - 2));
  const Shape resultBatch(std::vector<Dim>(result.dims().begin(), result.dims().end() - 2));
  const std::vector<int64_t> strides = broadcastStrides(batch, resultBatch);
  const int64_t count = product(resultBatch, 0, batchRank);
  std::vector<int64_t> offsets(count, 0);
  for (int64_t b = 0; b < count; ++b) {
    int64_t rest = b, off = 0;
    for (size_t d = batchRank; d-- > 0;) {
      off += (rest % resultBatch[d]) * strides[d];
      rest /= resultBatch[d];
    }
    offsets[b] = off * matrixSize;
  }
  return offsets;
}

}  // namespace

template <>
Status kernel<OpKind::MatMul>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const Shape& as = ctx.in[0].shape();
  const Shape& bs = ctx.in[1].shape();
  const Shape& ys = ctx.out[0].shape();
  if (as.rank() < 2 || bs.rank() < 2)
    return error(ctx.node.loc(), "{}: operands must have rank >= 2", ctx.op());
  const int64_t m = as[as.rank() - 2], k = as[as.rank() - 1], n = bs[bs.rank() - 1];
  const std::vector<int64_t> offA = batchOffsets(as, ys, m * k);
  const std::vector<int64_t> offB = batchOffsets(bs, ys, k * n);
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* pa = ctx.in[0].data<T>();
    const T* pb = ctx.in[1].data<T>();
    T* py = ctx.out[0].data<T>();  // zero-filled
    for (size_t batch = 0; batch < offA.size(); ++batch) {
      const T* a = pa + offA[batch];
      const T* b = pb + offB[batch];
      T* y = py + static_cast<int64_t>(batch) * m * n;
      for (int64_t i = 0; i < m; ++i) {
        T* yr = y + i * n;
        for (int64_t p = 0; p < k; ++p) {
          const T av = a[i * k + p];
          const T* br = b + p * n;
          for (int64_t j = 0; j < n; ++j) yr[j] += av * br[j];
        }
      }
    }
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::Linear>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const Tensor& x = ctx.in[0];
  const Tensor& w = ctx.in[1];
  const bool hasBias = ctx.in.size() == 3;
  const int64_t out = w.shape()[0], in = w.shape()[1];
  const int64_t rows = product(x.shape(), 0, x.shape().rank() - 1);
  return dispatchFloat(ctx, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    const T* pw = w.data<T>();
    const T* pb = hasBias ? ctx.in[2].data<T>() : nullptr;
    T* py = ctx.out[0].data<T>();
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = px + r * in;
      for (int64_t o = 0; o < out; ++o) {
        const T* wr = pw + o * in;
        T sum = T(0);
        for (int64_t i = 0; i < in; ++i) sum += xr[i] * wr[i];
        py[r * out + o] = pb ? sum + pb[o] : sum;
      }
    }
    return Status::ok();
  });
}

}  // namespace kiln::backends::reference
