// The .kir printer and parser on hand-written graphs: exact round-trips, every op of the
// table, attribute spelling, names, locations and comments.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ir/graph.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "tests/ir/kir_test_util.h"

namespace kiln::ir {
namespace {

// Also the example in docs/ir.md.
constexpr std::string_view kResidualBlock = R"(graph @basic_block {
  input %x : f32[N,64,56,56]{nchw}
  param %conv1.weight : f32[64,64,3,3]{oihw}
  param %bn1.weight : f32[64]{x}
  param %bn1.bias : f32[64]{x}
  buffer %bn1.running_mean : f32[64]{x}
  buffer %bn1.running_var : f32[64]{x}
  param %conv2.weight : f32[64,64,3,3]{oihw}
  param %bn2.weight : f32[64]{x}
  param %bn2.bias : f32[64]{x}
  buffer %bn2.running_mean : f32[64]{x}
  buffer %bn2.running_var : f32[64]{x}
  %0 = conv2d(%x, %conv1.weight) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,64,56,56]{nchw}
  %1 = batch_norm(%0, %bn1.weight, %bn1.bias, %bn1.running_mean, %bn1.running_var) {epsilon=1e-05} : f32[N,64,56,56]{nchw}
  %2 = relu(%1) : f32[N,64,56,56]{nchw}
  %3 = conv2d(%2, %conv2.weight) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,64,56,56]{nchw}
  %4 = batch_norm(%3, %bn2.weight, %bn2.bias, %bn2.running_mean, %bn2.running_var) {epsilon=1e-05} : f32[N,64,56,56]{nchw}
  %5 = add(%4, %x) : f32[N,64,56,56]{nchw}
  %out = relu(%5) : f32[N,64,56,56]{nchw}
  output %out
}
)";

Graph parseOk(std::string_view text, std::string_view file = "t.kir") {
  Expected<Graph> g = parseGraph(text, file);
  EXPECT_TRUE(g.isOk()) << g.message() << "\n" << text;
  if (!g.isOk()) return Graph("failed");
  return std::move(g).value();
}

std::string parseError(std::string_view text) {
  Expected<Graph> g = parseGraph(text, "t.kir");
  EXPECT_FALSE(g.isOk()) << text;
  return g.isOk() ? std::string() : g.message();
}

const Node& nodeAt(const Graph& g, size_t i) {
  auto it = g.nodes().begin();
  std::advance(it, i);
  return **it;
}

TEST(KirRoundTrip, ResidualBlock) {
  Graph g = parseOk(kResidualBlock);
  EXPECT_EQ(printGraph(g), kResidualBlock);
  EXPECT_EQ(g.name(), "basic_block");
  EXPECT_EQ(g.inputs().size(), 1u);
  EXPECT_EQ(g.weights().size(), 10u);
  EXPECT_EQ(g.weights()[3]->kind(), ValueKind::Buffer);
  EXPECT_EQ(g.numNodes(), 7u);
  ASSERT_EQ(g.outputs().size(), 1u);
  EXPECT_EQ(g.outputs()[0]->name(), "out");
  EXPECT_EQ(nodeAt(g, 5).kind(), OpKind::Add);
  EXPECT_EQ(nodeAt(g, 5).operand(1), g.inputs()[0]);
  EXPECT_EQ(nodeAt(g, 0).attrs<Conv2dAttrs>().pad, (Ints<4>{1, 1, 1, 1}));
}

