// Reference backend: whole-module runs (input/weight binding, the symbolic batch, outputs),
// the ir::Evaluator interface, f64 and unsupported dtypes.
#include <gtest/gtest.h>

#include "ir/module.h"
#include "tests/backends/reference_test_util.h"

namespace kiln::testing {
namespace {

using backends::reference::run;
using ir::DType;
using ir::Layout;
using ir::OpKind;
using ir::Shape;
using ir::TensorType;
using ir::ValueKind;

/// x f32[N,4] -> linear(fc.weight [3,4], fc.bias [3]) -> relu -> outputs (relu, x).
ir::Module mlp() {
  ir::Module m;
  ir::Graph& g = m.graph;
  ir::Value* x = g.addInput("x", TensorType{DType::F32, {ir::kBatch, 4}, Layout::NC});
  ir::Value* w =
      g.addWeight(ValueKind::Param, "fc.weight", TensorType{DType::F32, {3, 4}, Layout::OI});
  ir::Value* b = g.addWeight(ValueKind::Param, "fc.bias", TensorType{DType::F32, {3}, Layout::X});
  ir::Node* fc = g.createNode(OpKind::Linear, {x, w, b}, ir::NoAttrs{}).value();
  ir::Node* relu = g.createNode(OpKind::Relu, {fc->result()}, ir::NoAttrs{}).value();
  relu->result()->setName("y");
  g.setOutputs({relu->result(), x});
  m.weights.set("fc.weight", literal({3, 4}, {1, 0, 0, 0, 0, 1, 0, 0, -1, -1, -1, -1}));
  m.weights.set("fc.bias", literal({3}, {0, 0, 1}));
  return m;
}

TEST(ReferenceRun, LinearReluBatchOfTwo) {
  ir::Module m = mlp();
  auto x = literal({2, 4}, {1, -2, 3, 4, -1, 2, 0, 0});
  auto r = run(m, std::vector<ir::Tensor>{x});
  ASSERT_TRUE(r.isOk()) << r.message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_TRUE(tensorIs((*r)[0], {2, 3}, {1, 0, 0, 0, 2, 0}));
  EXPECT_TRUE(tensorIs((*r)[1], {2, 4}, valuesOf(x), kExact));
}

TEST(ReferenceRun, InputShapeMismatchNamesInputAndTypes) {
  ir::Module m;
  ir::Value* x = m.graph.addInput("x", ir::makeType(DType::F32, {ir::kBatch, 3, 224, 224}));
  m.graph.setOutputs({m.graph.createNode(OpKind::Relu, {x}, ir::NoAttrs{}).value()->result()});
  auto r = run(m, std::vector<ir::Tensor>{ir::Tensor(DType::F32, {1, 3, 112, 112})});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.message(), "input %x: expected f32[N,3,224,224], got f32[1,3,112,112]");
  auto d = run(m, std::vector<ir::Tensor>{ir::Tensor(DType::F64, {1, 3, 224, 224})});
  ASSERT_FALSE(d.isOk());
  EXPECT_EQ(d.message(), "input %x: expected f32[N,3,224,224], got f64[1,3,224,224]");
}

TEST(ReferenceRun, BatchMustAgreeAcrossInputs) {
  ir::Module m;
  ir::Value* a = m.graph.addInput("a", ir::makeType(DType::F32, {ir::kBatch, 2}));
  ir::Value* b = m.graph.addInput("b", ir::makeType(DType::F32, {ir::kBatch, 2}));
  m.graph.setOutputs({m.graph.createNode(OpKind::Add, {a, b}, ir::NoAttrs{}).value()->result()});
  auto ok = run(m, std::vector<ir::Tensor>{iota({3, 2}), iota({3, 2})});
  ASSERT_TRUE(ok.isOk()) << ok.message();
  EXPECT_TRUE(tensorIs((*ok)[0], {3, 2}, {0, 2, 4, 6, 8, 10}));
  auto r = run(m, std::vector<ir::Tensor>{iota({3, 2}), iota({2, 2})});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.message(), "input %b: expected f32[N,2], got f32[2,2] (N is 3, bound by %a)");
}

