// fold-bn details the goldens cannot show: batch_norms left alone are listed with their
// location and reason (a graph without weight data folds nothing and is not an error), f64
// weights stay f64, and permuted weight layouts scale the right elements.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "ir/module.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "passes/fold_bn.h"
#include "tests/passes/pass_test_util.h"

namespace kiln::passes {
namespace {

constexpr const char* kConvBn = R"(graph @g {
  input %x : f32[N,2,4,4]{nchw}
  param %conv.weight : f32[2,2,1,1]{oihw}
  param %bn.weight : f32[2]{x}
  param %bn.bias : f32[2]{x}
  buffer %bn.running_mean : f32[2]{x}
  buffer %bn.running_var : f32[2]{x}
  %0 = conv2d(%x, %conv.weight) {stride=[1,1], pad=[0,0,0,0], dilation=[1,1], groups=1} : f32[N,2,4,4]{nchw}
  %1 = batch_norm(%0, %bn.weight, %bn.bias, %bn.running_mean, %bn.running_var) {epsilon=1e-05} : f32[N,2,4,4]{nchw}
  output %1
}
)";

TEST(FoldBn, WithoutWeightDataNothingFoldsAndTheReasonIsListed) {
  Expected<ir::Graph> g = ir::parseGraph(kConvBn, "model.kir");
  ASSERT_TRUE(g.isOk()) << g.message();
  ir::Module m(std::move(*g));  // no weight data at all
  const std::string text = ir::printGraph(m.graph);
  FoldBn pass;
  Status st = pass.run(m);
  ASSERT_TRUE(st.isOk()) << st.message();
  EXPECT_EQ(pass.numFolded(), 0);
  ASSERT_EQ(pass.unfoldable().size(), 1u);
  EXPECT_EQ(pass.unfoldable()[0].loc.str(), "model.kir:9:3");
  EXPECT_EQ(pass.unfoldable()[0].reason, "%conv.weight has no data in the weight store");
  EXPECT_EQ(ir::printGraph(m.graph), text);
  EXPECT_EQ(m.weights.size(), 0u);
}

TEST(FoldBn, ReasonsForEachMustNotFireCase) {
  ir::Module m = testing::parseModule(R"(graph @g {
  input %x : f32[N,2,4,4]{nchw}
  param %w : f32[2,2,1,1]{oihw}
  param %s : f32[2,2,1,1]{oihw}
  param %g : f32[2]{x}
  param %b : f32[2]{x}
  buffer %m : f32[2]{x}
  buffer %v : f32[2]{x}
  param %g4 : f32[4]{x}
  %0 = batch_norm(%x, %g, %b, %m, %v) {epsilon=1e-05} : f32[N,2,4,4]{nchw}
  %1 = concat(%x, %0) {axis=1} : f32[N,4,4,4]{nchw}
  %2 = batch_norm(%1, %g4, %g4, %g4, %g4) {epsilon=1e-05} : f32[N,4,4,4]{nchw}
  %3 = conv2d(%x, %w) {stride=[1,1], pad=[0,0,0,0], dilation=[1,1], groups=1} : f32[N,2,4,4]{nchw}
  %4 = batch_norm(%3, %g, %b, %m, %v) {epsilon=1e-05} : f32[N,2,4,4]{nchw}
  %5 = mul(%w, %s) : f32[2,2,1,1]{oihw}
  %6 = conv2d(%x, %5) {stride=[1,1], pad=[0,0,0,0], dilation=[1,1], groups=1} : f32[N,2,4,4]{nchw}
  %7 = batch_norm(%6, %g, %b, %m, %v) {epsilon=1e-05} : f32[N,2,4,4]{nchw}
  output %2, %3, %4, %7
}
)");
  FoldBn pass;
  ASSERT_TRUE(pass.run(m).isOk());
  EXPECT_EQ(pass.numFolded(), 0);
  ASSERT_EQ(pass.unfoldable().size(), 4u);
  EXPECT_EQ(pass.unfoldable()[0].reason, "its input is a graph input, not conv2d or linear");
  EXPECT_EQ(pass.unfoldable()[1].reason, "its input is produced by concat, not conv2d or linear");
  EXPECT_EQ(pass.unfoldable()[2].reason, "the conv2d result has 2 uses");
  EXPECT_EQ(pass.unfoldable()[3].reason, "an anonymous value is not a weight declaration");
  EXPECT_EQ(pass.unfoldable()[2].loc.str(), "test.kir:14:3");
}

TEST(FoldBn, F64WeightsStayF64) {
  std::string text = kConvBn;
  for (size_t at; (at = text.find("f32")) != std::string::npos;) text.replace(at, 3, "f64");
  ir::Module m = testing::parseModule(text);
  FoldBn pass;
  ASSERT_TRUE(pass.run(m).isOk());
  ASSERT_EQ(pass.numFolded(), 1);
  const ir::Tensor* w = m.weights.find("conv.weight.folded");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype(), ir::DType::F64);
  // pattern data: W = [0.5, 1, 1.5, 2], gamma = [0.5, 1], var = [0.5, 1]
  EXPECT_DOUBLE_EQ(w->at(0), 0.5 * 0.5 / std::sqrt(0.5 + 1e-5));
  EXPECT_DOUBLE_EQ(w->at(3), 2.0 * 1.0 / std::sqrt(1.0 + 1e-5));
  EXPECT_EQ(m.weights.find("conv.bias.folded")->dtype(), ir::DType::F64);
}

// hwio keeps the output channel innermost: element i of the memory belongs to channel i % O.
TEST(FoldBn, PermutedWeightLayoutScalesByOutputChannel) {
  ir::Module m = testing::parseModule(R"(graph @g {
  input %x : f32[N,3,4,4]{nchw}
  param %w : f32[2,3,1,1]{hwio}
  param %g : f32[2]{x}
  param %b : f32[2]{x}
  buffer %m : f32[2]{x}
  buffer %v : f32[2]{x}
  %0 = conv2d(%x, %w) {stride=[1,1], pad=[0,0,0,0], dilation=[1,1], groups=1} : f32[N,2,4,4]{nchw}
  %1 = batch_norm(%0, %g, %b, %m, %v) {epsilon=1e-05} : f32[N,2,4,4]{nchw}
  output %1
}
)");
  FoldBn pass;
  ASSERT_TRUE(pass.run(m).isOk());
  ASSERT_EQ(pass.numFolded(), 1);
  const ir::Tensor* w = m.weights.find("w.folded");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->layout(), ir::Layout::HWIO);
  const double s[2] = {0.5 / std::sqrt(0.5 + 1e-5), 1.0 / std::sqrt(1.0 + 1e-5)};
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_FLOAT_EQ(static_cast<float>(w->at(i)),
                    static_cast<float>(testing::patternValue(i) * s[i % 2])) << i;
  // No bias and a name without `.weight`: the new bias is `<W>.bias.folded`.
  EXPECT_NE(m.weights.find("w.bias.folded"), nullptr);
}

}  // namespace
}  // namespace kiln::passes