TEST(KirRoundTrip, EveryOpInTheTable) {
  for (const OpInfo& op : allOps()) {
    SCOPED_TRACE(std::string(op.name));
    std::optional<kirtest::OpSample> sample = kirtest::sampleFor(op.kind);
    ASSERT_TRUE(sample) << "add a sample for op '" << op.name << "' in tests/ir/kir_test_util.h";
    Graph g("op");
    std::vector<Value*> operands;
    for (size_t i = 0; i < sample->operands.size(); ++i) {
      std::string name = fmt::format("in{}", i);
      // Weights must be static; an operand with N (channel_scale's scale) is an input.
      const bool input = i == 0 || !sample->operands[i].shape.isStatic();
      operands.push_back(input ? g.addInput(name, sample->operands[i])
                               : g.addWeight(ValueKind::Param, name, sample->operands[i]));
    }
    Expected<Node*> n = g.createNode(op.kind, operands, sample->attrs);
    ASSERT_TRUE(n.isOk()) << n.message();
    for (Value* r : (*n)->results()) g.addOutput(r);
    std::string text = printGraph(g);
    EXPECT_NE(text.find(fmt::format(" = {}(", op.name)), std::string::npos) << text;

    Graph parsed = parseOk(text, "op.kir");
    EXPECT_EQ(printGraph(parsed), text);
    ASSERT_EQ(parsed.numNodes(), 1u);
    const Node& p = nodeAt(parsed, 0);
    EXPECT_EQ(p.kind(), op.kind);
    EXPECT_TRUE(attrsEqual(p.attrs(), sample->attrs)) << printAttrs(p.attrs());
    ASSERT_EQ(p.numResults(), (*n)->numResults());
    for (size_t i = 0; i < p.numResults(); ++i)
      EXPECT_EQ(p.result(i)->type(), (*n)->result(i)->type());
    EXPECT_EQ(parsed.outputs().size(), g.outputs().size());
  }
}

TEST(KirPrinter, AttributesWalkEveryField) {
  EXPECT_EQ(printAttrs(Conv2dAttrs{}), "{stride=[1,1], pad=[0,0,0,0], dilation=[1,1], groups=1}");
  EXPECT_EQ(printAttrs(BatchNormAttrs{}), "{epsilon=1e-05}");
  EXPECT_EQ(printAttrs(HardSigmoidAttrs{}), "{alpha=0.16666666666666666, beta=0.5}");
  EXPECT_EQ(printAttrs(ClipAttrs{}), "{min=-inf, max=inf}");
  EXPECT_EQ(printAttrs(MaxPool2dAttrs{}),
            "{kernel=[1,1], stride=[1,1], pad=[0,0,0,0], dilation=[1,1], ceil_mode=false}");
  EXPECT_EQ(printAttrs(AvgPool2dAttrs{}),
            "{kernel=[1,1], stride=[1,1], pad=[0,0,0,0], ceil_mode=false, count_include_pad=true}");
  EXPECT_EQ(printAttrs(SplitAttrs{-1, {32, 32}}), "{axis=-1, sizes=[32,32]}");
  EXPECT_EQ(printAttrs(ConstantAttrs{{1.0, 0.5}, {}, DType::F64}),
            "{value=[1.0,0.5], shape=[], dtype=f64}");
  EXPECT_EQ(printAttrs(ReorderAttrs{Layout::NChw16c}), "{layout=nChw16c}");
  EXPECT_EQ(printAttrs(ReorderAttrs{Layout::Scalar}), "{layout=\"\"}");
  EXPECT_EQ(printAttrs(NoAttrs{}), "");
}

