// Gradient rules named in the gradRule column of ir/ops.def (ir::GradFn). Each builds the
// operand gradients of one node from its result gradients through a GradContext.
#pragma once

#include <span>
#include <vector>

#include "ir/grad.h"

namespace kiln::ir {

#define KILN_GRAD_RULES(X) \
  X(gradConv2d)            \
  X(gradBatchNormTrain)    \
  X(gradRelu)              \
  X(gradRelu6)             \
  X(gradSigmoid)           \
  X(gradSwish)             \
  X(gradHardSwish)         \
  X(gradHardSigmoid)       \
  X(gradTanh)              \
  X(gradClip)              \
  X(gradAdd)               \
  X(gradSub)               \
  X(gradMul)               \
  X(gradDiv)               \
  X(gradChannelScale)      \
  X(gradMatMul)            \
  X(gradLinear)            \
  X(gradMaxPool2d)         \
  X(gradAvgPool2d)         \
  X(gradGlobalAvgPool)     \
  X(gradAdaptiveAvgPool2d) \
  X(gradConcat)            \
  X(gradSplit)             \
  X(gradSlice)             \
  X(gradReshape)           \
  X(gradTranspose)         \
  X(gradPad)               \
  X(gradReorder)           \
  X(gradSoftmax)           \
  X(gradLogSoftmax)        \
  X(gradDropout)           \
  X(gradDropPath)          \
  X(gradSoftmaxCrossEntropy)

#define KILN_DECLARE_GRAD_RULE(name)                                                   \
  Status name(GradContext& ctx, const Node& node, std::span<Value* const> resultGrads, \
              std::vector<Value*>& operandGrads);
KILN_GRAD_RULES(KILN_DECLARE_GRAD_RULE)
#undef KILN_DECLARE_GRAD_RULE

}  // namespace kiln::ir
