// The op table: every row is consistent, and the shape and cost rules behave as PyTorch.
#include <gtest/gtest.h>

#include "ir/graph.h"
#include "ir/ops.h"
#include "ir/verifier.h"

namespace kiln::ir {
namespace {

TensorType f32(Shape s) { return makeType(DType::F32, std::move(s)); }

TEST(OpTable, RowsAreConsistent) {
  EXPECT_EQ(allOps().size(), kNumOps);
  for (const OpInfo& op : allOps()) {
    SCOPED_TRACE(std::string(op.name));
    EXPECT_EQ(&opInfo(op.kind), &op);
    EXPECT_EQ(parseOpKind(op.name), op.kind);
    EXPECT_EQ(defaultAttrs(op.kind).index(), op.attrsIndex);
    EXPECT_TRUE(op.maxArity < 0 || op.maxArity >= op.minArity);
    EXPECT_NE(op.infer, nullptr);
    EXPECT_NE(op.cost, nullptr);
  }
  EXPECT_FALSE(parseOpKind("convolution").has_value());
}

TEST(OpTable, TraitsComeFromTheTable) {
  EXPECT_TRUE(hasTrait(OpKind::Add, Commutative));
  EXPECT_FALSE(hasTrait(OpKind::Sub, Commutative));
  EXPECT_TRUE(hasTrait(OpKind::Relu, Elementwise));
  EXPECT_TRUE(hasTrait(OpKind::Dropout, Stochastic));
}

struct Fixture {
  Graph g{"t"};
  Value* x = g.addInput("x", f32({kBatch, 3, 224, 224}));
};

TEST(ShapeRules, Conv2dStridePadGroups) {
  Fixture f;
  Value* w = f.g.addWeight(ValueKind::Param, "w", TensorType{DType::F32, {64, 3, 7, 7}, Layout::OIHW});
  Conv2dAttrs a;
  a.stride = {2, 2};
  a.pad = {3, 3, 3, 3};
  auto n = f.g.createNode(OpKind::Conv2d, {f.x, w}, a);
  ASSERT_TRUE(n.isOk()) << n.message();
  EXPECT_EQ((*n)->result()->type().str(), "f32[N,64,112,112]{nchw}");
  // 118,013,952 MACs: torchvision resnet's stem conv at 224
  EXPECT_EQ(graphCost(f.g).macs, 112 * 112 * 64 * 3 * 7 * 7);

  Value* wg = f.g.addWeight(ValueKind::Param, "wg", TensorType{DType::F32, {6, 1, 3, 3}, Layout::OIHW});
  Conv2dAttrs dw;
  dw.groups = 3;
  auto bad = f.g.createNode(OpKind::Conv2d, {f.x, wg}, dw, Loc{"m.cpp", 4, 2});
  ASSERT_TRUE(bad.isOk()) << bad.message();
  EXPECT_EQ((*bad)->result()->type().shape, (Shape{kBatch, 6, 222, 222}));

  Value* w4 = f.g.addWeight(ValueKind::Param, "w4", TensorType{DType::F32, {8, 4, 3, 3}, Layout::OIHW});
  auto err = f.g.createNode(OpKind::Conv2d, {f.x, w4}, Conv2dAttrs{}, Loc{"m.cpp", 57, 14});
  ASSERT_FALSE(err.isOk());
  EXPECT_EQ(err.message(),
            "m.cpp:57:14: conv2d: input %x has 3 channels, weight %w4 expects 4 (groups=1)");
}

TEST(ShapeRules, PoolCeilModeFollowsPyTorch) {
  // torch: MaxPool2d(3, 2, ceil_mode=True) on 112 → 56; on 55 → 27; SqueezeNet 109 → 54
  Graph g("t");
  MaxPool2dAttrs a;
  a.kernel = {3, 3};
  a.stride = {2, 2};
  a.ceil_mode = true;
  for (auto [in, want] : {std::pair{112, 56}, {55, 27}, {109, 54}, {6, 3}}) {
    Value* x = g.addInput("x" + std::to_string(in), f32({1, 8, in, in}));
    auto n = g.createNode(OpKind::MaxPool2d, {x}, a);
    ASSERT_TRUE(n.isOk()) << n.message();
    EXPECT_EQ((*n)->result()->type().shape[2], want) << "input " << in;
  }
  // PyTorch drops a last window that would start in the right padding: 5, k2, s2, p1 → 3
  MaxPool2dAttrs p;
  p.kernel = {2, 2};
  p.stride = {2, 2};
  p.pad = {1, 1, 1, 1};
  p.ceil_mode = true;
  Value* x5 = g.addInput("x5", f32({1, 1, 5, 5}));
  auto n = g.createNode(OpKind::MaxPool2d, {x5}, p);
  ASSERT_TRUE(n.isOk());
  EXPECT_EQ((*n)->result()->type().shape[2], 3);
}

TEST(ShapeRules, BroadcastAndSymbolicBatch) {
  Graph g("t");
  Value* a = g.addInput("a", f32({kBatch, 16, 8, 8}));
  Value* b = g.addInput("b", f32({16, 1, 1}));
  Value* c = g.addInput("c", f32({kBatch, 4, 8, 8}));
  auto n = g.createNode(OpKind::Add, {a, b}, NoAttrs{});
  ASSERT_TRUE(n.isOk());
  EXPECT_EQ((*n)->result()->type().str(), "f32[N,16,8,8]{nchw}");
  auto bad = g.createNode(OpKind::Mul, {a, c}, NoAttrs{});
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.message().find("do not broadcast (dim 1: 16 vs 4)"), std::string::npos) << bad.message();
}

TEST(ShapeRules, ReshapeFlattenKeepTheBatch) {
  Graph g("t");
  Value* x = g.addInput("x", f32({kBatch, 512, 1, 1}));
  auto fl = g.createNode(OpKind::Flatten, {x}, AxisAttrs{1});
  ASSERT_TRUE(fl.isOk());
  EXPECT_EQ((*fl)->result()->type().str(), "f32[N,512]{nc}");
  auto r = g.createNode(OpKind::Reshape, {x}, ReshapeAttrs{{0, -1}});
  ASSERT_TRUE(r.isOk()) << r.message();
  EXPECT_EQ((*r)->result()->type().shape, (Shape{kBatch, 512}));
  auto r2 = g.createNode(OpKind::Reshape, {x}, ReshapeAttrs{{-1, 512}});
  ASSERT_TRUE(r2.isOk()) << r2.message();
  EXPECT_EQ((*r2)->result()->type().shape, (Shape{kBatch, 512}));
  auto bad = g.createNode(OpKind::Reshape, {x}, ReshapeAttrs{{2, 256}});
  EXPECT_FALSE(bad.isOk());
  auto bad2 = g.createNode(OpKind::Flatten, {x}, AxisAttrs{2});
  EXPECT_FALSE(bad2.isOk());
}

TEST(ShapeRules, SplitConcatSliceTranspose) {
  Graph g("t");
  Value* x = g.addInput("x", f32({kBatch, 6, 4, 4}));
  auto s = g.createNode(OpKind::Split, {x}, SplitAttrs{1, {2, 4}});
  ASSERT_TRUE(s.isOk());
  ASSERT_EQ((*s)->numResults(), 2u);
  EXPECT_EQ((*s)->result(1)->type().shape[1], 4);
  auto c = g.createNode(OpKind::Concat, {(*s)->result(1), (*s)->result(0), x}, AxisAttrs{1});
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ((*c)->result()->type().shape[1], 12);
  auto bad = g.createNode(OpKind::Split, {x}, SplitAttrs{1, {2, 3}});
  EXPECT_FALSE(bad.isOk());
  SliceAttrs sl;
  sl.axes = {2, 3};
  sl.starts = {-3, 3};
  sl.ends = {1000, -100};
  sl.steps = {1, -1};
  auto slice = g.createNode(OpKind::Slice, {x}, sl);
  ASSERT_TRUE(slice.isOk()) << slice.message();
  EXPECT_EQ((*slice)->result()->type().shape, (Shape{kBatch, 6, 3, 4}));
  auto t = g.createNode(OpKind::Transpose, {x}, TransposeAttrs{{0, 2, 3, 1}});
  ASSERT_TRUE(t.isOk());
  EXPECT_EQ((*t)->result()->type().shape, (Shape{kBatch, 4, 4, 6}));
}

TEST(ShapeRules, LinearAndCosts) {
  Graph g("t");
  Value* x = g.addInput("x", f32({kBatch, 512}));
  Value* w = g.addWeight(ValueKind::Param, "fc.weight", TensorType{DType::F32, {1000, 512}, Layout::OI});
  Value* b = g.addWeight(ValueKind::Param, "fc.bias", f32({1000}));
  auto n = g.createNode(OpKind::Linear, {x, w, b}, NoAttrs{});
  ASSERT_TRUE(n.isOk());
  g.addOutput((*n)->result());
  EXPECT_EQ(graphCost(g).macs, 512000);
  EXPECT_EQ(graphCost(g).flops, 2 * 512000 + 1000);
  EXPECT_EQ(countParams(g), 513000);
  EXPECT_TRUE(verify(g).isOk());
}

TEST(Verifier, CatchesTypeDrift) {
  Graph g("t");
  Value* x = g.addInput("x", f32({1, 4}));
  Node* n = g.addNode(OpKind::Relu, {x}, NoAttrs{}, {f32({1, 5})}, Loc{"t.kir", 3, 3});
  g.addOutput(n->result());
  Status st = verify(g);
  ASSERT_FALSE(st.isOk());
  EXPECT_EQ(st.message(), "t.kir:3:3: relu: result 0 of relu is f32[1,5]{nc}, expected f32[1,4]{nc}");
  n->result()->setType(f32({1, 4}));
  EXPECT_TRUE(verify(g).isOk());
}

TEST(Verifier, CatchesUseBeforeDefinition) {
  Graph g("t");
  Value* x = g.addInput("x", f32({1, 4}));
  Node* a = g.addNode(OpKind::Relu, {x}, NoAttrs{}, {f32({1, 4})});
  Node* b = g.addNode(OpKind::Sigmoid, {a->result()}, NoAttrs{}, {f32({1, 4})}, {}, a);  // before a
  g.addOutput(b->result());
  Status st = verify(g);
  ASSERT_FALSE(st.isOk());
  EXPECT_NE(st.message().find("not defined before its use"), std::string::npos) << st.message();
}

TEST(Graph, ReplaceUsesAndClone) {
  Graph g("t");
  Value* x = g.addInput("x", f32({1, 4}));
  auto r = g.createNode(OpKind::Relu, {x}, NoAttrs{});
  auto s = g.createNode(OpKind::Sigmoid, {(*r)->result()}, NoAttrs{});
  g.addOutput((*s)->result());
  Graph c = g.clone();
  g.replaceAllUsesWith((*r)->result(), x);
  EXPECT_EQ(g.numUses((*r)->result()), 0u);
  g.eraseNode(*r);
  EXPECT_EQ(g.numNodes(), 1u);
  EXPECT_TRUE(verify(g).isOk());
  EXPECT_EQ(c.numNodes(), 2u);  // the clone is independent
  EXPECT_TRUE(verify(c).isOk());
}

}  // namespace
}  // namespace kiln::ir
