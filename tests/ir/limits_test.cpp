// The dimension limits of ir/types.h: Shape::numElements never overflows, the verifier checks
// graphs from any source, and shape and cost rules stay within int64 on graphs that were never
// verified (built through the API, as the DSL and passes do). Runs under ASan/UBSan in CI, so
// an overflow here aborts rather than passing silently.
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "ir/graph.h"
#include "ir/ops.h"
#include "ir/verifier.h"

namespace kiln::ir {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

TensorType f32(Shape s) { return makeType(DType::F32, std::move(s)); }

std::string ruleError(Graph& g, OpKind kind, std::vector<Value*> operands, Attrs attrs) {
  Expected<Node*> n = g.createNode(kind, std::move(operands), std::move(attrs));
  return n.isOk() ? std::string("(accepted)") : n.message();
}

TEST(Limits, NumElementsSaturatesInsteadOfOverflowing) {
  EXPECT_EQ((Shape{4, 5}).numElements(), 20);
  EXPECT_EQ((Shape{kBatch, 5}).numElements(3), 15);
  EXPECT_EQ((Shape{int64_t{1} << 62, 4}).numElements(), kInt64Max);
  EXPECT_EQ((Shape{kInt64Max, kInt64Max, 2}).numElements(), kInt64Max);
  EXPECT_EQ((Shape{kBatch, int64_t{1} << 40}).numElements(int64_t{1} << 40), kInt64Max);
  // A zero anywhere wins, even after the product saturated.
  EXPECT_EQ((Shape{int64_t{1} << 62, 4, 0}).numElements(), 0);
  EXPECT_EQ((Shape{}).numElements(), 1);
}

TEST(Limits, CheckShapeLimits) {
  EXPECT_TRUE(checkShapeLimits(Shape{kBatch, kMaxDim}).isOk());
  EXPECT_TRUE(checkShapeLimits(Shape{1024, 1024, 1024, 1024}).isOk());  // exactly 2^40
  EXPECT_EQ(checkShapeLimits(Shape{kMaxDim + 1}).message(),
            "dimension 1099511627777 exceeds the limit 2^40");
  EXPECT_EQ(checkShapeLimits(Shape{1024, 1024, 1024, 1025}).message(),
            "shape [1024,1024,1024,1025] has more than 2^40 elements");
  EXPECT_EQ(checkShapeLimits(Shape{kInt64Max, kInt64Max}).message(),
            "dimension 9223372036854775807 exceeds the limit 2^40");
  EXPECT_EQ(checkShapeLimits(Shape{3, -5}).message(),
            "dimension -5 is negative (a dimension is N or an integer >= 0)");
}

TEST(Limits, VerifierChecksEveryValue) {
  {
    Graph g("g");
    Value* x = g.addInput("x", f32({int64_t{1} << 41}), Loc{"m.cpp", 3, 5});
    g.addOutput(x);
    EXPECT_EQ(verify(g).message(),
              "m.cpp:3:5: input %x: dimension 2199023255552 exceeds the limit 2^40");
  }
  {
    Graph g("g");
    Value* x = g.addInput("x", f32({kBatch, 4}));
    Value* w = g.addWeight(ValueKind::Param, "w", f32({kBatch, 4}), Loc{"m.cpp", 4, 1});
    g.addOutput(x);
    g.addOutput(w);
    EXPECT_EQ(verify(g).message(),
              "m.cpp:4:1: param %w: a weight must have a static shape, got f32[N,4]{nc}");
  }
  {
    Graph g("g");
    Value* c = g.addWeight(ValueKind::Const, "c", f32({1 << 20, (1 << 20) + 1}));
    g.addOutput(c);
    EXPECT_EQ(verify(g).message(), "const %c: shape [1048576,1048577] has more than 2^40 elements");
  }
}

// Operand types here were never verified: the rules must still not overflow.
TEST(Limits, RulesOnUnverifiedHugeOperands) {
  Graph g("g");
  Value* huge = g.addInput("huge", f32({kInt64Max}));
  Value* big = g.addInput("big", f32({int64_t{1} << 62, 4}));
  EXPECT_EQ(ruleError(g, OpKind::Concat, {huge, huge}, AxisAttrs{0}),
            "concat: the sum of the sizes along axis 0 exceeds the limit 2^40");
  EXPECT_EQ(ruleError(g, OpKind::Reshape, {big}, ReshapeAttrs{{-1}}),
            "reshape: input [4611686018427387904,4] has more than 2^40 elements");
  EXPECT_EQ(ruleError(g, OpKind::Flatten, {big}, AxisAttrs{0}),
            "flatten: a dimension of flattened [4611686018427387904,4] exceeds the limit 2^40");
  EXPECT_EQ(ruleError(g, OpKind::Pad, {huge}, PadAttrs{{1, 1}}),
            "pad: padded dimension 0 of [9223372036854775807] exceeds the limit 2^40");

  Value* x = g.addInput("x", f32({1, 1, kInt64Max, 1}));
  Value* w = g.addWeight(ValueKind::Param, "w", f32({1, 1, kInt64Max, 1}));
  Conv2dAttrs pad;
  pad.pad = {1, 0, 0, 0};
  EXPECT_EQ(ruleError(g, OpKind::Conv2d, {x, w}, pad),
            "conv2d: padded input size exceeds the limit 2^40");
  Value* small = g.addInput("small", f32({1, 1, 8, 8}));
  Conv2dAttrs dilated;
  dilated.dilation = {kMaxDim, 1};
  EXPECT_EQ(ruleError(g, OpKind::Conv2d, {small, w}, dilated),
            "conv2d: kernel 9223372036854775807x1 (dilated) does not fit input "
            "f32[1,1,8,8]{nchw} with padding");
  MaxPool2dAttrs pool;
  pool.kernel = {kMaxDim, 1};
  pool.dilation = {kMaxDim, 1};
  EXPECT_EQ(ruleError(g, OpKind::MaxPool2d, {small}, pool),
            "max_pool2d: window 1099511627776*1099511627775+1 does not fit input size 8 with "
            "padding");
  EXPECT_EQ(ruleError(g, OpKind::MaxPool2d, {x}, MaxPool2dAttrs{}),
            "max_pool2d: result dimension 9223372036854775807 exceeds the limit 2^40");
}

TEST(Limits, GroupsTimesWeightChannelsOverflow) {
  Graph g("g");
  Value* x = g.addInput("x", f32({1, 4, 8, 8}));
  Value* w = g.addWeight(ValueKind::Param, "w", f32({kMaxDim, kMaxDim, 1, 1}));
  Conv2dAttrs a;
  a.groups = kMaxDim;
  EXPECT_EQ(ruleError(g, OpKind::Conv2d, {x, w}, a),
            "conv2d: input %x has 4 channels, weight %w expects 1099511627776*1099511627776 "
            "(groups=1099511627776)");
}

TEST(Limits, SliceStepsOfAnySize) {
  Graph g("g");
  Value* x = g.addInput("x", f32({10}));
  auto sliced = [&](int64_t start, int64_t end, int64_t step) -> Dim {
    Expected<Node*> n = g.createNode(OpKind::Slice, {x}, SliceAttrs{{0}, {start}, {end}, {step}});
    EXPECT_TRUE(n.isOk()) << n.message();
    return n.isOk() ? (*n)->result(0)->type().shape[0] : -2;
  };
  EXPECT_EQ(sliced(1, 9, 3), 3);
  EXPECT_EQ(sliced(9, 1, -3), 3);
  EXPECT_EQ(sliced(0, kInt64Max, kInt64Max), 1);
  EXPECT_EQ(sliced(-1, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::min()),
            1);
  EXPECT_EQ(sliced(std::numeric_limits<int64_t>::min(), kInt64Max, 1), 10);
  EXPECT_EQ(sliced(5, 2, 1), 0);
}

TEST(Limits, CostsSaturate) {
  // Within the limits (<= 2^40 elements per value) a conv's MACs can still pass int64:
  // 2^40 output elements times 2^24 input channels, the spatial size coming from padding.
  Graph g("g");
  Value* x = g.addInput("x", f32({1, 1 << 24, 1, 1}));
  Value* w = g.addWeight(ValueKind::Param, "w", f32({1 << 16, 1 << 24, 1, 1}));
  Conv2dAttrs a;
  a.pad = {2048, 2048, 2047, 2047};
  Expected<Node*> n = g.createNode(OpKind::Conv2d, {x, w}, a);
  ASSERT_TRUE(n.isOk()) << n.message();
  EXPECT_EQ((*n)->result(0)->type().shape, (Shape{1, 1 << 16, 4096, 4096}));
  g.addOutput((*n)->result(0));
  EXPECT_TRUE(verify(g).isOk()) << verify(g).message();
  const Cost cost = graphCost(g);
  EXPECT_EQ(cost.macs, kInt64Max);
  EXPECT_EQ(cost.flops, kInt64Max);
}

}  // namespace
}  // namespace kiln::ir