TEST(KirPrinter, DoublesAreShortestAndLookLikeDoubles) {
  EXPECT_EQ(printDouble(1.0), "1.0");
  EXPECT_EQ(printDouble(-0.0), "-0.0");
  EXPECT_EQ(printDouble(1e-05), "1e-05");
  EXPECT_EQ(printDouble(0.1), "0.1");
  EXPECT_EQ(printDouble(1e15), "1000000000000000.0");
  EXPECT_EQ(printDouble(1e16), "1e+16");
  EXPECT_EQ(printDouble(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(printDouble(-std::numeric_limits<double>::infinity()), "-inf");
  EXPECT_EQ(printDouble(std::nan("")), "nan");
  EXPECT_EQ(printDouble(5e-324), "5e-324");
}

TEST(KirRoundTrip, ExtremeAttributeValues) {
  constexpr std::string_view text = R"(graph @g {
  input %x : f32[N,4]{nc}
  %0 = dropout(%x) {p=0.25, training=true, seed=-9223372036854775808} : f32[N,4]{nc}
  %1 = dropout(%0) {p=5e-324, training=false, seed=9223372036854775807} : f32[N,4]{nc}
  %2 = hardsigmoid(%1) {alpha=nan, beta=-1.7976931348623157e+308} : f32[N,4]{nc}
  %3 = clip(%2) {min=-0.0, max=1e+300} : f32[N,4]{nc}
  output %3
}
)";
  Graph g = parseOk(text);
  EXPECT_EQ(printGraph(g), text);
  EXPECT_EQ(nodeAt(g, 0).attrs<DropoutAttrs>().seed, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(nodeAt(g, 1).attrs<DropoutAttrs>().p, 5e-324);
  EXPECT_TRUE(std::isnan(nodeAt(g, 2).attrs<HardSigmoidAttrs>().alpha));
  EXPECT_TRUE(std::signbit(nodeAt(g, 3).attrs<ClipAttrs>().min));
}

TEST(KirParser, AttributesMayBeOmittedOrReordered) {
  Graph g = parseOk(R"(graph @g {
  input %x : f32[N,3,8,8]{nchw}
  param %w : f32[4,3,3,3]{oihw}
  %0 = conv2d(%x, %w) {groups=1, stride=[2,2]} : f32[N,4,3,3]{nchw}
  %1 = hardsigmoid(%0) {beta=1} : f32[N,4,3,3]{nchw}
  %2 = clip(%1) {max=6, min=-inf} : f32[N,4,3,3]{nchw}
  %3 = dropout(%2) {} : f32[N,4,3,3]{nchw}
  output %3
}
)");
  ASSERT_EQ(g.numNodes(), 4u);
  const auto& conv = nodeAt(g, 0).attrs<Conv2dAttrs>();
  EXPECT_EQ(conv.stride, (Ints<2>{2, 2}));
  EXPECT_EQ(conv.dilation, (Ints<2>{1, 1}));  // default
  EXPECT_EQ(nodeAt(g, 1).attrs<HardSigmoidAttrs>().beta, 1.0);
  EXPECT_EQ(nodeAt(g, 1).attrs<HardSigmoidAttrs>().alpha, 1.0 / 6.0);
  EXPECT_EQ(nodeAt(g, 2).attrs<ClipAttrs>().min, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(printNode(nodeAt(g, 0), g),
            "%0 = conv2d(%x, %w) {stride=[2,2], pad=[0,0,0,0], dilation=[1,1], groups=1} : "
            "f32[N,4,3,3]{nchw}");
  EXPECT_EQ(printNode(nodeAt(g, 2), g), "%2 = clip(%1) {min=-inf, max=6.0} : f32[N,4,3,3]{nchw}");
}

TEST(KirParser, MultiResultNodes) {
  constexpr std::string_view text = R"(graph @g {
  input %x : f32[N,64,112,112]{nchw}
  %a, %0 = split(%x) {axis=1, sizes=[32,32]} : f32[N,32,112,112]{nchw}, f32[N,32,112,112]{nhwc}
  %c = constant() {value=[0.5], shape=[], dtype=f32} : f32[]{}
  %1 = mul(%0, %c) : f32[N,32,112,112]{nhwc}
  output %a, %1
}
)";
  Graph g = parseOk(text);
  EXPECT_EQ(printGraph(g), text);
  const Node& split = nodeAt(g, 0);
  ASSERT_EQ(split.numResults(), 2u);
  EXPECT_EQ(split.result(0)->name(), "a");
  EXPECT_EQ(split.result(1)->name(), "");
  // A written layout is kept even where the rule would pick another.
  EXPECT_EQ(split.result(1)->type().layout, Layout::NHWC);
  EXPECT_EQ(g.outputs().size(), 2u);
}

TEST(KirNames, AnonymousValuesAreRenumberedNamedOnesKept) {
  Graph g = parseOk(R"(graph @g {
  input %7 : f32[2]{x}
  %x = relu(%7) : f32[2]{x}
  %3 = relu(%x) : f32[2]{x}
  %"3" = relu(%3) : f32[2]{x}
  %"a b\"\\" = relu(%"3") : f32[2]{x}
  output %"a b\"\\"
}
)");
  EXPECT_EQ(g.inputs()[0]->name(), "");
  EXPECT_EQ(nodeAt(g, 2).result()->name(), "3");
  EXPECT_EQ(nodeAt(g, 3).result()->name(), "a b\"\\");
  EXPECT_EQ(printGraph(g), R"(graph @g {
  input %0 : f32[2]{x}
  %x = relu(%0) : f32[2]{x}
  %1 = relu(%x) : f32[2]{x}
  %"3" = relu(%1) : f32[2]{x}
  %"a b\"\\" = relu(%"3") : f32[2]{x}
  output %"a b\"\\"
}
)");
}