TEST(ReferenceRun, MissingWeightIsNamed) {
  ir::Module m = mlp();
  m.weights.erase("fc.bias");
  auto r = run(m, std::vector<ir::Tensor>{iota({1, 4})});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.message(), "param %fc.bias: missing from the weight store");
}

TEST(ReferenceRun, MisshapenWeightIsNamed) {
  ir::Module m = mlp();
  m.weights.set("fc.weight", iota({4, 3}));
  auto r = run(m, std::vector<ir::Tensor>{iota({1, 4})});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.message(), "param %fc.weight: expected f32[3,4], got f32[4,3]");
}

TEST(ReferenceRun, WrongInputCount) {
  ir::Module m = mlp();
  auto r = run(m, std::vector<ir::Tensor>{});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.message(), "graph @main has 1 inputs, 0 tensors were given");
}

TEST(ReferenceRun, ReusedIntermediateSurvivesUntilLastUse) {
  // y = relu(x); z = y + y; w = z * y  (y is read by two later nodes)
  ir::Module m;
  ir::Graph& g = m.graph;
  ir::Value* x = g.addInput("x", ir::makeType(DType::F64, {3}));
  ir::Value* y = g.createNode(OpKind::Relu, {x}, ir::NoAttrs{}).value()->result();
  ir::Value* z = g.createNode(OpKind::Add, {y, y}, ir::NoAttrs{}).value()->result();
  ir::Value* w = g.createNode(OpKind::Mul, {z, y}, ir::NoAttrs{}).value()->result();
  g.createNode(OpKind::Tanh, {z}, ir::NoAttrs{}).value();  // an unread result
  g.setOutputs({w});
  auto r = run(m, std::vector<ir::Tensor>{literal({3}, {-1, 1, 2}, DType::F64)});
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_TRUE(tensorIs((*r)[0], {3}, {0, 2, 8}, kExact));
}

TEST(ReferenceRun, EvaluatorInterface) {
  ir::Graph g;
  ir::Value* x = g.addInput("x", ir::makeType(DType::F32, {2}));
  ir::Node* n = g.createNode(OpKind::Relu6, {x}, ir::NoAttrs{}).value();
  backends::reference::ReferenceEvaluator ref;
  const ir::Evaluator& e = ref;
  std::vector<ir::Tensor> in{literal({2}, {-1, 9})};
  auto r = e.evaluate(*n, in);
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_TRUE(tensorIs((*r)[0], {2}, {0, 6}));
  auto bad = e.evaluate(*n, {});
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.message(), "relu6: the node has 1 operands, but 0 tensors were given");
}

TEST(ReferenceDTypes, F64ConvMatchesF32) {
  ir::Conv2dAttrs a;
  a.pad = {1, 1, 1, 1};
  a.stride = {2, 1};
  std::vector<double> xv(2 * 3 * 5 * 4), wv(4 * 3 * 3 * 3);
  for (size_t i = 0; i < xv.size(); ++i) xv[i] = std::sin(0.37 * static_cast<double>(i));
  for (size_t i = 0; i < wv.size(); ++i) wv[i] = std::cos(0.11 * static_cast<double>(i));
  auto y32 = runOne(OpKind::Conv2d, a, {literal({2, 3, 5, 4}, xv), literal({4, 3, 3, 3}, wv)});
  auto y64 = runOne(OpKind::Conv2d, a,
                    {literal({2, 3, 5, 4}, xv, DType::F64), literal({4, 3, 3, 3}, wv, DType::F64)});
  EXPECT_EQ(y64.dtype(), DType::F64);
  EXPECT_TRUE(tensorIs(y32, y64.shape(), valuesOf(y64), kF32));
}

TEST(ReferenceDTypes, IntegerArithmeticIsAClearError) {
  auto r = runOp(OpKind::Relu, ir::NoAttrs{}, {literal({2}, {1, 2}, DType::I64)});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.message(), "relu: the reference backend has no i64 kernel (it runs f32 and f64)");
  auto s = runOp(OpKind::Softmax, ir::AxisAttrs{}, {literal({1, 2}, {1, 2}, DType::I64)});
  ASSERT_FALSE(s.isOk());  // the shape rule already refuses non-float softmax
}

}  // namespace
}  // namespace kiln::testing
