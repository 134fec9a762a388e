// Gradient rules: for each differentiable op, the nodes computing its operand gradients
// (`dx[i]`) from its result gradients (`dy[i]`). Formulas follow PyTorch's autograd,
// including its subgradients at kinks; they are checked against finite differences
// (tests/passes/autodiff_gradcheck_test.cpp) and PyTorch (tests/passes/autodiff_torch_test.cpp).
#include "ir/grad_rules.h"

#include <algorithm>
#include <numeric>

namespace kiln::ir {

namespace {

/// The rule signature, with the short names the rules below use.
#define KILN_RULE(name) \
  Status name(GradContext& c, const Node& n, std::span<Value* const> dy, std::vector<Value*>& dx)

const Shape& shapeOf(const Value* v) {
  return v->type().shape;
}
DType dtypeOf(const Value* v) {
  return v->type().dtype;
}

/// transpose(v) swapping the last two dims.
Value* swapLast(GradContext& c, Value* v) {
  if (!v) return nullptr;
  const size_t r = shapeOf(v).rank();
  TransposeAttrs t;
  t.perm.resize(r);
  std::iota(t.perm.begin(), t.perm.end(), int64_t{0});
  std::swap(t.perm[r - 2], t.perm[r - 1]);
  return c.op(OpKind::Transpose, {v}, t);
}

IntList range(int64_t from, int64_t to) {
  IntList r;
  for (int64_t i = from; i < to; ++i) r.push_back(i);
  return r;
}

int64_t normalized(int64_t axis, size_t rank) {
  return axis < 0 ? axis + static_cast<int64_t>(rank) : axis;
}

/// A unary op whose gradient is `kind(dy, x)` with the node's attributes.
Status activation(GradContext& c, const Node& n, Value* g, std::vector<Value*>& dx, OpKind kind,
                  Attrs attrs = {}) {
  dx[0] = c.op(kind, {g, n.operand(0)}, std::move(attrs));
  return c.status();
}

/// dropout / drop_path: the same mask (same seed, same operand shape) applied to dy.
Status stochastic(GradContext& c, const Node& n, Value* g, std::vector<Value*>& dx) {
  const auto& a = n.attrs<DropoutAttrs>();
  if (!a.training || a.p == 0.0) {
    dx[0] = g;
    return c.status();
  }
  std::vector<Value*> operands{g};
  if (n.numOperands() == 2) operands.push_back(n.operand(1));
  dx[0] = c.op(n.kind(), operands, a);
  return c.status();
}

}  // namespace

// ---- convolution and normalization ----

KILN_RULE(gradConv2d) {
  const auto& a = n.attrs<Conv2dAttrs>();
  // Fused post-ops (the fuse pass) are differentiated before fusion, not through it.
  if (!a.post_ops.empty())
    return (c.unsupported("fused post_ops: differentiate the graph before fusion"), c.status());
  Value* x = n.operand(0);
  Value* w = n.operand(1);
  const Shape& xs = shapeOf(x);
  const Shape& ws = shapeOf(w);
  if (c.needs(0))
    dx[0] = c.op(OpKind::Conv2dBackwardData, {dy[0], w},
                 Conv2dBackwardDataAttrs{.stride = a.stride,
                                         .pad = a.pad,
                                         .dilation = a.dilation,
                                         .groups = a.groups,
                                         .input_size = {xs[2], xs[3]}});
  if (c.needs(1))
    dx[1] = c.op(OpKind::Conv2dBackwardWeight, {x, dy[0]},
                 Conv2dBackwardWeightAttrs{.stride = a.stride,
                                           .pad = a.pad,
                                           .dilation = a.dilation,
                                           .groups = a.groups,
                                           .kernel = {ws[2], ws[3]}});
  if (n.numOperands() == 3 && c.needs(2)) dx[2] = c.reduceSum(dy[0], {0, 2, 3}, false);
  return c.status();
}

KILN_RULE(gradBatchNormTrain) {
  for (size_t i = 1; i < dy.size(); ++i)
    if (dy[i]) c.unsupported("a gradient flows into the batch statistics (results 1 to 4)");
  if (!dy[0] || !(c.needs(0) || c.needs(1) || c.needs(2))) return c.status();
  // operands: x, weight, bias, running_mean, running_var; results: y, mean, var, ...
  const std::vector<Value*> g = c.opN(OpKind::BatchNormBackward,
                                      {dy[0], n.operand(0), n.operand(1), n.result(1), n.result(2)},
                                      BatchNormAttrs{n.attrs<BatchNormTrainAttrs>().epsilon});
  if (g.size() == 3)
    for (size_t i = 0; i < 3; ++i)
      if (c.needs(i)) dx[i] = g[i];
  return c.status();
}

// ---- activations ----

KILN_RULE(gradRelu) {
  return activation(c, n, dy[0], dx, OpKind::ReluBackward);
}

KILN_RULE(gradRelu6) {
  return activation(c, n, dy[0], dx, OpKind::ClipBackward, ClipAttrs{0.0, 6.0});
}

KILN_RULE(gradClip) {
  return activation(c, n, dy[0], dx, OpKind::ClipBackward, n.attrs<ClipAttrs>());
}

KILN_RULE(gradSwish) {
  return activation(c, n, dy[0], dx, OpKind::SwishBackward);
}

KILN_RULE(gradHardSwish) {
  return activation(c, n, dy[0], dx, OpKind::HardSwishBackward);
}

KILN_RULE(gradHardSigmoid) {
  return activation(c, n, dy[0], dx, OpKind::HardSigmoidBackward, n.attrs<HardSigmoidAttrs>());
}

KILN_RULE(gradSigmoid) {
  // dy * y * (1 - y), from the result
  Value* y = n.result();
  Value* one = c.constant(1.0, dtypeOf(y));
  dx[0] = c.op(OpKind::Mul, {dy[0], c.op(OpKind::Mul, {y, c.op(OpKind::Sub, {one, y})})});
  return c.status();
}

KILN_RULE(gradTanh) {
  // dy * (1 - y^2)
  Value* y = n.result();
  Value* one = c.constant(1.0, dtypeOf(y));
  dx[0] = c.op(OpKind::Mul, {dy[0], c.op(OpKind::Sub, {one, c.op(OpKind::Mul, {y, y})})});
  return c.status();
}

// ---- broadcasting binaries ----

KILN_RULE(gradAdd) {
  for (size_t i = 0; i < 2; ++i)
    if (c.needs(i)) dx[i] = c.sumTo(dy[0], shapeOf(n.operand(i)));
  return c.status();
}

KILN_RULE(gradSub) {
  if (c.needs(0)) dx[0] = c.sumTo(dy[0], shapeOf(n.operand(0)));
  if (c.needs(1)) dx[1] = c.neg(c.sumTo(dy[0], shapeOf(n.operand(1))));
  return c.status();
}

KILN_RULE(gradMul) {
  Value* a = n.operand(0);
  Value* b = n.operand(1);
  if (c.needs(0)) dx[0] = c.sumTo(c.op(OpKind::Mul, {dy[0], b}), shapeOf(a));
  if (c.needs(1)) dx[1] = c.sumTo(c.op(OpKind::Mul, {dy[0], a}), shapeOf(b));
  return c.status();
}

KILN_RULE(gradDiv) {
  // y = a / b: da = dy / b, db = -dy * a / b^2 = -(dy / b) * y
  Value* b = n.operand(1);
  Value* q = c.op(OpKind::Div, {dy[0], b});
  if (c.needs(0)) dx[0] = c.sumTo(q, shapeOf(n.operand(0)));
  if (c.needs(1)) dx[1] = c.neg(c.sumTo(c.op(OpKind::Mul, {q, n.result()}), shapeOf(b)));
  return c.status();
}

KILN_RULE(gradChannelScale) {
  Value* x = n.operand(0);
  Value* s = n.operand(1);
  if (c.needs(0)) dx[0] = c.op(OpKind::ChannelScale, {dy[0], s});
  if (c.needs(1)) {
    IntList axes{2, 3};
    if (shapeOf(s)[0] == 1 && shapeOf(x)[0] != 1) axes.insert(axes.begin(), 0);
    dx[1] = c.reduceSum(c.op(OpKind::Mul, {dy[0], x}), axes, /*keepdims=*/true);
  }
  return c.status();
}

// ---- dense ----

KILN_RULE(gradMatMul) {
  Value* a = n.operand(0);
  Value* b = n.operand(1);
  if (c.needs(0)) dx[0] = c.sumTo(c.op(OpKind::MatMul, {dy[0], swapLast(c, b)}), shapeOf(a));
  if (c.needs(1)) dx[1] = c.sumTo(c.op(OpKind::MatMul, {swapLast(c, a), dy[0]}), shapeOf(b));
  return c.status();
}

KILN_RULE(gradLinear) {
  // y = x W^T + b over the last dim of x
  Value* x = n.operand(0);
  Value* w = n.operand(1);
  const auto rank = static_cast<int64_t>(shapeOf(x).rank());
  if (rank < 2) return (c.unsupported("linear on a rank-1 input"), c.status());
  if (c.needs(0)) dx[0] = c.op(OpKind::MatMul, {dy[0], w});
  if (c.needs(1)) {
    Value* gw = c.op(OpKind::MatMul, {swapLast(c, dy[0]), x});  // [..., out, in]
    dx[1] = rank == 2 ? gw : c.reduceSum(gw, range(0, rank - 2), false);
  }
  if (n.numOperands() == 3 && c.needs(2)) dx[2] = c.reduceSum(dy[0], range(0, rank - 1), false);
  return c.status();
}

// ---- pooling ----

KILN_RULE(gradMaxPool2d) {
  dx[0] = c.op(OpKind::MaxPool2dBackward, {dy[0], n.operand(0)}, n.attrs<MaxPool2dAttrs>());
  return c.status();
}

KILN_RULE(gradAvgPool2d) {
  const auto& a = n.attrs<AvgPool2dAttrs>();
  const Shape& xs = shapeOf(n.operand(0));
  dx[0] = c.op(OpKind::AvgPool2dBackward, {dy[0]},
               AvgPool2dBackwardAttrs{.kernel = a.kernel,
                                      .stride = a.stride,
                                      .pad = a.pad,
                                      .ceil_mode = a.ceil_mode,
                                      .count_include_pad = a.count_include_pad,
                                      .input_size = {xs[2], xs[3]}});
  return c.status();
}

KILN_RULE(gradGlobalAvgPool) {
  // dy [N,C,1,1] broadcast over [H,W], divided by H*W
  const Shape& xs = shapeOf(n.operand(0));
  const double scale = 1.0 / static_cast<double>(xs[2] * xs[3]);
  dx[0] = c.op(OpKind::Mul, {dy[0], c.constant(scale, dtypeOf(dy[0]), Shape{xs[2], xs[3]})});
  return c.status();
}

KILN_RULE(gradAdaptiveAvgPool2d) {
  // PyTorch's windows are [floor(i*in/out), ceil((i+1)*in/out)): when out divides in they are
  // the windows of avg_pool2d with kernel = stride = in/out.
  const Ints<2>& out = n.attrs<AdaptiveAvgPool2dAttrs>().output_size;
  const Shape& xs = shapeOf(n.operand(0));
  if (xs[2] % out[0] != 0 || xs[3] % out[1] != 0)
    return (c.unsupported(fmt::format("output_size [{},{}] does not divide the input {}x{}", out[0],
                                      out[1], xs[2], xs[3])),
            c.status());
  const Ints<2> k{xs[2] / out[0], xs[3] / out[1]};
  dx[0] = c.op(OpKind::AvgPool2dBackward, {dy[0]},
               AvgPool2dBackwardAttrs{.kernel = k, .stride = k, .input_size = {xs[2], xs[3]}});
  return c.status();
}

// ---- data movement ----

KILN_RULE(gradConcat) {
  const int64_t axis = normalized(n.attrs<AxisAttrs>().axis, shapeOf(n.result()).rank());
  SplitAttrs s;
  s.axis = axis;
  for (const Value* v : n.operands()) s.sizes.push_back(shapeOf(v)[axis]);
  const std::vector<Value*> parts = c.opN(OpKind::Split, {dy[0]}, s);
  if (parts.size() == n.numOperands())
    for (size_t i = 0; i < parts.size(); ++i)
      if (c.needs(i)) dx[i] = parts[i];
  return c.status();
}

KILN_RULE(gradSplit) {
  const Shape& xs = shapeOf(n.operand(0));
  const int64_t axis = normalized(n.attrs<SplitAttrs>().axis, xs.rank());
  if (std::all_of(dy.begin(), dy.end(), [](Value* v) { return v != nullptr; })) {
    dx[0] = c.op(OpKind::Concat, std::vector<Value*>(dy.begin(), dy.end()), AxisAttrs{axis});
    return c.status();
  }
  // Some pieces have no gradient (zero): pad the others back to full size and add them.
  int64_t offset = 0;
  Value* sum = nullptr;
  for (size_t i = 0; i < dy.size(); ++i) {
    const int64_t size = shapeOf(n.result(i))[axis];
    if (dy[i]) {
      PadAttrs p;
      p.pads.assign(2 * xs.rank(), 0);
      p.pads[axis] = offset;
      p.pads[axis + xs.rank()] = xs[axis] - offset - size;
      Value* full = c.op(OpKind::Pad, {dy[i]}, p);
      sum = sum ? c.op(OpKind::Add, {sum, full}) : full;
    }
    offset += size;
  }
  dx[0] = sum;
  return c.status();
}

KILN_RULE(gradSlice) {
  // A step-1 slice is undone by zero padding; other steps would need a scatter.
  const auto& a = n.attrs<SliceAttrs>();
  const Shape& xs = shapeOf(n.operand(0));
  const Shape& ys = shapeOf(n.result());
  PadAttrs p;
  p.pads.assign(2 * xs.rank(), 0);
  for (size_t i = 0; i < a.starts.size(); ++i) {
    const int64_t axis =
        normalized(a.axes.empty() ? static_cast<int64_t>(i) : a.axes[i], xs.rank());
    const int64_t step = a.steps.empty() ? 1 : a.steps[i];
    const int64_t dim = xs[axis];
    if (dim == kBatch) continue;  // the full range of N
    if (step != 1)
      return (c.unsupported(
                  fmt::format("step {} on axis {}: only step 1 is differentiable", step, axis)),
              c.status());
    const int64_t start =
        std::clamp(a.starts[i] < 0 ? a.starts[i] + dim : a.starts[i], int64_t{0}, dim);
    p.pads[axis] = start;
    p.pads[axis + xs.rank()] = dim - start - ys[axis];
  }
  dx[0] = c.op(OpKind::Pad, {dy[0]}, p);
  return c.status();
}

KILN_RULE(gradReshape) {
  // reshape and flatten: back to the operand's shape (N copied from dy where it sits there)
  const Shape& xs = shapeOf(n.operand(0));
  const Shape& gs = shapeOf(dy[0]);
  ReshapeAttrs r;
  for (size_t i = 0; i < xs.rank(); ++i)
    r.shape.push_back(xs[i] != kBatch ? xs[i] : (i < gs.rank() && gs[i] == kBatch ? 0 : -1));
  dx[0] = c.op(OpKind::Reshape, {dy[0]}, r);
  return c.status();
}

KILN_RULE(gradTranspose) {
  const IntList& perm = n.attrs<TransposeAttrs>().perm;
  TransposeAttrs inv;
  inv.perm.resize(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inv.perm[perm[i]] = static_cast<int64_t>(i);
  dx[0] = c.op(OpKind::Transpose, {dy[0]}, inv);
  return c.status();
}

KILN_RULE(gradPad) {
  const IntList& pads = n.attrs<PadAttrs>().pads;
  const Shape& xs = shapeOf(n.operand(0));
  SliceAttrs s;
  for (size_t d = 0; d < xs.rank(); ++d) {
    if (pads[d] == 0 && pads[d + xs.rank()] == 0) continue;
    s.axes.push_back(static_cast<int64_t>(d));
    s.starts.push_back(pads[d]);
    s.ends.push_back(pads[d] + xs[d]);
  }
  dx[0] = s.axes.empty() ? dy[0] : c.op(OpKind::Slice, {dy[0]}, s);
  return c.status();
}

KILN_RULE(gradReorder) {
  const Layout layout = n.operand(0)->type().layout;
  dx[0] =
      dy[0]->type().layout == layout ? dy[0] : c.op(OpKind::Reorder, {dy[0]}, ReorderAttrs{layout});
  return c.status();
}

// ---- normalized exponentials ----

KILN_RULE(gradSoftmax) {
  // y * (dy - sum(dy * y, axis))
  Value* y = n.result();
  const int64_t axis = n.attrs<AxisAttrs>().axis;
  Value* s = c.reduceSum(c.op(OpKind::Mul, {dy[0], y}), {axis}, true);
  dx[0] = c.op(OpKind::Mul, {y, c.op(OpKind::Sub, {dy[0], s})});
  return c.status();
}

KILN_RULE(gradLogSoftmax) {
  // dy - softmax(x) * sum(dy, axis)
  const int64_t axis = n.attrs<AxisAttrs>().axis;
  Value* p = c.op(OpKind::Softmax, {n.operand(0)}, AxisAttrs{axis});
  Value* s = c.reduceSum(dy[0], {axis}, true);
  dx[0] = c.op(OpKind::Sub, {dy[0], c.op(OpKind::Mul, {p, s})});
  return c.status();
}

// ---- regularization and loss ----

KILN_RULE(gradDropout) {
  return stochastic(c, n, dy[0], dx);
}

KILN_RULE(gradDropPath) {
  return stochastic(c, n, dy[0], dx);
}

KILN_RULE(gradSoftmaxCrossEntropy) {
  if (c.needs(1)) c.unsupported("no gradient with respect to the targets");
  if (c.needs(0))
    dx[0] = c.op(OpKind::SoftmaxCrossEntropyBackward, {dy[0], n.operand(0), n.operand(1)},
                 n.attrs<CrossEntropyAttrs>());
  return c.status();
}

#undef KILN_RULE

}  // namespace kiln::ir
