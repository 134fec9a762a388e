// Small-model zoo (squeezenet1_0/1_1, mobilenet_v2, densenet121, resnet20): parameter counts,
// MACs, shapes, locations, and parameter names == the PyTorch reference's state_dict keys.
#include <gtest/gtest.h>

#include <map>
#include <ostream>
#include <string>

#include "frontend/builder.h"
#include "ir/graph.h"
#include "ir/verifier.h"
#include "models/blocks.h"
#include "models/registry.h"
#include "tests/frontend/frontend_test_util.h"

namespace kiln::models {
namespace {

using testing::build;

ir::Module buildDefault(std::string_view name) {
  const ModelInfo* info = findModel(name);
  KILN_ASSERT(info != nullptr, "model not registered");
  return build(name, defaultConfig(*info));
}

/// Params and MACs at the default config. The MACs were counted independently in PyTorch
/// (forward hooks on every Conv2d/Linear: output elements x weight elements per output
/// channel, per image), so they must match exactly.
struct Expectation {
  std::string_view name;
  int64_t params;
  int64_t macs;
};

void PrintTo(const Expectation& e, std::ostream* os) {
  *os << e.name;
}

class ZooFigures : public ::testing::TestWithParam<Expectation> {};

TEST_P(ZooFigures, ParamsAndMacsMatchPyTorchAndThePublishedFigures) {
  const Expectation& e = GetParam();
  const ModelInfo* info = findModel(e.name);
  ASSERT_NE(info, nullptr);
  ir::Module m = build(e.name, defaultConfig(*info));
  EXPECT_TRUE(ir::verify(m.graph).isOk());
  EXPECT_EQ(m.graph.name(), e.name);
  EXPECT_EQ(ir::countParams(m.graph), e.params);
  EXPECT_EQ(ir::graphCost(m.graph).macs, e.macs);
  EXPECT_EQ(ir::countParams(m.graph), info->published.params);
  EXPECT_NEAR(static_cast<double>(ir::graphCost(m.graph).macs) / 1e9, info->published.gmacs, 0.005);
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooFigures,
                         ::testing::Values(Expectation{"squeezenet1_0", 1'248'424, 818'924'576},
                                           Expectation{"squeezenet1_1", 1'235'496, 349'151'936},
                                           Expectation{"mobilenet_v2", 3'504'872, 300'774'272},
                                           Expectation{"densenet121", 7'978'856, 2'834'161'664},
                                           Expectation{"resnet20", 272'186, 31'021'952}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Zoo, Resnet20DefaultsToFashionMnist) {
  const ModelInfo* info = findModel("resnet20");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->defaultResolution, 28);
  EXPECT_EQ(info->defaultInChannels, 1);
  EXPECT_EQ(info->defaultNumClasses, 10);
  ir::Module m = buildDefault("resnet20");
  EXPECT_EQ(m.graph.inputs()[0]->type().str(), "f32[N,1,28,28]{nchw}");
  EXPECT_EQ(m.graph.outputs()[0]->type().str(), "f32[N,10]{nc}");
  EXPECT_EQ(m.graph.findValue("layer2.0.downsample.0.weight")->type().str(),
            "f32[32,16,1,1]{oihw}");
  EXPECT_EQ(m.graph.findValue("layer3.2.conv2.weight")->type().str(), "f32[64,64,3,3]{oihw}");
  EXPECT_EQ(m.graph.findValue("layer1.0.downsample.0.weight"), nullptr);  // identity shortcut

  // CIFAR-size input: 32x32 (≈41 M MACs), with 3 channels the stem grows by 2*16*9 weights.
  EXPECT_EQ(
      ir::graphCost(build("resnet20", {.resolution = 32, .numClasses = 10, .inChannels = 1}).graph)
          .macs,
      40'518'272);
  ir::Module rgb = build("resnet20", {.resolution = 32, .numClasses = 10, .inChannels = 3});
  EXPECT_EQ(ir::countParams(rgb.graph), 272'474);
  EXPECT_EQ(ir::graphCost(rgb.graph).macs, 40'813'184);

  // Other rows keep the ImageNet defaults.
  const ModelConfig c = defaultConfig(*findModel("squeezenet1_0"));
  EXPECT_EQ(c.inChannels, 3);
  EXPECT_EQ(c.numClasses, 1000);
}

TEST(Zoo, StaticBatchSmallResolutionShapes) {
  // The resolutions the alignment tests use.
  const std::map<std::string_view, int64_t> res{{"squeezenet1_0", 64},
                                                {"squeezenet1_1", 64},
                                                {"mobilenet_v2", 64},
                                                {"densenet121", 32},
                                                {"resnet20", 28}};
  for (const auto& [name, r] : res) {
    SCOPED_TRACE(std::string(name));
    ModelConfig c = defaultConfig(*findModel(name));
    c.batch = 2;
    c.resolution = r;
    c.numClasses = 5;
    ir::Module m = build(name, c);
    EXPECT_TRUE(ir::verify(m.graph).isOk());
    ASSERT_EQ(m.graph.outputs().size(), 1u);
    EXPECT_EQ(m.graph.outputs()[0]->name(), "logits");
    EXPECT_EQ(m.graph.outputs()[0]->type().str(), "f32[2,5]{nc}");
  }
}

/// The result type of the last node of `kind` in `g`.
std::string lastResultOf(const ir::Graph& g, ir::OpKind kind) {
  std::string type;
  for (const auto& n : g.nodes())
    if (n->kind() == kind) type = n->results()[0]->type().str();
  return type;
}

TEST(Zoo, SqueezeNetPoolsRoundUp) {
  // squeezenet1_0 at 224: 109 -> pool 54 -> pool ceil(25.5)+1 = 27 -> pool 13 (floor: 26, 12).
  ir::Module m = build("squeezenet1_0", {.batch = 1});
  EXPECT_EQ(lastResultOf(m.graph, ir::OpKind::MaxPool2d), "f32[1,512,13,13]{nchw}");
  EXPECT_EQ(lastResultOf(m.graph, ir::OpKind::Conv2d), "f32[1,1000,13,13]{nchw}");
  EXPECT_EQ(m.graph.findValue("classifier.1.bias")->type().str(), "f32[1000]{x}");
  EXPECT_EQ(m.graph.findValue("features.12.expand3x3.weight")->type().str(),
            "f32[256,64,3,3]{oihw}");
}

TEST(Zoo, DenseNetConcatenatesEveryLayer) {
  ir::Module m = build("densenet121", {.batch = 1});
  // 64 + 6*32 = 256 channels into transition1, halved; block 4 ends at 512 + 16*32 = 1024.
  EXPECT_EQ(m.graph.findValue("features.transition1.conv.weight")->type().str(),
            "f32[128,256,1,1]{oihw}");
  EXPECT_EQ(m.graph.findValue("features.denseblock4.denselayer16.norm1.weight")->type().str(),
            "f32[992]{x}");
  EXPECT_EQ(m.graph.findValue("features.norm5.running_var")->type().str(), "f32[1024]{x}");
  EXPECT_EQ(lastResultOf(m.graph, ir::OpKind::Concat), "f32[1,1024,7,7]{nchw}");
}

TEST(Zoo, NodesPointIntoTheModelFile) {
  // Blocks from models/blocks.cpp record their caller's location.
  const std::map<std::string_view, std::string_view> files{
      {"squeezenet1_1", "models/squeezenet.cpp"},
      {"mobilenet_v2", "models/mobilenet_v2.cpp"},
      {"densenet121", "models/densenet.cpp"},
      {"resnet20", "models/resnet_cifar.cpp"}};
  for (const auto& [name, file] : files) {
    SCOPED_TRACE(std::string(name));
    ir::Module m = buildDefault(name);
    for (const auto& n : m.graph.nodes()) {
      EXPECT_EQ(n->loc().file, file);
      EXPECT_GT(n->loc().line, 0);
    }
  }
}

TEST(Zoo, TooSmallInputIsAnErrorNotACrash) {
  Expected<ir::Module> m = buildModel("squeezenet1_0", {.resolution = 16});
  ASSERT_FALSE(m.isOk());
  EXPECT_NE(m.message().find("models/squeezenet.cpp:"), std::string::npos) << m.message();
  m = buildModel("densenet121", {.resolution = 8});
  ASSERT_FALSE(m.isOk());
  EXPECT_NE(m.message().find("models/densenet.cpp:"), std::string::npos) << m.message();
  m = buildModel("mobilenet_v2", {.numClasses = 0});
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.message(), "mobilenet_v2: numClasses must be >= 1, got 0");
}

// ---- shared blocks ----------------------------------------------------------------

TEST(Blocks, MakeDivisibleMatchesTorchvision) {
  // Values from torchvision.models._utils._make_divisible.
  EXPECT_EQ(makeDivisible(32 * 0.75, 8), 24);
  EXPECT_EQ(makeDivisible(10, 8), 16);  // 8 would lose more than 10%
  EXPECT_EQ(makeDivisible(1280 * 1.4, 8), 1792);
  EXPECT_EQ(makeDivisible(24 * 0.35, 8), 8);
  EXPECT_EQ(makeDivisible(3, 8), 8);  // min_value = divisor
  EXPECT_EQ(makeDivisible(100, 16), 96);
  EXPECT_EQ(makeDivisible(91, 16), 96);
  EXPECT_EQ(makeDivisible(52, 8, 16), 56);
  EXPECT_EQ(makeDivisible(4, 8, 16), 16);
}

TEST(Blocks, InvertedResidualNamesAndResidual) {
  frontend::Builder b("ir");
  frontend::Var x = b.input("x", ir::TensorType{ir::DType::F32, {1, 24, 8, 8}, ir::Layout::NCHW});
  frontend::Var y = invertedResidual(b, "3", x, {.out = 24, .stride = 1, .expandRatio = 6});
  frontend::Var z = invertedResidual(b, "4", y, {.out = 32, .stride = 2, .expandRatio = 1});
  b.output(z);
  Expected<ir::Module> m = b.finish();
  ASSERT_TRUE(m.isOk()) << m.message();
  const ir::Graph& g = m->graph;
  EXPECT_EQ(g.findValue("3.conv.0.0.weight")->type().str(), "f32[144,24,1,1]{oihw}");
  EXPECT_EQ(g.findValue("3.conv.1.0.weight")->type().str(), "f32[144,1,3,3]{oihw}");
  EXPECT_EQ(g.findValue("3.conv.2.weight")->type().str(), "f32[24,144,1,1]{oihw}");
  EXPECT_EQ(g.findValue("3.conv.3.running_mean")->type().str(), "f32[24]{x}");
  // Expand ratio 1: no expansion conv, the depthwise conv is child 0.
  EXPECT_EQ(g.findValue("4.conv.0.0.weight")->type().str(), "f32[24,1,3,3]{oihw}");
  EXPECT_EQ(g.findValue("4.conv.1.weight")->type().str(), "f32[32,24,1,1]{oihw}");
  EXPECT_EQ(g.findValue("4.conv.3.weight"), nullptr);
  int adds = 0;
  for (const auto& n : g.nodes()) adds += n->kind() == ir::OpKind::Add;
  EXPECT_EQ(adds, 1);  // only the stride-1, 24 -> 24 block
  EXPECT_EQ(g.outputs()[0]->type().str(), "f32[1,32,4,4]{nchw}");
}

TEST(Blocks, InvertedResidualRejectsStride3) {
  frontend::Builder b("ir");
  frontend::Var x = b.input("x", ir::TensorType{ir::DType::F32, {1, 8, 8, 8}, ir::Layout::NCHW});
  b.output(invertedResidual(b, "blk", x, {.out = 8, .stride = 3}));
  Expected<ir::Module> m = b.finish();
  ASSERT_FALSE(m.isOk());
  EXPECT_NE(m.message().find("inverted residual blk: stride must be 1 or 2, got 3"),
            std::string::npos)
      << m.message();
  EXPECT_NE(m.message().find("zoo_small_test.cpp:"), std::string::npos) << m.message();
}

// ---- names and shapes vs PyTorch ---------------------------------------------------

// One python run for all models (importing torch costs seconds; ctest runs each test in its
// own process).
TEST(Zoo, NamesEqualPyTorchStateDictKeys) {
  const std::string args = std::string(KILN_SOURCE_DIR) +
                           "/tests/align/torch_models.py --keys squeezenet1_0 squeezenet1_1 "
                           "mobilenet_v2 densenet121 resnet20";
  const testing::StateDictKeys torch = testing::readStateDictKeys({"torch", "torchvision"}, args);
  if (!torch.skip.empty()) GTEST_SKIP() << torch.skip;
  ASSERT_TRUE(torch.error.empty()) << torch.error;
  ASSERT_EQ(torch.models.size(), 5u);
  for (const auto& [name, want] : torch.models) {
    SCOPED_TRACE(name);
    // Every key of `want` is declared by the model with that kind and shape, and no other.
    ASSERT_GT(want.size(), 50u);
    testing::expectSameKeys(buildDefault(name), want, "PyTorch");
  }
}

}  // namespace
}  // namespace kiln::models
