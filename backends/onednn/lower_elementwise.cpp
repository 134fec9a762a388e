// Lowering of the elementwise ops (oneDNN eltwise and binary, in any layout, in place when the
// operand dies), channel_scale, softmax and log_softmax.
#include <limits>

#include "backends/onednn/kernels.h"
#include "backends/onednn/lowering.h"

namespace kiln::backends::onednn {

using namespace ir;
using dnnl::algorithm;
using dnnl::prop_kind;

namespace {

Status addEltwise(LowerContext& ctx, algorithm alg, float alpha, float beta) {
  const Value* x = ctx.in(0);
  const Value* y = ctx.result();
  if (!(ctx.md(x) == ctx.md(y)))
    return ctx.fail("result layout {} differs from the input's {}", layoutName(y->type().layout),
                    layoutName(x->type().layout));
  dnnl::eltwise_forward::desc d(prop_kind::forward_inference, alg, ctx.md(x), alpha, beta);
  dnnl::eltwise_forward::primitive_desc pd(d, LowerContext::attr(), ctx.engine());
  ctx.setInPlace(0);
  ctx.add(pd, {{DNNL_ARG_SRC, Slot::value(x), ctx.md(x)}, {DNNL_ARG_DST, Slot::value(y), ctx.md(y)}});
  return Status::ok();
}

float bound(double v) {
  // oneDNN's clip takes floats; infinite bounds stay infinite.
  return static_cast<float>(v);
}

/// `d` with leading 1s up to `rank` (numpy's right alignment).
Dims alignedDims(Dims d, size_t rank) {
  d.insert(d.begin(), rank - d.size(), 1);
  return d;
}

Status lowerBinary(LowerContext& ctx, algorithm alg, BinaryOp op) {
  const Value* a = ctx.in(0);
  const Value* b = ctx.in(1);
  const Value* y = ctx.result();
  const Dims yd = ctx.dims(y);
  const bool aFull = alignedDims(ctx.dims(a), yd.size()) == yd;
  const bool bFull = alignedDims(ctx.dims(b), yd.size()) == yd;
  const bool commutes = op == BinaryOp::Add || op == BinaryOp::Mul;
  // oneDNN broadcasts src1 only: src0 must have the result's dims.
  int first = aFull ? 0 : (bFull && commutes) ? 1 : -1;
  dnnl::post_ops post;
  if (first < 0 && bFull && op == BinaryOp::Sub) {  // a - b = -(b - a), exactly
    first = 1;
    post.append_eltwise(1.0f, algorithm::eltwise_linear, -1.0f, 0.0f);
  }
  // Operands of a different rank (or layout of a different rank) go through row-major.
  auto operandMd = [&](const Value* v, Slot& slot) {
    if (ctx.dims(v).size() == yd.size()) {
      slot = Slot::value(v);
      return ctx.md(v);
    }
    Md plain;
    slot = ctx.plainOperand(v, plain);
    // A scalar's plain descriptor has no dims to reshape: view its one element as [1].
    if (ctx.dims(v).empty()) plain = plainMd(Dims{1});
    return plain.reshape(alignedDims(ctx.dims(v), yd.size()));
  };
  if (first >= 0) {
    const Value* s0 = ctx.in(first);
    const Value* s1 = ctx.in(1 - first);
    Slot slot0, slot1;
    const Md md0 = operandMd(s0, slot0), md1 = operandMd(s1, slot1);
    dnnl::primitive_attr attr = LowerContext::attr();
    attr.set_post_ops(post);
    dnnl::binary::desc d(alg, md0, md1, ctx.md(y));
    dnnl::binary::primitive_desc pd(d, attr, ctx.engine());
    if (md0 == ctx.md(y) && slot0.kind == Slot::Kind::Value) ctx.setInPlace(first);
    ctx.add(pd, {{DNNL_ARG_SRC_0, slot0, md0},
                 {DNNL_ARG_SRC_1, slot1, md1},
                 {DNNL_ARG_DST, Slot::value(y), ctx.md(y)}});
    return Status::ok();
  }
  // Both operands broadcast (or src0 would, and the op does not commute): a kernel of ours.
  Md aPlain, bPlain, yPlain;
  const Slot as = ctx.plainOperand(a, aPlain);
  const Slot bs = ctx.plainOperand(b, bPlain);
  const Slot ys = ctx.plainResult(y, yPlain);
  ctx.addKernel(broadcastBinaryKernel(op, ctx.dims(a), ctx.dims(b), yd), {as, bs, ys});
  ctx.finishPlainResult(y, ys, yPlain);
  return Status::ok();
}

Status lowerSoftmax(LowerContext& ctx, algorithm alg) {
  const Value* x = ctx.in(0);
  const Value* y = ctx.result();
  const int64_t rank = static_cast<int64_t>(ctx.dims(x).size());
  int64_t axis = ctx.attrs<AxisAttrs>().axis;
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) return ctx.fail("axis {} is out of range for rank {}", axis, rank);
  dnnl::softmax_v2_forward::desc d(prop_kind::forward_inference, alg, ctx.md(x), ctx.md(y),
                                   static_cast<int>(axis));
  dnnl::softmax_v2_forward::primitive_desc pd(d, LowerContext::attr(), ctx.engine());
  ctx.add(pd, {{DNNL_ARG_SRC, Slot::value(x), ctx.md(x)}, {DNNL_ARG_DST, Slot::value(y), ctx.md(y)}});
  return Status::ok();
}

}  // namespace

