// ResNet family: parameter counts, MACs, shapes, and parameter names == torchvision's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "ir/graph.h"
#include "ir/verifier.h"
#include "models/registry.h"

namespace kiln::models {
namespace {

ir::Module build(std::string_view name, ModelConfig config = {}) {
  Expected<ir::Module> m = buildModel(name, config);
  KILN_ASSERT(m.isOk(), "model failed to build");
  return std::move(m).value();
}

/// Rounds to 3 significant digits (1814073344 -> 1.81e9).
double sig3(double v) {
  const double scale = std::pow(10.0, std::floor(std::log10(v)) - 2);
  return std::round(v / scale) * scale;
}

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

/// kind ('P' param, 'B' buffer) and shape of each state_dict key, per model.
using Keys = std::map<std::string, std::pair<char, std::string>>;

struct TorchKeys {
  bool available = false;
  std::string why;  // when not available
  std::map<std::string, Keys> models;
};

const TorchKeys& torchvisionKeys() {
  static const TorchKeys keys = [] {
    TorchKeys k;
    const std::string py = KILN_PYTHON;
    if (std::system((py + " -c 'import torch, torchvision' >/dev/null 2>&1").c_str()) != 0) {
      k.why = py + " cannot import torch and torchvision";
      return k;
    }
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
    const std::string cmd =
        py + " " + script.string() + " resnet18 resnet34 resnet50 resnet101 resnet152";
    FILE* pipe = ::popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    while (pipe && std::fgets(buf, sizeof buf, pipe)) out += buf;
    const int rc = pipe ? ::pclose(pipe) : -1;
    std::filesystem::remove(script);
    KILN_ASSERT(rc == 0, "the torchvision key script failed");
    std::istringstream lines(out);
    std::string model, kind, key, shape;
    while (lines >> model >> kind >> key >> shape) k.models[model][key] = {kind[0], shape};
    k.available = true;
    return k;
  }();
  return keys;
}

class ResNetNames : public ::testing::TestWithParam<std::string> {};

TEST_P(ResNetNames, EqualTorchvisionStateDictKeys) {
  const TorchKeys& tv = torchvisionKeys();
  if (!tv.available) GTEST_SKIP() << "skipped: " << tv.why;
  const Keys& want = tv.models.at(GetParam());
  ASSERT_GT(want.size(), 50u);
  ir::Module m = build(GetParam());
  Keys got;
  for (const ir::Value* v : m.graph.weights())
    got[v->name()] = {v->kind() == ir::ValueKind::Param ? 'P' : 'B', v->type().shape.str()};
  for (const auto& [key, kindShape] : want) {
    auto it = got.find(key);
    if (it == got.end()) {
      ADD_FAILURE() << "missing torchvision key " << key;
      continue;
    }
    EXPECT_EQ(it->second, kindShape) << key;
  }
  for (const auto& [key, kindShape] : got)
    EXPECT_TRUE(want.count(key)) << "kiln declares " << key << ", torchvision has no such key";
}

INSTANTIATE_TEST_SUITE_P(Torchvision, ResNetNames,
                         ::testing::Values("resnet18", "resnet34", "resnet50", "resnet101",
                                           "resnet152"));

}  // namespace
}  // namespace kiln::models
