// oneDNN backend, op by op: every lowered op on random inputs against the reference backend,
// in every activation layout (moved there by reorder nodes), with the geometry variants each
// lowering treats differently.
#include <gtest/gtest.h>

#include "tests/backends/onednn_test_util.h"

namespace kiln::testing {
namespace {

using ir::kBatch;
using ir::Layout;
using ir::OpKind;

constexpr Layout kLayouts[] = {Layout::NCHW, Layout::NHWC, Layout::NChw8c, Layout::NChw16c};

class OneDnnLayouts : public ::testing::TestWithParam<Layout> {};
INSTANTIATE_TEST_SUITE_P(All, OneDnnLayouts, ::testing::ValuesIn(kLayouts),
                         [](const auto& info) { return std::string(ir::layoutName(info.param)); });

ir::Conv2dAttrs conv(ir::Ints<2> stride = {1, 1}, ir::Ints<4> pad = {0, 0, 0, 0},
                     ir::Ints<2> dilation = {1, 1}, int64_t groups = 1) {
  ir::Conv2dAttrs a;
  a.stride = stride;
  a.pad = pad;
  a.dilation = dilation;
  a.groups = groups;
  return a;
}

TEST_P(OneDnnLayouts, Conv2dPlainWithBias) {
  expectOpMatchesReference(OpKind::Conv2d, conv({1, 1}, {1, 1, 1, 1}),
                           {act({kBatch, 16, 9, 9}), param({32, 16, 3, 3}), param({32})}, GetParam());
}

TEST_P(OneDnnLayouts, Conv2dStridedAsymmetricPadNoBias) {
  expectOpMatchesReference(OpKind::Conv2d, conv({2, 2}, {0, 1, 2, 1}),
                           {act({kBatch, 16, 10, 11}), param({16, 16, 3, 3})}, GetParam());
}

TEST_P(OneDnnLayouts, Conv2dDilated) {
  expectOpMatchesReference(OpKind::Conv2d, conv({1, 1}, {2, 2, 2, 2}, {2, 2}),
                           {act({kBatch, 16, 9, 9}), param({16, 16, 3, 3}), param({16})}, GetParam());
}

TEST_P(OneDnnLayouts, Conv2dGrouped) {
  expectOpMatchesReference(OpKind::Conv2d, conv({1, 1}, {1, 1, 1, 1}, {1, 1}, 4),
                           {act({kBatch, 32, 7, 7}), param({32, 8, 3, 3}), param({32})}, GetParam());
}

TEST_P(OneDnnLayouts, Conv2dDepthwiseStrided) {
  expectOpMatchesReference(OpKind::Conv2d, conv({2, 2}, {1, 1, 1, 1}, {1, 1}, 32),
                           {act({kBatch, 32, 9, 9}), param({32, 1, 3, 3}), param({32})}, GetParam());
}

TEST_P(OneDnnLayouts, Conv2dPointwise) {
  expectOpMatchesReference(OpKind::Conv2d, conv(),
                           {act({kBatch, 32, 5, 5}), param({16, 32, 1, 1}), param({16})}, GetParam());
}

TEST(OneDnnOps, Conv2dStemWithThreeChannels) {
  // The stem's 3 input channels cannot be blocked: it reads nchw and writes another layout.
  expectOpMatchesReference(OpKind::Conv2d, conv({2, 2}, {3, 3, 3, 3}),
                           {act({kBatch, 3, 17, 17}, false), param({16, 3, 7, 7}), param({16})},
                           Layout::NCHW);
}

TEST(OneDnnOps, LinearWithAndWithoutBias) {
  expectOpMatchesReference(OpKind::Linear, ir::NoAttrs{}, {act({kBatch, 24}), param({10, 24}), param({10})});
  expectOpMatchesReference(OpKind::Linear, ir::NoAttrs{}, {act({kBatch, 24}), param({10, 24})});
}

TEST(OneDnnOps, LinearOverLeadingDims) {
  expectOpMatchesReference(OpKind::Linear, ir::NoAttrs{}, {act({kBatch, 3, 8}), param({5, 8}), param({5})});
  expectOpMatchesReference(OpKind::Linear, ir::NoAttrs{}, {act({8}), param({5, 8}), param({5})});
}

TEST(OneDnnOps, MatMulPlainAndBroadcastBatch) {
  expectOpMatchesReference(OpKind::MatMul, ir::NoAttrs{}, {act({kBatch, 6}), act({6, 4})});
  expectOpMatchesReference(OpKind::MatMul, ir::NoAttrs{}, {act({kBatch, 3, 5, 6}), act({6, 4})});
  expectOpMatchesReference(OpKind::MatMul, ir::NoAttrs{}, {act({kBatch, 2, 5, 6}, false), act({1, 2, 6, 3}, false)});
}

TEST_P(OneDnnLayouts, BatchNorm) {
  expectOpMatchesReference(OpKind::BatchNorm, ir::BatchNormAttrs{1e-3},
                           {act({kBatch, 16, 5, 6}), param({16}), param({16}), param({16}),
                            param({16}, 0.5, 2.0)},
                           GetParam());
}

TEST(OneDnnOps, BatchNormOverFeatures) {
  expectOpMatchesReference(OpKind::BatchNorm, ir::BatchNormAttrs{},
                           {act({kBatch, 12}), param({12}), param({12}), param({12}), param({12}, 0.5, 2.0)});
}

ir::MaxPool2dAttrs maxPool(ir::Ints<2> k, ir::Ints<2> s, ir::Ints<4> pad, ir::Ints<2> dil, bool ceil) {
  ir::MaxPool2dAttrs a;
  a.kernel = k;
  a.stride = s;
  a.pad = pad;
  a.dilation = dil;
  a.ceil_mode = ceil;
  return a;
}

ir::AvgPool2dAttrs avgPool(ir::Ints<2> k, ir::Ints<2> s, ir::Ints<4> pad, bool ceil, bool includePad) {
  ir::AvgPool2dAttrs a;
  a.kernel = k;
  a.stride = s;
  a.pad = pad;
  a.ceil_mode = ceil;
  a.count_include_pad = includePad;
  return a;
}

TEST_P(OneDnnLayouts, MaxPool) {
  const auto x = act({kBatch, 16, 10, 11});
  expectOpMatchesReference(OpKind::MaxPool2d, maxPool({3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, false), {x}, GetParam());
  expectOpMatchesReference(OpKind::MaxPool2d, maxPool({3, 3}, {2, 2}, {0, 0, 0, 0}, {1, 1}, true), {x}, GetParam());
  expectOpMatchesReference(OpKind::MaxPool2d, maxPool({2, 3}, {1, 2}, {1, 0, 0, 1}, {2, 1}, true), {x}, GetParam());
}

TEST_P(OneDnnLayouts, AvgPool) {
  const auto x = act({kBatch, 16, 10, 11});
  for (bool include : {false, true}) {
    for (bool ceil : {false, true}) {
      SCOPED_TRACE(fmt::format("count_include_pad {} ceil_mode {}", include, ceil));
      expectOpMatchesReference(OpKind::AvgPool2d, avgPool({3, 3}, {2, 2}, {1, 1, 1, 1}, ceil, include), {x}, GetParam());
      expectOpMatchesReference(OpKind::AvgPool2d, avgPool({2, 2}, {2, 2}, {0, 0, 0, 0}, ceil, include), {x}, GetParam());
      expectOpMatchesReference(OpKind::AvgPool2d, avgPool({3, 2}, {2, 3}, {1, 0, 0, 1}, ceil, include), {x}, GetParam());
    }
  }
}

TEST_P(OneDnnLayouts, GlobalAndAdaptiveAvgPool) {
  const auto x = act({kBatch, 16, 6, 7});
  expectOpMatchesReference(OpKind::GlobalAvgPool, ir::NoAttrs{}, {x}, GetParam());
  expectOpMatchesReference(OpKind::AdaptiveAvgPool2d, ir::AdaptiveAvgPool2dAttrs{{3, 7}}, {x}, GetParam());
  expectOpMatchesReference(OpKind::AdaptiveAvgPool2d, ir::AdaptiveAvgPool2dAttrs{{4, 5}}, {x}, GetParam());
  expectOpMatchesReference(OpKind::AdaptiveAvgPool2d, ir::AdaptiveAvgPool2dAttrs{{1, 1}}, {x}, GetParam());
}

TEST_P(OneDnnLayouts, UnaryElementwise) {
  const auto x = act({kBatch, 16, 3, 5});
  for (OpKind k : {OpKind::Relu, OpKind::Relu6, OpKind::Sigmoid, OpKind::Swish, OpKind::HardSwish, OpKind::Tanh})
    expectOpMatchesReference(k, ir::NoAttrs{}, {x}, GetParam());
  expectOpMatchesReference(OpKind::Clip, ir::ClipAttrs{-0.5, 0.25}, {x}, GetParam());
  expectOpMatchesReference(OpKind::Clip, ir::ClipAttrs{}, {x}, GetParam());  // unbounded
  expectOpMatchesReference(OpKind::Clip, ir::ClipAttrs{0.0, std::numeric_limits<double>::infinity()}, {x}, GetParam());
  expectOpMatchesReference(OpKind::HardSigmoid, ir::HardSigmoidAttrs{}, {x}, GetParam());
  expectOpMatchesReference(OpKind::HardSigmoid, ir::HardSigmoidAttrs{0.2, 0.5}, {x}, GetParam());
}

TEST_P(OneDnnLayouts, BinarySameShapeAndChannelBroadcast) {
  const auto x = act({kBatch, 16, 4, 5});
  const auto c = act({kBatch, 16, 1, 1});
  for (OpKind k : {OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div}) {
    expectOpMatchesReference(k, ir::NoAttrs{}, {x, act({kBatch, 16, 4, 5})}, GetParam());
    expectOpMatchesReference(k, ir::NoAttrs{}, {x, c}, GetParam());
    expectOpMatchesReference(k, ir::NoAttrs{}, {c, x}, GetParam());  // src0 broadcasts
  }
  expectOpMatchesReference(OpKind::ChannelScale, ir::NoAttrs{}, {x, c}, GetParam());
}

// select-layout runs a binary in its 4-D operand's layout; a lower-rank per-channel operand
// (a [C,1,1] constant) stays row-major and broadcasts into the blocked one.
TEST_P(OneDnnLayouts, BinaryWithLowerRankChannelOperand) {
  const auto x = act({kBatch, 16, 4, 5});
  for (OpKind k : {OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div}) {
    SCOPED_TRACE(std::string(ir::opName(k)));
    expectOpMatchesReference(k, ir::NoAttrs{}, {x, param({16, 1, 1})}, GetParam());
    expectOpMatchesReference(k, ir::NoAttrs{}, {param({16, 1, 1}), x}, GetParam());
  }
}

TEST(OneDnnOps, BinaryNumpyBroadcasting) {
  for (OpKind k : {OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div}) {
    SCOPED_TRACE(std::string(ir::opName(k)));
    expectOpMatchesReference(k, ir::NoAttrs{}, {act({kBatch, 3, 4, 5}), param({5})});          // lower rank
    expectOpMatchesReference(k, ir::NoAttrs{}, {param({4, 1}), act({kBatch, 3, 4, 5})});       // lower rank, src0
    expectOpMatchesReference(k, ir::NoAttrs{}, {act({kBatch, 1, 4, 1}), act({1, 3, 1, 5})});   // both broadcast
    expectOpMatchesReference(k, ir::NoAttrs{}, {act({kBatch, 6}), param({6})});
  }
}

TEST_P(OneDnnLayouts, Concat) {
  expectOpMatchesReference(OpKind::Concat, ir::AxisAttrs{1},
                           {act({kBatch, 16, 3, 4}), act({kBatch, 32, 3, 4}), act({kBatch, 16, 3, 4})}, GetParam());
  expectOpMatchesReference(OpKind::Concat, ir::AxisAttrs{-1},
                           {act({kBatch, 16, 3, 4}), act({kBatch, 16, 3, 2})}, GetParam());
}

// PeleeNet-like widths: every part divides by 8 but not by 16, so select-layout picks nChw8c.
TEST(OneDnnOps, ConcatInEightBlocks) {
  expectOpMatchesReference(OpKind::Concat, ir::AxisAttrs{1},
                           {act({kBatch, 8, 3, 4}), act({kBatch, 16, 3, 4}), act({kBatch, 24, 3, 4})},
                           Layout::NChw8c);
}

TEST(OneDnnOps, ConcatUnevenChannels) {
  expectOpMatchesReference(OpKind::Concat, ir::AxisAttrs{1}, {act({kBatch, 5, 3, 4}), act({kBatch, 7, 3, 4})});
}

TEST(OneDnnOps, SoftmaxAndLogSoftmax) {
  for (OpKind k : {OpKind::Softmax, OpKind::LogSoftmax}) {
    expectOpMatchesReference(k, ir::AxisAttrs{1}, {act({kBatch, 10})});
    expectOpMatchesReference(k, ir::AxisAttrs{-1}, {act({kBatch, 16, 3, 7})});
    expectOpMatchesReference(k, ir::AxisAttrs{1}, {act({kBatch, 16, 3, 7})}, Layout::NChw16c);
  }
}

TEST_P(OneDnnLayouts, Split) {
  // 16 | 32 keeps the 16-blocks whole; 8 | 24 | 16 cuts them (through row-major).
  expectOpMatchesReference(OpKind::Split, ir::SplitAttrs{1, {16, 32}}, {act({kBatch, 48, 3, 4})}, GetParam());
  expectOpMatchesReference(OpKind::Split, ir::SplitAttrs{1, {8, 24, 16}}, {act({kBatch, 48, 3, 4})}, GetParam());
  expectOpMatchesReference(OpKind::Split, ir::SplitAttrs{3, {1, 3}}, {act({kBatch, 16, 3, 4})}, GetParam());
}

TEST(OneDnnOps, SliceForwardAndBackward) {
  const auto x = act({kBatch, 6, 7, 8});
  expectOpMatchesReference(OpKind::Slice, ir::SliceAttrs{{1, 3}, {1, -6}, {5, 100}, {2, 1}}, {x});
  expectOpMatchesReference(OpKind::Slice, ir::SliceAttrs{{2}, {-1}, {-100}, {-2}}, {x});
  expectOpMatchesReference(OpKind::Slice, ir::SliceAttrs{{1, 2}, {4, 0}, {0, 7}, {-1, 3}}, {x}, Layout::NHWC);
}

TEST(OneDnnOps, PadTransposeReshapeFlatten) {
  const auto x = act({kBatch, 16, 3, 5});
  expectOpMatchesReference(OpKind::Pad, ir::PadAttrs{{0, 1, 2, 0, 0, 2, 1, 3}, 0.5}, {x});
  expectOpMatchesReference(OpKind::Pad, ir::PadAttrs{{0, 0, 1, 1, 0, 0, 1, 1}, 0.0}, {x}, Layout::NChw16c);
  expectOpMatchesReference(OpKind::Transpose, ir::TransposeAttrs{{0, 2, 3, 1}}, {x});
  expectOpMatchesReference(OpKind::Transpose, ir::TransposeAttrs{{0, 3, 1, 2}}, {x}, Layout::NChw8c);
  for (Layout l : kLayouts) {
    expectOpMatchesReference(OpKind::Flatten, ir::AxisAttrs{1}, {x}, l);
    expectOpMatchesReference(OpKind::Reshape, ir::ReshapeAttrs{{0, 16, 15}}, {x}, l);
    expectOpMatchesReference(OpKind::Reshape, ir::ReshapeAttrs{{0, 8, 2, 15}}, {x}, l);
  }
}

TEST(OneDnnOps, Dropout) {
  const auto x = act({kBatch, 16, 3, 5});
  expectOpMatchesReference(OpKind::Dropout, ir::DropoutAttrs{0.3, false, 0}, {x}, Layout::NChw16c);
  expectOpMatchesReference(OpKind::Dropout, ir::DropoutAttrs{0.3, true, 42}, {x}, Layout::NCHW, 2, kExact);
}

TEST(OneDnnOps, ReorderBetweenEveryPairOfLayouts) {
  for (Layout from : kLayouts) {
    for (Layout to : kLayouts) {
      SCOPED_TRACE(fmt::format("{} -> {}", ir::layoutName(from), ir::layoutName(to)));
      expectOpMatchesReference(OpKind::Reorder, ir::ReorderAttrs{to}, {act({kBatch, 16, 3, 5})}, from, 2, kExact);
    }
  }
}

TEST(OneDnnOps, ConstantFeedsAnAdd) {
  ir::Module ref, mine;
  for (ir::Module* m : {&ref, &mine}) {
    ir::Graph& g = m->graph;
    ir::Value* x = g.addInput("x", ir::makeType(ir::DType::F32, {kBatch, 3}));
    ir::ConstantAttrs c;
    c.value = {1.5, -2, 4};
    c.shape = {3};
    ir::Value* k = g.createNode(OpKind::Constant, {}, c).value()->result();
    g.addOutput(g.createNode(OpKind::Add, {x, k}, ir::NoAttrs{}).value()->result());
  }
  const auto inputs = randomInputs(ref.graph, 2, 3);
  auto want = backends::reference::run(ref, inputs);
  ASSERT_TRUE(want.isOk()) << want.message();
  auto s = onednnSession(std::move(mine), 2);
  ASSERT_TRUE(s.isOk()) << s.message();
  auto got = (*s)->run(inputs);
  ASSERT_TRUE(got.isOk()) << got.message();
  EXPECT_TRUE(closeTensors((*got)[0], (*want)[0], kExact));
}

}  // namespace
}  // namespace kiln::testing
