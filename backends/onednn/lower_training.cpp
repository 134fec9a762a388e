// Lowering of the training ops (train steps from passes/autodiff): oneDNN primitives for the
// convolution, batch-norm, pooling and activation gradients and for reduce_sum; kernels of
// ours (train_kernels.cpp) for the masks, running statistics, loss, accuracy, the optimizer
// updates (sgd, rmsprop, adamw, ema) and global_norm.
//
// batch_norm_train and batch_norm_backward are kernels of ours: on row-major (NCHW)
// activations oneDNN 2.6 runs a scalar reference loop (ncsp_bnorm), and on nhwc / nChw16c
// its bnorm_jit took 16 ms per batch_norm_train of resnet20's train step (batch 128, 2
// threads), ours 2.3 ms (docs/performance.md). Other 4-D layouts (none select-layout makes)
// and other ranks use oneDNN's primitive.
//
// max_pool2d_backward recomputes the forward pooling (forward_training, with its workspace of
// arg-max positions) in a temporary and runs oneDNN's backward from that workspace: the IR's
// max_pool2d has one result, and the recomputation is one pooling over the input.
#include <algorithm>
#include <optional>

#include "backends/onednn/kernels.h"
#include "backends/onednn/lowering.h"

namespace kiln::backends::onednn {

using namespace ir;
using Tag = dnnl::memory::format_tag;
using DataType = dnnl::memory::data_type;
using dnnl::algorithm;
using dnnl::prop_kind;

namespace {

int64_t elements(const Dims& d) {
  int64_t n = 1;
  for (int64_t v : d) n *= v;
  return n;
}

/// Convolution descriptors shared by the two backward ops: weights grouped as oneDNN wants.
struct ConvShape {
  Dims wDims;   // [O, I/g, KH, KW] or [g, O/g, I/g, KH, KW]
  Dims wPlain;  // the IR's oihw dims
  Dims stride, dilation, padL, padR;
};

ConvShape convShape(const Dims& wOihw, int64_t groups, const Ints<2>& stride, const Ints<4>& pad,
                    const Ints<2>& dilation) {
  ConvShape c;
  c.wPlain = wOihw;
  c.wDims = groups == 1 ? wOihw : Dims{groups, wOihw[0] / groups, wOihw[1], wOihw[2], wOihw[3]};
  c.stride = {stride[0], stride[1]};
  c.dilation = {dilation[0] - 1, dilation[1] - 1};
  c.padL = {pad[0], pad[1]};
  c.padR = {pad[2], pad[3]};
  return c;
}

/// The oihw descriptor of a weight viewed with oneDNN's grouped dims.
Md groupedPlain(const ConvShape& c) {
  const Md plain = plainMd(c.wPlain);
  return c.wDims == c.wPlain ? plain : plain.reshape(c.wDims);
}

dnnl::convolution_forward::primitive_desc convForwardHint(const LowerContext& ctx, const Md& x,
                                                          const Md& y, const ConvShape& c) {
  const Md wAny(c.wDims, DataType::f32, Tag::any);
  dnnl::convolution_forward::desc d(prop_kind::forward_training, algorithm::convolution_direct, x,
                                    wAny, y, c.stride, c.dilation, c.padL, c.padR);
  return dnnl::convolution_forward::primitive_desc(d, LowerContext::attr(), ctx.engine());
}

/// The descriptor a convolution gradient is created with for activation `v`: its own layout
/// when select-layout chose one (blocked, NHWC), else `any`. On plain NCHW oneDNN 2.6 has only
/// its im2col + sgemm path for the gradients (10-40x slower than its JIT kernels on blocked
/// data: 49 ms vs 1.2 ms for the weight gradient of a 16-channel 3x3 conv at 128x28x28 on 2
/// threads), so the gradient runs in the format oneDNN prefers with round trips through
/// temporaries of the node (inFormat, and a reorder of the result).
Md activationMd(const LowerContext& ctx, const Value* v) {
  if (ctx.type(v).layout != Layout::NCHW) return ctx.md(v);
  return Md(ctx.dims(v), DataType::f32, Tag::any);
}

/// `v` in format `want`: its own slot, or a temporary filled by a reorder step.
Slot inFormat(LowerContext& ctx, const Value* v, const Md& want) {
  if (ctx.md(v) == want) return Slot::value(v);
  const Slot t = ctx.temp(static_cast<int64_t>(want.get_size()));
  ctx.addReorder(Slot::value(v), ctx.md(v), t, want);
  return t;
}

/// An activation gradient f(dy, x) as oneDNN's eltwise backward.
Status eltwiseBackward(LowerContext& ctx, algorithm alg, float alpha, float beta) {
  const Value* dy = ctx.in(0);
  const Value* x = ctx.in(1);
  const Value* dx = ctx.result();
  if (!(ctx.md(dy) == ctx.md(x)) || !(ctx.md(dx) == ctx.md(x)))
    return ctx.fail("operands and result must share a layout, got {}, {} -> {}",
                    layoutName(dy->type().layout), layoutName(x->type().layout),
                    layoutName(dx->type().layout));
  dnnl::eltwise_forward::desc fd(prop_kind::forward_training, alg, ctx.md(x), alpha, beta);
  dnnl::eltwise_forward::primitive_desc hint(fd, LowerContext::attr(), ctx.engine());
  dnnl::eltwise_backward::desc d(alg, ctx.md(dy), ctx.md(x), alpha, beta);
  dnnl::eltwise_backward::primitive_desc pd(d, LowerContext::attr(), ctx.engine(), hint);
  ctx.setInPlace(0);
  ctx.add(pd, {{DNNL_ARG_SRC, Slot::value(x), ctx.md(x)},
               {DNNL_ARG_DIFF_DST, Slot::value(dy), ctx.md(dy)},
               {DNNL_ARG_DIFF_SRC, Slot::value(dx), ctx.md(dx)}});
  return Status::ok();
}

/// oneDNN pooling backward (average algorithms) from dy into dx.
void poolingBackward(LowerContext& ctx, algorithm alg, const PoolGeometry& g) {
  const Value* dy = ctx.in(0);
  const Value* dx = ctx.result();
  dnnl::pooling_v2_forward::desc fd(prop_kind::forward_training, alg, ctx.md(dx), ctx.md(dy),
                                    g.stride, g.kernel, g.dilation, g.padL, g.padR);
  dnnl::pooling_v2_forward::primitive_desc hint(fd, LowerContext::attr(), ctx.engine());
  dnnl::pooling_v2_backward::desc d(alg, ctx.md(dx), ctx.md(dy), g.stride, g.kernel, g.dilation,
                                    g.padL, g.padR);
  dnnl::pooling_v2_backward::primitive_desc pd(d, LowerContext::attr(), ctx.engine(), hint);
  ctx.add(pd, {{DNNL_ARG_DIFF_DST, Slot::value(dy), ctx.md(dy)},
               {DNNL_ARG_DIFF_SRC, Slot::value(dx), ctx.md(dx)}});
}

/// A row-major [N, C, ...] value as [n, c, inner].
ChannelShape channelShape(const Dims& d) {
  return ChannelShape{d[0], d.size() > 1 ? d[1] : 1,
                      d.size() > 2 ? elements(Dims(d.begin() + 2, d.end())) : 1};
}

/// A [N, C, H, W] value's layout as rows of channel lanes, when it keeps channels innermost
/// (nhwc, nChw8c, nChw16c).
std::optional<LaneShape> laneShape(const Dims& d, Layout l) {
  if (d.size() != 4) return std::nullopt;
  const int64_t hw = d[2] * d[3];
  if (l == Layout::NHWC) return LaneShape{d[0] * hw, 1, 1, d[1]};
  const auto [dim, block] = layoutBlock(l);
  if (dim != 1 || d[1] % block != 0) return std::nullopt;
  return LaneShape{d[0] * (d[1] / block) * hw, d[1] / block, hw, block};
}

/// Whether the targets of a loss node are class ids (else probabilities [N, K]).
bool classIds(const Value* targets) {
  return targets->type().dtype == DType::I64;
}

/// The loss ops' checks: logits [N, K] row-major; class ids checked at run time.
Status lossOperands(LowerContext& ctx, const Value* logits, const Value* targets, Slot& ls,
                    Slot& ts, int64_t& n, int64_t& k) {
  const Dims d = ctx.dims(logits);
  if (d.size() != 2) return ctx.fail("logits must be [N, K], got {}", ctx.type(logits).str());
  n = d[0];
  k = d[1];
  Md plain;
  ls = ctx.plainOperand(logits, plain);
  if (classIds(targets)) {
    ts = Slot::value(targets);
    ctx.addCheck(classIdCheck(n, k, ctx.node().loc(), std::string(ctx.node().opName())), {ts});
  } else {
    ts = ctx.plainOperand(targets, plain);
  }
  return Status::ok();
}

/// Row-major operand slots of an elementwise kernel of ours (f32 or i64).
Slot rowMajor(LowerContext& ctx, const Value* v) {
  if (ctx.type(v).dtype != DType::F32) return Slot::value(v);
  Md plain;
  return ctx.plainOperand(v, plain);
}

Status lowerMasked(LowerContext& ctx, bool perSample) {
  const auto& a = ctx.attrs<DropoutAttrs>();
  const Value* x = ctx.in(0);
  const Value* y = ctx.result();
  if (!a.training || a.p == 0.0) {
    ctx.view(y, x);
    return Status::ok();
  }
  // The reference backend's mask: drawn over the elements in row-major order.
  const Dims d = ctx.dims(x);
  const int64_t n = elements(d);
  const int64_t samples = d.empty() ? 1 : d[0];
  const int64_t block = perSample ? std::max<int64_t>(1, samples ? n / samples : 1) : 1;
  const bool seeded = ctx.node().numOperands() == 2;
  Md xPlain, yPlain;
  std::vector<Slot> args{ctx.plainOperand(x, xPlain)};
  if (seeded) args.push_back(Slot::value(ctx.in(1)));
  const Slot ys = ctx.plainResult(y, yPlain);
  args.push_back(ys);
  ctx.addKernel(maskedDropoutKernel(n, block, a.p, a.seed, seeded), std::move(args));
  ctx.finishPlainResult(y, ys, yPlain);
  return Status::ok();
}

}  // namespace

template <>
Status lower<OpKind::Dropout>(LowerContext& ctx) {
  return lowerMasked(ctx, /*perSample=*/false);
}

template <>
Status lower<OpKind::DropPath>(LowerContext& ctx) {
  return lowerMasked(ctx, /*perSample=*/true);
}

template <>
Status lower<OpKind::BatchNormTrain>(LowerContext& ctx) {
  // x, weight, bias, running_mean, running_var -> y, mean, var (biased), new mean, new var
  const auto& a = ctx.attrs<BatchNormTrainAttrs>();
  const Value* x = ctx.in(0);
  const Value* y = ctx.result(0);
  if (!(ctx.md(x) == ctx.md(y)))
    return ctx.fail("result layout {} differs from the input's {}", layoutName(y->type().layout),
                    layoutName(x->type().layout));
  const Dims d = ctx.dims(x);
  const int64_t count = elements(d) / std::max<int64_t>(1, d[1]);
  if (count < 2)
    return ctx.fail("batch statistics need more than 1 value per channel, got input {}",
                    ctx.type(x).str());
  if (isRowMajor(ctx.type(x).layout)) {
    std::vector<Slot> args;
    for (size_t i = 0; i < 5; ++i) args.push_back(Slot::value(ctx.in(i)));
    for (size_t i = 0; i < 5; ++i) args.push_back(Slot::value(ctx.result(i)));
    ctx.addKernel(batchNormTrainKernel(channelShape(d), a.epsilon, a.momentum), std::move(args));
    ctx.setStateInPlace();
    return Status::ok();
  }
  if (const std::optional<LaneShape> lanes = laneShape(d, ctx.type(x).layout)) {
    std::vector<Slot> args;
    for (size_t i = 0; i < 5; ++i) args.push_back(Slot::value(ctx.in(i)));
    for (size_t i = 0; i < 5; ++i) args.push_back(Slot::value(ctx.result(i)));
    ctx.addKernel(batchNormTrainLanesKernel(*lanes, a.epsilon, a.momentum), std::move(args));
    ctx.setStateInPlace();
    return Status::ok();
  }
  const auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  dnnl::batch_normalization_forward::desc desc(prop_kind::forward_training, ctx.md(x),
                                               static_cast<float>(a.epsilon), flags);
  dnnl::batch_normalization_forward::primitive_desc pd(desc, LowerContext::attr(), ctx.engine());
  auto arg = [&](int id, const Value* v) { return StepArg{id, Slot::value(v), ctx.md(v)}; };
  ctx.add(pd, {arg(DNNL_ARG_SRC, x), arg(DNNL_ARG_SCALE, ctx.in(1)), arg(DNNL_ARG_SHIFT, ctx.in(2)),
               arg(DNNL_ARG_DST, y), arg(DNNL_ARG_MEAN, ctx.result(1)),
               arg(DNNL_ARG_VARIANCE, ctx.result(2))});
  ctx.addKernel(
      runningStatsKernel(d[1], count, a.momentum),
      {Slot::value(ctx.in(3)), Slot::value(ctx.in(4)), Slot::value(ctx.result(1)),
       Slot::value(ctx.result(2)), Slot::value(ctx.result(3)), Slot::value(ctx.result(4))});
  ctx.setStateInPlace();
  return Status::ok();
}

template <>
Status lower<OpKind::BatchNormBackward>(LowerContext& ctx) {
  // dy, x, weight, batch mean, batch variance -> dx, dweight, dbias
  const auto& a = ctx.attrs<BatchNormAttrs>();
  const Value* dy = ctx.in(0);
  const Value* x = ctx.in(1);
  const Value* dx = ctx.result(0);
  if (!(ctx.md(dy) == ctx.md(x)) || !(ctx.md(dx) == ctx.md(x)))
    return ctx.fail("dy, x and dx must share a layout");
  if (isRowMajor(ctx.type(x).layout)) {
    std::vector<Slot> args;
    for (size_t i = 0; i < 5; ++i) args.push_back(Slot::value(ctx.in(i)));
    for (size_t i = 0; i < 3; ++i) args.push_back(Slot::value(ctx.result(i)));
    ctx.setInPlace(0);
    ctx.addKernel(batchNormBackwardKernel(channelShape(ctx.dims(x)), a.epsilon), std::move(args));
    return Status::ok();
  }
  if (const std::optional<LaneShape> lanes = laneShape(ctx.dims(x), ctx.type(x).layout)) {
    std::vector<Slot> args;
    for (size_t i = 0; i < 5; ++i) args.push_back(Slot::value(ctx.in(i)));
    for (size_t i = 0; i < 3; ++i) args.push_back(Slot::value(ctx.result(i)));
    ctx.setInPlace(0);
    ctx.addKernel(batchNormBackwardLanesKernel(*lanes, a.epsilon), std::move(args));
    return Status::ok();
  }
  const auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  const float eps = static_cast<float>(a.epsilon);
  dnnl::batch_normalization_forward::desc fd(prop_kind::forward_training, ctx.md(x), eps, flags);
  dnnl::batch_normalization_forward::primitive_desc hint(fd, LowerContext::attr(), ctx.engine());
  dnnl::batch_normalization_backward::desc d(prop_kind::backward, ctx.md(dy), ctx.md(x), eps,
                                             flags);
  dnnl::batch_normalization_backward::primitive_desc pd(d, LowerContext::attr(), ctx.engine(),
                                                        hint);
  auto arg = [&](int id, const Value* v) { return StepArg{id, Slot::value(v), ctx.md(v)}; };
  // oneDNN 2.6 binds a shift with use_shift although the gradients do not read it.
  const Md shiftMd = pd.query_md(dnnl::query::exec_arg_md, DNNL_ARG_SHIFT);
  const Slot shift = ctx.temp(static_cast<int64_t>(shiftMd.get_size()));
  ctx.setInPlace(0);
  ctx.add(pd, {arg(DNNL_ARG_SRC, x),
               arg(DNNL_ARG_DIFF_DST, dy),
               arg(DNNL_ARG_SCALE, ctx.in(2)),
               {DNNL_ARG_SHIFT, shift, shiftMd},
               arg(DNNL_ARG_MEAN, ctx.in(3)),
               arg(DNNL_ARG_VARIANCE, ctx.in(4)),
               arg(DNNL_ARG_DIFF_SRC, dx),
               arg(DNNL_ARG_DIFF_SCALE, ctx.result(1)),
               arg(DNNL_ARG_DIFF_SHIFT, ctx.result(2))});
  return Status::ok();
}

template <>
Status lower<OpKind::Conv2dBackwardData>(LowerContext& ctx) {
  const auto& a = ctx.attrs<Conv2dBackwardDataAttrs>();
  const Value* dy = ctx.in(0);
  const Value* w = ctx.in(1);
  const Value* dx = ctx.result();
  const ConvShape c = convShape(ctx.dims(w), a.groups, a.stride, a.pad, a.dilation);
  const Md dyMd = activationMd(ctx, dy), dxMd = activationMd(ctx, dx);
  const auto hint = convForwardHint(ctx, dxMd, dyMd, c);
  const Md wAny(c.wDims, DataType::f32, Tag::any);
  dnnl::convolution_backward_data::desc d(algorithm::convolution_direct, dxMd, wAny, dyMd, c.stride,
                                          c.dilation, c.padL, c.padR);
  dnnl::convolution_backward_data::primitive_desc pd(d, LowerContext::attr(), ctx.engine(), hint);
  KILN_ASSIGN_OR_RETURN(Slot ws, ctx.weight(w, groupedPlain(c), pd.weights_desc()));
  const Slot dys = inFormat(ctx, dy, pd.diff_dst_desc());
  const Md want = pd.diff_src_desc();
  const Slot out =
      want == ctx.md(dx) ? Slot::value(dx) : ctx.temp(static_cast<int64_t>(want.get_size()));
  ctx.add(pd, {{DNNL_ARG_DIFF_DST, dys, pd.diff_dst_desc()},
               {DNNL_ARG_WEIGHTS, ws, pd.weights_desc()},
               {DNNL_ARG_DIFF_SRC, out, want}});
  if (out.kind != Slot::Kind::Value) ctx.addReorder(out, want, Slot::value(dx), ctx.md(dx));
  return Status::ok();
}

template <>
Status lower<OpKind::Conv2dBackwardWeight>(LowerContext& ctx) {
  const auto& a = ctx.attrs<Conv2dBackwardWeightAttrs>();
  const Value* x = ctx.in(0);
  const Value* dy = ctx.in(1);
  const Value* dw = ctx.result();
  if (!isRowMajor(ctx.type(dw).layout))
    return ctx.fail("the weight gradient must be {{oihw}}, got {{{}}}",
                    layoutName(ctx.type(dw).layout));
  const ConvShape c = convShape(ctx.dims(dw), a.groups, a.stride, a.pad, a.dilation);
  const Md xMd = activationMd(ctx, x), dyMd = activationMd(ctx, dy);
  const auto hint = convForwardHint(ctx, xMd, dyMd, c);
  const Md wAny(c.wDims, DataType::f32, Tag::any);
  dnnl::convolution_backward_weights::desc d(algorithm::convolution_direct, xMd, wAny, dyMd,
                                             c.stride, c.dilation, c.padL, c.padR);
  dnnl::convolution_backward_weights::primitive_desc pd(d, LowerContext::attr(), ctx.engine(),
                                                        hint);
  const Slot xs = inFormat(ctx, x, pd.src_desc());
  const Slot dys = inFormat(ctx, dy, pd.diff_dst_desc());
  // The gradient in the primitive's format, then reordered to the IR's oihw when they differ.
  const Md want = pd.diff_weights_desc(), plain = groupedPlain(c);
  const Slot out =
      want == plain ? Slot::value(dw) : ctx.temp(static_cast<int64_t>(want.get_size()));
  ctx.add(pd, {{DNNL_ARG_SRC, xs, pd.src_desc()},
               {DNNL_ARG_DIFF_DST, dys, pd.diff_dst_desc()},
               {DNNL_ARG_DIFF_WEIGHTS, out, want}});
  if (out.kind != Slot::Kind::Value) ctx.addReorder(out, want, Slot::value(dw), plain);
  return Status::ok();
}

template <>
Status lower<OpKind::MaxPool2dBackward>(LowerContext& ctx) {
  const auto& a = ctx.attrs<MaxPool2dAttrs>();
  const Value* dy = ctx.in(0);
  const Value* x = ctx.in(1);
  const Value* dx = ctx.result();
  if (!(ctx.md(dx) == ctx.md(x))) return ctx.fail("x and dx must share a layout");
  const PoolGeometry g =
      poolGeometry(ctx.dims(x), ctx.dims(dy), a.kernel, a.stride, a.pad, a.dilation);
  dnnl::pooling_v2_forward::desc fd(prop_kind::forward_training, algorithm::pooling_max, ctx.md(x),
                                    ctx.md(dy), g.stride, g.kernel, g.dilation, g.padL, g.padR);
  dnnl::pooling_v2_forward::primitive_desc fpd(fd, LowerContext::attr(), ctx.engine());
  const Md wsMd = fpd.workspace_desc();
  const Slot y = ctx.temp(static_cast<int64_t>(ctx.md(dy).get_size()));
  const Slot ws = ctx.temp(static_cast<int64_t>(wsMd.get_size()));
  ctx.add(fpd, {{DNNL_ARG_SRC, Slot::value(x), ctx.md(x)},
                {DNNL_ARG_DST, y, ctx.md(dy)},
                {DNNL_ARG_WORKSPACE, ws, wsMd}});
  dnnl::pooling_v2_backward::desc d(algorithm::pooling_max, ctx.md(dx), ctx.md(dy), g.stride,
                                    g.kernel, g.dilation, g.padL, g.padR);
  dnnl::pooling_v2_backward::primitive_desc pd(d, LowerContext::attr(), ctx.engine(), fpd);
  ctx.add(pd, {{DNNL_ARG_DIFF_DST, Slot::value(dy), ctx.md(dy)},
               {DNNL_ARG_WORKSPACE, ws, wsMd},
               {DNNL_ARG_DIFF_SRC, Slot::value(dx), ctx.md(dx)}});
  return Status::ok();
}

template <>
Status lower<OpKind::AvgPool2dBackward>(LowerContext& ctx) {
  const auto& a = ctx.attrs<AvgPool2dBackwardAttrs>();
  const Value* dy = ctx.in(0);
  const Value* dx = ctx.result();
  const Dims dyd = ctx.dims(dy), dxd = ctx.dims(dx);
  const PoolGeometry g = poolGeometry(dxd, dyd, a.kernel, a.stride, a.pad, {1, 1});
  const bool padded = a.pad[0] || a.pad[1] || a.pad[2] || a.pad[3];
  const bool pastPadding = g.padR[0] > a.pad[2] || g.padR[1] > a.pad[3];
  // The forward's divisor cases (lower_compute.cpp's avg_pool2d).
  if (!a.count_include_pad || !padded) {
    poolingBackward(ctx, algorithm::pooling_avg_exclude_padding, g);
    return Status::ok();
  }
  if (!pastPadding) {
    poolingBackward(ctx, algorithm::pooling_avg_include_padding, g);
    return Status::ok();
  }
  Md dyPlain, dxPlain;
  const Slot dys = ctx.plainOperand(dy, dyPlain);
  const Slot dxs = ctx.plainResult(dx, dxPlain);
  ctx.addKernel(avgPoolBackwardKernel(dyd, dxd, a), {dys, dxs});
  ctx.finishPlainResult(dx, dxs, dxPlain);
  return Status::ok();
}

template <>
Status lower<OpKind::ReluBackward>(LowerContext& ctx) {
  return eltwiseBackward(ctx, algorithm::eltwise_relu, 0.0f, 0.0f);
}

template <>
Status lower<OpKind::ClipBackward>(LowerContext& ctx) {
  // clip_v2: the gradient passes strictly inside (min, max), as PyTorch's hardtanh_backward.
  const auto& a = ctx.attrs<ClipAttrs>();
  return eltwiseBackward(ctx, algorithm::eltwise_clip_v2, static_cast<float>(a.min),
                         static_cast<float>(a.max));
}

template <>
Status lower<OpKind::SwishBackward>(LowerContext& ctx) {
  return eltwiseBackward(ctx, algorithm::eltwise_swish, 1.0f, 0.0f);
}

template <>
Status lower<OpKind::HardSwishBackward>(LowerContext& ctx) {
  return eltwiseBackward(ctx, algorithm::eltwise_hardswish, 0.0f, 0.0f);
}

template <>
Status lower<OpKind::HardSigmoidBackward>(LowerContext& ctx) {
  // oneDNN 2.6 has no hardsigmoid; an elementwise kernel over equal layouts.
  const auto& a = ctx.attrs<HardSigmoidAttrs>();
  const Value* dy = ctx.in(0);
  const Value* x = ctx.in(1);
  const Value* dx = ctx.result();
  if (!(ctx.md(dy) == ctx.md(x)) || !(ctx.md(dx) == ctx.md(x)))
    return ctx.fail("operands and result must share a layout");
  ctx.setInPlace(0);
  ctx.addKernel(hardSigmoidBackwardKernel(
                    static_cast<int64_t>(ctx.md(x).get_size() / sizeof(float)), a.alpha, a.beta),
                {Slot::value(dy), Slot::value(x), Slot::value(dx)});
  return Status::ok();
}

template <>
Status lower<OpKind::ReduceSum>(LowerContext& ctx) {
  const auto& a = ctx.attrs<ReduceAttrs>();
  const Value* x = ctx.in(0);
  const Value* y = ctx.result();
  const Dims xd = ctx.dims(x);
  const int64_t rank = static_cast<int64_t>(xd.size());
  Dims kept = xd;
  for (int64_t axis : a.axes) {
    const int64_t ax = axis < 0 ? axis + rank : axis;
    if (ax < 0 || ax >= rank) return ctx.fail("axis {} is out of range for rank {}", axis, rank);
    kept[ax] = 1;
  }
  if (a.axes.empty()) std::fill(kept.begin(), kept.end(), 1);
  Md yPlain;
  const Slot ys = ctx.plainResult(y, yPlain);
  const Md dst = plainMd(kept.empty() ? Dims{1} : kept);
  if (kept == xd || xd.empty()) {  // nothing to reduce: a copy into row-major
    Md xPlain;
    const Slot xs = ctx.plainOperand(x, xPlain);
    ctx.addKernel(copyKernel(static_cast<int64_t>(dst.get_size())), {xs, ys});
  } else {
    dnnl::reduction::desc d(algorithm::reduction_sum, ctx.md(x), dst, 0.0f, 0.0f);
    dnnl::reduction::primitive_desc pd(d, LowerContext::attr(), ctx.engine());
    ctx.add(pd, {{DNNL_ARG_SRC, Slot::value(x), ctx.md(x)}, {DNNL_ARG_DST, ys, dst}});
  }
  ctx.finishPlainResult(y, ys, yPlain);
  return Status::ok();
}

template <>
Status lower<OpKind::SoftmaxCrossEntropy>(LowerContext& ctx) {
  Slot ls, ts;
  int64_t n = 0, k = 0;
  KILN_TRY(lossOperands(ctx, ctx.in(0), ctx.in(1), ls, ts, n, k));
  const Slot scratch = ctx.temp(2 * std::max<int64_t>(k, 1) * static_cast<int64_t>(sizeof(double)));
  ctx.addKernel(softmaxCrossEntropyKernel(n, k, ctx.attrs<CrossEntropyAttrs>().label_smoothing,
                                          classIds(ctx.in(1))),
                {ls, ts, Slot::value(ctx.result()), scratch});
  return Status::ok();
}

template <>
Status lower<OpKind::SoftmaxCrossEntropyBackward>(LowerContext& ctx) {
  Slot ls, ts;
  int64_t n = 0, k = 0;
  KILN_TRY(lossOperands(ctx, ctx.in(1), ctx.in(2), ls, ts, n, k));
  const Value* dz = ctx.result();
  Md dzPlain;
  const Slot dzs = ctx.plainResult(dz, dzPlain);
  const Slot scratch = ctx.temp(2 * std::max<int64_t>(k, 1) * static_cast<int64_t>(sizeof(double)));
  ctx.addKernel(softmaxCrossEntropyBackwardKernel(
                    n, k, ctx.attrs<CrossEntropyAttrs>().label_smoothing, classIds(ctx.in(2))),
                {Slot::value(ctx.in(0)), ls, ts, dzs, scratch});
  ctx.finishPlainResult(dz, dzs, dzPlain);
  return Status::ok();
}

template <>
Status lower<OpKind::CountCorrect>(LowerContext& ctx) {
  Slot ls, ts;
  int64_t n = 0, k = 0;
  KILN_TRY(lossOperands(ctx, ctx.in(0), ctx.in(1), ls, ts, n, k));
  ctx.addKernel(countCorrectKernel(n, k, classIds(ctx.in(1))), {ls, ts, Slot::value(ctx.result())});
  return Status::ok();
}

namespace {

/// An optimizer update as one elementwise kernel of ours over row-major operands and results
/// (every operand, then every result); its results may be written into the state they
/// replace.
Status lowerUpdate(LowerContext& ctx, Kernel kernel) {
  for (size_t i = 0; i < ctx.node().numResults(); ++i)
    if (!isRowMajor(ctx.type(ctx.result(i)).layout))
      return ctx.fail("results must be row-major, got {{{}}}",
                      layoutName(ctx.type(ctx.result(i)).layout));
  std::vector<Slot> args;
  for (size_t i = 0; i < ctx.node().numOperands(); ++i) args.push_back(rowMajor(ctx, ctx.in(i)));
  for (size_t i = 0; i < ctx.node().numResults(); ++i) args.push_back(Slot::value(ctx.result(i)));
  ctx.addKernel(std::move(kernel), std::move(args));
  ctx.setStateInPlace();
  return Status::ok();
}

}  // namespace

template <>
Status lower<OpKind::SgdUpdate>(LowerContext& ctx) {
  const auto& a = ctx.attrs<SgdAttrs>();
  const bool buffer = ctx.node().numOperands() == 4;
  return lowerUpdate(ctx, sgdKernel(elements(ctx.dims(ctx.in(0))), a.momentum, a.weight_decay,
                                    a.nesterov, buffer));
}

template <>
Status lower<OpKind::RmsPropUpdate>(LowerContext& ctx) {
  const bool buffer = ctx.node().numOperands() == 5;
  return lowerUpdate(
      ctx, rmsPropKernel(elements(ctx.dims(ctx.in(0))), ctx.attrs<RmsPropAttrs>(), buffer));
}

template <>
Status lower<OpKind::AdamWUpdate>(LowerContext& ctx) {
  return lowerUpdate(ctx, adamWKernel(elements(ctx.dims(ctx.in(0))), ctx.attrs<AdamWAttrs>()));
}

template <>
Status lower<OpKind::EmaUpdate>(LowerContext& ctx) {
  return lowerUpdate(ctx, emaKernel(elements(ctx.dims(ctx.in(0))), ctx.attrs<EmaAttrs>().decay));
}

template <>
Status lower<OpKind::GlobalNorm>(LowerContext& ctx) {
  std::vector<Slot> args;
  std::vector<int64_t> counts;
  for (size_t i = 0; i < ctx.node().numOperands(); ++i) {
    args.push_back(rowMajor(ctx, ctx.in(i)));
    counts.push_back(elements(ctx.dims(ctx.in(i))));
  }
  args.push_back(Slot::value(ctx.result()));
  ctx.addKernel(globalNormKernel(std::move(counts)), std::move(args));
  return Status::ok();
}

}  // namespace kiln::backends::onednn
