// Lowering of the compute ops: conv2d (groups, dilation, asymmetric pads, bias, post-ops),
// linear (inner product), matmul, batch_norm and the poolings.
#include <algorithm>

#include "backends/onednn/kernels.h"
#include "backends/onednn/lowering.h"

namespace kiln::backends::onednn {

using namespace ir;
using Tag = dnnl::memory::format_tag;
using DataType = dnnl::memory::data_type;
using dnnl::algorithm;
using dnnl::prop_kind;

namespace {

int64_t product(const Dims& d, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i) p *= d[i];
  return p;
}

/// oneDNN post-ops for a fused conv2d's list (the fusion contract of ir/attrs.h).
dnnl::post_ops postOpsFor(const PostOpList& list) {
  dnnl::post_ops po;
  for (const PostOp& p : list) {
    switch (p.kind) {
      case PostOpKind::Sum:
        po.append_sum(1.0f);
        break;
      case PostOpKind::Relu:
        po.append_eltwise(1.0f, algorithm::eltwise_relu, 0.0f, 0.0f);
        break;
      case PostOpKind::Relu6:
        po.append_eltwise(1.0f, algorithm::eltwise_clip, 0.0f, 6.0f);
        break;
      case PostOpKind::Sigmoid:
        po.append_eltwise(1.0f, algorithm::eltwise_logistic, 0.0f, 0.0f);
        break;
      case PostOpKind::Swish:
        po.append_eltwise(1.0f, algorithm::eltwise_swish, 1.0f, 0.0f);
        break;
      case PostOpKind::HardSwish:
        po.append_eltwise(1.0f, algorithm::eltwise_hardswish, 0.0f, 0.0f);
        break;
      case PostOpKind::Tanh:
        po.append_eltwise(1.0f, algorithm::eltwise_tanh, 0.0f, 0.0f);
        break;
      case PostOpKind::HardSigmoid:
        // oneDNN 2.6 has no hardsigmoid: clamp(alpha x + beta, 0, 1) as linear, then clip.
        po.append_eltwise(1.0f, algorithm::eltwise_linear, static_cast<float>(p.alpha),
                          static_cast<float>(p.beta));
        po.append_eltwise(1.0f, algorithm::eltwise_clip, 0.0f, 1.0f);
        break;
      case PostOpKind::Clip:
        po.append_eltwise(1.0f, algorithm::eltwise_clip, static_cast<float>(p.alpha),
                          static_cast<float>(p.beta));
        break;
    }
  }
  return po;
}

void addPooling(LowerContext& ctx, algorithm alg, Slot src, const Md& srcMd, const PoolGeometry& g) {
  const Value* y = ctx.result();
  dnnl::pooling_v2_forward::desc d(prop_kind::forward_inference, alg, srcMd, ctx.md(y), g.stride,
                                   g.kernel, g.dilation, g.padL, g.padR);
  dnnl::pooling_v2_forward::primitive_desc pd(d, LowerContext::attr(), ctx.engine());
  ctx.add(pd, {{DNNL_ARG_SRC, src, srcMd}, {DNNL_ARG_DST, Slot::value(y), ctx.md(y)}});
}

/// `md` with its dims viewed as `dims` (same bytes): oneDNN's reshape for plain formats.
Md reshaped(const Md& md, const Dims& dims) {
  if (md.dims() == dims) return md;
  return md.reshape(dims);
}

}  // namespace

int64_t rightPad(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t dilation,
                 int64_t padLeft) {
  const int64_t extent = (kernel - 1) * dilation + 1;
  return std::max<int64_t>(0, (out - 1) * stride + extent - in - padLeft);
}

