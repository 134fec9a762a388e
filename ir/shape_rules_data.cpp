// Shape rules of pooling and data-movement ops: pools, concat, split, slice, reshape,
// flatten, transpose, pad, reorder, constant.
#include <algorithm>
#include <limits>
#include <numeric>

#include "ir/graph.h"
#include "ir/shape_rules.h"
#include "ir/shape_rules_util.h"

namespace kiln::ir {

using namespace rules;

namespace rules {

/// PyTorch's pooling output size, including its ceil_mode rule: the last window must
/// start inside the input or the left padding. The attributes are already within
/// [1 or 0, kMaxDim]; `in` may be anything >= 0, so every step is overflow-checked.
Expected<int64_t> pooledSize(const OpContext& c, int64_t in, int64_t k, int64_t s, int64_t padBegin,
                             int64_t padEnd, int64_t dilation, bool ceilMode) {
  int64_t span = 0, padded = 0;
  const bool spanOverflows =
      __builtin_mul_overflow(dilation, k - 1, &span) || __builtin_add_overflow(span, 1, &span);
  if (__builtin_add_overflow(in, padBegin, &padded) ||
      __builtin_add_overflow(padded, padEnd, &padded))
    return resultTooLarge(c, "padded input size");
  if (spanOverflows || padded < span)
    return error(c.loc, "{}: window {} does not fit input size {} with padding", c.op,
                 spanOverflows ? fmt::format("{}*{}+1", dilation, k - 1) : std::to_string(span),
                 in);
  const int64_t numer = padded - span;
  int64_t outSize = numer / s + (ceilMode && numer % s != 0 ? 1 : 0) + 1;
  // (outSize - 1) * s overflowing means it is certainly past in + padBegin (<= padded).
  int64_t lastStart = 0;
  if (ceilMode &&
      (__builtin_mul_overflow(outSize - 1, s, &lastStart) || lastStart >= in + padBegin))
    --outSize;
  return outSize;
}

}  // namespace rules

namespace {

Status poolShape(const OpContext& c, const Ints<2>& k, const Ints<2>& s, const Ints<4>& pad,
                 const Ints<2>& dil, bool ceilMode, Results& out) {
  KILN_TRY(expectRank(c, 0, 4));
  KILN_TRY(checkAttrs(c, "kernel", k, 1));
  KILN_TRY(checkAttrs(c, "stride", s, 1));
  KILN_TRY(checkAttrs(c, "pad", pad, 0));
  KILN_TRY(checkAttrs(c, "dilation", dil, 1));
  const Shape& x = c.in[0].shape;
  if (x[2] < 0 || x[3] < 0)
    return error(c.loc, "{}: spatial dims of {} must be static", c.op, c.operandName(0));
  Shape y = x;
  for (int i = 0; i < 2; ++i) {
    KILN_ASSIGN_OR_RETURN(y[2 + i], pooledSize(c, x[2 + i], k[i], s[i], pad[i], pad[2 + i],
                                               dil[i], ceilMode));
  }
  KILN_TRY(checkResult(c, y));
  out.push_back(TensorType{c.in[0].dtype, y, c.in[0].layout});
  return Status::ok();
}

}  // namespace

Status inferMaxPool2d(const OpContext& c, const MaxPool2dAttrs& a, Results& out) {
  return poolShape(c, a.kernel, a.stride, a.pad, a.dilation, a.ceil_mode, out);
}

Status inferAvgPool2d(const OpContext& c, const AvgPool2dAttrs& a, Results& out) {
  return poolShape(c, a.kernel, a.stride, a.pad, Ints<2>{1, 1}, a.ceil_mode, out);
}

Status inferGlobalPool(const OpContext& c, const NoAttrs&, Results& out) {
  KILN_TRY(expectRank(c, 0, 4));
  Shape y = c.in[0].shape;
  y[2] = y[3] = 1;
  out.push_back(TensorType{c.in[0].dtype, y, c.in[0].layout});
  return Status::ok();
}

Status inferAdaptivePool(const OpContext& c, const AdaptiveAvgPool2dAttrs& a, Results& out) {
  KILN_TRY(expectRank(c, 0, 4));
  KILN_TRY(checkAttrs(c, "output_size", a.output_size, 1));
  Shape y = c.in[0].shape;
  y[2] = a.output_size[0];
  y[3] = a.output_size[1];
  KILN_TRY(checkResult(c, y));
  out.push_back(TensorType{c.in[0].dtype, y, c.in[0].layout});
  return Status::ok();
}

Status inferConcat(const OpContext& c, const AxisAttrs& a, Results& out) {
  KILN_TRY(expectSameDType(c));
  const size_t rank = c.in[0].shape.rank();
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(c, a.axis, rank));
  Shape y = c.in[0].shape;
  y[axis] = 0;
  for (size_t i = 0; i < c.in.size(); ++i) {
    const Shape& s = c.in[i].shape;
    if (s.rank() != rank)
      return error(c.loc, "{}: {} has rank {}, expected {}", c.op, c.operandName(i), s.rank(), rank);
    for (size_t d = 0; d < rank; ++d) {
      if (static_cast<int64_t>(d) == axis) continue;
      if (s[d] != c.in[0].shape[d])
        return error(c.loc, "{}: {} is {}, which differs from {} outside axis {}", c.op,
                     c.operandName(i), s.str(), c.in[0].shape.str(), axis);
    }
    if (s[axis] < 0)
      return error(c.loc, "{}: cannot concatenate along the symbolic batch dimension", c.op);
    std::optional<int64_t> sum = addDims(y[axis], s[axis]);
    if (!sum) return resultTooLarge(c, fmt::format("the sum of the sizes along axis {}", axis));
    y[axis] = *sum;
  }
  KILN_TRY(checkResult(c, y));
  out.push_back(TensorType{c.in[0].dtype, y, c.in[0].layout});
  return Status::ok();
}

