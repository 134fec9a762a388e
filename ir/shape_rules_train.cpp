// Shape and cost rules of the training ops: batch_norm_train, the backward ops, reduce_sum,
// the loss, count_correct, the optimizer updates (sgd, rmsprop, adamw, ema) and global_norm.
#include <algorithm>
#include <cmath>

#include "ir/graph.h"
#include "ir/shape_rules.h"
#include "ir/shape_rules_util.h"

namespace kiln::ir {

using namespace rules;

namespace {

/// Operand i is a scalar (`[]`) of dtype `t`.
Status expectScalar(const OpContext& c, size_t i, DType t) {
  if (c.in[i].shape.rank() != 0 || c.in[i].dtype != t)
    return error(c.loc, "{}: {} must be a {} scalar ({}[]), got {}", c.op, c.operandName(i),
                 dtypeName(t), dtypeName(t), c.in[i].str());
  return Status::ok();
}

/// Operands i and j have the same dtype and shape.
Status expectSameType(const OpContext& c, size_t i, size_t j) {
  if (c.in[i].dtype != c.in[j].dtype || c.in[i].shape != c.in[j].shape)
    return error(c.loc, "{}: {} is {}, expected the dtype and shape of {} ({})", c.op,
                 c.operandName(i), c.in[i].str(), c.operandName(j), c.in[j].str());
  return Status::ok();
}

/// Operands first.. are per-channel vectors [C] of x's dtype (x = operand xi).
Status expectChannelVectors(const OpContext& c, size_t xi, size_t first, size_t last) {
  const Shape& x = c.in[xi].shape;
  if (x.rank() < 2)
    return error(c.loc, "{}: {} must have rank >= 2, got {}", c.op, c.operandName(xi),
                 c.in[xi].str());
  for (size_t i = first; i <= last; ++i) {
    if (c.in[i].dtype != c.in[xi].dtype)
      return error(c.loc, "{}: {} has dtype {}, expected {} like {}", c.op, c.operandName(i),
                   dtypeName(c.in[i].dtype), dtypeName(c.in[xi].dtype), c.operandName(xi));
    if (c.in[i].shape != Shape{x[1]})
      return error(c.loc, "{}: {} must be [{}] (the channels of {}), got {}", c.op,
                   c.operandName(i), dimStr(x[1]), c.operandName(xi), c.in[i].str());
  }
  return Status::ok();
}

/// The checks of a conv's attributes shared by both backward ops.
Status checkConvAttrs(const OpContext& c, const Ints<2>& stride, const Ints<4>& pad,
                      const Ints<2>& dilation, int64_t groups) {
  KILN_TRY(checkAttr(c, "groups", groups, 1));
  KILN_TRY(checkAttrs(c, "stride", stride, 1));
  KILN_TRY(checkAttrs(c, "dilation", dilation, 1));
  return checkAttrs(c, "pad", pad, 0);
}

/// The forward conv's output size [OH, OW] for input size `in` and kernel `k`.
Expected<Ints<2>> convOutput(const OpContext& c, const Ints<2>& in, const Ints<2>& k,
                             const Ints<2>& stride, const Ints<4>& pad, const Ints<2>& dilation) {
  Ints<2> out{};
  for (int i = 0; i < 2; ++i) {
    KILN_ASSIGN_OR_RETURN(out[i], pooledSize(c, in[i], k[i], stride[i], pad[i], pad[2 + i],
                                             dilation[i], /*ceilMode=*/false));
  }
  return out;
}

/// A [N, K] float logits operand and a targets operand: i64 [N] or logits-typed [N, K].
Status expectLogitsAndTargets(const OpContext& c, size_t li, size_t ti) {
  KILN_TRY(expectRank(c, li, 2));
  KILN_TRY(expectFloat(c, li));
  const TensorType& logits = c.in[li];
  const TensorType& t = c.in[ti];
  if (t.dtype == DType::I64) {
    if (t.shape != Shape{logits.shape[0]})
      return error(c.loc, "{}: class ids {} must be i64[{}] for logits {}, got {}", c.op,
                   c.operandName(ti), dimStr(logits.shape[0]), logits.str(), t.str());
    return Status::ok();
  }
  if (t.dtype != logits.dtype || t.shape != logits.shape)
    return error(c.loc, "{}: targets {} must be class ids i64[{}] or probabilities {}{}, got {}",
                 c.op, c.operandName(ti), dimStr(logits.shape[0]), dtypeName(logits.dtype),
                 logits.shape.str(), t.str());
  return Status::ok();
}

Status checkLabelSmoothing(const OpContext& c, double s) {
  if (!(s >= 0.0 && s <= 1.0))
    return error(c.loc, "{}: label_smoothing must be in [0, 1], got {}", c.op, s);
  return Status::ok();
}

TensorType scalarOf(DType t) {
  return TensorType{t, Shape{}, Layout::Scalar};
}

}  // namespace

Status inferBatchNormTrain(const OpContext& c, const BatchNormTrainAttrs& a, Results& out) {
  KILN_TRY(expectFloat(c, 0));
  KILN_TRY(expectChannelVectors(c, 0, 1, 4));
  if (!(a.epsilon > 0)) return error(c.loc, "{}: epsilon must be > 0, got {}", c.op, a.epsilon);
  if (!(a.momentum >= 0.0 && a.momentum <= 1.0))
    return error(c.loc, "{}: momentum must be in [0, 1], got {}", c.op, a.momentum);
  out.push_back(c.in[0]);
  for (int i = 0; i < 4; ++i) out.push_back(c.in[3]);
  return Status::ok();
}

Status inferBatchNormBackward(const OpContext& c, const BatchNormAttrs& a, Results& out) {
  KILN_TRY(expectFloat(c, 0));
  KILN_TRY(expectSameType(c, 0, 1));
  KILN_TRY(expectChannelVectors(c, 1, 2, 4));
  if (!(a.epsilon > 0)) return error(c.loc, "{}: epsilon must be > 0, got {}", c.op, a.epsilon);
  out.push_back(c.in[0]);
  out.push_back(c.in[2]);
  out.push_back(c.in[2]);
  return Status::ok();
}

Status inferConv2dBackwardData(const OpContext& c, const Conv2dBackwardDataAttrs& a, Results& out) {
  KILN_TRY(expectRank(c, 0, 4));
  KILN_TRY(expectRank(c, 1, 4));
  KILN_TRY(expectSameDType(c));
  KILN_TRY(expectFloat(c, 0));
  KILN_TRY(checkConvAttrs(c, a.stride, a.pad, a.dilation, a.groups));
  KILN_TRY(checkAttrs(c, "input_size", a.input_size, 1));
  const Shape& dy = c.in[0].shape;
  const Shape& w = c.in[1].shape;
  if (!w.isStatic() || w[2] < 1 || w[3] < 1)
    return error(c.loc, "{}: weight {} must be static with a non-empty kernel, got {}", c.op,
                 c.operandName(1), c.in[1].str());
  if (dy[1] != w[0] || w[0] % a.groups != 0)
    return error(c.loc, "{}: {} has {} channels, weight {} has {} outputs (groups={})", c.op,
                 c.operandName(0), dimStr(dy[1]), c.operandName(1), w[0], a.groups);
  const std::optional<int64_t> inC = mulDims(w[1], a.groups);
  if (!inC) return resultTooLarge(c, "input channels");
  KILN_ASSIGN_OR_RETURN(Ints<2> o,
                        convOutput(c, a.input_size, {w[2], w[3]}, a.stride, a.pad, a.dilation));
  if (dy[2] != o[0] || dy[3] != o[1])
    return error(c.loc, "{}: {} is {}, but the conv of a {}x{} input gives {}x{}", c.op,
                 c.operandName(0), c.in[0].str(), a.input_size[0], a.input_size[1], o[0], o[1]);
  const Shape y{dy[0], *inC, a.input_size[0], a.input_size[1]};
  KILN_TRY(checkResult(c, y));
  out.push_back(TensorType{c.in[0].dtype, y, c.in[0].layout});
  return Status::ok();
}

Status inferConv2dBackwardWeight(const OpContext& c, const Conv2dBackwardWeightAttrs& a,
                                 Results& out) {
  KILN_TRY(expectRank(c, 0, 4));
  KILN_TRY(expectRank(c, 1, 4));
  KILN_TRY(expectSameDType(c));
  KILN_TRY(expectFloat(c, 0));
  KILN_TRY(checkConvAttrs(c, a.stride, a.pad, a.dilation, a.groups));
  KILN_TRY(checkAttrs(c, "kernel", a.kernel, 1));
  const Shape& x = c.in[0].shape;
  const Shape& dy = c.in[1].shape;
  if (x[0] != dy[0])
    return error(c.loc, "{}: {} and {} have different batch sizes", c.op, c.operandName(0),
                 c.operandName(1));
  if (x[1] < 0 || x[2] < 0 || x[3] < 0 || dy[1] < 0)
    return error(c.loc, "{}: only the batch dimension may be symbolic", c.op);
  if (x[1] % a.groups != 0 || dy[1] % a.groups != 0)
    return error(c.loc, "{}: {} input and {} output channels are not divisible by groups={}", c.op,
                 x[1], dy[1], a.groups);
  KILN_ASSIGN_OR_RETURN(Ints<2> o,
                        convOutput(c, {x[2], x[3]}, a.kernel, a.stride, a.pad, a.dilation));
  if (dy[2] != o[0] || dy[3] != o[1])
    return error(c.loc, "{}: {} is {}, but the conv of {} gives {}x{}", c.op, c.operandName(1),
                 c.in[1].str(), c.in[0].str(), o[0], o[1]);
  const Shape w{dy[1], x[1] / a.groups, a.kernel[0], a.kernel[1]};
  KILN_TRY(checkResult(c, w));
  out.push_back(TensorType{c.in[0].dtype, w, Layout::OIHW});
  return Status::ok();
}

Status inferMaxPool2dBackward(const OpContext& c, const MaxPool2dAttrs& a, Results& out) {
  KILN_TRY(expectRank(c, 0, 4));
  KILN_TRY(expectRank(c, 1, 4));
  KILN_TRY(expectSameDType(c));
  KILN_TRY(expectFloat(c, 0));
  // The forward rule on x (operand 1) gives the shape dy must have.
  const TensorType x = c.in[1];
  const OpContext forward{c.node, std::span<const TensorType>(&x, 1), c.op, c.loc};
  Results pooled;
  KILN_TRY(inferMaxPool2d(forward, a, pooled));
  if (pooled[0].shape != c.in[0].shape)
    return error(c.loc, "{}: {} is {}, but pooling {} gives {}", c.op, c.operandName(0),
                 c.in[0].str(), c.operandName(1), pooled[0].shape.str());
  out.push_back(TensorType{c.in[0].dtype, x.shape, c.in[0].layout});
  return Status::ok();
}

Status inferAvgPool2dBackward(const OpContext& c, const AvgPool2dBackwardAttrs& a, Results& out) {
  KILN_TRY(expectRank(c, 0, 4));
  KILN_TRY(expectFloat(c, 0));
  KILN_TRY(checkAttrs(c, "input_size", a.input_size, 1));
  const Shape& dy = c.in[0].shape;
  const TensorType x{c.in[0].dtype, Shape{dy[0], dy[1], a.input_size[0], a.input_size[1]},
                     c.in[0].layout};
  const OpContext forward{c.node, std::span<const TensorType>(&x, 1), c.op, c.loc};
  AvgPool2dAttrs fa;
  fa.kernel = a.kernel;
  fa.stride = a.stride;
  fa.pad = a.pad;
  fa.ceil_mode = a.ceil_mode;
  fa.count_include_pad = a.count_include_pad;
  Results pooled;
  KILN_TRY(inferAvgPool2d(forward, fa, pooled));
  if (pooled[0].shape != dy)
    return error(c.loc, "{}: {} is {}, but pooling a {}x{} input gives {}", c.op, c.operandName(0),
                 c.in[0].str(), a.input_size[0], a.input_size[1], pooled[0].shape.str());
  KILN_TRY(checkResult(c, x.shape));
  out.push_back(x);
  return Status::ok();
}

namespace {
Status activationBackward(const OpContext& c, Results& out) {
  KILN_TRY(expectFloat(c, 0));
  KILN_TRY(expectSameType(c, 1, 0));
  out.push_back(c.in[0]);
  return Status::ok();
}
}  // namespace

Status inferActivationBackward(const OpContext& c, const NoAttrs&, Results& out) {
  return activationBackward(c, out);
}
Status inferActivationBackward(const OpContext& c, const ClipAttrs& a, Results& out) {
  if (a.min > a.max) return error(c.loc, "{}: min {} is greater than max {}", c.op, a.min, a.max);
  return activationBackward(c, out);
}
Status inferActivationBackward(const OpContext& c, const HardSigmoidAttrs&, Results& out) {
  return activationBackward(c, out);
}

Expected<std::vector<bool>> reducedAxes(const OpContext& c, const ReduceAttrs& a, size_t rank) {
  std::vector<bool> reduced(rank, a.axes.empty());
  for (int64_t axis : a.axes) {
    KILN_ASSIGN_OR_RETURN(int64_t d, normalizeAxis(c, axis, rank));
    if (reduced[d]) return error(c.loc, "{}: axis {} is listed twice", c.op, d);
    reduced[d] = true;
  }
  return reduced;
}

Status inferReduce(const OpContext& c, const ReduceAttrs& a, Results& out) {
  KILN_TRY(expectFloat(c, 0));
  const Shape& x = c.in[0].shape;
  KILN_ASSIGN_OR_RETURN(std::vector<bool> reduced, reducedAxes(c, a, x.rank()));
  Shape y;
  for (size_t d = 0; d < x.rank(); ++d) {
    if (!reduced[d])
      y.dims().push_back(x[d]);
    else if (a.keepdims)
      y.dims().push_back(1);
  }
  const Layout layout =
      y.rank() == x.rank() ? c.in[0].layout : defaultLayout(y.rank()).value_or(Layout::Scalar);
  out.push_back(TensorType{c.in[0].dtype, y, layout});
  return Status::ok();
}

Status inferSoftmaxCrossEntropy(const OpContext& c, const CrossEntropyAttrs& a, Results& out) {
  KILN_TRY(checkLabelSmoothing(c, a.label_smoothing));
  KILN_TRY(expectLogitsAndTargets(c, 0, 1));
  out.push_back(scalarOf(c.in[0].dtype));
  return Status::ok();
}

Status inferSoftmaxCrossEntropyBackward(const OpContext& c, const CrossEntropyAttrs& a,
                                        Results& out) {
  KILN_TRY(checkLabelSmoothing(c, a.label_smoothing));
  KILN_TRY(expectLogitsAndTargets(c, 1, 2));
  KILN_TRY(expectScalar(c, 0, c.in[1].dtype));
  out.push_back(c.in[1]);
  return Status::ok();
}

Status inferCountCorrect(const OpContext& c, const NoAttrs&, Results& out) {
  KILN_TRY(expectLogitsAndTargets(c, 0, 1));
  out.push_back(scalarOf(DType::I64));
  return Status::ok();
}

namespace {

/// The operands every optimizer update starts with: param (float, static), grad (same type)
/// and lr (a scalar of their dtype).
Status expectParamGradLr(const OpContext& c) {
  KILN_TRY(expectFloat(c, 0));
  if (!c.in[0].shape.isStatic())
    return error(c.loc, "{}: parameter {} must have a static shape, got {}", c.op, c.operandName(0),
                 c.in[0].str());
  KILN_TRY(expectSameType(c, 1, 0));
  return expectScalar(c, 2, c.in[0].dtype);
}

/// An attribute that must be finite and in [lo, hi) (hiOpen) or [lo, hi].
Status checkRange(const OpContext& c, std::string_view name, double v, double lo, double hi,
                  bool hiOpen) {
  if (!(v >= lo && (hiOpen ? v < hi : v <= hi)) || std::isinf(v))
    return error(c.loc, "{}: {} must be in [{}, {}{}, got {}", c.op, name, lo, hi,
                 hiOpen ? ")" : "]", v);
  return Status::ok();
}

/// An attribute that must be finite and >= 0.
Status checkNonNegative(const OpContext& c, std::string_view name, double v) {
  if (!(v >= 0.0) || std::isinf(v))
    return error(c.loc, "{}: {} must be finite and >= 0, got {}", c.op, name, v);
  return Status::ok();
}

}  // namespace

Status inferSgdUpdate(const OpContext& c, const SgdAttrs& a, Results& out) {
  KILN_TRY(expectParamGradLr(c));
  if (!(a.momentum >= 0.0) || !(a.weight_decay >= 0.0) || std::isinf(a.momentum) ||
      std::isinf(a.weight_decay))
    return error(c.loc, "{}: momentum and weight_decay must be finite and >= 0, got {} and {}",
                 c.op, a.momentum, a.weight_decay);
  if (a.nesterov && a.momentum == 0.0)
    return error(c.loc, "{}: nesterov needs a momentum > 0", c.op);
  const bool hasBuffer = c.in.size() == 4;
  if (hasBuffer != (a.momentum != 0.0))
    return error(c.loc, "{}: {}", c.op,
                 hasBuffer ? "a momentum buffer is given but momentum is 0"
                           : "momentum > 0 needs the momentum buffer as operand 3");
  out.push_back(c.in[0]);
  if (hasBuffer) {
    KILN_TRY(expectSameType(c, 3, 0));
    out.push_back(c.in[3]);
  }
  return Status::ok();
}

Status inferRmsPropUpdate(const OpContext& c, const RmsPropAttrs& a, Results& out) {
  KILN_TRY(expectParamGradLr(c));
  KILN_TRY(checkRange(c, "alpha", a.alpha, 0.0, 1.0, /*hiOpen=*/false));
  KILN_TRY(checkNonNegative(c, "eps", a.eps));
  KILN_TRY(checkNonNegative(c, "momentum", a.momentum));
  KILN_TRY(checkNonNegative(c, "weight_decay", a.weight_decay));
  const bool hasBuffer = c.in.size() == 5;
  if (hasBuffer != (a.momentum != 0.0))
    return error(c.loc, "{}: {}", c.op,
                 hasBuffer ? "a momentum buffer is given but momentum is 0"
                           : "momentum > 0 needs the momentum buffer as operand 4");
  KILN_TRY(expectSameType(c, 3, 0));
  out.push_back(c.in[0]);
  out.push_back(c.in[3]);
  if (hasBuffer) {
    KILN_TRY(expectSameType(c, 4, 0));
    out.push_back(c.in[4]);
  }
  return Status::ok();
}

Status inferAdamWUpdate(const OpContext& c, const AdamWAttrs& a, Results& out) {
  KILN_TRY(expectParamGradLr(c));
  KILN_TRY(checkRange(c, "beta1", a.beta1, 0.0, 1.0, /*hiOpen=*/true));
  KILN_TRY(checkRange(c, "beta2", a.beta2, 0.0, 1.0, /*hiOpen=*/true));
  KILN_TRY(checkNonNegative(c, "eps", a.eps));
  KILN_TRY(checkNonNegative(c, "weight_decay", a.weight_decay));
  KILN_TRY(expectSameType(c, 3, 0));
  KILN_TRY(expectSameType(c, 4, 0));
  KILN_TRY(expectScalar(c, 5, c.in[0].dtype));
  out.push_back(c.in[0]);
  out.push_back(c.in[3]);
  out.push_back(c.in[4]);
  return Status::ok();
}

Status inferEmaUpdate(const OpContext& c, const EmaAttrs& a, Results& out) {
  KILN_TRY(expectFloat(c, 0));
  KILN_TRY(expectSameType(c, 1, 0));
  KILN_TRY(checkRange(c, "decay", a.decay, 0.0, 1.0, /*hiOpen=*/false));
  out.push_back(c.in[0]);
  return Status::ok();
}

Status inferGlobalNorm(const OpContext& c, const NoAttrs&, Results& out) {
  KILN_TRY(expectFloat(c, 0));
  for (size_t i = 1; i < c.in.size(); ++i)
    if (c.in[i].dtype != c.in[0].dtype)
      return error(c.loc, "{}: {} has dtype {}, expected {} like {}", c.op, c.operandName(i),
                   dtypeName(c.in[i].dtype), dtypeName(c.in[0].dtype), c.operandName(0));
  out.push_back(scalarOf(c.in[0].dtype));
  return Status::ok();
}

// ---- costs ----

Cost costGlobalNorm(const OpContext& c, const NoAttrs&, ResultTypes) {
  Cost cost;
  for (const TensorType& t : c.in)
    cost.flops = saturatingAdd(cost.flops, saturatingMul(2, t.shape.numElements(1)));
  return cost;
}

Cost costBatchNormTrain(const OpContext&, const BatchNormTrainAttrs&, ResultTypes r) {
  // statistics (2 per element) plus the normalization (2 per element)
  return Cost{0, saturatingMul(4, r[0].shape.numElements(1))};
}

Cost costBatchNormBackward(const OpContext&, const BatchNormAttrs&, ResultTypes r) {
  // two reductions (2 per element each) and dx (3 per element)
  return Cost{0, saturatingMul(7, r[0].shape.numElements(1))};
}

Cost costConv2dBackwardData(const OpContext& c, const Conv2dBackwardDataAttrs&, ResultTypes) {
  const Shape& w = c.in[1].shape;
  Cost cost;
  cost.macs =
      saturatingMul(c.in[0].shape.numElements(1), saturatingMul(w[1], saturatingMul(w[2], w[3])));
  cost.flops = saturatingMul(2, cost.macs);
  return cost;
}

Cost costConv2dBackwardWeight(const OpContext& c, const Conv2dBackwardWeightAttrs&, ResultTypes r) {
  // The forward conv's MACs: every weight element sums over the output pixels.
  const Shape& w = r[0].shape;
  Cost cost;
  cost.macs =
      saturatingMul(c.in[1].shape.numElements(1), saturatingMul(w[1], saturatingMul(w[2], w[3])));
  cost.flops = saturatingMul(2, cost.macs);
  return cost;
}

}  // namespace kiln::ir
