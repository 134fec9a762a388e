// Cost rules: per-sample MACs and FLOPs of the ops that do arithmetic worth counting. Counts
// saturate at INT64_MAX (see saturatingMul in ir/shape_rules.h).
#include "ir/shape_rules.h"

namespace kiln::ir {

Cost costConv2d(const OpContext& c, const Conv2dAttrs& a, ResultTypes r) {
  const Shape& w = c.in[1].shape;
  const int64_t outElems = r[0].shape.numElements(1);
  Cost cost;
  // w[1] is already in-channels per group
  cost.macs = saturatingMul(outElems, saturatingMul(w[1], saturatingMul(w[2], w[3])));
  cost.flops = saturatingAdd(saturatingMul(2, cost.macs), c.in.size() == 3 ? outElems : 0);
  (void)a;
  return cost;
}

Cost costBatchNorm(const OpContext&, const BatchNormAttrs&, ResultTypes r) {
  return Cost{0, saturatingMul(2, r[0].shape.numElements(1))};  // folded scale and shift
}

Cost costMatMul(const OpContext& c, const NoAttrs&, ResultTypes r) {
  const Shape& a = c.in[0].shape;
  Cost cost;
  cost.macs = saturatingMul(r[0].shape.numElements(1), a[a.rank() - 1]);
  cost.flops = saturatingMul(2, cost.macs);
  return cost;
}

Cost costLinear(const OpContext& c, const NoAttrs&, ResultTypes r) {
  const int64_t outElems = r[0].shape.numElements(1);
  Cost cost;
  cost.macs = saturatingMul(outElems, c.in[1].shape[1]);
  cost.flops = saturatingAdd(saturatingMul(2, cost.macs), c.in.size() == 3 ? outElems : 0);
  return cost;
}

}  // namespace kiln::ir
