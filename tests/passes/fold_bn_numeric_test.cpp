// fold-bn keeps the math: small conv/linear + batch_norm graphs and whole registry models
// (resnet18, mobilenet_v2 at 32x32) run on the reference backend before and after the pass,
// with random weights and random BN statistics, and the outputs agree within kF32.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/module.h"
#include "ir/printer.h"
#include "models/registry.h"
#include "passes/fold_bn.h"
#include "tests/passes/pass_test_util.h"
#include "tests/tolerance.h"

namespace kiln::passes {
namespace {

/// Uniform values in [lo, hi) for a weight the store already holds (same type).
void randomize(ir::Module& m, const std::string& name, double lo, double hi, std::mt19937& rng) {
  const ir::Tensor* old = m.weights.find(name);
  ASSERT_NE(old, nullptr) << name;
  ir::Tensor t(old->dtype(), old->shape(), old->layout());
  std::uniform_real_distribution<float> dist(static_cast<float>(lo), static_cast<float>(hi));
  for (float& v : t.span<float>()) v = dist(rng);
  m.weights.set(name, std::move(t));
}

/// Random weights (initMissingWeights), then BN statistics and conv biases that are not the
/// identity init: gamma in [0.5, 1.5), beta and mean in [-0.5, 0.5), var in [0.25, 2).
void randomWeights(ir::Module& m, uint32_t seed) {
  m.weights = ir::WeightStore();
  ir::initMissingWeights(m.graph, m.weights, seed);
  std::mt19937 rng(seed);
  for (const auto& n : m.graph.nodes()) {
    if (n->kind() == ir::OpKind::BatchNorm) {
      randomize(m, n->operand(1)->name(), 0.5, 1.5, rng);
      randomize(m, n->operand(2)->name(), -0.5, 0.5, rng);
      randomize(m, n->operand(3)->name(), -0.5, 0.5, rng);
      randomize(m, n->operand(4)->name(), 0.25, 2.0, rng);
    }
  }
}

ir::Tensor randomInput(const ir::TensorType& type, std::mt19937& rng) {
  ir::Tensor t(type.dtype, type.shape.bind(2), type.layout);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  for (float& v : t.span<float>()) v = dist(rng);
  return t;
}

struct Comparison {
  ::testing::AssertionResult close = ::testing::AssertionSuccess();
  double maxAbsDiff = 0;
};

/// Runs both modules on the same random inputs; all outputs must agree within `tol`.
Comparison compare(const ir::Module& before, const ir::Module& after, uint32_t seed,
                   kiln::testing::Tolerance tol = kiln::testing::kF32) {
  Comparison c;
  std::mt19937 rng(seed);
  std::vector<ir::Tensor> inputs;
  for (const ir::Value* v : before.graph.inputs()) inputs.push_back(randomInput(v->type(), rng));
  Expected<std::vector<ir::Tensor>> want = backends::reference::run(before, inputs);
  Expected<std::vector<ir::Tensor>> got = backends::reference::run(after, inputs);
  if (!want.isOk()) return {::testing::AssertionFailure() << "before: " << want.message(), 0};
  if (!got.isOk()) return {::testing::AssertionFailure() << "after: " << got.message(), 0};
  if (got->size() != want->size()) return {::testing::AssertionFailure() << "output count", 0};
  for (size_t k = 0; k < want->size(); ++k) {
    const ir::Tensor &a = (*got)[k], &b = (*want)[k];
    if (a.type() != b.type())
      return {::testing::AssertionFailure() << "output " << k << ": " << a.type().str() << " vs "
                                            << b.type().str(), 0};
    for (int64_t i = 0; i < b.numElements(); ++i) {
      const double d = std::abs(a.at(i) - b.at(i));
      c.maxAbsDiff = std::max(c.maxAbsDiff, d);
      if (!(d <= tol.atol + tol.rtol * std::abs(b.at(i))) && c.close)
        c.close = ::testing::AssertionFailure()
                  << "output " << k << " element " << i << ": " << a.at(i) << " vs " << b.at(i);
    }
  }
  return c;
}

int countOps(const ir::Graph& g, ir::OpKind kind) {
  int n = 0;
  for (const auto& node : g.nodes()) n += node->kind() == kind;
  return n;
}

/// Folds every batch_norm of `before` and checks the outputs on three input seeds.
void expectSameOutputs(const ir::Module& before, const std::string& what) {
  ir::Module after = before.clone();
  FoldBn pass;
  Status st = pass.run(after);
  ASSERT_TRUE(st.isOk()) << st.message();
  const int bns = countOps(before.graph, ir::OpKind::BatchNorm);
  ASSERT_GT(bns, 0) << what;
  EXPECT_EQ(pass.numFolded(), bns) << what;
  EXPECT_TRUE(pass.unfoldable().empty())
      << what << ": " << pass.unfoldable()[0].loc.str() << " " << pass.unfoldable()[0].reason;
  EXPECT_EQ(countOps(after.graph, ir::OpKind::BatchNorm), 0) << ir::printGraph(after.graph);
  double maxDiff = 0;
  for (uint32_t seed : {1u, 2u, 3u}) {
    Comparison c = compare(before, after, seed);
    EXPECT_TRUE(c.close) << what << " after fold-bn:\n" << ir::printGraph(after.graph);
    maxDiff = std::max(maxDiff, c.maxAbsDiff);
  }
  ::testing::Test::RecordProperty("max_abs_diff", std::to_string(maxDiff));
  std::printf("[ fold-bn  ] %s: %d batch_norms folded, max |before - after| = %.3g\n",
              what.c_str(), bns, maxDiff);
}

ir::Module smallGraph(const char* text, uint32_t seed) {
  ir::Module m = testing::parseModule(text);
  randomWeights(m, seed);
  return m;
}

constexpr const char* kConvBnRelu = R"(graph @g {
  input %x : f32[N,3,8,8]{nchw}
  param %conv.weight : f32[8,3,3,3]{oihw}
  param %conv.bias : f32[8]{x}
  param %bn.weight : f32[8]{x}
  param %bn.bias : f32[8]{x}
  buffer %bn.running_mean : f32[8]{x}
  buffer %bn.running_var : f32[8]{x}
  %0 = conv2d(%x, %conv.weight, %conv.bias) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,8,8,8]{nchw}
  %1 = batch_norm(%0, %bn.weight, %bn.bias, %bn.running_mean, %bn.running_var) {epsilon=1e-05} : f32[N,8,8,8]{nchw}
  %2 = relu(%1) : f32[N,8,8,8]{nchw}
  output %2
}
)";

