// Data movement kernels: concat, split, slice, reshape, flatten, transpose, pad, reorder and
// constant. They move elements without arithmetic, so (except pad and constant, which write
// a value) they copy any dtype bit-exactly.
#include <algorithm>
#include <cstring>

#include "backends/reference/kernels.h"

namespace kiln::backends::reference {

using namespace ir;

namespace {

int64_t normalized(int64_t axis, size_t rank) {
  return axis < 0 ? axis + static_cast<int64_t>(rank) : axis;
}

/// Copies the row-major data unchanged (reshape, flatten: same elements, new shape).
Status copyData(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  if (ctx.out[0].nbytes() != ctx.in[0].nbytes())
    return error(ctx.node.loc(), "{}: result has {} bytes, operand {}", ctx.op(),
                 ctx.out[0].nbytes(), ctx.in[0].nbytes());
  if (ctx.in[0].nbytes()) std::memcpy(ctx.out[0].raw(), ctx.in[0].raw(), ctx.in[0].nbytes());
  return Status::ok();
}

/// One memory axis of a layout: its extent and the stride it has in the row-major logical
/// tensor. A blocked layout (nChw8c) splits its blocked dim into an outer axis in the
/// layout's order and an inner axis of the block size, last.
struct MemoryAxis {
  int64_t extent;
  int64_t logicalStride;
};

Expected<std::vector<MemoryAxis>> memoryAxes(const KernelContext& ctx, Layout layout,
                                             const Shape& shape) {
  const std::span<const int> order = layoutOrder(layout);
  const auto [blockDim, blockSize] = layoutBlock(layout);
  if (order.size() != shape.rank())
    return error(ctx.node.loc(), "{}: layout {{{}}} does not fit shape {}", ctx.op(),
                 layoutName(layout), shape.str());
  const std::vector<int64_t> logical = rowMajorStrides(shape);
  std::vector<MemoryAxis> axes;
  for (int d : order) {
    if (d != blockDim) {
      axes.push_back({shape[d], logical[d]});
      continue;
    }
    if (shape[d] % blockSize != 0)
      return error(ctx.node.loc(), "{}: dim {} of {} is not a multiple of the {} block of {{{}}}",
                   ctx.op(), d, shape.str(), blockSize, layoutName(layout));
    axes.push_back({shape[d] / blockSize, logical[d] * blockSize});
  }
  if (blockDim >= 0) axes.push_back({blockSize, logical[blockDim]});
  return axes;
}

/// Walks a layout's memory in order: one side contiguous, the other at logical strides.
Strided<2> memoryWalk(const std::vector<MemoryAxis>& axes, bool memoryIsDst) {
  Strided<2> s;
  int64_t stride = 1;
  std::vector<int64_t> contiguous(axes.size());
  for (size_t i = axes.size(); i-- > 0;) {
    contiguous[i] = stride;
    stride *= axes[i].extent;
  }
  for (size_t i = 0; i < axes.size(); ++i) {
    s.dims.push_back(axes[i].extent);
    s.strides[memoryIsDst ? 0 : 1].push_back(contiguous[i]);
    s.strides[memoryIsDst ? 1 : 0].push_back(axes[i].logicalStride);
  }
  return s;
}

}  // namespace

template <>
Status kernel<OpKind::Concat>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const Shape& ys = ctx.out[0].shape();
  const int64_t axis = normalized(ctx.attrs<AxisAttrs>().axis, ys.rank());
  const int64_t outer = product(ys, 0, axis), inner = product(ys, axis + 1, ys.rank());
  const int64_t rowOut = ys[axis] * inner;
  return dispatchBits(ctx, ctx.out[0].dtype(), [&](auto tag) {
    using U = decltype(tag);
    U* y = ctx.out[0].data<U>();
    int64_t offset = 0;
    for (const Tensor& x : ctx.in) {
      const int64_t row = x.shape()[axis] * inner;
      const U* px = x.data<U>();
      for (int64_t o = 0; o < outer; ++o) std::copy_n(px + o * row, row, y + o * rowOut + offset);
      offset += row;
    }
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::Split>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const Shape& xs = ctx.in[0].shape();
  const int64_t axis = normalized(ctx.attrs<SplitAttrs>().axis, xs.rank());
  const int64_t outer = product(xs, 0, axis), inner = product(xs, axis + 1, xs.rank());
  const int64_t rowIn = xs[axis] * inner;
  return dispatchBits(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using U = decltype(tag);
    const U* x = ctx.in[0].data<U>();
    int64_t offset = 0;
    for (Tensor& y : ctx.out) {
      const int64_t row = y.shape()[axis] * inner;
      U* py = y.data<U>();
      for (int64_t o = 0; o < outer; ++o) std::copy_n(x + o * rowIn + offset, row, py + o * row);
      offset += row;
    }
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::Slice>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& a = ctx.attrs<SliceAttrs>();
  const Shape& xs = ctx.in[0].shape();
  const Shape& ys = ctx.out[0].shape();
  const std::vector<int64_t> strides = rowMajorStrides(xs);
  // Unsliced axes read everything with step 1.
  std::vector<int64_t> start(xs.rank(), 0), step(xs.rank(), 1);
  for (size_t i = 0; i < a.starts.size(); ++i) {
    const int64_t axis =
        normalized(a.axes.empty() ? static_cast<int64_t>(i) : a.axes[i], xs.rank());
    const int64_t dim = xs[axis];
    const int64_t s = a.steps.empty() ? 1 : a.steps[i];
    // ONNX: negative indices count from the end, then clamp ([0, dim] going forward,
    // [-1, dim - 1] going backward).
    auto clampIndex = [&](int64_t v, int64_t lo, int64_t hi) {
      return std::clamp(v < 0 ? v + dim : v, lo, hi);
    };
    const int64_t b = s > 0 ? clampIndex(a.starts[i], 0, dim) : clampIndex(a.starts[i], 0, dim - 1);
    const int64_t e = s > 0 ? clampIndex(a.ends[i], 0, dim) : clampIndex(a.ends[i], -1, dim - 1);
    const int64_t len = std::max<int64_t>(0, s > 0 ? ceilDiv(e - b, s) : ceilDiv(b - e, -s));
    if (len != ys[axis])
      return error(ctx.node.loc(), "{}: axis {} yields {} elements, the result type has {}",
                   ctx.op(), axis, len, ys[axis]);
    start[axis] = b;
    step[axis] = s;
  }
  int64_t base = 0;
  Strided<2> space{ys.dims(), {rowMajorStrides(ys), std::vector<int64_t>(xs.rank())}};
  for (size_t d = 0; d < xs.rank(); ++d) {
    if (ys[d] == 0) return Status::ok();  // nothing to copy; start may be one past the end
    base += start[d] * strides[d];
    space.strides[1][d] = step[d] * strides[d];
  }
  return dispatchBits(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using U = decltype(tag);
    stridedCopy(ctx.out[0].data<U>(), ctx.in[0].data<U>() + base, space);
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::Reshape>(const KernelContext& ctx) {
  return copyData(ctx);
}

template <>
Status kernel<OpKind::Flatten>(const KernelContext& ctx) {
  return copyData(ctx);
}

template <>
Status kernel<OpKind::Transpose>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& perm = ctx.attrs<TransposeAttrs>().perm;
  const Shape& ys = ctx.out[0].shape();
  const std::vector<int64_t> inStrides = rowMajorStrides(ctx.in[0].shape());
  // Result dim d is operand dim perm[d].
  Strided<2> space{ys.dims(), {rowMajorStrides(ys), std::vector<int64_t>(ys.rank())}};
  for (size_t d = 0; d < ys.rank(); ++d) space.strides[1][d] = inStrides[perm[d]];
  return dispatchBits(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using U = decltype(tag);
    stridedCopy(ctx.out[0].data<U>(), ctx.in[0].data<U>(), space);
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::Pad>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const auto& a = ctx.attrs<PadAttrs>();
  const Shape& xs = ctx.in[0].shape();
  const Shape& ys = ctx.out[0].shape();
  const size_t rank = xs.rank();
  const std::vector<int64_t> xStrides = rowMajorStrides(xs), yStrides = rowMajorStrides(ys);
  // The operand lands at offset `begin` in every dim (a negative begin crops), so copy the
  // overlap of the two boxes after filling the result with the pad value.
  Strided<2> overlap{std::vector<int64_t>(rank), {yStrides, xStrides}};
  int64_t yBase = 0, xBase = 0;
  bool any = true;
  for (size_t d = 0; d < rank; ++d) {
    const int64_t begin = a.pads[d];
    const int64_t yFrom = std::max<int64_t>(0, begin), xFrom = std::max<int64_t>(0, -begin);
    overlap.dims[d] = std::min(ys[d] - yFrom, xs[d] - xFrom);
    if (overlap.dims[d] <= 0) any = false;
    yBase += yFrom * yStrides[d];
    xBase += xFrom * xStrides[d];
  }
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* y = ctx.out[0].data<T>();
    std::fill_n(y, ctx.out[0].numElements(), T(a.value));
    if (any) stridedCopy(y + yBase, ctx.in[0].data<T>() + xBase, overlap);
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::Reorder>(const KernelContext& ctx) {
  const Tensor& x = ctx.in[0];
  Tensor& y = ctx.out[0];
  // Through the logical row-major order: x's memory is scattered to it, y's gathered from
  // it. A row-major side is that order already; if neither is, a temporary holds it.
  KILN_ASSIGN_OR_RETURN(auto xAxes, memoryAxes(ctx, x.layout(), x.shape()));
  KILN_ASSIGN_OR_RETURN(auto yAxes, memoryAxes(ctx, y.layout(), y.shape()));
  const bool xPlain = isRowMajor(x.layout()), yPlain = isRowMajor(y.layout());
  return dispatchBits(ctx, x.dtype(), [&](auto tag) {
    using U = decltype(tag);
    const U* px = x.data<U>();
    U* py = y.data<U>();
    std::vector<U> temp;
    const U* logical = px;
    if (!xPlain) {
      U* dst = py;
      if (!yPlain) {
        temp.resize(x.numElements());
        dst = temp.data();
      }
      stridedCopy(dst, px, memoryWalk(xAxes, /*memoryIsDst=*/false));
      logical = dst;
    }
    if (!yPlain)
      stridedCopy(py, logical, memoryWalk(yAxes, /*memoryIsDst=*/true));
    else if (xPlain)
      std::copy_n(px, x.numElements(), py);
    return Status::ok();
  });
}

template <>
Status kernel<OpKind::Constant>(const KernelContext& ctx) {
  const auto& value = ctx.attrs<ConstantAttrs>().value;
  Tensor& y = ctx.out[0];
  return dispatchFloat(ctx, y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* py = y.data<T>();
    const int64_t n = y.numElements();
    if (value.size() == 1) {
      std::fill_n(py, n, T(value[0]));
    } else {
      for (int64_t i = 0; i < n; ++i) py[i] = T(value[i]);
    }
    return Status::ok();
  });
}

}  // namespace kiln::backends::reference
