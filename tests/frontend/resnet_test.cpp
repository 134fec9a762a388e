// ResNet family: parameter counts, MACs, shapes, and parameter names == torchvision's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "ir/graph.h"
#include "ir/verifier.h"
#include "models/registry.h"
#include "tests/frontend/frontend_test_util.h"

namespace kiln::models {
namespace {

using testing::build;
using testing::sig3;

TEST(ResNet, Resnet18ParamsAndMacs) {
  ir::Module m = build("resnet18");
  EXPECT_EQ(ir::countParams(m.graph), 11'689'512);
  EXPECT_DOUBLE_EQ(sig3(static_cast<double>(ir::graphCost(m.graph).macs)), 1.81e9);
}

TEST(ResNet, Resnet50ParamsAndMacs) {
  ir::Module m = build("resnet50");
  EXPECT_EQ(ir::countParams(m.graph), 25'557'032);
  EXPECT_DOUBLE_EQ(sig3(static_cast<double>(ir::graphCost(m.graph).macs)), 4.09e9);
}

TEST(ResNet, EveryResNetMatchesItsPublishedFigures) {
  for (std::string_view name : {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}) {
    SCOPED_TRACE(std::string(name));
    const ModelInfo* info = findModel(name);
    ASSERT_NE(info, nullptr);
    ir::Module m = build(name, defaultConfig(*info));
    EXPECT_EQ(ir::countParams(m.graph), info->published.params);
    const double gmacs = static_cast<double>(ir::graphCost(m.graph).macs) / 1e9;
    EXPECT_NEAR(gmacs, info->published.gmacs, 0.005);
    EXPECT_EQ(m.graph.name(), name);
    EXPECT_TRUE(ir::verify(m.graph).isOk());
  }
}

TEST(ResNet, ConfigShapesTheGraph) {
  ir::Module m =
      build("resnet18", {.batch = 2, .resolution = 64, .numClasses = 10, .inChannels = 1});
  ASSERT_EQ(m.graph.inputs().size(), 1u);
  EXPECT_EQ(m.graph.inputs()[0]->type().str(), "f32[2,1,64,64]{nchw}");
  EXPECT_EQ(m.graph.findValue("conv1.weight")->type().str(), "f32[64,1,7,7]{oihw}");
  EXPECT_EQ(m.graph.findValue("fc.weight")->type().str(), "f32[10,512]{oi}");
  ASSERT_EQ(m.graph.outputs().size(), 1u);
  EXPECT_EQ(m.graph.outputs()[0]->name(), "logits");
  EXPECT_EQ(m.graph.outputs()[0]->type().str(), "f32[2,10]{nc}");

  ir::Module sym = build("resnet50");
  EXPECT_EQ(sym.graph.inputs()[0]->type().str(), "f32[N,3,224,224]{nchw}");
  EXPECT_EQ(sym.graph.outputs()[0]->type().str(), "f32[N,1000]{nc}");
}

TEST(ResNet, NodesPointIntoTheModelFile) {
  ir::Module m = build("resnet18");
  for (const auto& n : m.graph.nodes()) {
    EXPECT_EQ(n->loc().file, "models/resnet.cpp");
    EXPECT_GT(n->loc().line, 0);
  }
}

TEST(ResNet, BadConfigsAreErrors) {
  Expected<ir::Module> m = buildModel("resnet18", {.batch = 0});
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.message(), "resnet18: batch must be >= 1 or -1 (symbolic N), got 0");
  m = buildModel("resnet34", {.numClasses = 0});
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.message(), "resnet34: numClasses must be >= 1, got 0");
}

// ---- names and shapes vs torchvision ---------------------------------------------

const testing::StateDictKeys& torchvisionKeys() {
  static const testing::StateDictKeys keys = [] {
    const auto script =
        std::filesystem::temp_directory_path() / fmt::format("kiln_tv_keys_{}.py", ::getpid());
    std::ofstream(script) << R"(
import sys, torchvision
for name in sys.argv[1:]:
    m = getattr(torchvision.models, name)()
    params = {k for k, _ in m.named_parameters()}
    for k, v in m.state_dict().items():
        if k.endswith('num_batches_tracked'):
            continue
        print(name, 'P' if k in params else 'B', k, '[' + ','.join(map(str, v.shape)) + ']')
)";
    testing::StateDictKeys k = testing::readStateDictKeys(
        {"torch", "torchvision"},
        script.string() + " resnet18 resnet34 resnet50 resnet101 resnet152");
    std::filesystem::remove(script);
    return k;
  }();
  return keys;
}

class ResNetNames : public ::testing::TestWithParam<std::string> {};

TEST_P(ResNetNames, EqualTorchvisionStateDictKeys) {
  testing::expectReferenceKeys(torchvisionKeys(), GetParam(), 50, build(GetParam()),
                               "torchvision");
}

INSTANTIATE_TEST_SUITE_P(Torchvision, ResNetNames,
                         ::testing::Values("resnet18", "resnet34", "resnet50", "resnet101",
                                           "resnet152"));

}  // namespace
}  // namespace kiln::models