TEST(FoldBnNumeric, ConvWithBiasBnRelu) { expectSameOutputs(smallGraph(kConvBnRelu, 5), "conv+bias+bn+relu"); }

TEST(FoldBnNumeric, ConvWithoutBias) {
  expectSameOutputs(smallGraph(R"(graph @g {
  input %x : f32[N,4,7,7]{nchw}
  param %conv.weight : f32[6,4,3,3]{oihw}
  param %bn.weight : f32[6]{x}
  param %bn.bias : f32[6]{x}
  buffer %bn.running_mean : f32[6]{x}
  buffer %bn.running_var : f32[6]{x}
  %0 = conv2d(%x, %conv.weight) {stride=[2,2], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,6,4,4]{nchw}
  %1 = batch_norm(%0, %bn.weight, %bn.bias, %bn.running_mean, %bn.running_var) {epsilon=0.001} : f32[N,6,4,4]{nchw}
  %2 = relu(%1) : f32[N,6,4,4]{nchw}
  output %2
}
)", 6), "conv (no bias)+bn+relu");
}

TEST(FoldBnNumeric, DepthwiseAndGrouped) {
  expectSameOutputs(smallGraph(R"(graph @g {
  input %x : f32[N,4,6,6]{nchw}
  param %g.weight : f32[8,2,3,3]{oihw}
  param %g.bn.weight : f32[8]{x}
  param %g.bn.bias : f32[8]{x}
  buffer %g.bn.running_mean : f32[8]{x}
  buffer %g.bn.running_var : f32[8]{x}
  param %dw.weight : f32[8,1,3,3]{oihw}
  param %dw.bias : f32[8]{x}
  param %dw.bn.weight : f32[8]{x}
  param %dw.bn.bias : f32[8]{x}
  buffer %dw.bn.running_mean : f32[8]{x}
  buffer %dw.bn.running_var : f32[8]{x}
  %0 = conv2d(%x, %g.weight) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=2} : f32[N,8,6,6]{nchw}
  %1 = batch_norm(%0, %g.bn.weight, %g.bn.bias, %g.bn.running_mean, %g.bn.running_var) {epsilon=1e-05} : f32[N,8,6,6]{nchw}
  %2 = relu6(%1) : f32[N,8,6,6]{nchw}
  %3 = conv2d(%2, %dw.weight, %dw.bias) {stride=[2,2], pad=[1,1,1,1], dilation=[1,1], groups=8} : f32[N,8,3,3]{nchw}
  %4 = batch_norm(%3, %dw.bn.weight, %dw.bn.bias, %dw.bn.running_mean, %dw.bn.running_var) {epsilon=1e-05} : f32[N,8,3,3]{nchw}
  output %4
}
)", 7), "grouped + depthwise conv+bn");
}

