// Reference backend, hand-checked: activations, broadcasting binaries, channel_scale,
// softmax / log_softmax and dropout.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "tests/backends/reference_test_util.h"

namespace kiln::testing {
namespace {

using ir::DType;
using ir::Layout;
using ir::OpKind;
using ir::Shape;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(ReferenceElementwise, ReluKeepsNaNAndZeroesNegatives) {
  auto y = runOne(OpKind::Relu, ir::NoAttrs{}, {literal({4}, {-1, 0, 2, kNaN})});
  EXPECT_TRUE(tensorIs(y, {4}, {0, 0, 2, kNaN}));
}

TEST(ReferenceElementwise, Relu6) {
  auto y = runOne(OpKind::Relu6, ir::NoAttrs{}, {literal({4}, {-1, 3, 7, kNaN})});
  EXPECT_TRUE(tensorIs(y, {4}, {0, 3, 6, kNaN}));
}

TEST(ReferenceElementwise, SigmoidSaturatesWithoutNaN) {
  auto y = runOne(OpKind::Sigmoid, ir::NoAttrs{}, {literal({4}, {0, 1, 100, -100})});
  EXPECT_TRUE(tensorIs(y, {4}, {0.5, 0.7310585786300049, 1, 0}));
}

TEST(ReferenceElementwise, SwishIsXTimesSigmoid) {
  auto y = runOne(OpKind::Swish, ir::NoAttrs{}, {literal({3}, {0, 1, -100})});
  EXPECT_TRUE(tensorIs(y, {3}, {0, 0.7310585786300049, 0}));
}

TEST(ReferenceElementwise, HardSwishPyTorchFormula) {
  auto y = runOne(OpKind::HardSwish, ir::NoAttrs{}, {literal({5}, {-4, -1, 0, 1, 4})});
  EXPECT_TRUE(tensorIs(y, {5}, {0, -1.0 / 3, 0, 2.0 / 3, 4}));
}

TEST(ReferenceElementwise, HardSigmoidDefaultAndCustom) {
  auto y = runOne(OpKind::HardSigmoid, ir::HardSigmoidAttrs{}, {literal({4}, {-4, 0, 1.5, 4})});
  EXPECT_TRUE(tensorIs(y, {4}, {0, 0.5, 0.75, 1}));
  ir::HardSigmoidAttrs onnx;
  onnx.alpha = 0.2;
  onnx.beta = 0.5;
  auto z = runOne(OpKind::HardSigmoid, onnx, {literal({3}, {1, -3, 3})});
  EXPECT_TRUE(tensorIs(z, {3}, {0.7, 0, 1}));
}

TEST(ReferenceElementwise, Tanh) {
  auto y = runOne(OpKind::Tanh, ir::NoAttrs{}, {literal({2}, {0, 1})});
  EXPECT_TRUE(tensorIs(y, {2}, {0, 0.7615941559557649}));
}

TEST(ReferenceElementwise, ClipBothSidesAndOneSide) {
  ir::ClipAttrs a;
  a.min = -1;
  a.max = 2;
  EXPECT_TRUE(tensorIs(runOne(OpKind::Clip, a, {literal({3}, {-3, 0, 5})}), {3}, {-1, 0, 2}));
  ir::ClipAttrs lower;
  lower.min = 0;
  EXPECT_TRUE(
      tensorIs(runOne(OpKind::Clip, lower, {literal({3}, {-3, 0, 5e30})}), {3}, {0, 0, 5e30}));
}

TEST(ReferenceElementwise, UnaryKeepsAnyLayout) {
  auto x = literal({1, 2, 1, 2}, {-1, 2, -3, 4}, DType::F32, Layout::NHWC);
  auto y = runOne(OpKind::Relu, ir::NoAttrs{}, {x});
  EXPECT_EQ(y.layout(), Layout::NHWC);
  EXPECT_TRUE(tensorIs(y, {1, 2, 1, 2}, {0, 2, 0, 4}));
}

TEST(ReferenceElementwise, AddBroadcastsTrailingVector) {
  auto y = runOne(OpKind::Add, ir::NoAttrs{}, {iota({2, 3}), literal({3}, {10, 20, 30})});
  EXPECT_TRUE(tensorIs(y, {2, 3}, {10, 21, 32, 13, 24, 35}));
}

TEST(ReferenceElementwise, MulOuterProductBothSidesBroadcast) {
  auto y =
      runOne(OpKind::Mul, ir::NoAttrs{}, {literal({2, 1}, {2, 3}), literal({1, 3}, {1, 10, 100})});
  EXPECT_TRUE(tensorIs(y, {2, 3}, {2, 20, 200, 3, 30, 300}));
}

TEST(ReferenceElementwise, SubAndDivWithScalar) {
  auto s = literal({}, {2});
  EXPECT_TRUE(tensorIs(runOne(OpKind::Sub, ir::NoAttrs{}, {s, iota({3})}), {3}, {2, 1, 0}));
  EXPECT_TRUE(tensorIs(runOne(OpKind::Div, ir::NoAttrs{}, {iota({3}), s}), {3}, {0, 0.5, 1}));
}

TEST(ReferenceElementwise, BroadcastMiddleAxis) {
  // [2,1,2] + [3,1]: y[i,j,k] = a[i,0,k] + b[j,0]
  auto y = runOne(OpKind::Add, ir::NoAttrs{},
                  {literal({2, 1, 2}, {1, 2, 3, 4}), literal({3, 1}, {0, 10, 20})});
  EXPECT_TRUE(tensorIs(y, {2, 3, 2}, {1, 2, 11, 12, 21, 22, 3, 4, 13, 14, 23, 24}));
}

TEST(ReferenceElementwise, SameShapeBinaryRunsInSharedLayout) {
  auto a = literal({1, 2, 1, 2}, {1, 2, 3, 4}, DType::F32, Layout::NHWC);
  auto b = literal({1, 2, 1, 2}, {10, 20, 30, 40}, DType::F32, Layout::NHWC);
  auto y = runOne(OpKind::Add, ir::NoAttrs{}, {a, b});
  EXPECT_EQ(y.layout(), Layout::NHWC);
  EXPECT_TRUE(tensorIs(y, {1, 2, 1, 2}, {11, 22, 33, 44}));
  // Broadcasting goes through row-major copies; the result keeps a's nhwc.
  auto z = runOne(OpKind::Add, ir::NoAttrs{}, {a, literal({2, 1, 1}, {100, 200})});
  EXPECT_EQ(z.layout(), Layout::NHWC);
  EXPECT_TRUE(tensorIs(z, {1, 2, 1, 2}, {101, 202, 103, 204}));
}

TEST(ReferenceElementwise, ChannelScalePerSampleAndShared) {
  auto x = iota({2, 2, 1, 2});
  auto y = runOne(OpKind::ChannelScale, ir::NoAttrs{}, {x, literal({2, 2, 1, 1}, {1, 2, 3, 4})});
  EXPECT_TRUE(tensorIs(y, {2, 2, 1, 2}, {0, 1, 4, 6, 12, 15, 24, 28}));
  auto z = runOne(OpKind::ChannelScale, ir::NoAttrs{}, {x, literal({1, 2, 1, 1}, {1, 10})});
  EXPECT_TRUE(tensorIs(z, {2, 2, 1, 2}, {0, 1, 20, 30, 4, 5, 60, 70}));
}

TEST(ReferenceSoftmax, LastAxisAndStableForLargeLogits) {
  const std::vector<double> want = {0.09003057317038046, 0.24472847105479764, 0.6652409557748219};
  ir::AxisAttrs last;
  last.axis = -1;
  EXPECT_TRUE(tensorIs(runOne(OpKind::Softmax, last, {literal({1, 3}, {1, 2, 3})}), {1, 3}, want));
  EXPECT_TRUE(
      tensorIs(runOne(OpKind::Softmax, last, {literal({1, 3}, {1001, 1002, 1003})}), {1, 3}, want));
  std::vector<double> logWant;
  for (double w : want) logWant.push_back(std::log(w));
  EXPECT_TRUE(tensorIs(runOne(OpKind::LogSoftmax, last, {literal({1, 3}, {-1001, -1000, -999})}),
                       {1, 3}, logWant));
}

TEST(ReferenceSoftmax, AxisZeroOfMatrix) {
  ir::AxisAttrs first;
  first.axis = 0;
  // columns: softmax([0, 0]) = [.5, .5]; softmax([0, ln 3]) = [.25, .75]
  auto y = runOne(OpKind::Softmax, first, {literal({2, 2}, {0, 0, 0, std::log(3.0)})});
  EXPECT_TRUE(tensorIs(y, {2, 2}, {0.5, 0.25, 0.5, 0.75}));
}

TEST(ReferenceDropout, InferenceIsIdentity) {
  ir::DropoutAttrs a;
  a.p = 0.5;
  EXPECT_TRUE(tensorIs(runOne(OpKind::Dropout, a, {iota({5})}), {5}, {0, 1, 2, 3, 4}, kExact));
}

TEST(ReferenceDropout, TrainingMaskIsSeededAndScaled) {
  ir::DropoutAttrs a;
  a.p = 0.25;
  a.training = true;
  a.seed = 7;
  std::vector<double> ones(10000, 1.0);
  auto x = literal({10000}, ones);
  auto y1 = valuesOf(runOne(OpKind::Dropout, a, {x}));
  auto y2 = valuesOf(runOne(OpKind::Dropout, a, {x}));
  EXPECT_EQ(y1, y2) << "same seed, same mask";
  a.seed = 8;
  auto y3 = valuesOf(runOne(OpKind::Dropout, a, {x}));
  EXPECT_NE(y1, y3) << "another seed, another mask";
  int kept = 0;
  for (double v : y1) {
    if (v != 0) {
      ++kept;
      EXPECT_NEAR(v, 1 / 0.75, 1e-6);
    }
  }
  // Binomial(10000, 0.75): sd ~ 43, so +-300 is far outside chance.
  EXPECT_NEAR(kept, 7500, 300);
}

}  // namespace
}  // namespace kiln::testing
