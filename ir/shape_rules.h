// Shape and cost rules named in ir/ops.def. Each takes the node's operand types and its
// typed attributes; shape rules push one TensorType per result.
#pragma once

#include <limits>
#include <span>
#include <vector>

#include "ir/attrs.h"
#include "ir/ops.h"
#include "ir/status.h"
#include "ir/types.h"

namespace kiln::ir {

using Results = std::vector<TensorType>;

// ---- shape rules (shape_rules.cpp, shape_rules_data.cpp) ----
Status inferSame(const OpContext& c, const NoAttrs&, Results& out);
Status inferSame(const OpContext& c, const HardSigmoidAttrs&, Results& out);
Status inferSame(const OpContext& c, const ClipAttrs&, Results& out);
Status inferSame(const OpContext& c, const AxisAttrs&, Results& out);
Status inferSame(const OpContext& c, const DropoutAttrs&, Results& out);
Status inferConv2d(const OpContext& c, const Conv2dAttrs& a, Results& out);
Status inferBatchNorm(const OpContext& c, const BatchNormAttrs& a, Results& out);
Status inferBroadcast(const OpContext& c, const NoAttrs&, Results& out);
Status inferChannelScale(const OpContext& c, const NoAttrs&, Results& out);
Status inferMatMul(const OpContext& c, const NoAttrs&, Results& out);
Status inferLinear(const OpContext& c, const NoAttrs&, Results& out);
Status inferMaxPool2d(const OpContext& c, const MaxPool2dAttrs& a, Results& out);
Status inferAvgPool2d(const OpContext& c, const AvgPool2dAttrs& a, Results& out);
Status inferGlobalPool(const OpContext& c, const NoAttrs&, Results& out);
Status inferAdaptivePool(const OpContext& c, const AdaptiveAvgPool2dAttrs& a, Results& out);
Status inferConcat(const OpContext& c, const AxisAttrs& a, Results& out);
Status inferSplit(const OpContext& c, const SplitAttrs& a, Results& out);
Status inferSlice(const OpContext& c, const SliceAttrs& a, Results& out);
Status inferReshape(const OpContext& c, const ReshapeAttrs& a, Results& out);
Status inferFlatten(const OpContext& c, const AxisAttrs& a, Results& out);
Status inferTranspose(const OpContext& c, const TransposeAttrs& a, Results& out);
Status inferPad(const OpContext& c, const PadAttrs& a, Results& out);
Status inferReorder(const OpContext& c, const ReorderAttrs& a, Results& out);
Status inferConstant(const OpContext& c, const ConstantAttrs& a, Results& out);

// ---- training ops (shape_rules_train.cpp) ----
Status inferBatchNormTrain(const OpContext& c, const BatchNormTrainAttrs& a, Results& out);
Status inferBatchNormBackward(const OpContext& c, const BatchNormAttrs& a, Results& out);
Status inferConv2dBackwardData(const OpContext& c, const Conv2dBackwardDataAttrs& a, Results& out);
Status inferConv2dBackwardWeight(const OpContext& c, const Conv2dBackwardWeightAttrs& a,
                                 Results& out);
Status inferMaxPool2dBackward(const OpContext& c, const MaxPool2dAttrs& a, Results& out);
Status inferAvgPool2dBackward(const OpContext& c, const AvgPool2dBackwardAttrs& a, Results& out);
Status inferActivationBackward(const OpContext& c, const NoAttrs&, Results& out);
Status inferActivationBackward(const OpContext& c, const ClipAttrs& a, Results& out);
Status inferActivationBackward(const OpContext& c, const HardSigmoidAttrs& a, Results& out);
Status inferReduce(const OpContext& c, const ReduceAttrs& a, Results& out);
/// The axes a reduce_sum reduces (true per dim of a rank-`rank` operand).
Expected<std::vector<bool>> reducedAxes(const OpContext& c, const ReduceAttrs& a, size_t rank);
Status inferSoftmaxCrossEntropy(const OpContext& c, const CrossEntropyAttrs& a, Results& out);
Status inferSoftmaxCrossEntropyBackward(const OpContext& c, const CrossEntropyAttrs& a,
                                        Results& out);
Status inferCountCorrect(const OpContext& c, const NoAttrs&, Results& out);
Status inferSgdUpdate(const OpContext& c, const SgdAttrs& a, Results& out);
Status inferRmsPropUpdate(const OpContext& c, const RmsPropAttrs& a, Results& out);
Status inferAdamWUpdate(const OpContext& c, const AdamWAttrs& a, Results& out);
Status inferEmaUpdate(const OpContext& c, const EmaAttrs& a, Results& out);
Status inferGlobalNorm(const OpContext& c, const NoAttrs&, Results& out);

// ---- cost rules (cost_rules.cpp) ----
// Counts saturate at INT64_MAX instead of overflowing (a graph within the limits of
// ir/types.h can still have a conv whose MACs pass int64).
inline int64_t saturatingAdd(int64_t a, int64_t b) {
  int64_t r = 0;
  return __builtin_add_overflow(a, b, &r) ? std::numeric_limits<int64_t>::max() : r;
}
inline int64_t saturatingMul(int64_t a, int64_t b) {
  int64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? std::numeric_limits<int64_t>::max() : r;
}

using ResultTypes = std::span<const TensorType>;
Cost costConv2d(const OpContext& c, const Conv2dAttrs& a, ResultTypes r);
Cost costBatchNorm(const OpContext& c, const BatchNormAttrs& a, ResultTypes r);
Cost costMatMul(const OpContext& c, const NoAttrs&, ResultTypes r);
Cost costLinear(const OpContext& c, const NoAttrs&, ResultTypes r);
template <typename A>
Cost costPerElement(const OpContext&, const A&, ResultTypes r) {
  Cost cost;
  for (const TensorType& t : r) cost.flops = saturatingAdd(cost.flops, t.shape.numElements(1));
  return cost;
}
template <typename A>
Cost costPool(const OpContext& c, const A&, ResultTypes) {
  // one add/compare per input element read
  return Cost{0, c.in[0].shape.numElements(1)};
}
/// One operation per element of operand 0 (losses, count_correct).
template <typename A>
Cost costPerInputElement(const OpContext& c, const A&, ResultTypes) {
  return Cost{0, c.in[0].shape.numElements(1)};
}
Cost costBatchNormTrain(const OpContext& c, const BatchNormTrainAttrs& a, ResultTypes r);
Cost costBatchNormBackward(const OpContext& c, const BatchNormAttrs& a, ResultTypes r);
/// Two operations per element of every operand (square, add).
Cost costGlobalNorm(const OpContext& c, const NoAttrs&, ResultTypes r);
Cost costConv2dBackwardData(const OpContext& c, const Conv2dBackwardDataAttrs& a, ResultTypes r);
Cost costConv2dBackwardWeight(const OpContext& c, const Conv2dBackwardWeightAttrs& a,
                              ResultTypes r);
template <typename A>
Cost costNone(const OpContext&, const A&, ResultTypes) {
  return {};
}

/// Normalizes an axis against a rank (negative counts from the end); error if out of range.
Expected<int64_t> normalizeAxis(const OpContext& c, int64_t axis, size_t rank);

}  // namespace kiln::ir
