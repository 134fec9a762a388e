// Unit tests of the passes beyond the goldens: options, statistics, locations, and the
// weight store side of constant-fold and dce.
#include <gtest/gtest.h>

#include "backends/reference/reference.h"
#include "ir/printer.h"
#include "passes/canonicalize.h"
#include "passes/constant_fold.h"
#include "passes/cse.h"
#include "passes/dce.h"
#include "passes/infer_shapes.h"
#include "tests/passes/pass_test_util.h"

namespace kiln::passes {
namespace {

using testing::parseModule;

TEST(InferShapes, ReportsWhatChanged) {
  ir::Module m = parseModule(R"(graph @g {
  input %x : f32[N,4]{nc}
  %0 = relu(%x) : f32[N,4]{nc}
  %y = tanh(%0) : f32[N,4]{nc}
  output %y
}
)");
  m.graph.inputs()[0]->setType(ir::makeType(ir::DType::F32, {ir::kBatch, 6}));
  InferShapes pass;
  ASSERT_TRUE(pass.run(m).isOk());
  ASSERT_EQ(pass.changes().size(), 2u);
  EXPECT_EQ(pass.changes()[0].value, "relu result 0");
  EXPECT_EQ(pass.changes()[1].value, "%y");
  EXPECT_EQ(pass.changes()[1].before.str(), "f32[N,4]{nc}");
  EXPECT_EQ(pass.changes()[1].after.str(), "f32[N,6]{nc}");
  ASSERT_TRUE(pass.run(m).isOk());
  EXPECT_TRUE(pass.changes().empty());  // a second run has nothing to do
}

TEST(Canonicalize, NewNodesKeepTheLocationAndStatsCountRewrites) {
  ir::Module m = parseModule(R"(graph @g {
  input %x : f32[N,4]{nc}
  %0 = clip(%x) {min=0.0, max=6.0} : f32[N,4]{nc}
  %1 = dropout(%0) {p=0.1, training=false, seed=0} : f32[N,4]{nc}
  output %1
}
)", "model.kir");
  Canonicalize pass;
  ASSERT_TRUE(pass.run(m).isOk());
  ASSERT_EQ(m.graph.numNodes(), 1u);
  const ir::Node& relu6 = *m.graph.nodes().front();
  EXPECT_EQ(relu6.kind(), ir::OpKind::Relu6);
  EXPECT_EQ(relu6.loc().str(), "model.kir:3:3");
  EXPECT_EQ(relu6.result()->loc().str(), "model.kir:3:3");
  EXPECT_EQ(pass.stats().at("clip-to-relu"), 1);
  EXPECT_EQ(pass.stats().at("dropout-eval"), 1);
}

TEST(Canonicalize, IdentityOnAConstDeclarationUsesItsStoreData) {
  // %ones is a const declaration filled with 1.0 below: x * ones is x (same shape).
  ir::Module m = parseModule(R"(graph @g {
  input %x : f32[N,4]{nc}
  const %ones : f32[4]{x}
  param %p : f32[4]{x}
  %0 = mul(%x, %ones) : f32[N,4]{nc}
  %1 = mul(%0, %p) : f32[N,4]{nc}
  output %1
}
)");
  ir::Tensor ones(ir::DType::F32, {4});
  for (float& v : ones.span<float>()) v = 1.0f;
  m.weights.set("ones", ones);
  m.weights.set("p", ones);  // a param of ones is still a param: it may be trained
  Canonicalize pass;
  ASSERT_TRUE(pass.run(m).isOk());
  EXPECT_EQ(ir::printGraph(m.graph), R"(graph @g {
  input %x : f32[N,4]{nc}
  const %ones : f32[4]{x}
  param %p : f32[4]{x}
  %0 = mul(%x, %p) : f32[N,4]{nc}
  output %0
}
)");
}

