// Shape rules of compute ops: elementwise, convolution, normalization, dense, pooling.
#include "ir/shape_rules.h"

#include <algorithm>

#include "ir/graph.h"
#include "ir/shape_rules_util.h"

namespace kiln::ir {

Expected<int64_t> normalizeAxis(const OpContext& c, int64_t axis, size_t rank) {
  const auto r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r)
    return error(c.loc, "{}: axis {} is out of range for rank {}", c.op, axis, rank);
  return axis < 0 ? axis + r : axis;
}

namespace rules {

Status expectRank(const OpContext& c, size_t i, size_t rank) {
  if (c.in[i].shape.rank() != rank)
    return error(c.loc, "{}: {} must have rank {}, got {}", c.op, c.operandName(i), rank,
                 c.in[i].str());
  return Status::ok();
}

Status expectSameDType(const OpContext& c) {
  for (size_t i = 1; i < c.in.size(); ++i)
    if (c.in[i].dtype != c.in[0].dtype)
      return error(c.loc, "{}: {} has dtype {}, expected {} like {}", c.op, c.operandName(i),
                   dtypeName(c.in[i].dtype), dtypeName(c.in[0].dtype), c.operandName(0));
  return Status::ok();
}

Status expectFloat(const OpContext& c, size_t i) {
  if (!isFloat(c.in[i].dtype))
    return error(c.loc, "{}: {} must be a floating-point tensor, got {}", c.op, c.operandName(i),
                 c.in[i].str());
  return Status::ok();
}

Layout layoutLike(const OpContext& c, size_t rank) {
  if (!c.in.empty() && c.in[0].shape.rank() == rank) return c.in[0].layout;
  return defaultLayout(rank).value_or(Layout::Scalar);
}

std::string dimStr(Dim d) { return d == kBatch ? std::string("N") : std::to_string(d); }

Status checkAttr(const OpContext& c, std::string_view attr, int64_t v, int64_t min) {
  if (v < min) return error(c.loc, "{}: {} must be >= {}, got {}", c.op, attr, min, v);
  if (v > kMaxDim)
    return error(c.loc, "{}: {} {} exceeds the limit {}", c.op, attr, v, kMaxDimText);
  return Status::ok();
}

Status checkAttrs(const OpContext& c, std::string_view attr, std::span<const int64_t> vs,
                  int64_t min) {
  for (int64_t v : vs) KILN_TRY(checkAttr(c, attr, v, min));
  return Status::ok();
}

Status checkResult(const OpContext& c, const Shape& y) {
  Status st = checkShapeLimits(y);
  if (!st) return error(c.loc, "{}: result {}", c.op, st.message());
  return Status::ok();
}

Status resultTooLarge(const OpContext& c, std::string_view what) {
  return error(c.loc, "{}: {} exceeds the limit {}", c.op, what, kMaxDimText);
}

std::optional<int64_t> addDims(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r) || r > kMaxDim) return std::nullopt;
  return r;
}

std::optional<int64_t> mulDims(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r) || r > kMaxDim) return std::nullopt;
  return r;
}

std::optional<int64_t> productOfDims(std::span<const int64_t> dims) {
  if (std::find(dims.begin(), dims.end(), 0) != dims.end()) return 0;
  std::optional<int64_t> p = 1;
  for (int64_t d : dims) {
    p = mulDims(*p, d);
    if (!p) return std::nullopt;
  }
  return p;
}

}  // namespace rules

using namespace rules;

namespace {
template <typename A>
Status inferSameImpl(const OpContext& c, Results& out) {
  out.push_back(c.in[0]);
  return Status::ok();
}
}  // namespace

Status inferSame(const OpContext& c, const NoAttrs&, Results& out) { return inferSameImpl<NoAttrs>(c, out); }
Status inferSame(const OpContext& c, const HardSigmoidAttrs&, Results& out) {
  KILN_TRY(expectFloat(c, 0));
  return inferSameImpl<HardSigmoidAttrs>(c, out);
}
Status inferSame(const OpContext& c, const ClipAttrs& a, Results& out) {
  if (a.min > a.max) return error(c.loc, "{}: min {} is greater than max {}", c.op, a.min, a.max);
  return inferSameImpl<ClipAttrs>(c, out);
}
Status inferSame(const OpContext& c, const AxisAttrs& a, Results& out) {
  KILN_TRY(normalizeAxis(c, a.axis, c.in[0].shape.rank()).status());
  KILN_TRY(expectFloat(c, 0));
  return inferSameImpl<AxisAttrs>(c, out);
}
Status inferSame(const OpContext& c, const DropoutAttrs& a, Results& out) {
  if (!(a.p >= 0.0 && a.p < 1.0))
    return error(c.loc, "{}: p must be in [0, 1), got {}", c.op, a.p);
  if (c.in.size() == 2 && (c.in[1].dtype != DType::I64 || c.in[1].shape.rank() != 0))
    return error(c.loc, "{}: seed {} must be an i64 scalar (i64[]), got {}", c.op, c.operandName(1),
                 c.in[1].str());
  return inferSameImpl<DropoutAttrs>(c, out);
}