PoolGeometry poolGeometry(const Dims& x, const Dims& y, const Ints<2>& kernel, const Ints<2>& stride,
                          const Ints<4>& pad, const Ints<2>& dilation) {
  PoolGeometry g;
  for (int i = 0; i < 2; ++i) {
    g.kernel.push_back(kernel[i]);
    g.stride.push_back(stride[i]);
    g.dilation.push_back(dilation[i] - 1);
    g.padL.push_back(pad[i]);
    g.padR.push_back(rightPad(x[2 + i], y[2 + i], kernel[i], stride[i], dilation[i], pad[i]));
  }
  return g;
}

template <>
Status lower<OpKind::Conv2d>(LowerContext& ctx) {
  const auto& a = ctx.attrs<Conv2dAttrs>();
  const Node& n = ctx.node();
  const Value* x = ctx.in(0);
  const Value* w = ctx.in(1);
  const Value* bias = convBias(n);
  const Value* summand = convSummand(n);
  const Value* y = ctx.result();

  const Dims wd = ctx.dims(w);  // O, I/groups, KH, KW
  const int64_t groups = a.groups;
  const Dims wDims = groups == 1 ? wd : Dims{groups, wd[0] / groups, wd[1], wd[2], wd[3]};
  const Md wGiven = reshaped(ctx.md(w), wDims);
  const Md wAny(wDims, DataType::f32, Tag::any);
  const Md biasMd = bias ? ctx.md(bias) : Md();

  dnnl::primitive_attr attr = LowerContext::attr();
  attr.set_post_ops(postOpsFor(a.post_ops));
  dnnl::convolution_forward::desc d(
      prop_kind::forward_inference, algorithm::convolution_direct, ctx.md(x), wAny, biasMd,
      ctx.md(y), Dims{a.stride[0], a.stride[1]}, Dims{a.dilation[0] - 1, a.dilation[1] - 1},
      Dims{a.pad[0], a.pad[1]}, Dims{a.pad[2], a.pad[3]});
  dnnl::convolution_forward::primitive_desc pd(d, attr, ctx.engine());
  KILN_ASSIGN_OR_RETURN(Slot ws, ctx.weight(w, wGiven, pd.weights_desc()));

  if (summand) {
    // The sum post-op adds what dst holds: the result takes the summand's buffer when the
    // summand dies here, otherwise the summand is copied into dst first.
    const int index = static_cast<int>(n.numOperands()) - 1;
    ctx.setInPlace(index);
    dnnl::reorder::primitive_desc copy(ctx.engine(), ctx.md(summand), ctx.engine(), ctx.md(y),
                                       LowerContext::attr());
    ctx.setCopyIfNotInPlace(ctx.make(copy, {{DNNL_ARG_FROM, Slot::value(summand), ctx.md(summand)},
                                            {DNNL_ARG_TO, Slot::value(y), ctx.md(y)}}));
  }
  std::vector<StepArg> args{{DNNL_ARG_SRC, Slot::value(x), ctx.md(x)},
                            {DNNL_ARG_WEIGHTS, ws, pd.weights_desc()},
                            {DNNL_ARG_DST, Slot::value(y), ctx.md(y)}};
  if (bias) args.push_back({DNNL_ARG_BIAS, Slot::value(bias), biasMd});
  ctx.add(pd, std::move(args));
  return Status::ok();
}

template <>
Status lower<OpKind::Linear>(LowerContext& ctx) {
  const Value* x = ctx.in(0);
  const Value* w = ctx.in(1);
  const Value* bias = ctx.node().numOperands() > 2 ? ctx.in(2) : nullptr;
  const Value* y = ctx.result();
  const Dims xd = ctx.dims(x), wd = ctx.dims(w);
  const int64_t m = product(xd, 0, xd.size() - 1);
  Md xPlain, yPlain;
  const Slot xs = ctx.plainOperand(x, xPlain);
  const Slot ys = ctx.plainResult(y, yPlain);
  const Md src = plainMd({m, wd[1]}), dst = plainMd({m, wd[0]});
  const Md wAny(Dims{wd[0], wd[1]}, DataType::f32, Tag::any);
  const Md biasMd = bias ? ctx.md(bias) : Md();
  dnnl::inner_product_forward::desc d(prop_kind::forward_inference, src, wAny, biasMd, dst);
  dnnl::inner_product_forward::primitive_desc pd(d, LowerContext::attr(), ctx.engine());
  KILN_ASSIGN_OR_RETURN(Slot ws, ctx.weight(w, plainMd(wd), pd.weights_desc()));
  std::vector<StepArg> args{{DNNL_ARG_SRC, xs, src},
                            {DNNL_ARG_WEIGHTS, ws, pd.weights_desc()},
                            {DNNL_ARG_DST, ys, dst}};
  if (bias) args.push_back({DNNL_ARG_BIAS, Slot::value(bias), biasMd});
  ctx.add(pd, std::move(args));
  ctx.finishPlainResult(y, ys, yPlain);
  return Status::ok();
}