template <>
Status lower<OpKind::Relu>(LowerContext& ctx) {
  return addEltwise(ctx, algorithm::eltwise_relu, 0.0f, 0.0f);
}

template <>
Status lower<OpKind::Relu6>(LowerContext& ctx) {
  return addEltwise(ctx, algorithm::eltwise_clip, 0.0f, 6.0f);
}

template <>
Status lower<OpKind::Sigmoid>(LowerContext& ctx) {
  return addEltwise(ctx, algorithm::eltwise_logistic, 0.0f, 0.0f);
}

template <>
Status lower<OpKind::Swish>(LowerContext& ctx) {
  return addEltwise(ctx, algorithm::eltwise_swish, 1.0f, 0.0f);
}

template <>
Status lower<OpKind::HardSwish>(LowerContext& ctx) {
  return addEltwise(ctx, algorithm::eltwise_hardswish, 0.0f, 0.0f);
}

template <>
Status lower<OpKind::Tanh>(LowerContext& ctx) {
  return addEltwise(ctx, algorithm::eltwise_tanh, 0.0f, 0.0f);
}

template <>
Status lower<OpKind::Clip>(LowerContext& ctx) {
  const auto& a = ctx.attrs<ClipAttrs>();
  return addEltwise(ctx, algorithm::eltwise_clip, bound(a.min), bound(a.max));
}

template <>
Status lower<OpKind::HardSigmoid>(LowerContext& ctx) {
  // oneDNN 2.6 has no hardsigmoid: alpha x + beta, then clip to [0, 1] in place.
  const auto& a = ctx.attrs<HardSigmoidAttrs>();
  KILN_TRY(addEltwise(ctx, algorithm::eltwise_linear, static_cast<float>(a.alpha),
                      static_cast<float>(a.beta)));
  const Value* y = ctx.result();
  dnnl::eltwise_forward::desc d(prop_kind::forward_inference, algorithm::eltwise_clip, ctx.md(y),
                                0.0f, 1.0f);
  dnnl::eltwise_forward::primitive_desc pd(d, LowerContext::attr(), ctx.engine());
  ctx.add(pd, {{DNNL_ARG_SRC, Slot::value(y), ctx.md(y)}, {DNNL_ARG_DST, Slot::value(y), ctx.md(y)}});
  return Status::ok();
}

template <>
Status lower<OpKind::Add>(LowerContext& ctx) {
  return lowerBinary(ctx, algorithm::binary_add, BinaryOp::Add);
}

template <>
Status lower<OpKind::Sub>(LowerContext& ctx) {
  return lowerBinary(ctx, algorithm::binary_sub, BinaryOp::Sub);
}

template <>
Status lower<OpKind::Mul>(LowerContext& ctx) {
  return lowerBinary(ctx, algorithm::binary_mul, BinaryOp::Mul);
}

template <>
Status lower<OpKind::Div>(LowerContext& ctx) {
  return lowerBinary(ctx, algorithm::binary_div, BinaryOp::Div);
}

template <>
Status lower<OpKind::ChannelScale>(LowerContext& ctx) {
  // x[N,C,H,W] * s[N,C,1,1]: a binary mul broadcasting s.
  return lowerBinary(ctx, algorithm::binary_mul, BinaryOp::Mul);
}

template <>
Status lower<OpKind::Softmax>(LowerContext& ctx) {
  return lowerSoftmax(ctx, algorithm::softmax_accurate);
}

template <>
Status lower<OpKind::LogSoftmax>(LowerContext& ctx) {
  return lowerSoftmax(ctx, algorithm::softmax_log);
}

}  // namespace kiln::backends::onednn