TEST(KirNames, QuotingOnlyWhenNeeded) {
  EXPECT_EQ(printValueName("layer1.0.conv1.weight"), "%layer1.0.conv1.weight");
  EXPECT_EQ(printValueName("_a-b"), "%_a-b");
  EXPECT_EQ(printValueName("0.weight"), "%\"0.weight\"");
  EXPECT_EQ(printValueName("12"), "%\"12\"");
  EXPECT_EQ(printValueName("new\nline\x01"), "%\"new\\nline\\x01\"");
  Graph g("my graph");
  g.addInput("x", makeType(DType::F32, {1}));
  EXPECT_EQ(printGraph(g), "graph @\"my graph\" {\n  input %x : f32[1]{x}\n}\n");
  EXPECT_EQ(parseOk(printGraph(g)).name(), "my graph");
  g.setName("");
  EXPECT_EQ(parseOk(printGraph(g)).name(), "");
}

TEST(KirNames, PrintNodeWithoutAGraphUsesValueIds) {
  Graph g("g");
  Value* x = g.addInput("", makeType(DType::F32, {2}));
  Expected<Node*> n = g.createNode(OpKind::Relu, {x}, NoAttrs{});
  ASSERT_TRUE(n.isOk()) << n.message();
  EXPECT_EQ(printNode(**n, g), "%1 = relu(%0) : f32[2]{x}");
  EXPECT_EQ(printNode(**n),
            fmt::format("%{} = relu(%{}) : f32[2]{{x}}", (*n)->result()->id(), x->id()));
}

constexpr std::string_view kWithLocs = R"(graph @g {
  input %x : f32[N,8]{nc} loc("models/mlp.py":3:7)
  param %w : f32[4,8]{oi} loc("":0:0)
  %0 = linear(%x, %w) : f32[N,4]{nc} loc("models/resnet.cpp":57:14)
  %y = relu(%0) : f32[N,4]{nc} loc("a \"q\"\\b.cpp":1:2)
  output %y
}
)";

TEST(KirLocations, DebugLocationsRoundTrip) {
  Graph g = parseOk(kWithLocs);
  EXPECT_EQ(g.inputs()[0]->loc(), (Loc{"models/mlp.py", 3, 7}));
  EXPECT_EQ(g.weights()[0]->loc(), (Loc{"", 0, 0}));
  EXPECT_EQ(nodeAt(g, 0).loc(), (Loc{"models/resnet.cpp", 57, 14}));
  EXPECT_EQ(nodeAt(g, 1).loc(), (Loc{"a \"q\"\\b.cpp", 1, 2}));
  EXPECT_EQ(printGraph(g, {.debugLocations = true}), kWithLocs);
  std::string plain = printGraph(g);
  EXPECT_EQ(plain.find("loc("), std::string::npos);
  EXPECT_EQ(printGraph(parseOk(plain)), plain);
}

TEST(KirLocations, WithoutSuffixTheKirPositionIsRecorded) {
  Graph g =
      parseOk("graph @g {\n  input %x : f32[N,8]{nc}\n\n    %y = relu(%x) : f32[N,8]{nc}\n}\n",
              "dir/m.kir");
  EXPECT_EQ(g.inputs()[0]->loc(), (Loc{"dir/m.kir", 2, 3}));
  EXPECT_EQ(nodeAt(g, 0).loc(), (Loc{"dir/m.kir", 4, 5}));
  EXPECT_EQ(nodeAt(g, 0).result()->loc(), (Loc{"dir/m.kir", 4, 5}));
}

TEST(KirLocations, RuleErrorsPointAtTheKirLineEvenWithADebugLoc) {
  std::string msg = parseError(R"(graph @g {
  input %x : f32[N,3,8,8]{nchw}
  param %w4 : f32[8,4,3,3]{oihw}
  %0 = conv2d(%x, %w4) : f32[N,8,6,6]{nchw} loc("m.cpp":57:14)
}
)");
  EXPECT_EQ(msg,
            "t.kir:4:3: conv2d: input %x has 3 channels, weight %w4 expects 4 "
            "(groups=1)");
}

