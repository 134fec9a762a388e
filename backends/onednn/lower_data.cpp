// Lowering of the data-movement ops: concat (oneDNN), split / slice / transpose / pad as
// reorders between strided or sub-memory descriptors, reshape / flatten / reorder
// as views when the bytes already fit, and constants computed at compile time.
#include <algorithm>

#include "backends/onednn/kernels.h"
#include "backends/onednn/lowering.h"

namespace kiln::backends::onednn {

using namespace ir;

namespace {

Dims rowMajorStrides(const Dims& d) {
  Dims s(d.size(), 1);
  for (size_t i = d.size(); i-- > 1;) s[i - 1] = s[i] * d[i];
  return s;
}

int64_t elements(const Dims& d) {
  int64_t n = 1;
  for (int64_t v : d) n *= v;
  return n;
}

/// A descriptor of `dims` reading memory at element `offset` with `strides` (all >= 0).
Md stridedMd(const Dims& dims, const Dims& strides, int64_t offset) {
  Md md(dims, dnnl::memory::data_type::f32, strides);
  md.data.offset0 = offset;
  return md;
}

/// Copies the box `dims` at `offsets` of `src` into `dst`. Sub-memory descriptors of blocked
/// layouts must start on a block boundary; otherwise the source goes through row-major.
void addSubCopy(LowerContext& ctx, const Value* src, const Dims& dims, const Dims& offsets,
                Slot dst, const Md& dstMd) {
  try {
    const Md sub = ctx.md(src).submemory_desc(dims, offsets);
    ctx.addReorder(Slot::value(src), sub, dst, dstMd);
    return;
  } catch (const dnnl::error&) {
  }
  Md plain;
  const Slot s = ctx.plainOperand(src, plain);
  ctx.addReorder(s, plain.submemory_desc(dims, offsets), dst, dstMd);
}

}  // namespace

template <>
Status lower<OpKind::Concat>(LowerContext& ctx) {
  const Value* y = ctx.result();
  const int64_t rank = static_cast<int64_t>(ctx.dims(y).size());
  int64_t axis = ctx.attrs<AxisAttrs>().axis;
  if (axis < 0) axis += rank;
  std::vector<Md> srcs;
  std::vector<StepArg> args;
  for (size_t i = 0; i < ctx.node().numOperands(); ++i) {
    const Value* x = ctx.in(i);
    if (ctx.dims(x)[axis] == 0) continue;  // adds nothing
    args.push_back({DNNL_ARG_MULTIPLE_SRC + static_cast<int>(srcs.size()), Slot::value(x), ctx.md(x)});
    srcs.push_back(ctx.md(x));
  }
  if (elements(ctx.dims(y)) == 0) return Status::ok();
  dnnl::concat::primitive_desc pd(ctx.md(y), static_cast<int>(axis), srcs, ctx.engine(),
                                  LowerContext::attr());
  args.push_back({DNNL_ARG_DST, Slot::value(y), ctx.md(y)});
  ctx.add(pd, std::move(args));
  return Status::ok();
}

template <>
Status lower<OpKind::Split>(LowerContext& ctx) {
  const Value* x = ctx.in(0);
  const Dims xd = ctx.dims(x);
  int64_t axis = ctx.attrs<SplitAttrs>().axis;
  if (axis < 0) axis += static_cast<int64_t>(xd.size());
  int64_t offset = 0;
  for (size_t r = 0; r < ctx.node().numResults(); ++r) {
    const Value* y = ctx.result(r);
    const Dims yd = ctx.dims(y);
    Dims offsets(xd.size(), 0);
    offsets[axis] = offset;
    offset += yd[axis];
    if (elements(yd) == 0) continue;
    addSubCopy(ctx, x, yd, offsets, Slot::value(y), ctx.md(y));
  }
  return Status::ok();
}

template <>
Status lower<OpKind::Slice>(LowerContext& ctx) {
  const auto& a = ctx.attrs<SliceAttrs>();
  const Value* x = ctx.in(0);
  const Value* y = ctx.result();
  const Dims xd = ctx.dims(x), yd = ctx.dims(y);
  const size_t rank = xd.size();
  if (elements(yd) == 0) return Status::ok();
  Dims start(rank, 0), step(rank, 1);
  for (size_t i = 0; i < a.starts.size(); ++i) {
    int64_t axis = a.axes.empty() ? static_cast<int64_t>(i) : a.axes[i];
    if (axis < 0) axis += static_cast<int64_t>(rank);
    const int64_t dim = xd[axis];
    const int64_t s = a.steps.empty() ? 1 : a.steps[i];
    // ONNX: negative indices count from the end, then clamp ([0, dim] going forward,
    // [-1, dim - 1] going backward).
    auto clampIndex = [&](int64_t v, int64_t lo, int64_t hi) {
      return std::clamp(v < 0 ? v + dim : v, lo, hi);
    };
    start[axis] = s > 0 ? clampIndex(a.starts[i], 0, dim) : clampIndex(a.starts[i], 0, dim - 1);
    step[axis] = s;
  }
  Md xPlain, yPlain;
  const Slot xs = ctx.plainOperand(x, xPlain);
  const Dims xStrides = rowMajorStrides(xd);
  Dims strides(rank);
  int64_t offset = 0;
  bool forward = true;
  for (size_t d = 0; d < rank; ++d) {
    strides[d] = xStrides[d] * step[d];
    offset += start[d] * xStrides[d];
    forward = forward && step[d] > 0;
  }
  if (forward) {
    ctx.addReorder(xs, stridedMd(yd, strides, offset), Slot::value(y), ctx.md(y));
    return Status::ok();
  }
  const Slot ys = ctx.plainResult(y, yPlain);
  ctx.addKernel(stridedCopyKernel(yd, strides, offset), {xs, ys});
  ctx.finishPlainResult(y, ys, yPlain);
  return Status::ok();
}

template <>
Status lower<OpKind::Transpose>(LowerContext& ctx) {
  const auto& perm = ctx.attrs<TransposeAttrs>().perm;
  const Value* x = ctx.in(0);
  const Value* y = ctx.result();
  if (elements(ctx.dims(y)) == 0) return Status::ok();
  Md xPlain;
  const Slot xs = ctx.plainOperand(x, xPlain);
  const Dims xStrides = rowMajorStrides(ctx.dims(x));
  Dims strides(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) strides[d] = xStrides[perm[d]];  // y dim d is x dim perm[d]
  ctx.addReorder(xs, stridedMd(ctx.dims(y), strides, 0), Slot::value(y), ctx.md(y));
  return Status::ok();
}

template <>
Status lower<OpKind::Pad>(LowerContext& ctx) {
  const auto& a = ctx.attrs<PadAttrs>();
  const Value* x = ctx.in(0);
  const Value* y = ctx.result();
  const Dims xd = ctx.dims(x), yd = ctx.dims(y);
  if (elements(yd) == 0) return Status::ok();
  Md yPlain;
  const Slot ys = ctx.plainResult(y, yPlain);
  ctx.addKernel(fillKernel(elements(yd), static_cast<float>(a.value)), {ys});
  if (elements(xd) > 0) {
    const Dims offsets(a.pads.begin(), a.pads.begin() + static_cast<ptrdiff_t>(xd.size()));
    ctx.addReorder(Slot::value(x), ctx.md(x), ys, yPlain.submemory_desc(xd, offsets));
  }
  ctx.finishPlainResult(y, ys, yPlain);
  return Status::ok();
}

namespace {

/// reshape and flatten: the logical row-major order is kept. Views when both sides are
/// row-major; otherwise reorders through it.
Status lowerReshape(LowerContext& ctx) {
  const Value* x = ctx.in(0);
  const Value* y = ctx.result();
  const Dims xd = ctx.dims(x), yd = ctx.dims(y);
  const bool xRow = isRowMajor(x->type().layout) || ctx.md(x) == plainMd(xd);
  const bool yRow = isRowMajor(y->type().layout) || ctx.md(y) == plainMd(yd);
  if (xRow && yRow) {
    ctx.view(y, x);
    return Status::ok();
  }
  if (elements(yd) == 0) return Status::ok();
  if (yRow) {
    ctx.addReorder(Slot::value(x), ctx.md(x), Slot::value(y), plainMd(xd));
    return Status::ok();
  }
  Md xPlain;
  const Slot xs = ctx.plainOperand(x, xPlain);
  ctx.addReorder(xs, plainMd(yd), Slot::value(y), ctx.md(y));
  return Status::ok();
}

}  // namespace

template <>
Status lower<OpKind::Reshape>(LowerContext& ctx) {
  return lowerReshape(ctx);
}

template <>
Status lower<OpKind::Flatten>(LowerContext& ctx) {
  return lowerReshape(ctx);
}

template <>
Status lower<OpKind::Reorder>(LowerContext& ctx) {
  const Value* x = ctx.in(0);
  const Value* y = ctx.result();
  if (ctx.md(x) == ctx.md(y) || sameMemoryOrder(x->type().layout, y->type().layout)) {
    ctx.view(y, x);
    return Status::ok();
  }
  if (elements(ctx.dims(y)) == 0) return Status::ok();
  ctx.addReorder(Slot::value(x), ctx.md(x), Slot::value(y), ctx.md(y));
  return Status::ok();
}

template <>
Status lower<OpKind::Constant>(LowerContext& ctx) {
  const auto& a = ctx.attrs<ConstantAttrs>();
  const Value* y = ctx.result();
  Tensor t = Tensor::zeros(ctx.type(y));
  float* p = t.data<float>();
  const int64_t n = t.numElements();
  if (a.value.size() == 1) {
    std::fill_n(p, n, static_cast<float>(a.value[0]));
  } else if (static_cast<int64_t>(a.value.size()) == n) {
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(a.value[i]);
  } else {
    return ctx.fail("{} values for {} elements", a.value.size(), n);
  }
  ctx.setConstant(y, std::move(t));
  return Status::ok();
}

}  // namespace kiln::backends::onednn
