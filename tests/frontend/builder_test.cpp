// Builder: name scopes, declarations, sticky errors with call-site locations, finish().
#include "frontend/builder.h"

#include <gtest/gtest.h>

#include <cctype>
#include <source_location>

#include "frontend/nn.h"
#include "ir/printer.h"

namespace kiln::frontend {
namespace {

using ir::DType;
using ir::Layout;
using ir::OpKind;
using ir::TensorType;

TensorType nchw(ir::Dim n, ir::Dim c, ir::Dim h, ir::Dim w) {
  return TensorType{DType::F32, {n, c, h, w}, Layout::NCHW};
}

/// True when `message` is exactly "tests/frontend/builder_test.cpp:LINE:COL: TEXT" for some
/// column (by hand: std::regex trips GCC 12's -Wmaybe-uninitialized under ASan).
bool isErrorAt(const std::string& message, int line, std::string_view text) {
  const std::string prefix = fmt::format("tests/frontend/builder_test.cpp:{}:", line);
  if (!message.starts_with(prefix)) return false;
  size_t i = prefix.size();
  while (i < message.size() && std::isdigit(static_cast<unsigned char>(message[i]))) ++i;
  return i > prefix.size() && std::string_view(message).substr(i) == fmt::format(": {}", text);
}

TEST(Builder, SourceLocIsRelativeToTheSourceTree) {
  EXPECT_EQ(sourceLoc(std::source_location::current()).file, "tests/frontend/builder_test.cpp");
}

TEST(Builder, ScopesQualifyNamesLikeTorchSubmodules) {
  Builder b("g");
  {
    auto s = b.scope("layer1");
    auto t = b.scope("0");
    EXPECT_EQ(b.qualify("conv1.weight"), "layer1.0.conv1.weight");
    Var w = b.param("conv1.weight", {4, 3, 3, 3}, Layout::OIHW);
    EXPECT_EQ(w.value->name(), "layer1.0.conv1.weight");
    EXPECT_EQ(w.value->kind(), ir::ValueKind::Param);
    auto empty = b.scope("");  // opens no visible level
    EXPECT_EQ(b.qualify("bias"), "layer1.0.bias");
  }
  EXPECT_EQ(b.qualify("fc"), "fc");
  Var m = b.buffer("bn.running_mean", {4}, Layout::X);
  EXPECT_EQ(m.value->kind(), ir::ValueKind::Buffer);
  EXPECT_EQ(m.type().str(), "f32[4]{x}");
  EXPECT_TRUE(b.ok());
}

TEST(Builder, BuildsAndVerifiesASmallGraph) {
  Builder b("tiny");
  Var x = b.input("x", nchw(ir::kBatch, 3, 8, 8));
  Var y = conv2d(b, "conv", x, {.out = 4, .kernel = 3, .padding = 1, .bias = true});
  y = relu(b, batchNorm2d(b, "bn", y));
  b.output(b.setName(y, "y"));
  Expected<ir::Module> m = b.finish();
  ASSERT_TRUE(m.isOk()) << m.message();
  EXPECT_EQ(ir::printGraph(m->graph),
            "graph @tiny {\n"
            "  input %x : f32[N,3,8,8]{nchw}\n"
            "  param %conv.weight : f32[4,3,3,3]{oihw}\n"
            "  param %conv.bias : f32[4]{x}\n"
            "  param %bn.weight : f32[4]{x}\n"
            "  param %bn.bias : f32[4]{x}\n"
            "  buffer %bn.running_mean : f32[4]{x}\n"
            "  buffer %bn.running_var : f32[4]{x}\n"
            "  %0 = conv2d(%x, %conv.weight, %conv.bias) {stride=[1,1], pad=[1,1,1,1], "
            "dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}\n"
            "  %1 = batch_norm(%0, %bn.weight, %bn.bias, %bn.running_mean, %bn.running_var) "
            "{epsilon=1e-05} : f32[N,4,8,8]{nchw}\n"
            "  %y = relu(%1) : f32[N,4,8,8]{nchw}\n"
            "  output %y\n"
            "}\n");
  EXPECT_EQ(ir::countParams(m->graph), 4 * 3 * 9 + 4 + 4 + 4);
}

TEST(Builder, NodesRecordTheCallSite) {
  Builder b("g");
  Var x = b.input("x", nchw(1, 2, 4, 4));
  const int line = __LINE__ + 1;
  Var y = relu(b, x);
  EXPECT_EQ(y.value->producer()->loc().file, "tests/frontend/builder_test.cpp");
  EXPECT_EQ(y.value->producer()->loc().line, line);
  EXPECT_EQ(y.value->loc().line, line);
  EXPECT_EQ(x.value->loc().line, line - 2);
}

TEST(Builder, ShapeErrorNamesTheOffendingCallSite) {
  Builder b("g");
  Var x = b.input("x", nchw(1, 3, 8, 8));
  Var w = b.param("w", {8, 4, 3, 3}, Layout::OIHW);
  const int line = __LINE__ + 1;
  Var y = b.op(OpKind::Conv2d, {x, w});
  EXPECT_FALSE(y.valid());
  EXPECT_FALSE(b.ok());
  Expected<ir::Module> m = b.finish();
  ASSERT_FALSE(m.isOk());
  // The whole message: this file, the line of the b.op call, a column, the shape rule's text.
  EXPECT_TRUE(isErrorAt(m.message(), line,
                        "conv2d: input %x has 3 channels, weight %w expects 4 (groups=1)"))
      << m.message();
}

TEST(Builder, ModuleHelperErrorPointsAtTheModelLine) {
  Builder b("g");
  Var x = b.input("x", nchw(1, 3, 8, 8));
  Var y = conv2d(b, "conv1", x, {.out = 8, .kernel = 3});
  Var other = b.input("other", nchw(1, 5, 6, 6));
  const int line = __LINE__ + 1;
  Var bad = add(b, relu(b, y), other);
  EXPECT_FALSE(bad.valid());
  Expected<ir::Module> m = b.finish();
  ASSERT_FALSE(m.isOk());
  EXPECT_TRUE(isErrorAt(m.message(), line,
                        "add: shapes [1,8,6,6] and [1,5,6,6] do not broadcast (dim 1: 8 vs 5)"))
      << m.message();
}

TEST(Builder, FirstErrorIsStickyAndLaterCallsArePoisoned) {
  Builder b("g");
  Var x = b.input("x", nchw(1, 3, 8, 8));
  const int line = __LINE__ + 1;
  Var bad = conv2d(b, "conv1", x, {.out = 8, .kernel = 3, .groups = 2});
  EXPECT_FALSE(bad.valid());
  EXPECT_EQ(bad.dim(1), 0);
  EXPECT_EQ(bad.rank(), 0u);
  // Later calls do nothing, even ones that would fail differently.
  Var later = relu(b, bad);
  EXPECT_FALSE(later.valid());
  Var w = b.param("late", {2}, Layout::X);
  EXPECT_FALSE(w.valid());
  EXPECT_EQ(b.graph().weights().size(), 0u);
  b.output(later);
  Expected<ir::Module> m = b.finish();
  ASSERT_FALSE(m.isOk());
  EXPECT_TRUE(isErrorAt(m.message(), line,
                        "conv2d conv1: groups=2 must divide in channels 3 and out channels 8"))
      << m.message();
}

TEST(Builder, DuplicateNamesAreErrors) {
  Builder b("g");
  b.param("w", {2}, Layout::X);
  const int line = __LINE__ + 1;
  b.buffer("w", {2}, Layout::X);
  EXPECT_TRUE(isErrorAt(b.status().message(), line, "the name %w is declared twice"))
      << b.status().message();
}

TEST(Builder, RejectsBadDeclarations) {
  {
    Builder b("g");
    b.param("w", {2, 3}, Layout::OIHW);
    EXPECT_NE(b.status().message().find("%w: layout {oihw} does not fit rank 2"), std::string::npos)
        << b.status().message();
  }
  {
    Builder b("g");
    b.param("w", {ir::kBatch, 3}, Layout::OI);
    EXPECT_NE(b.status().message().find("weights need static dimensions"), std::string::npos);
  }
  {
    Builder b("g");
    b.input("x", nchw(1, 3, 4, 4));
    b.input("x", nchw(1, 3, 4, 4));
    EXPECT_NE(b.status().message().find("%x is declared twice"), std::string::npos);
  }
  {
    Builder b("g");
    relu(b, Var());
    EXPECT_NE(b.status().message().find("operand 0 is an empty Var"), std::string::npos);
  }
}

TEST(Builder, DefaultAttrsAndMultiResultOps) {
  Builder b("g");
  Var x = b.input("x", nchw(2, 6, 4, 4));
  // {} means the op's default attributes (conv2d: stride 1, no padding).
  Var w = b.param("w", {6, 6, 1, 1}, Layout::OIHW);
  Var y = b.op(OpKind::Conv2d, {x, w});
  ASSERT_TRUE(y.valid()) << b.status().message();
  EXPECT_EQ(y.type().str(), "f32[2,6,4,4]{nchw}");
  std::vector<Var> parts = b.opN(OpKind::Split, {y}, ir::SplitAttrs{1, {2, 4}});
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].shape(), (ir::Shape{2, 2, 4, 4}));
  EXPECT_EQ(parts[1].shape(), (ir::Shape{2, 4, 4, 4}));
  b.output(parts[0]);
  b.output(parts[1]);
  ASSERT_TRUE(b.finish().isOk());
}

