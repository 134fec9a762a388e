// Reference backend, hand-checked: concat, split, slice, reshape, flatten, transpose, pad,
// reorder and constant.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include "tests/backends/reference_test_util.h"

namespace kiln::testing {
namespace {

using ir::DType;
using ir::Layout;
using ir::OpKind;
using ir::Shape;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

TEST(ReferenceData, ConcatAlongAxes) {
  ir::AxisAttrs a;
  a.axis = 1;
  auto y = runOne(OpKind::Concat, a, {literal({2, 1}, {0, 1}), literal({2, 2}, {10, 11, 12, 13})});
  EXPECT_TRUE(tensorIs(y, {2, 3}, {0, 10, 11, 1, 12, 13}, kExact));
  a.axis = -2;
  auto z = runOne(OpKind::Concat, a, {iota({1, 2}), iota({2, 2}), iota({1, 2})});
  EXPECT_TRUE(tensorIs(z, {4, 2}, {0, 1, 0, 1, 2, 3, 0, 1}, kExact));
}

TEST(ReferenceData, SplitReturnsOneTensorPerSize) {
  ir::SplitAttrs a;
  a.axis = 1;
  a.sizes = {1, 2};
  auto r = runOp(OpKind::Split, a, {iota({2, 3})});
  ASSERT_TRUE(r.isOk()) << r.message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_TRUE(tensorIs((*r)[0], {2, 1}, {0, 3}, kExact));
  EXPECT_TRUE(tensorIs((*r)[1], {2, 2}, {1, 2, 4, 5}, kExact));
}

TEST(ReferenceData, SliceOnnxSemantics) {
  ir::SliceAttrs a;
  a.starts = {-1};
  a.ends = {kMin};
  a.steps = {-1};
  EXPECT_TRUE(tensorIs(runOne(OpKind::Slice, a, {iota({5})}), {5}, {4, 3, 2, 1, 0}, kExact));
  a.starts = {8};
  a.ends = {1};
  a.steps = {-3};
  EXPECT_TRUE(tensorIs(runOne(OpKind::Slice, a, {iota({10})}), {3}, {8, 5, 2}, kExact));
  ir::SliceAttrs b;  // axis 1 from 1 to the (clamped) end, step 2
  b.axes = {-1};
  b.starts = {1};
  b.ends = {kMax};
  b.steps = {2};
  EXPECT_TRUE(tensorIs(runOne(OpKind::Slice, b, {iota({2, 5})}), {2, 2}, {1, 3, 6, 8}, kExact));
  ir::SliceAttrs empty;
  empty.starts = {3};
  empty.ends = {1};
  EXPECT_TRUE(tensorIs(runOne(OpKind::Slice, empty, {iota({4})}), {0}, {}, kExact));
}

TEST(ReferenceData, ReshapeAndFlattenKeepData) {
  ir::ReshapeAttrs r;
  r.shape = {0, -1, 2};
  EXPECT_TRUE(tensorIs(runOne(OpKind::Reshape, r, {iota({2, 6})}), {2, 3, 2}, valuesOf(iota({12})),
                       kExact));
  ir::AxisAttrs f;
  f.axis = 2;
  EXPECT_TRUE(tensorIs(runOne(OpKind::Flatten, f, {iota({2, 3, 4})}), {6, 4}, valuesOf(iota({24})),
                       kExact));
}

TEST(ReferenceData, Transpose) {
  ir::TransposeAttrs a;
  a.perm = {1, 0};
  EXPECT_TRUE(
      tensorIs(runOne(OpKind::Transpose, a, {iota({2, 3})}), {3, 2}, {0, 3, 1, 4, 2, 5}, kExact));
  a.perm = {2, 0, 1};
  auto y = runOne(OpKind::Transpose, a, {iota({2, 3, 4})});
  std::vector<double> want;  // y[k,i,j] = x[i,j,k] = 12i + 4j + k
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) want.push_back(12 * i + 4 * j + k);
  EXPECT_TRUE(tensorIs(y, {4, 2, 3}, want, kExact));
}

TEST(ReferenceData, TransposeCopiesAnyDTypeBitExactly) {
  ir::TransposeAttrs a;
  a.perm = {1, 0};
  ir::Tensor x(DType::I64, {2, 2});
  const int64_t values[4] = {1, 2, 3, (int64_t{1} << 53) + 1};  // the last is not a double
  std::copy_n(values, 4, x.data<int64_t>());
  auto y = runOne(OpKind::Transpose, a, {x});
  ASSERT_EQ(y.dtype(), DType::I64);
  EXPECT_EQ(y.data<int64_t>()[3], (int64_t{1} << 53) + 1);
  EXPECT_EQ(y.data<int64_t>()[1], 3);
}

TEST(ReferenceData, PadConstant) {
  ir::PadAttrs a;
  a.pads = {1, 0, 0, 1};  // begins (rows, cols), then ends
  a.value = 9;
  EXPECT_TRUE(tensorIs(runOne(OpKind::Pad, a, {literal({2, 2}, {1, 2, 3, 4})}), {3, 3},
                       {9, 9, 9, 1, 2, 9, 3, 4, 9}, kExact));
}

TEST(ReferenceData, ReorderNchwToNhwcPermutesMemory) {
  ir::ReorderAttrs a;
  a.layout = Layout::NHWC;
  auto y = runOne(OpKind::Reorder, a, {iota({1, 3, 1, 2})});
  EXPECT_EQ(y.layout(), Layout::NHWC);
  // memory is (h, w, c): x[c, w] = 2c + w
  EXPECT_TRUE(tensorIs(y, {1, 3, 1, 2}, {0, 2, 4, 1, 3, 5}, kExact));
}

TEST(ReferenceData, ReorderOihwToHwio) {
  ir::ReorderAttrs a;
  a.layout = Layout::HWIO;
  auto y = runOne(OpKind::Reorder, a, {iota({2, 1, 1, 2}, DType::F64)});
  EXPECT_EQ(y.layout(), Layout::HWIO);
  // memory is (h, w, i, o): x[o, w] = 2o + w
  EXPECT_TRUE(tensorIs(y, {2, 1, 1, 2}, {0, 2, 1, 3}, kExact));
}

TEST(ReferenceData, ReorderRoundTripThroughBlockedLayout) {
  auto x = iota({2, 16, 3, 2});
  ir::Tensor t = x;
  for (Layout l : {Layout::NChw8c, Layout::NHWC, Layout::NChw16c, Layout::NCHW}) {
    ir::ReorderAttrs a;
    a.layout = l;
    t = runOne(OpKind::Reorder, a, {t});
    ASSERT_EQ(t.layout(), l);
  }
  EXPECT_TRUE(tensorIs(t, {2, 16, 3, 2}, valuesOf(x), kExact));
}

TEST(ReferenceData, ReorderToBlockedLayoutLaysOutBlocks) {
  ir::ReorderAttrs a;
  a.layout = Layout::NChw8c;
  auto y = runOne(OpKind::Reorder, a, {iota({1, 16, 1, 2})});
  // memory (n, C/8, h, w, 8c): element (cb, w, ci) holds x[8cb + ci, w] = 2 (8cb + ci) + w
  std::vector<double> want;
  for (int cb = 0; cb < 2; ++cb)
    for (int w = 0; w < 2; ++w)
      for (int ci = 0; ci < 8; ++ci) want.push_back(2 * (8 * cb + ci) + w);
  EXPECT_TRUE(tensorIs(y, {1, 16, 1, 2}, want, kExact));
}

TEST(ReferenceData, ReorderToBlockedNeedsWholeBlocks) {
  ir::ReorderAttrs a;
  a.layout = Layout::NChw8c;
  auto r = runOp(OpKind::Reorder, a, {iota({1, 3, 2, 2})});
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.message().find("not a multiple of the 8 block"), std::string::npos) << r.message();
}

TEST(ReferenceData, ConstantBroadcastOrExact) {
  ir::ConstantAttrs a;
  a.value = {2.5};
  a.shape = {2, 2};
  EXPECT_TRUE(tensorIs(runOne(OpKind::Constant, a, {}), {2, 2}, {2.5, 2.5, 2.5, 2.5}, kExact));
  a.value = {1, 2, 3};
  a.shape = {3};
  a.dtype = DType::F64;
  auto y = runOne(OpKind::Constant, a, {});
  EXPECT_EQ(y.dtype(), DType::F64);
  EXPECT_TRUE(tensorIs(y, {3}, {1, 2, 3}, kExact));
  a.value = {0.5};
  a.shape = {};
  EXPECT_TRUE(tensorIs(runOne(OpKind::Constant, a, {}), {}, {0.5}, kExact));
}

TEST(ReferenceData, ConstantOfUnsupportedDTypeNamesOpAndDType) {
  ir::ConstantAttrs a;
  a.value = {1};
  a.dtype = DType::I32;
  auto r = runOp(OpKind::Constant, a, {});
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.message().find("constant: the reference backend has no i32 kernel"),
            std::string::npos)
      << r.message();
}

}  // namespace
}  // namespace kiln::testing