Status inferConv2d(const OpContext& c, const Conv2dAttrs& a, Results& out) {
  KILN_TRY(expectRank(c, 0, 4));
  KILN_TRY(expectRank(c, 1, 4));
  KILN_TRY(expectSameDType(c));
  KILN_TRY(expectFloat(c, 0));
  const Shape& x = c.in[0].shape;
  const Shape& w = c.in[1].shape;
  KILN_TRY(checkAttr(c, "groups", a.groups, 1));
  KILN_TRY(checkAttrs(c, "stride", a.stride, 1));
  KILN_TRY(checkAttrs(c, "dilation", a.dilation, 1));
  KILN_TRY(checkAttrs(c, "pad", a.pad, 0));
  if (x[1] < 0 || x[2] < 0 || x[3] < 0)
    return error(c.loc, "{}: only the batch dimension of {} may be symbolic, got {}", c.op,
                 c.operandName(0), c.in[0].str());
  if (!w.isStatic())
    return error(c.loc, "{}: weight {} must have a static shape, got {}", c.op,
                 c.operandName(1), c.in[1].str());
  if (w[2] < 1 || w[3] < 1)
    return error(c.loc, "{}: weight {} has an empty kernel, got {}", c.op, c.operandName(1),
                 c.in[1].str());
  int64_t inC = 0;
  const bool inCOverflows = __builtin_mul_overflow(w[1], a.groups, &inC);
  if (inCOverflows || x[1] != inC)
    return error(c.loc, "{}: input {} has {} channels, weight {} expects {} (groups={})", c.op,
                 c.operandName(0), x[1], c.operandName(1),
                 inCOverflows ? fmt::format("{}*{}", w[1], a.groups) : std::to_string(inC),
                 a.groups);
  if (w[0] % a.groups != 0)
    return error(c.loc, "{}: {} output channels are not divisible by groups={}", c.op, w[0],
                 a.groups);
  const int64_t sums = std::count_if(a.post_ops.begin(), a.post_ops.end(),
                                     [](const PostOp& p) { return p.kind == PostOpKind::Sum; });
  if (sums > 1)
    return error(c.loc, "{}: post_ops may hold one sum, got {}", c.op, sums);
  const int64_t biases = static_cast<int64_t>(c.in.size()) - 2 - sums;
  if (biases < 0 || biases > 1)
    return error(c.loc,
                 "{}: expected x, w, [bias]{} ({} to {} operands), got {}", c.op,
                 sums ? " and the summand of post-op sum" : "", 2 + sums, 3 + sums, c.in.size());
  if (biases == 1) {
    if (c.in[2].shape != Shape{w[0]})
      return error(c.loc, "{}: bias {} must be [{}], got {}", c.op, c.operandName(2), w[0],
                   c.in[2].str());
  }
  for (const PostOp& p : a.post_ops)
    if (p.kind == PostOpKind::Clip && !(p.alpha <= p.beta))
      return error(c.loc, "{}: post-op {} needs min <= max", c.op, postOpText(p));
  Shape y{x[0], w[0], 0, 0};
  for (int i = 0; i < 2; ++i) {
    // Attributes are <= kMaxDim, but the weight and input dims of a graph that was not
    // verified may be anything: every step is checked.
    int64_t span = 0, padded = 0;
    const bool spanOverflows = __builtin_mul_overflow(a.dilation[i], w[2 + i] - 1, &span) ||
                               __builtin_add_overflow(span, 1, &span);
    if (__builtin_add_overflow(x[2 + i], a.pad[i], &padded) ||
        __builtin_add_overflow(padded, a.pad[2 + i], &padded))
      return resultTooLarge(c, "padded input size");
    if (spanOverflows || padded < span)
      return error(c.loc, "{}: kernel {}x{} (dilated) does not fit input {} with padding", c.op,
                   w[2], w[3], c.in[0].str());
    y[2 + i] = (padded - span) / a.stride[i] + 1;
  }
  KILN_TRY(checkResult(c, y));
  TensorType result{c.in[0].dtype, y, c.in[0].layout};
  if (sums) {
    const TensorType& summand = c.in.back();
    if (summand != result)
      return error(c.loc, "{}: the summand {} of post-op sum must be {} like the result, got {}",
                   c.op, c.operandName(c.in.size() - 1), result.str(), summand.str());
  }
  out.push_back(std::move(result));
  return Status::ok();
}

Status inferBatchNorm(const OpContext& c, const BatchNormAttrs& a, Results& out) {
  const Shape& x = c.in[0].shape;
  if (x.rank() < 2)
    return error(c.loc, "{}: input {} must have rank >= 2, got {}", c.op, c.operandName(0),
                 c.in[0].str());
  KILN_TRY(expectSameDType(c));
  KILN_TRY(expectFloat(c, 0));
  if (!(a.epsilon > 0)) return error(c.loc, "{}: epsilon must be > 0, got {}", c.op, a.epsilon);
  for (size_t i = 1; i < 5; ++i)
    if (c.in[i].shape != Shape{x[1]})
      return error(c.loc, "{}: {} must be [{}] (the channels of {}), got {}", c.op,
                   c.operandName(i), dimStr(x[1]), c.operandName(0), c.in[i].str());
  out.push_back(c.in[0]);
  return Status::ok();
}