template <>
Status lower<OpKind::MatMul>(LowerContext& ctx) {
  const Value* a = ctx.in(0);
  const Value* b = ctx.in(1);
  const Value* y = ctx.result();
  const Dims yd = ctx.dims(y);
  // numpy batch broadcasting: the lower-rank operand gets leading 1s.
  auto padded = [&](const Value* v) {
    Dims d = ctx.dims(v);
    d.insert(d.begin(), yd.size() - d.size(), 1);
    return d;
  };
  Md aPlain, bPlain, yPlain;
  const Slot as = ctx.plainOperand(a, aPlain);
  const Slot bs = ctx.plainOperand(b, bPlain);
  const Slot ys = ctx.plainResult(y, yPlain);
  const Md aMd = plainMd(padded(a)), bMd = plainMd(padded(b));
  dnnl::matmul::desc d(aMd, bMd, yPlain);
  dnnl::matmul::primitive_desc pd(d, LowerContext::attr(), ctx.engine());
  ctx.add(pd, {{DNNL_ARG_SRC, as, aMd}, {DNNL_ARG_WEIGHTS, bs, bMd}, {DNNL_ARG_DST, ys, yPlain}});
  ctx.finishPlainResult(y, ys, yPlain);
  return Status::ok();
}

template <>
Status lower<OpKind::BatchNorm>(LowerContext& ctx) {
  // operands: x, weight (scale), bias (shift), running_mean, running_var
  const Value* x = ctx.in(0);
  const Value* y = ctx.result();
  if (!(ctx.md(x) == ctx.md(y)))
    return ctx.fail("result layout {} differs from the input's {}", layoutName(y->type().layout),
                    layoutName(x->type().layout));
  const auto flags = dnnl::normalization_flags::use_global_stats |
                     dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  dnnl::batch_normalization_forward::desc d(prop_kind::forward_inference, ctx.md(x),
                                            static_cast<float>(ctx.attrs<BatchNormAttrs>().epsilon),
                                            flags);
  dnnl::batch_normalization_forward::primitive_desc pd(d, LowerContext::attr(), ctx.engine());
  auto param = [&](int arg, size_t operand) {
    return StepArg{arg, Slot::value(ctx.in(operand)), ctx.md(ctx.in(operand))};
  };
  ctx.setInPlace(0);
  ctx.add(pd, {{DNNL_ARG_SRC, Slot::value(x), ctx.md(x)}, param(DNNL_ARG_SCALE, 1),
               param(DNNL_ARG_SHIFT, 2), param(DNNL_ARG_MEAN, 3), param(DNNL_ARG_VARIANCE, 4),
               {DNNL_ARG_DST, Slot::value(y), ctx.md(y)}});
  return Status::ok();
}

template <>
Status lower<OpKind::MaxPool2d>(LowerContext& ctx) {
  const auto& a = ctx.attrs<MaxPool2dAttrs>();
  const Value* x = ctx.in(0);
  const PoolGeometry g = poolGeometry(ctx.dims(x), ctx.dims(ctx.result()), a.kernel, a.stride,
                                      a.pad, a.dilation);
  addPooling(ctx, algorithm::pooling_max, Slot::value(x), ctx.md(x), g);
  return Status::ok();
}