Status inferSplit(const OpContext& c, const SplitAttrs& a, Results& out) {
  const Shape& x = c.in[0].shape;
  KILN_ASSIGN_OR_RETURN(int64_t axis, normalizeAxis(c, a.axis, x.rank()));
  if (x[axis] < 0) return error(c.loc, "{}: cannot split the symbolic batch dimension", c.op);
  if (a.sizes.empty()) return error(c.loc, "{}: sizes must not be empty", c.op);
  KILN_TRY(checkAttrs(c, "sizes", a.sizes, 1));
  int64_t total = 0;
  for (int64_t s : a.sizes) {
    std::optional<int64_t> sum = addDims(total, s);
    if (!sum) return resultTooLarge(c, "the sum of sizes");
    total = *sum;
  }
  if (total != x[axis])
    return error(c.loc, "{}: sizes add up to {}, but axis {} of {} has {}", c.op, total, axis,
                 c.operandName(0), x[axis]);
  for (int64_t s : a.sizes) {
    Shape y = x;
    y[axis] = s;
    out.push_back(TensorType{c.in[0].dtype, y, c.in[0].layout});
  }
  return Status::ok();
}

Status inferSlice(const OpContext& c, const SliceAttrs& a, Results& out) {
  const Shape& x = c.in[0].shape;
  const size_t n = a.starts.size();
  if (a.ends.size() != n || (!a.axes.empty() && a.axes.size() != n) ||
      (!a.steps.empty() && a.steps.size() != n))
    return error(c.loc, "{}: starts, ends, axes and steps must have the same length", c.op);
  Shape y = x;
  std::vector<bool> seen(x.rank(), false);
  for (size_t i = 0; i < n; ++i) {
    KILN_ASSIGN_OR_RETURN(int64_t axis,
                          normalizeAxis(c, a.axes.empty() ? static_cast<int64_t>(i) : a.axes[i],
                                        x.rank()));
    if (seen[axis]) return error(c.loc, "{}: axis {} is sliced twice", c.op, axis);
    seen[axis] = true;
    const int64_t step = a.steps.empty() ? 1 : a.steps[i];
    if (step == 0) return error(c.loc, "{}: step must not be 0", c.op);
    const int64_t dim = x[axis];
    if (dim < 0) {
      if (a.starts[i] == 0 && a.ends[i] >= std::numeric_limits<int32_t>::max() && step == 1)
        continue;  // full range of the symbolic batch
      return error(c.loc, "{}: cannot slice the symbolic batch dimension", c.op);
    }
    // ONNX clamping
    auto clampIdx = [&](int64_t v, int64_t lo, int64_t hi) {
      if (v < 0) v += dim;
      return std::clamp(v, lo, hi);
    };
    int64_t start, end;
    if (step > 0) {
      start = clampIdx(a.starts[i], 0, dim);
      end = clampIdx(a.ends[i], 0, dim);
    } else {
      start = clampIdx(a.starts[i], 0, dim - 1);
      end = clampIdx(a.ends[i], -1, dim - 1);
    }
    // start and end are clamped to [-1, dim]; the step may be any non-zero int64, so the
    // count is taken with its magnitude as uint64 (-INT64_MIN does not fit int64).
    const int64_t distance = step > 0 ? end - start : start - end;
    const uint64_t stride =
        step > 0 ? static_cast<uint64_t>(step) : 0 - static_cast<uint64_t>(step);
    y[axis] = distance <= 0
                  ? 0
                  : static_cast<int64_t>((static_cast<uint64_t>(distance) - 1) / stride + 1);
  }
  out.push_back(TensorType{c.in[0].dtype, y, c.in[0].layout});
  return Status::ok();
}