TEST(ConstantFold, InlineLimitAndStatistics) {
  constexpr std::string_view text = R"(graph @g {
  input %x : f32[N,4]{nc}
  %a = constant() {value=[1.0,2.0,3.0,4.0], shape=[4], dtype=f32} : f32[4]{x}
  %b = add(%a, %a) : f32[4]{x}
  %y = mul(%x, %b) : f32[N,4]{nc}
  output %y
}
)";
  backends::reference::ReferenceEvaluator evaluator;
  {
    ir::Module m = parseModule(text);
    ConstantFold pass({.evaluator = &evaluator});
    ASSERT_TRUE(pass.run(m).isOk());
    EXPECT_EQ(pass.numFolded(), 1);
    EXPECT_TRUE(pass.skipped().empty());
    EXPECT_EQ(m.weights.size(), 0u);
  }
  {
    // With no inline budget even 4 elements go to the store, named after the first operand.
    ir::Module m = parseModule(text);
    ConstantFold pass({.evaluator = &evaluator, .maxInlineElements = 0});
    ASSERT_TRUE(pass.run(m).isOk());
    ASSERT_TRUE(m.weights.contains("a.folded"));
    const ir::Tensor& t = *m.weights.find("a.folded");
    EXPECT_EQ(t.type().str(), "f32[4]{x}");
    EXPECT_EQ(t.at(0), 2.0);
    EXPECT_EQ(t.at(3), 8.0);
    const ir::Value* v = m.graph.findValue("a.folded");
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(v->kind(), ir::ValueKind::Const);
  }
  {
    // Over the fold limit: left alone and reported.
    ir::Module m = parseModule(text);
    ConstantFold pass({.evaluator = &evaluator, .maxFoldElements = 3});
    ASSERT_TRUE(pass.run(m).isOk());
    EXPECT_EQ(pass.numFolded(), 0);
    ASSERT_EQ(pass.skipped().size(), 1u);
    EXPECT_EQ(pass.skipped()[0], "add: 4 result elements exceed the fold limit 3");
  }
}

TEST(ConstantFold, ConstWithoutDataIsNotAConstant) {
  ir::Module m = parseModule(R"(graph @g {
  input %x : f32[N,4]{nc}
  const %c : f32[4]{x}
  %0 = relu(%c) : f32[4]{x}
  %1 = add(%x, %0) : f32[N,4]{nc}
  output %1
}
)");
  m.weights.erase("c");
  backends::reference::ReferenceEvaluator evaluator;
  ConstantFold pass({.evaluator = &evaluator});
  ASSERT_TRUE(pass.run(m).isOk());
  EXPECT_EQ(pass.numFolded(), 0);
  EXPECT_EQ(m.graph.numNodes(), 2u);
}

TEST(ConstantFold, SkipsWhatTheEvaluatorCannotRun) {
  ir::Module m = parseModule(R"(graph @g {
  input %x : f32[N,2]{nc}
  %i = constant() {value=[1.0,2.0], shape=[2], dtype=i64} : i64[2]{x}
  %0 = add(%i, %i) : i64[2]{x}
  output %x, %0
}
)");
  backends::reference::ReferenceEvaluator evaluator;
  ConstantFold pass({.evaluator = &evaluator});
  ASSERT_TRUE(pass.run(m).isOk());
  EXPECT_EQ(pass.numFolded(), 0);
  ASSERT_EQ(pass.skipped().size(), 1u);
  EXPECT_NE(pass.skipped()[0].find("i64"), std::string::npos) << pass.skipped()[0];
}

TEST(CseAndDce, CountWhatTheyRemoved) {
  ir::Module m = parseModule(R"(graph @g {
  input %x : f32[N,4]{nc}
  const %k : f32[4]{x}
  %0 = relu(%x) : f32[N,4]{nc}
  %1 = relu(%x) : f32[N,4]{nc}
  %2 = add(%k, %1) : f32[N,4]{nc}
  %3 = add(%0, %1) : f32[N,4]{nc}
  output %3
}
)");
  Cse cse;
  ASSERT_TRUE(cse.run(m).isOk());
  EXPECT_EQ(cse.numMerged(), 1);
  Dce dce;
  ASSERT_TRUE(dce.run(m).isOk());
  EXPECT_EQ(dce.numErasedNodes(), 1);
  EXPECT_EQ(dce.numErasedConsts(), 1);
  EXPECT_FALSE(m.weights.contains("k"));
  EXPECT_EQ(m.graph.numNodes(), 2u);
}

}  // namespace
}  // namespace kiln::passes
