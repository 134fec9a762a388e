// EfficientNet B0-B7: parameter counts, MACs, the compound-scaling table, block structure and
// parameter names == torchvision's state_dict keys.
#include <gtest/gtest.h>

#include <map>
#include <ostream>
#include <string>

#include "frontend/builder.h"
#include "ir/graph.h"
#include "ir/verifier.h"
#include "models/blocks.h"
#include "models/families.h"
#include "models/registry.h"
#include "tests/frontend/frontend_test_util.h"

namespace kiln::models {
namespace {

using testing::build;
using testing::countOps;
using testing::sig3;

/// torchvision 0.14 figures. Params: sum of parameters().numel(). MACs: counted in PyTorch
/// with forward hooks on every Conv2d / Linear (output elements x weight elements per output
/// channel, per image) at the paper's resolution, so ours must match exactly.
struct Expectation {
  std::string_view name;
  int64_t resolution;
  int64_t params;
  int64_t macs;
  int blocks;  // MBConv blocks: sum of ceil(repeats * depth)
};

void PrintTo(const Expectation& e, std::ostream* os) {
  *os << e.name;
}

class EfficientNetFigures : public ::testing::TestWithParam<Expectation> {};

TEST_P(EfficientNetFigures, ParamsAndMacsMatchTorchvision) {
  const Expectation& e = GetParam();
  const ModelInfo* info = findModel(e.name);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->defaultResolution, e.resolution);
  ir::Module m = build(e.name, defaultConfig(*info));
  EXPECT_TRUE(ir::verify(m.graph).isOk());
  EXPECT_EQ(m.graph.name(), e.name);
  EXPECT_EQ(m.graph.inputs()[0]->type().str(),
            fmt::format("f32[N,3,{},{}]{{nchw}}", e.resolution, e.resolution));
  EXPECT_EQ(m.graph.outputs()[0]->type().str(), "f32[N,1000]{nc}");
  EXPECT_EQ(ir::countParams(m.graph), e.params);
  EXPECT_EQ(ir::graphCost(m.graph).macs, e.macs);
  EXPECT_EQ(countOps(m.graph, ir::OpKind::ChannelScale), e.blocks);  // one SE per block
  EXPECT_EQ(countOps(m.graph, ir::OpKind::Add), e.blocks - 7);       // all but each stage's first
  // StochasticDepth on every residual branch (block k of K drops with 0.2 * k / K), the
  // identity in this inference graph.
  EXPECT_EQ(countOps(m.graph, ir::OpKind::DropPath), e.blocks - 7);
  double lastP = 0;
  for (const auto& n : m.graph.nodes()) {
    if (n->kind() != ir::OpKind::DropPath) continue;
    const auto& a = n->attrs<ir::DropoutAttrs>();
    EXPECT_FALSE(a.training);
    EXPECT_GT(a.p, lastP);
    EXPECT_LE(a.p, 0.2 * (e.blocks - 1) / e.blocks);
    lastP = a.p;
  }
  // The registry row's published figures (B2: the paper's 1.0 G at 260, two digits).
  EXPECT_EQ(ir::countParams(m.graph), info->published.params);
  EXPECT_NEAR(static_cast<double>(ir::graphCost(m.graph).macs) / 1e9, info->published.gmacs,
              e.name == "efficientnet_b2" ? 0.05 : 0.005);
  // Params do not depend on the resolution: a small build counts the same.
  ModelConfig small = defaultConfig(*info);
  small.resolution = 64;
  EXPECT_EQ(ir::countParams(build(e.name, small).graph), e.params);
}

INSTANTIATE_TEST_SUITE_P(
    Torchvision, EfficientNetFigures,
    ::testing::Values(Expectation{"efficientnet_b0", 224, 5'288'548, 385'814'752, 16},
                      Expectation{"efficientnet_b1", 240, 7'794'184, 686'802'832, 23},
                      Expectation{"efficientnet_b2", 260, 9'109'994, 993'561'872, 23},
                      Expectation{"efficientnet_b3", 300, 12'233'232, 1'827'141'392, 26},
                      Expectation{"efficientnet_b4", 380, 19'341'616, 4'393'771'024, 32},
                      Expectation{"efficientnet_b5", 456, 30'389'784, 10'266'384'752, 39},
                      Expectation{"efficientnet_b6", 528, 43'040'704, 19'067'593'536, 45},
                      Expectation{"efficientnet_b7", 600, 66'347'960, 37'745'884'192, 55}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(EfficientNet, PublishedFiguresToThreeDigits) {
  // torchvision's weights table: b0 0.39 GFLOPS (= MACs) at 224, b7 37.75 at 600; b2 1.09
  // at its 288 evaluation crop.
  EXPECT_EQ(ir::countParams(build("efficientnet_b0", {}).graph), 5'288'548);
  EXPECT_DOUBLE_EQ(sig3(static_cast<double>(
                       ir::graphCost(build("efficientnet_b0", {.resolution = 224}).graph).macs)),
                   3.86e8);
  EXPECT_DOUBLE_EQ(sig3(static_cast<double>(
                       ir::graphCost(build("efficientnet_b7", {.resolution = 600}).graph).macs)),
                   3.77e10);
  EXPECT_EQ(ir::graphCost(build("efficientnet_b2", {.resolution = 288}).graph).macs, 1'087'529'456);
  EXPECT_DOUBLE_EQ(sig3(1'087'529'456.0), 1.09e9);
}

TEST(EfficientNet, ScalingTableIsThePapers) {
  // Tan & Le 2019: (width, depth, resolution, dropout) per variant; eps as torchvision sets it.
  ASSERT_EQ(kEfficientNetScaling.size(), 8u);
  const double width[] = {1.0, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0};
  const double depth[] = {1.0, 1.1, 1.2, 1.4, 1.8, 2.2, 2.6, 3.1};
  const int64_t res[] = {224, 240, 260, 300, 380, 456, 528, 600};
  const double drop[] = {0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5};
  for (size_t i = 0; i < 8; ++i) {
    SCOPED_TRACE(i);
    const EfficientNetScaling& s = kEfficientNetScaling[i];
    EXPECT_EQ(s.name, fmt::format("efficientnet_b{}", i));
    EXPECT_EQ(s.width, width[i]);
    EXPECT_EQ(s.depth, depth[i]);
    EXPECT_EQ(s.resolution, res[i]);
    EXPECT_EQ(s.dropout, drop[i]);
    EXPECT_EQ(s.bnEps, i < 5 ? 1e-5 : 1e-3);
    const ModelInfo* info = findModel(s.name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->defaultResolution, s.resolution);
  }
}

/// The first node that uses the value called `name`.
const ir::Node* firstUser(const ir::Graph& g, std::string_view name) {
  const ir::Value* v = g.findValue(name);
  KILN_ASSERT(v != nullptr, "no such value");
  std::vector<ir::Node*> users = g.users(v);
  KILN_ASSERT(!users.empty(), "value has no user");
  return users.front();
}

TEST(EfficientNet, B0BlockStructure) {
  ir::Module m = build("efficientnet_b0", {.batch = 1});
  const ir::Graph& g = m.graph;
  auto type = [&](std::string_view name) { return testing::typeOf(g, name); };
  // Stem: 3x3 stride 2, SiLU.
  EXPECT_EQ(type("features.0.0.weight"), "f32[32,3,3,3]{oihw}");
  const ir::Node* stem = firstUser(g, "features.0.0.weight");
  EXPECT_EQ(stem->attrs<ir::Conv2dAttrs>().stride, (ir::Ints<2>{2, 2}));
  EXPECT_EQ(stem->attrs<ir::Conv2dAttrs>().pad, (ir::Ints<4>{1, 1, 1, 1}));
  // Stage 1 (expand 1): no expansion conv, depthwise is block.0, SE block.1, project block.2.
  EXPECT_EQ(type("features.1.0.block.0.0.weight"), "f32[32,1,3,3]{oihw}");
  EXPECT_EQ(type("features.1.0.block.1.fc1.weight"), "f32[8,32,1,1]{oihw}");
  EXPECT_EQ(type("features.1.0.block.1.fc1.bias"), "f32[8]{x}");
  EXPECT_EQ(type("features.1.0.block.2.0.weight"), "f32[16,32,1,1]{oihw}");
  EXPECT_EQ(type("features.1.0.block.3.0.weight"), "<missing>");
  // Stage 3 (expand 6, 5x5, stride 2): squeeze = in / 4 of the block input, not the expansion.
  EXPECT_EQ(type("features.3.0.block.0.0.weight"), "f32[144,24,1,1]{oihw}");
  EXPECT_EQ(type("features.3.0.block.1.0.weight"), "f32[144,1,5,5]{oihw}");
  const ir::Node* dw = firstUser(g, "features.3.0.block.1.0.weight");
  EXPECT_EQ(dw->attrs<ir::Conv2dAttrs>().groups, 144);
  EXPECT_EQ(dw->attrs<ir::Conv2dAttrs>().stride, (ir::Ints<2>{2, 2}));
  EXPECT_EQ(dw->attrs<ir::Conv2dAttrs>().pad, (ir::Ints<4>{2, 2, 2, 2}));
  EXPECT_EQ(type("features.3.0.block.2.fc1.weight"), "f32[6,144,1,1]{oihw}");
  EXPECT_EQ(type("features.3.0.block.2.fc2.weight"), "f32[144,6,1,1]{oihw}");
  EXPECT_EQ(type("features.3.1.block.2.fc1.weight"), "f32[10,240,1,1]{oihw}");
  // The SE scale multiplies the depthwise output per channel, after a sigmoid.
  const ir::Node* fc2 = firstUser(g, "features.3.0.block.2.fc2.weight");
  const ir::Node* gate = g.users(fc2->results()[0]).front();
  EXPECT_EQ(gate->kind(), ir::OpKind::Sigmoid);
  const ir::Node* scale = g.users(gate->results()[0]).front();
  EXPECT_EQ(scale->kind(), ir::OpKind::ChannelScale);
  EXPECT_EQ(scale->results()[0]->type().str(), "f32[1,144,28,28]{nchw}");
  // Head: 320 -> 1280, 7x7; classifier dropout 0.2.
  EXPECT_EQ(type("features.8.0.weight"), "f32[1280,320,1,1]{oihw}");
  EXPECT_EQ(type("classifier.1.weight"), "f32[1000,1280]{oi}");
  EXPECT_EQ(type("features.9.0.weight"), "<missing>");
  int dropouts = 0;
  for (const auto& n : g.nodes()) {
    if (n->kind() == ir::OpKind::Dropout) {
      ++dropouts;
      EXPECT_EQ(n->attrs<ir::DropoutAttrs>().p, 0.2);
    }
    if (n->kind() == ir::OpKind::BatchNorm) {
      EXPECT_EQ(n->attrs<ir::BatchNormAttrs>().epsilon, 1e-5);
    }
    EXPECT_EQ(n->loc().file, "models/efficientnet.cpp");
    EXPECT_GT(n->loc().line, 0);
  }
  EXPECT_EQ(dropouts, 1);
  // Residual blocks 2, 4, 6, 7, 9, 10, 12, 13, 14 of 16 (torchvision's sd_prob = 0.2 k / 16).
  std::vector<double> dropPaths;
  for (const auto& n : g.nodes())
    if (n->kind() == ir::OpKind::DropPath) dropPaths.push_back(n->attrs<ir::DropoutAttrs>().p);
  std::vector<double> want;
  for (int k : {2, 4, 6, 7, 9, 10, 12, 13, 14}) want.push_back(0.2 * k / 16);
  EXPECT_EQ(dropPaths, want);
  // 16 blocks: 16 SE, 3 SiLU each (2 for expand-1 blocks) + stem + head.
  EXPECT_EQ(countOps(g, ir::OpKind::Swish), 15 * 3 + 2 + 2);
  EXPECT_EQ(countOps(g, ir::OpKind::Sigmoid), 16);
}

TEST(EfficientNet, B7ScalesWidthDepthAndEps) {
  ir::Module m = build("efficientnet_b7", {.batch = 1, .resolution = 64});
  const ir::Graph& g = m.graph;
  EXPECT_EQ(g.findValue("features.0.0.weight")->type().str(), "f32[64,3,3,3]{oihw}");
  // Stage 2 repeats ceil(2 * 3.1) = 7: blocks 0..6.
  EXPECT_NE(g.findValue("features.2.6.block.3.1.running_var"), nullptr);
  EXPECT_EQ(g.findValue("features.2.7.block.3.1.running_var"), nullptr);
  EXPECT_EQ(g.findValue("features.7.3.block.3.0.weight")->type().str(), "f32[640,3840,1,1]{oihw}");
  EXPECT_EQ(g.findValue("features.8.0.weight")->type().str(), "f32[2560,640,1,1]{oihw}");
  for (const auto& n : g.nodes()) {
    if (n->kind() == ir::OpKind::BatchNorm) {
      EXPECT_EQ(n->attrs<ir::BatchNormAttrs>().epsilon, 1e-3);
    } else if (n->kind() == ir::OpKind::Dropout) {
      EXPECT_EQ(n->attrs<ir::DropoutAttrs>().p, 0.5);
    }
  }
}

TEST(EfficientNet, ConfigShapesTheGraph) {
  ir::Module m =
      build("efficientnet_b3", {.batch = 2, .resolution = 64, .numClasses = 10, .inChannels = 1});
  EXPECT_EQ(m.graph.inputs()[0]->type().str(), "f32[2,1,64,64]{nchw}");
  EXPECT_EQ(m.graph.findValue("features.0.0.weight")->type().str(), "f32[40,1,3,3]{oihw}");
  EXPECT_EQ(m.graph.findValue("classifier.1.weight")->type().str(), "f32[10,1536]{oi}");
  EXPECT_EQ(m.graph.outputs()[0]->name(), "logits");
  EXPECT_EQ(m.graph.outputs()[0]->type().str(), "f32[2,10]{nc}");
}

TEST(EfficientNet, BadInputsAreErrors) {
  Expected<ir::Module> m = buildModel("efficientnet_b4", {.batch = 0});
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.message(), "efficientnet_b4: batch must be >= 1 or -1 (symbolic N), got 0");
  m = buildModel("efficientnet_b0", {.resolution = 0});
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.message(), "efficientnet_b0: resolution must be >= 1, got 0");
}

TEST(Blocks, SqueezeExcitationNamesAndShapes) {
  frontend::Builder b("se");
  frontend::Var x = b.input("x", ir::TensorType{ir::DType::F32, {2, 16, 5, 5}, ir::Layout::NCHW});
  b.output(squeezeExcitation(b, "se", x, {.squeeze = 4, .act = Activation::Swish}));
  Expected<ir::Module> m = b.finish();
  ASSERT_TRUE(m.isOk()) << m.message();
  const ir::Graph& g = m->graph;
  EXPECT_EQ(g.findValue("se.fc1.weight")->type().str(), "f32[4,16,1,1]{oihw}");
  EXPECT_EQ(g.findValue("se.fc1.bias")->type().str(), "f32[4]{x}");
  EXPECT_EQ(g.findValue("se.fc2.weight")->type().str(), "f32[16,4,1,1]{oihw}");
  EXPECT_EQ(g.findValue("se.fc2.bias")->type().str(), "f32[16]{x}");
  EXPECT_EQ(countOps(g, ir::OpKind::GlobalAvgPool), 1);
  EXPECT_EQ(countOps(g, ir::OpKind::Swish), 1);
  EXPECT_EQ(countOps(g, ir::OpKind::Sigmoid), 1);
  EXPECT_EQ(g.outputs()[0]->producer()->kind(), ir::OpKind::ChannelScale);
  EXPECT_EQ(g.outputs()[0]->type().str(), "f32[2,16,5,5]{nchw}");

  frontend::Builder bad("se");
  frontend::Var y = bad.input("x", ir::TensorType{ir::DType::F32, {2, 16, 5, 5}, ir::Layout::NCHW});
  bad.output(squeezeExcitation(bad, "se", y, {.squeeze = 0}));
  m = bad.finish();
  ASSERT_FALSE(m.isOk());
  EXPECT_NE(m.message().find("squeeze-excitation se: squeeze channels must be >= 1, got 0"),
            std::string::npos)
      << m.message();
}

// ---- names and shapes vs torchvision ------------------------------------------------

/// torch_models.py --keys for B0-B7, run once.
const testing::StateDictKeys& torchvisionKeys() {
  static const testing::StateDictKeys keys = [] {
    std::string args = fmt::format("{}/tests/align/torch_models.py --keys", KILN_SOURCE_DIR);
    for (const EfficientNetScaling& s : kEfficientNetScaling)
      fmt::format_to(std::back_inserter(args), " {}", s.name);
    return testing::readStateDictKeys({"torch", "torchvision"}, args);
  }();
  return keys;
}

class EfficientNetNames : public ::testing::TestWithParam<std::string> {};

TEST_P(EfficientNetNames, EqualTorchvisionStateDictKeys) {
  testing::expectReferenceKeys(torchvisionKeys(), GetParam(), 200,
                               build(GetParam(), {.resolution = 64}), "torchvision");
}

INSTANTIATE_TEST_SUITE_P(Torchvision, EfficientNetNames,
                         ::testing::Values("efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
                                           "efficientnet_b3", "efficientnet_b4", "efficientnet_b5",
                                           "efficientnet_b6", "efficientnet_b7"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kiln::models