template <>
Status lower<OpKind::AvgPool2d>(LowerContext& ctx) {
  const auto& a = ctx.attrs<AvgPool2dAttrs>();
  const Value* x = ctx.in(0);
  const Dims xd = ctx.dims(x), yd = ctx.dims(ctx.result());
  PoolGeometry g = poolGeometry(xd, yd, a.kernel, a.stride, a.pad, {1, 1});
  const bool padded = a.pad[0] || a.pad[1] || a.pad[2] || a.pad[3];
  const bool pastPadding = g.padR[0] > a.pad[2] || g.padR[1] > a.pad[3];
  // PyTorch divides by the window clipped to input + padding. Without padding that is
  // oneDNN's exclude-padding count; when no window runs past the padding, the full kernel.
  if (!a.count_include_pad || !padded) {
    addPooling(ctx, algorithm::pooling_avg_exclude_padding, Slot::value(x), ctx.md(x), g);
    return Status::ok();
  }
  if (!pastPadding) {
    addPooling(ctx, algorithm::pooling_avg_include_padding, Slot::value(x), ctx.md(x), g);
    return Status::ok();
  }
  // Counted padding and ceil_mode windows past it: pad with zeros explicitly (they count),
  // then pool excluding only the ceil_mode overhang.
  Md xPlain;
  const Slot xs = ctx.plainOperand(x, xPlain);
  const Dims pd{xd[0], xd[1], xd[2] + a.pad[0] + a.pad[2], xd[3] + a.pad[1] + a.pad[3]};
  const Md paddedMd = plainMd(pd);
  const Slot t = ctx.temp(static_cast<int64_t>(paddedMd.get_size()));
  ctx.addKernel(fillKernel(static_cast<int64_t>(paddedMd.get_size() / sizeof(float)), 0.0f), {t});
  ctx.addReorder(xs, xPlain, t, paddedMd.submemory_desc(xd, {0, 0, a.pad[0], a.pad[1]}));
  g = poolGeometry(pd, yd, a.kernel, a.stride, {0, 0, 0, 0}, {1, 1});
  addPooling(ctx, algorithm::pooling_avg_exclude_padding, t, paddedMd, g);
  return Status::ok();
}

template <>
Status lower<OpKind::GlobalAvgPool>(LowerContext& ctx) {
  const Value* x = ctx.in(0);
  const Dims xd = ctx.dims(x);
  PoolGeometry g{{xd[2], xd[3]}, {1, 1}, {0, 0}, {0, 0}, {0, 0}};
  addPooling(ctx, algorithm::pooling_avg_exclude_padding, Slot::value(x), ctx.md(x), g);
  return Status::ok();
}

template <>
Status lower<OpKind::AdaptiveAvgPool2d>(LowerContext& ctx) {
  const Value* x = ctx.in(0);
  const Value* y = ctx.result();
  const Dims xd = ctx.dims(x), yd = ctx.dims(y);
  if (xd[2] % yd[2] == 0 && xd[3] % yd[3] == 0) {  // equal windows: a plain pooling
    const int64_t kh = xd[2] / yd[2], kw = xd[3] / yd[3];
    PoolGeometry g{{kh, kw}, {kh, kw}, {0, 0}, {0, 0}, {0, 0}};
    addPooling(ctx, algorithm::pooling_avg_exclude_padding, Slot::value(x), ctx.md(x), g);
    return Status::ok();
  }
  Md xPlain, yPlain;
  const Slot xs = ctx.plainOperand(x, xPlain);
  const Slot ys = ctx.plainResult(y, yPlain);
  ctx.addKernel(adaptiveAvgPoolKernel(xd, yd), {xs, ys});
  ctx.finishPlainResult(y, ys, yPlain);
  return Status::ok();
}

}  // namespace kiln::backends::onednn