Status inferReshape(const OpContext& c, const ReshapeAttrs& a, Results& out) {
  const Shape& x = c.in[0].shape;
  std::vector<int64_t> inDims;
  bool inHasN = false;
  for (Dim d : x.dims()) {
    if (d == kBatch) inHasN = true;
    else inDims.push_back(d);
  }
  // Element counts are <= kMaxElements (== kMaxDim) in a valid graph.
  const std::optional<int64_t> inCount = productOfDims(inDims);
  if (!inCount)
    return error(c.loc, "{}: input {} has more than {} elements", c.op, x.str(), kMaxDimText);
  const int64_t inStatic = *inCount;
  Shape y(std::vector<Dim>(a.shape.size(), 0));
  std::vector<int64_t> outDims;
  bool outHasN = false;
  int inferAt = -1;
  for (size_t i = 0; i < a.shape.size(); ++i) {
    int64_t d = a.shape[i];
    if (d == 0) {
      if (i >= x.rank())
        return error(c.loc, "{}: shape entry {} is 0 (copy) but the input has rank {}", c.op, i,
                     x.rank());
      d = x[i];
    } else if (d == -1) {
      if (inferAt >= 0) return error(c.loc, "{}: more than one -1 in shape", c.op);
      inferAt = static_cast<int>(i);
      continue;
    } else if (d < -1) {
      return error(c.loc, "{}: invalid shape entry {}", c.op, d);
    } else {
      KILN_TRY(checkAttr(c, "shape entry", d, 0));
    }
    y[i] = d;
    if (d == kBatch) outHasN = true;
    else outDims.push_back(d);
  }
  // A product past the limit cannot match the input's count.
  const std::optional<int64_t> outCount = productOfDims(outDims);
  if (!outCount)
    return error(c.loc, "{}: cannot reshape {} ({} elements) to {}: more than {} elements", c.op,
                 x.str(), inStatic, Shape(a.shape).str(), kMaxDimText);
  const int64_t outStatic = *outCount;
  if (inHasN != outHasN && !(inHasN && inferAt >= 0 && outStatic == inStatic)) {
    return error(c.loc, "{}: cannot reshape {} to {}: the symbolic batch dimension must be kept "
                 "(use 0 to copy it)", c.op, x.str(), Shape(a.shape).str());
  }
  if (inferAt >= 0) {
    if (inHasN && !outHasN) {
      y[inferAt] = kBatch;  // the remaining factor is exactly N
    } else {
      if (outStatic == 0 || inStatic % outStatic != 0)
        return error(c.loc, "{}: cannot infer -1 reshaping {} to {}", c.op, x.str(),
                     Shape(a.shape).str());
      y[inferAt] = inStatic / outStatic;
    }
  } else if (outStatic != inStatic) {
    return error(c.loc, "{}: cannot reshape {} ({} elements) to {}", c.op, x.str(), inStatic,
                 y.str());
  }
  out.push_back(TensorType{c.in[0].dtype, y, layoutLike(c, y.rank())});
  return Status::ok();
}

