// Reference backend, hand-checked: conv2d, batch_norm, matmul, linear and the pools.
#include <gtest/gtest.h>

#include "tests/backends/reference_test_util.h"

namespace kiln::testing {
namespace {

using ir::OpKind;
using ir::Shape;

std::vector<double> filled(size_t n, double v) { return std::vector<double>(n, v); }

TEST(ReferenceConv, OneByOneIdentity) {
  auto x = iota({1, 2, 2, 2});
  auto w = literal({2, 2, 1, 1}, {1, 0, 0, 1});
  auto y = runOne(OpKind::Conv2d, ir::Conv2dAttrs{}, {x, w});
  EXPECT_TRUE(tensorIs(y, {1, 2, 2, 2}, valuesOf(x), kExact));
}

TEST(ReferenceConv, PaddingCountsTaps) {
  ir::Conv2dAttrs a;
  a.pad = {1, 1, 1, 1};
  auto y = runOne(OpKind::Conv2d, a,
                  {literal({1, 1, 3, 3}, filled(9, 1)), literal({1, 1, 3, 3}, filled(9, 1))});
  EXPECT_TRUE(tensorIs(y, {1, 1, 3, 3}, {4, 6, 4, 6, 9, 6, 4, 6, 4}));
}

TEST(ReferenceConv, StrideWithAsymmetricPadding) {
  ir::Conv2dAttrs a;
  a.stride = {2, 2};
  a.pad = {1, 0, 0, 1};  // top, left, bottom, right
  // y[oy,ox] = x[2oy-1, 2ox], zero where that lies in the padding.
  auto y = runOne(OpKind::Conv2d, a, {iota({1, 1, 4, 4}), literal({1, 1, 1, 1}, {1})});
  EXPECT_TRUE(tensorIs(y, {1, 1, 3, 3}, {0, 0, 0, 4, 6, 0, 12, 14, 0}));
}

TEST(ReferenceConv, Dilation) {
  ir::Conv2dAttrs a;
  a.dilation = {2, 2};
  // taps at (0,0), (0,2), (2,0), (2,2): 4 x[oy,ox] + 24 on a 5x5 iota
  auto y = runOne(OpKind::Conv2d, a, {iota({1, 1, 5, 5}), literal({1, 1, 2, 2}, filled(4, 1))});
  std::vector<double> want;
  for (int oy = 0; oy < 3; ++oy)
    for (int ox = 0; ox < 3; ++ox) want.push_back(4 * (5 * oy + ox) + 24);
  EXPECT_TRUE(tensorIs(y, {1, 1, 3, 3}, want));
}

TEST(ReferenceConv, GroupsWithBias) {
  ir::Conv2dAttrs a;
  a.groups = 2;
  auto x = literal({1, 2, 1, 1}, {1, 2});
  auto y = runOne(OpKind::Conv2d, a, {x, literal({2, 1, 1, 1}, {3, 5}), literal({2}, {10, 20})});
  EXPECT_TRUE(tensorIs(y, {1, 2, 1, 1}, {13, 30}));
  auto dense = runOne(OpKind::Conv2d, ir::Conv2dAttrs{}, {x, literal({1, 2, 1, 1}, {3, 5})});
  EXPECT_TRUE(tensorIs(dense, {1, 1, 1, 1}, {13}));
}

TEST(ReferenceConv, BatchOfTwoUsesEachSample) {
  auto y = runOne(OpKind::Conv2d, ir::Conv2dAttrs{},
                  {literal({2, 1, 1, 1}, {1, 2}), literal({1, 1, 1, 1}, {3})});
  EXPECT_TRUE(tensorIs(y, {2, 1, 1, 1}, {3, 6}));
}

// A permuted or blocked operand (after select-layout) is computed on through a row-major
// copy, and the result comes back in the layout the node declares (here nhwc, like x).
TEST(ReferenceConv, NonRowMajorOperandGoesThroughRowMajor) {
  // x is nhwc: memory [1, 2, 3, 4] is (w0: c0=1, c1=2), (w1: c0=3, c1=4).
  auto x = literal({1, 2, 1, 2}, {1, 2, 3, 4}, ir::DType::F32, ir::Layout::NHWC);
  auto y = runOne(OpKind::Conv2d, ir::Conv2dAttrs{}, {x, literal({1, 2, 1, 1}, {1, 10})});
  EXPECT_EQ(y.layout(), ir::Layout::NHWC);
  EXPECT_TRUE(tensorIs(y, {1, 1, 1, 2}, {21, 43}));
}

TEST(ReferenceNorm, BatchNormInference) {
  ir::BatchNormAttrs a;
  a.epsilon = 1e-5;
  // operands: x, weight, bias, running_mean, running_var
  auto y = runOne(OpKind::BatchNorm, a,
                  {literal({1, 2, 1, 2}, {1, 2, 3, 4}), literal({2}, {1, 2}), literal({2}, {0, 1}),
                   literal({2}, {1, 3}), literal({2}, {4, 1})});
  const double s0 = 1 / std::sqrt(4 + 1e-5), s1 = 2 / std::sqrt(1 + 1e-5);
  EXPECT_TRUE(tensorIs(y, {1, 2, 1, 2}, {0, s0, 1, 1 + s1}));
}

TEST(ReferenceDense, MatMul) {
  auto y = runOne(OpKind::MatMul, ir::NoAttrs{}, {iota({2, 3}), iota({3, 2})});
  // [[0,1,2],[3,4,5]] @ [[0,1],[2,3],[4,5]]
  EXPECT_TRUE(tensorIs(y, {2, 2}, {10, 13, 28, 40}));
}

TEST(ReferenceDense, MatMulBroadcastsBatch) {
  // [2,1,2] @ [2,1]: the matrix b is shared by both batch entries.
  auto y = runOne(OpKind::MatMul, ir::NoAttrs{},
                  {literal({2, 1, 2}, {1, 2, 3, 4}), literal({2, 1}, {5, 6})});
  EXPECT_TRUE(tensorIs(y, {2, 1, 1}, {17, 39}));
  // [2,1,1,2] @ [3,2,1]: batch [2,1] x [3] -> [2,3]
  auto z =
      runOne(OpKind::MatMul, ir::NoAttrs{}, {literal({2, 1, 1, 2}, {1, 0, 0, 1}), iota({3, 2, 1})});
  EXPECT_TRUE(tensorIs(z, {2, 3, 1, 1}, {0, 2, 4, 1, 3, 5}));
}

TEST(ReferenceDense, LinearWithAndWithoutBias) {
  auto x = iota({2, 3});
  auto w = literal({2, 3}, {1, 0, 0, 1, 1, 1});
  EXPECT_TRUE(tensorIs(runOne(OpKind::Linear, ir::NoAttrs{}, {x, w}), {2, 2}, {0, 3, 3, 12}));
  EXPECT_TRUE(tensorIs(runOne(OpKind::Linear, ir::NoAttrs{}, {x, w, literal({2}, {1, -1})}), {2, 2},
                       {1, 2, 4, 11}));
}

TEST(ReferencePool, MaxPoolStrideTwo) {
  ir::MaxPool2dAttrs a;
  a.kernel = {2, 2};
  a.stride = {2, 2};
  EXPECT_TRUE(
      tensorIs(runOne(OpKind::MaxPool2d, a, {iota({1, 1, 4, 4})}), {1, 1, 2, 2}, {5, 7, 13, 15}));
}

TEST(ReferencePool, MaxPoolCeilModeKeepsPartialWindows) {
  ir::MaxPool2dAttrs a;
  a.kernel = {2, 2};
  a.stride = {2, 2};
  a.ceil_mode = true;
  EXPECT_TRUE(tensorIs(runOne(OpKind::MaxPool2d, a, {iota({1, 1, 5, 5})}), {1, 1, 3, 3},
                       {6, 8, 9, 16, 18, 19, 21, 23, 24}));
}

TEST(ReferencePool, MaxPoolPaddingIsMinusInfinity) {
  ir::MaxPool2dAttrs a;
  a.kernel = {3, 3};
  a.pad = {1, 1, 1, 1};
  auto y = runOne(OpKind::MaxPool2d, a, {literal({1, 1, 2, 2}, {-4, -3, -2, -1})});
  EXPECT_TRUE(tensorIs(y, {1, 1, 2, 2}, {-1, -1, -1, -1}));
}

TEST(ReferencePool, AvgPoolCeilModeDividesByClippedWindow) {
  ir::AvgPool2dAttrs a;
  a.kernel = {2, 2};
  a.stride = {2, 2};
  a.ceil_mode = true;
  // windows past the end count only their in-input part (no padding to include)
  EXPECT_TRUE(
      tensorIs(runOne(OpKind::AvgPool2d, a, {iota({1, 1, 3, 3})}), {1, 1, 2, 2}, {2, 3.5, 6.5, 8}));
}

TEST(ReferencePool, AvgPoolCountIncludePad) {
  ir::AvgPool2dAttrs a;
  a.kernel = {3, 3};
  a.stride = {2, 2};
  a.pad = {1, 1, 1, 1};
  a.ceil_mode = true;
  auto ones = literal({1, 1, 4, 4}, filled(16, 1));
  // Rows covered: [-1,2) [1,4) [3,5) clipped to input+padding (the last window runs past
  // it), i.e. 3, 3, 2 rows of which 2, 3, 1 are inside the input.
  const double r[3] = {2, 3, 1}, p[3] = {3, 3, 2};
  std::vector<double> include, exclude;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      include.push_back(r[i] * r[j] / (p[i] * p[j]));
      exclude.push_back(1);
    }
  EXPECT_TRUE(tensorIs(runOne(OpKind::AvgPool2d, a, {ones}), {1, 1, 3, 3}, include));
  a.count_include_pad = false;
  EXPECT_TRUE(tensorIs(runOne(OpKind::AvgPool2d, a, {ones}), {1, 1, 3, 3}, exclude));
}

TEST(ReferencePool, GlobalAvgPool) {
  EXPECT_TRUE(tensorIs(runOne(OpKind::GlobalAvgPool, ir::NoAttrs{}, {iota({1, 2, 2, 2})}),
                       {1, 2, 1, 1}, {1.5, 5.5}));
}

TEST(ReferencePool, AdaptiveAvgPoolOverlappingWindows) {
  ir::AdaptiveAvgPool2dAttrs a;
  a.output_size = {1, 3};
  // width 5 -> 3: windows [0,2) [1,4) [3,5)
  EXPECT_TRUE(tensorIs(runOne(OpKind::AdaptiveAvgPool2d, a, {iota({1, 1, 1, 5})}), {1, 1, 1, 3},
                       {0.5, 2, 3.5}));
}

}  // namespace
}  // namespace kiln::testing