TEST(Builder, OpRejectsMultiResultNodes) {
  Builder b("g");
  Var x = b.input("x", nchw(2, 6, 4, 4));
  b.op(OpKind::Split, {x}, ir::SplitAttrs{1, {3, 3}});
  EXPECT_NE(b.status().message().find("split: has 2 results; use opN"), std::string::npos)
      << b.status().message();
}

TEST(Builder, FinishNeedsOutputsAndIsOneShot) {
  Builder b("empty");
  b.input("x", nchw(1, 1, 1, 1));
  Expected<ir::Module> m = b.finish();
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.message(), "graph @empty has no outputs");
  Expected<ir::Module> again = b.finish();
  ASSERT_FALSE(again.isOk());
  EXPECT_EQ(again.message(), "graph builder for @empty was already finished");
}

TEST(Builder, SequentialNumbersChildrenLikeTorch) {
  Builder b("seq");
  Var x = b.input("x", nchw(1, 3, 8, 8));
  Var y = sequential(
      b, "features", x,
      {
          [](Builder& b, Var x) { return conv2d(b, "", x, {.out = 4, .kernel = 3}); },
          [](Builder& b, Var x) { return batchNorm2d(b, "", x); },
          [](Builder& b, Var x) { return relu(b, x); },
          [](Builder& b, Var x) { return conv2d(b, "", x, {.out = 2, .kernel = 1, .bias = true}); },
      });
  b.output(y);
  Expected<ir::Module> m = b.finish();
  ASSERT_TRUE(m.isOk()) << m.message();
  std::vector<std::string> names;
  for (const ir::Value* v : m->graph.weights()) names.push_back(v->name());
  EXPECT_EQ(names,
            (std::vector<std::string>{"features.0.weight", "features.1.weight", "features.1.bias",
                                      "features.1.running_mean", "features.1.running_var",
                                      "features.3.weight", "features.3.bias"}));
}

}  // namespace
}  // namespace kiln::frontend
