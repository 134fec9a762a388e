// torch.nn-style modules: parameter names, shapes, attributes and argument checks.
#include "frontend/nn.h"

#include <gtest/gtest.h>

#include "ir/printer.h"

namespace kiln::frontend {
namespace {

using ir::DType;
using ir::Layout;
using ir::TensorType;

TensorType nchw(ir::Dim n, ir::Dim c, ir::Dim h, ir::Dim w) {
  return TensorType{DType::F32, {n, c, h, w}, Layout::NCHW};
}

/// The node line that defines `v` in `b`'s graph.
std::string line(Builder& b, Var v) {
  return ir::printNode(*v.value->producer(), b.graph());
}

TEST(Nn, Conv2dGroupedNonSquareWithBias) {
  Builder b("g");
  Var x = b.input("x", nchw(ir::kBatch, 8, 10, 12));
  Var y = conv2d(b, "dw", x,
                 {.out = 16,
                  .kernel = {1, 7},
                  .stride = {1, 2},
                  .padding = {0, 3},
                  .dilation = 1,
                  .groups = 4,
                  .bias = true});
  ASSERT_TRUE(y.valid()) << b.status().message();
  EXPECT_EQ(b.graph().findValue("dw.weight")->type().str(), "f32[16,2,1,7]{oihw}");
  EXPECT_EQ(b.graph().findValue("dw.bias")->type().str(), "f32[16]{x}");
  EXPECT_EQ(line(b, y),
            "%0 = conv2d(%x, %dw.weight, %dw.bias) {stride=[1,2], pad=[0,3,0,3], dilation=[1,1], "
            "groups=4} : f32[N,16,10,6]{nchw}");
}

TEST(Nn, BatchNormDeclaresParamsThenBuffers) {
  Builder b("g");
  Var x = b.input("x", nchw(2, 5, 3, 3));
  auto s = b.scope("stem");
  Var y = batchNorm2d(b, "bn", x, 1e-3);
  ASSERT_TRUE(y.valid()) << b.status().message();
  const auto& w = b.graph().weights();
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[0]->name(), "stem.bn.weight");
  EXPECT_EQ(w[0]->kind(), ir::ValueKind::Param);
  EXPECT_EQ(w[1]->name(), "stem.bn.bias");
  EXPECT_EQ(w[1]->kind(), ir::ValueKind::Param);
  EXPECT_EQ(w[2]->name(), "stem.bn.running_mean");
  EXPECT_EQ(w[2]->kind(), ir::ValueKind::Buffer);
  EXPECT_EQ(w[3]->name(), "stem.bn.running_var");
  EXPECT_EQ(w[3]->kind(), ir::ValueKind::Buffer);
  EXPECT_EQ(y.value->producer()->attrs<ir::BatchNormAttrs>().epsilon, 1e-3);
}

TEST(Nn, LinearWeightIsOutByIn) {
  Builder b("g");
  Var x = b.input("x", TensorType{DType::F32, {ir::kBatch, 20}, Layout::NC});
  Var y = linear(b, "fc", x, 7);
  Var z = linear(b, "head", y, 3, /*bias=*/false);
  ASSERT_TRUE(z.valid()) << b.status().message();
  EXPECT_EQ(b.graph().findValue("fc.weight")->type().str(), "f32[7,20]{oi}");
  EXPECT_EQ(b.graph().findValue("fc.bias")->type().str(), "f32[7]{x}");
  EXPECT_EQ(b.graph().findValue("head.bias"), nullptr);
  EXPECT_EQ(z.type().str(), "f32[N,3]{nc}");
}

TEST(Nn, PoolingFollowsTorchDefaults) {
  Builder b("g");
  Var x = b.input("x", nchw(1, 4, 9, 9));
  // stride 0 = kernel, like torch's stride=None
  Var m = maxPool2d(b, x, {.kernel = 3});
  EXPECT_EQ(line(b, m),
            "%0 = max_pool2d(%x) {kernel=[3,3], stride=[3,3], pad=[0,0,0,0], dilation=[1,1], "
            "ceil_mode=false} : f32[1,4,3,3]{nchw}");
  Var a = avgPool2d(b, x, {.kernel = 2, .stride = 2, .ceilMode = true, .countIncludePad = false});
  EXPECT_EQ(a.type().str(), "f32[1,4,5,5]{nchw}");
  EXPECT_FALSE(a.value->producer()->attrs<ir::AvgPool2dAttrs>().count_include_pad);
  EXPECT_EQ(adaptiveAvgPool2d(b, x, {2, 3}).type().str(), "f32[1,4,2,3]{nchw}");
  Var g = globalAvgPool(b, x);
  EXPECT_EQ(g.type().str(), "f32[1,4,1,1]{nchw}");
  EXPECT_EQ(flatten(b, g).type().str(), "f32[1,4]{nc}");
  EXPECT_TRUE(b.ok()) << b.status().message();
}

TEST(Nn, ElementwiseConcatAndScale) {
  Builder b("g");
  Var x = b.input("x", nchw(ir::kBatch, 4, 5, 5));
  Var s = globalAvgPool(b, sigmoid(b, x));
  Var se = channelScale(b, x, s);
  EXPECT_EQ(se.type().str(), "f32[N,4,5,5]{nchw}");
  Var c = concat(b, {relu6(b, x), hardswish(b, x), swish(b, x)});
  EXPECT_EQ(c.type().str(), "f32[N,12,5,5]{nchw}");
  Var d = dropout(b, mul(b, hardsigmoid(b, x), tanh(b, x)), 0.2);
  EXPECT_EQ(d.value->producer()->attrs<ir::DropoutAttrs>().p, 0.2);
  EXPECT_FALSE(d.value->producer()->attrs<ir::DropoutAttrs>().training);
  EXPECT_EQ(softmax(b, flatten(b, globalAvgPool(b, d))).type().str(), "f32[N,4]{nc}");
  EXPECT_TRUE(b.ok()) << b.status().message();
}

TEST(Nn, Conv2dChecksItsArguments) {
  struct Case {
    Conv2dOpts opts;
    std::string_view message;
  };
  const Case cases[] = {
      {{.out = 0, .kernel = 3}, "conv2d c: out channels must be >= 1"},
      {{.out = 4, .kernel = 0}, "conv2d c: kernel must be >= 1, got (0, 0)"},
      {{.out = 4, .kernel = 3, .stride = {1, 0}}, "conv2d c: stride must be >= 1, got (1, 0)"},
      {{.out = 4, .kernel = 3, .padding = -1}, "conv2d c: padding must be >= 0, got (-1, -1)"},
      {{.out = 4, .kernel = 3, .groups = 3},
       "conv2d c: groups=3 must divide in channels 6 and out channels 4"},
      {{.out = 4, .kernel = 9}, "conv2d: kernel 9x9 (dilated) does not fit input"},
  };
  for (const Case& c : cases) {
    Builder b("g");
    Var x = b.input("x", nchw(1, 6, 5, 5));
    EXPECT_FALSE(conv2d(b, "c", x, c.opts).valid());
    EXPECT_NE(b.status().message().find(c.message), std::string::npos)
        << "got: " << b.status().message() << "\nwant: " << c.message;
    EXPECT_TRUE(b.status().message().starts_with("tests/frontend/nn_test.cpp:"))
        << b.status().message();
  }
  Builder b("g");
  Var flat = b.input("x", TensorType{DType::F32, {1, 6}, Layout::NC});
  conv2d(b, "c", flat, {.out = 4});
  EXPECT_NE(b.status().message().find("conv2d c: %x must be [N,C,H,W], got f32[1,6]{nc}"),
            std::string::npos)
      << b.status().message();
}

}  // namespace
}  // namespace kiln::frontend
