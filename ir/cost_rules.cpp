// Cost rules: per-sample MACs and FLOPs of the ops that do arithmetic worth counting.
#include "ir/shape_rules.h"

namespace kiln::ir {

Cost costConv2d(const OpContext& c, const Conv2dAttrs& a, ResultTypes r) {
  const Shape& w = c.in[1].shape;
  const int64_t outElems = r[0].shape.numElements(1);
  Cost cost;
  cost.macs = outElems * (w[1] * w[2] * w[3]);  // w[1] is already in-channels per group
  cost.flops = 2 * cost.macs + (c.in.size() == 3 ? outElems : 0);
  (void)a;
  return cost;
}

Cost costBatchNorm(const OpContext&, const BatchNormAttrs&, ResultTypes r) {
  return Cost{0, 2 * r[0].shape.numElements(1)};  // folded scale and shift
}

Cost costMatMul(const OpContext& c, const NoAttrs&, ResultTypes r) {
  const Shape& a = c.in[0].shape;
  Cost cost;
  cost.macs = r[0].shape.numElements(1) * a[a.rank() - 1];
  cost.flops = 2 * cost.macs;
  return cost;
}

Cost costLinear(const OpContext& c, const NoAttrs&, ResultTypes r) {
  const int64_t outElems = r[0].shape.numElements(1);
  Cost cost;
  cost.macs = outElems * c.in[1].shape[1];
  cost.flops = 2 * cost.macs + (c.in.size() == 3 ? outElems : 0);
  return cost;
}

}  // namespace kiln::ir