Status inferFlatten(const OpContext& c, const AxisAttrs& a, Results& out) {
  const Shape& x = c.in[0].shape;
  int64_t axis = a.axis < 0 ? a.axis + static_cast<int64_t>(x.rank()) : a.axis;
  if (axis < 0 || axis > static_cast<int64_t>(x.rank()))
    return error(c.loc, "{}: axis {} is out of range for rank {}", c.op, a.axis, x.rank());
  auto product = [&](size_t from, size_t to) -> Expected<Dim> {
    std::vector<int64_t> dims;
    bool hasN = false;
    for (size_t i = from; i < to; ++i) {
      if (x[i] == kBatch) hasN = true;
      else dims.push_back(x[i]);
    }
    const std::optional<int64_t> p = productOfDims(dims);
    if (!p) return resultTooLarge(c, fmt::format("a dimension of flattened {}", x.str()));
    if (hasN && *p != 1)
      return error(c.loc, "{}: axis {} would merge the symbolic batch dimension of {}", c.op,
                   a.axis, x.str());
    return hasN ? kBatch : *p;
  };
  KILN_ASSIGN_OR_RETURN(Dim outer, product(0, axis));
  KILN_ASSIGN_OR_RETURN(Dim inner, product(axis, x.rank()));
  out.push_back(TensorType{c.in[0].dtype, Shape{outer, inner}, Layout::NC});
  return Status::ok();
}

Status inferTranspose(const OpContext& c, const TransposeAttrs& a, Results& out) {
  const Shape& x = c.in[0].shape;
  if (a.perm.size() != x.rank())
    return error(c.loc, "{}: perm has {} entries, input has rank {}", c.op, a.perm.size(), x.rank());
  std::vector<bool> seen(x.rank(), false);
  Shape y = x;
  for (size_t i = 0; i < a.perm.size(); ++i) {
    const int64_t p = a.perm[i];
    if (p < 0 || p >= static_cast<int64_t>(x.rank()) || seen[p])
      return error(c.loc, "{}: perm is not a permutation of 0..{}", c.op, x.rank() - 1);
    seen[p] = true;
    y[i] = x[p];
  }
  out.push_back(TensorType{c.in[0].dtype, y, defaultLayout(y.rank()).value_or(Layout::Scalar)});
  return Status::ok();
}

Status inferPad(const OpContext& c, const PadAttrs& a, Results& out) {
  const Shape& x = c.in[0].shape;
  if (a.pads.size() != 2 * x.rank())
    return error(c.loc, "{}: pads has {} entries, expected {} (begins then ends for rank {})",
                 c.op, a.pads.size(), 2 * x.rank(), x.rank());
  KILN_TRY(checkAttrs(c, "pads", a.pads, 0));  // negative padding (cropping) is not supported
  Shape y = x;
  for (size_t i = 0; i < x.rank(); ++i) {
    const int64_t b = a.pads[i], e = a.pads[i + x.rank()];
    if (x[i] == kBatch) {
      if (b || e) return error(c.loc, "{}: cannot pad the symbolic batch dimension", c.op);
      continue;
    }
    std::optional<int64_t> padded = addDims(x[i], b);
    if (padded) padded = addDims(*padded, e);
    if (!padded) return resultTooLarge(c, fmt::format("padded dimension {} of {}", i, x.str()));
    y[i] = *padded;
  }
  KILN_TRY(checkResult(c, y));
  out.push_back(TensorType{c.in[0].dtype, y, c.in[0].layout});
  return Status::ok();
}

Status inferReorder(const OpContext& c, const ReorderAttrs& a, Results& out) {
  if (layoutRank(a.layout) != c.in[0].shape.rank())
    return error(c.loc, "{}: layout {} is for rank {}, {} has rank {}", c.op, layoutName(a.layout),
                 layoutRank(a.layout), c.operandName(0), c.in[0].shape.rank());
  out.push_back(TensorType{c.in[0].dtype, c.in[0].shape, a.layout});
  return Status::ok();
}

Status inferConstant(const OpContext& c, const ConstantAttrs& a, Results& out) {
  Shape shape(a.shape);
  for (Dim d : a.shape)
    if (d < 0) return error(c.loc, "{}: shape must be static and non-negative", c.op);
  KILN_TRY(checkAttrs(c, "shape entry", a.shape, 0));
  KILN_TRY(checkResult(c, shape));
  const int64_t n = shape.numElements();
  if (a.value.size() != 1 && static_cast<int64_t>(a.value.size()) != n)
    return error(c.loc, "{}: value has {} elements, expected 1 or {} for shape {}", c.op,
                 a.value.size(), n, shape.str());
  auto layout = defaultLayout(shape.rank());
  if (!layout) return error(c.loc, "{}: rank {} is not supported", c.op, shape.rank());
  out.push_back(TensorType{a.dtype, shape, *layout});
  return Status::ok();
}

}  // namespace kiln::ir