TEST(KirParser, CommentsAndOptionalLayouts) {
  Graph g = parseOk(R"(// a leading comment
graph @g {  // after the brace
  input %x : f32[N,3,4,4]   // default layout: nchw
  // a whole-line comment with %weird "chars" {
  %s = constant() {value=[2.0], shape=[], dtype=f32} : f32[]
  %y = mul(%x, %s) : f32[N,3,4,4]{nhwc}
  output %y  // done
}
// trailing
)");
  EXPECT_EQ(g.inputs()[0]->type().layout, Layout::NCHW);
  EXPECT_EQ(nodeAt(g, 0).result()->type().layout, Layout::Scalar);
  EXPECT_EQ(nodeAt(g, 1).result()->type().layout, Layout::NHWC);
}

TEST(KirParser, ParsesTypes) {
  Expected<TensorType> t = parseType("bf16[N,16,7,7]{nChw16c}");
  ASSERT_TRUE(t.isOk()) << t.message();
  EXPECT_EQ(t->str(), "bf16[N,16,7,7]{nChw16c}");
  EXPECT_EQ(parseType("i64[]")->layout, Layout::Scalar);
  EXPECT_EQ(parseType("f32[2,3]{nchw}").message(),
            "<type>:1:9: layout {nchw} has rank 4 but shape [2,3] has rank 2");
  EXPECT_FALSE(parseType("f32[1,2,3,4,5,6]").isOk());
  EXPECT_FALSE(parseType("f32[-2]").isOk());
}

TEST(KirParser, ErrorsCarryFileLineAndColumn) {
  EXPECT_EQ(parseError(""), "t.kir:1:1: unexpected end of file, expected 'graph @name {'");
  EXPECT_EQ(parseError("graph @g {\n  input %x : f32[2]{x}\n  %0 = relu(%x) : f32[2]{x}\n"),
            "t.kir:3:28: unexpected end of file, expected '}' to close graph @g");
  EXPECT_EQ(parseError("graph @g {\n  input %x : f32[2]{x} $\n}"),
            "t.kir:2:24: unexpected character '$'");
  EXPECT_EQ(parseError("graph @g {\n  input %x : f32[2]{x}\n  output %y\n}"),
            "t.kir:3:10: output of undefined value %y");
  EXPECT_EQ(parseError("graph @g {\n  input %x : f32[2]{x}\n}\nextra"),
            "t.kir:4:1: expected end of file after the graph's closing '}', got 'extra'");
  EXPECT_EQ(parseError("graph @g {\n  param %0 : f32[2]{x}\n}"),
            "t.kir:2:9: param %0 needs a name: weights are bound to the weight store by "
            "name");
  EXPECT_EQ(parseError("graph @g {\n  input %x : f32[2]{x}\n  %y = relu(%y) : f32[2]{x}\n}"),
            "t.kir:3:13: use of undefined value %y");
  EXPECT_EQ(parseError("graph @g {\n  input %x : f32[2]{x}\n  %a, %a = split(%x) {axis=0, "
                       "sizes=[1,1]} : f32[1]{x}, f32[1]{x}\n}"),
            "t.kir:3:7: redefinition of %a (first defined at line 3)");
  EXPECT_EQ(parseError("graph @g {\n  input %x : f32[2]{x}\n  %y = relu(%x) {alpha=1} : "
                       "f32[2]{x}\n}"),
            "t.kir:3:18: relu has no attribute 'alpha' (it takes none)");
  EXPECT_EQ(parseError("graph @g {\n  input %x : f32[2]{x}\n  %y = clip(%x) {min=1, min=2} : "
                       "f32[2]{x}\n}"),
            "t.kir:3:25: clip: attribute 'min' is given twice");
  EXPECT_EQ(parseError("graph @g {\n  input %x : f32[2]{x}\n  %a = split(%x) {axis=0, "
                       "sizes=[1,1]} : f32[1]{x}\n}"),
            "t.kir:3:3: split: 1 result written, the op gives 2");
}

}  // namespace
}  // namespace kiln::ir