Status inferBroadcast(const OpContext& c, const NoAttrs&, Results& out) {
  KILN_TRY(expectSameDType(c));
  const Shape& a = c.in[0].shape;
  const Shape& b = c.in[1].shape;
  const size_t rank = std::max(a.rank(), b.rank());
  Shape y(std::vector<Dim>(rank, 1));
  for (size_t i = 0; i < rank; ++i) {
    const Dim da = i < rank - a.rank() ? 1 : a[i - (rank - a.rank())];
    const Dim db = i < rank - b.rank() ? 1 : b[i - (rank - b.rank())];
    if (da == db || db == 1) {
      y[i] = da;
    } else if (da == 1) {
      y[i] = db;
    } else {
      return error(c.loc, "{}: shapes {} and {} do not broadcast (dim {}: {} vs {})", c.op,
                   a.str(), b.str(), i, dimStr(da), dimStr(db));
    }
  }
  KILN_TRY(checkResult(c, y));
  Layout layout = defaultLayout(rank).value_or(Layout::Scalar);
  if (a == y) layout = c.in[0].layout;
  else if (b == y) layout = c.in[1].layout;
  out.push_back(TensorType{c.in[0].dtype, y, layout});
  return Status::ok();
}

Status inferChannelScale(const OpContext& c, const NoAttrs&, Results& out) {
  KILN_TRY(expectRank(c, 0, 4));
  KILN_TRY(expectRank(c, 1, 4));
  KILN_TRY(expectSameDType(c));
  const Shape& x = c.in[0].shape;
  const Shape& s = c.in[1].shape;
  if (!(s[0] == x[0] || s[0] == 1) || s[1] != x[1] || s[2] != 1 || s[3] != 1)
    return error(c.loc, "{}: scale {} must be [{},{},1,1] for input {}, got {}", c.op,
                 c.operandName(1), dimStr(x[0]), dimStr(x[1]), c.in[0].str(), c.in[1].str());
  out.push_back(c.in[0]);
  return Status::ok();
}

Status inferMatMul(const OpContext& c, const NoAttrs&, Results& out) {
  KILN_TRY(expectSameDType(c));
  const Shape& a = c.in[0].shape;
  const Shape& b = c.in[1].shape;
  if (a.rank() < 2 || b.rank() < 2)
    return error(c.loc, "{}: operands must have rank >= 2, got {} and {}", c.op, c.in[0].str(),
                 c.in[1].str());
  if (a[a.rank() - 1] != b[b.rank() - 2])
    return error(c.loc, "{}: inner dimensions differ: {} x {}", c.op, a.str(), b.str());
  const size_t batchRank = std::max(a.rank(), b.rank()) - 2;
  Shape y(std::vector<Dim>(batchRank + 2, 1));
  for (size_t i = 0; i < batchRank; ++i) {  // batch dims are right-aligned, numpy-style
    const size_t offA = batchRank - (a.rank() - 2), offB = batchRank - (b.rank() - 2);
    const Dim da = i < offA ? 1 : a[i - offA];
    const Dim db = i < offB ? 1 : b[i - offB];
    if (da != db && da != 1 && db != 1)
      return error(c.loc, "{}: batch dimensions of {} and {} do not broadcast", c.op, a.str(),
                   b.str());
    y[i] = da == 1 ? db : da;
  }
  y[batchRank] = a[a.rank() - 2];
  y[batchRank + 1] = b[b.rank() - 1];
  KILN_TRY(checkResult(c, y));
  out.push_back(TensorType{c.in[0].dtype, y, defaultLayout(y.rank()).value_or(Layout::NC)});
  return Status::ok();
}

Status inferLinear(const OpContext& c, const NoAttrs&, Results& out) {
  KILN_TRY(expectSameDType(c));
  KILN_TRY(expectRank(c, 1, 2));
  const Shape& x = c.in[0].shape;
  const Shape& w = c.in[1].shape;
  if (!w.isStatic())
    return error(c.loc, "{}: weight {} must have a static shape, got {}", c.op,
                 c.operandName(1), c.in[1].str());
  if (x.rank() < 1 || x[x.rank() - 1] != w[1])
    return error(c.loc, "{}: input {} has {} features, weight {} expects {}", c.op,
                 c.operandName(0), x.rank() ? dimStr(x[x.rank() - 1]) : "no", c.operandName(1),
                 w[1]);
  if (c.in.size() == 3 && c.in[2].shape != Shape{w[0]})
    return error(c.loc, "{}: bias {} must be [{}], got {}", c.op, c.operandName(2), w[0],
                 c.in[2].str());
  Shape y = x;
  y[y.rank() - 1] = w[0];
  KILN_TRY(checkResult(c, y));
  out.push_back(TensorType{c.in[0].dtype, y, layoutLike(c, y.rank())});
  return Status::ok();
}

}  // namespace kiln::ir