TEST(FoldBnNumeric, LinearBn) {
  expectSameOutputs(smallGraph(R"(graph @g {
  input %x : f32[N,16]{nc}
  param %fc.weight : f32[10,16]{oi}
  param %fc.bias : f32[10]{x}
  param %bn.weight : f32[10]{x}
  param %bn.bias : f32[10]{x}
  buffer %bn.running_mean : f32[10]{x}
  buffer %bn.running_var : f32[10]{x}
  %0 = linear(%x, %fc.weight, %fc.bias) : f32[N,10]{nc}
  %1 = batch_norm(%0, %bn.weight, %bn.bias, %bn.running_mean, %bn.running_var) {epsilon=1e-05} : f32[N,10]{nc}
  output %1
}
)", 8), "linear+bn");
}

ir::Module registryModel(const char* name, uint32_t seed) {
  models::ModelConfig config;
  config.resolution = 32;
  Expected<ir::Module> m = models::buildModel(name, config);
  EXPECT_TRUE(m.isOk()) << m.message();
  if (!m.isOk()) return ir::Module();
  randomWeights(*m, seed);
  return std::move(*m);
}

TEST(FoldBnNumeric, ResNet18At32) { expectSameOutputs(registryModel("resnet18", 11), "resnet18 @32x32"); }

TEST(FoldBnNumeric, MobileNetV2At32) {
  expectSameOutputs(registryModel("mobilenet_v2", 12), "mobilenet_v2 @32x32");
}

// The comparison can fail: a folded bias off by 1e-3 in one channel is caught.
TEST(FoldBnNumericSelfCheck, AWrongFoldIsCaught) {
  ir::Module before = smallGraph(kConvBnRelu, 5);
  ir::Module after = before.clone();
  FoldBn pass;
  ASSERT_TRUE(pass.run(after).isOk());
  ASSERT_EQ(pass.numFolded(), 1);
  ir::Tensor bias = after.weights.find("conv.bias.folded")->clone();
  bias.data<float>()[3] += 1e-3f;
  after.weights.set("conv.bias.folded", bias);
  bool caught = false;
  for (uint32_t seed : {1u, 2u, 3u}) caught = caught || !compare(before, after, seed).close;
  EXPECT_TRUE(caught);
}

}  // namespace
}  // namespace kiln::passes
