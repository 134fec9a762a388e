// PeleeNet and MobileNeXt (models from seed code): parameter counts and MACs equal to what the
// PyTorch reference modules (tests/align/torch_seed_models.py --count) compute, structure, and
// parameter names == the reference state_dict keys.
#include <gtest/gtest.h>

#include <map>

#include "ir/graph.h"
#include "ir/verifier.h"
#include "models/registry.h"
#include "tests/frontend/frontend_test_util.h"

namespace kiln::models {
namespace {

using testing::build;
using testing::countOps;
using testing::Expected224;

/// Params (1000 classes) and MACs at 224 of the PyTorch reference modules, as printed by
/// `/usr/bin/python3 tests/align/torch_seed_models.py --count <model>` (forward hooks on
/// every Conv2d and Linear: out elements x in-channels-per-group x kh x kw).
constexpr Expected224 kTorchCounts[] = {
    {"peleenet", 2'802'248, 507'757'568},       {"mobilenext_035", 1'913'976, 75'141'032},
    {"mobilenext_050", 2'152'304, 103'256'448}, {"mobilenext_075", 2'766'168, 207'926'720},
    {"mobilenext_100", 3'535'416, 311'342'592}, {"mobilenext_140", 6'126'168, 588'319'256},
};

class SeedModelCounts : public ::testing::TestWithParam<Expected224> {};

TEST_P(SeedModelCounts, ParamsAndMacsEqualThePyTorchReference) {
  const Expected224& want = GetParam();
  testing::expectCountsEqual(want);
  // The registry's exact figure is the same reference count.
  const ModelInfo* info = findModel(want.name);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->published.params, want.params);
}

INSTANTIATE_TEST_SUITE_P(Torch, SeedModelCounts, ::testing::ValuesIn(kTorchCounts),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(PeleeNet, PaperFigures) {
  // Paper: 2.8M parameters, 508M MACs ("FLOPs") at 224.
  ir::Module m = build("peleenet");
  EXPECT_NEAR(static_cast<double>(ir::countParams(m.graph)) / 1e6, 2.8, 0.005);
  EXPECT_NEAR(static_cast<double>(ir::graphCost(m.graph).macs) / 1e6, 508, 0.5);
}

TEST(PeleeNet, Structure) {
  ir::Module m = build("peleenet", {.batch = 2, .resolution = 224, .numClasses = 10});
  const ir::Graph& g = m.graph;
  // Stem concat + one per two-way dense layer (3 + 4 + 8 + 6).
  EXPECT_EQ(countOps(g, ir::OpKind::Concat), 22);
  EXPECT_EQ(countOps(g, ir::OpKind::MaxPool2d), 1);
  EXPECT_EQ(countOps(g, ir::OpKind::AvgPool2d), 3);  // no pool after the last transition
  EXPECT_EQ(countOps(g, ir::OpKind::Conv2d), 4 + 21 * 5 + 4);
  EXPECT_EQ(countOps(g, ir::OpKind::Conv2d), countOps(g, ir::OpKind::BatchNorm));
  auto type = [&](std::string_view name) { return testing::typeOf(g, name); };
  EXPECT_EQ(type("features.stemblock.stem1.conv.weight"), "f32[32,3,3,3]{oihw}");
  EXPECT_EQ(type("features.stemblock.stem3.conv.weight"), "f32[32,64,1,1]{oihw}");
  // Bottleneck 16 * width / 4 * 4, capped at half the input: 16 in stage 1 ...
  EXPECT_EQ(type("features.denseblock1.denselayer1.branch1a.conv.weight"), "f32[16,32,1,1]{oihw}");
  EXPECT_EQ(type("features.denseblock1.denselayer1.branch2c.conv.weight"), "f32[16,16,3,3]{oihw}");
  // ... 64 in stage 3 (256 input channels).
  EXPECT_EQ(type("features.denseblock3.denselayer1.branch2a.conv.weight"), "f32[64,256,1,1]{oihw}");
  EXPECT_EQ(type("features.transition4.conv.weight"), "f32[704,704,1,1]{oihw}");
  EXPECT_EQ(type("features.transition4.norm.running_var"), "f32[704]{x}");
  EXPECT_EQ(type("classifier.weight"), "f32[10,704]{oi}");
  EXPECT_EQ(g.outputs()[0]->type().str(), "f32[2,10]{nc}");
}

TEST(PeleeNet, ResolutionTheStemCannotSplitIsAnError) {
  // 3x3/s2 on 230 gives 115: the 2x2 pool makes 57, the 3x3/s2 conv 58.
  Expected<ir::Module> m = buildModel("peleenet", {.resolution = 230});
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.message(),
            "peleenet: resolution 230 gives a 115x115 stem feature map, which the stem's 2x2 max "
            "pool and 3x3/s2 conv branches reduce to different sizes; use a resolution that is "
            "0 or 3 mod 4 (e.g. 224)");
  EXPECT_TRUE(buildModel("peleenet", {.resolution = 227}).isOk());
  EXPECT_FALSE(buildModel("peleenet", {.batch = 0}).isOk());
}

TEST(MobileNeXt, PaperFigures) {
  // Paper: 3.4M parameters, 300M MAdds at width 1.0 (authors' README: 3.5M, 300M); the seed
  // code gives 3,535,416 and 311.3M.
  ir::Module m = build("mobilenext_100");
  EXPECT_NEAR(static_cast<double>(ir::countParams(m.graph)) / 1e6, 3.5, 0.05);
  EXPECT_NEAR(static_cast<double>(ir::graphCost(m.graph).macs) / 1e6, 300, 15);
}

TEST(MobileNeXt, Structure) {
  ir::Module m = build("mobilenext_100", {.batch = 1, .resolution = 224});
  const ir::Graph& g = m.graph;
  // Identity shortcuts: every repeated block of the stages with n > 1 (2+2+3+3+2); the first
  // blocks change shape and the single-block stages are `keep_3x3` (no shortcut).
  EXPECT_EQ(countOps(g, ir::OpKind::Add), 12);
  // ReLU6: the stem, two in each 10-child block (t=2, keep_3x3 and identity blocks: 15), one
  // in each first block of stages 3-7.
  EXPECT_EQ(countOps(g, ir::OpKind::Relu6), 1 + 2 * 15 + 5);
  auto type = [&](std::string_view name) { return testing::typeOf(g, name); };
  EXPECT_EQ(type("features.0.0.weight"), "f32[32,3,3,3]{oihw}");
  // Block 1 (t=2): dw 32, pw 32->16, pw 16->96, dw 96 stride 2.
  EXPECT_EQ(type("features.1.conv.0.weight"), "f32[32,1,3,3]{oihw}");
  EXPECT_EQ(type("features.1.conv.3.weight"), "f32[16,32,1,1]{oihw}");
  EXPECT_EQ(type("features.1.conv.5.weight"), "f32[96,16,1,1]{oihw}");
  EXPECT_EQ(type("features.1.conv.8.weight"), "f32[96,1,3,3]{oihw}");
  // Block 2 (96 -> 144, keep_3x3): hidden 96/6 = 16 < 144/6, so make_divisible(24, 16) = 32.
  EXPECT_EQ(type("features.2.conv.3.weight"), "f32[32,96,1,1]{oihw}");
  // Block 3 (144 -> 192, stride 2): pw, pw, dw with children 0, 2, 5.
  EXPECT_EQ(type("features.3.conv.5.weight"), "f32[192,1,3,3]{oihw}");
  // Block 20 (960 -> 1280, keep_3x3): hidden 160 < 1280/6, make_divisible(214, 16) = 208.
  EXPECT_EQ(type("features.20.conv.5.weight"), "f32[1280,208,1,1]{oihw}");
  EXPECT_EQ(type("features.20.conv.9.running_mean"), "f32[1280]{x}");
  EXPECT_EQ(g.findValue("features.21.conv.0.weight"), nullptr);
  EXPECT_EQ(type("classifier.1.weight"), "f32[1000,1280]{oi}");
  // Below width 1 the last stage keeps 1280 channels; above it scales.
  EXPECT_EQ(build("mobilenext_035").graph.findValue("classifier.1.weight")->type().str(),
            "f32[1000,1280]{oi}");
  EXPECT_EQ(build("mobilenext_140").graph.findValue("classifier.1.weight")->type().str(),
            "f32[1000,1792]{oi}");
  EXPECT_EQ(build("mobilenext_035").graph.findValue("features.0.0.weight")->type().str(),
            "f32[16,3,3,3]{oihw}");
}

TEST(SeedModels, NodesPointIntoTheModelFiles) {
  for (auto [name, file] : {std::pair{"peleenet", "models/peleenet.cpp"},
                            std::pair{"mobilenext_100", "models/mobilenext.cpp"}}) {
    ir::Module m = build(name, {.resolution = 64});
    for (const auto& n : m.graph.nodes()) {
      EXPECT_EQ(n->loc().file, file) << name;
      EXPECT_GT(n->loc().line, 0);
    }
  }
}

// ---- names and shapes vs the PyTorch reference ------------------------------------

const testing::StateDictKeys& referenceKeys() {
  static const testing::StateDictKeys keys =
      testing::referenceScriptKeys("torch_seed_models.py", kTorchCounts);
  return keys;
}

class SeedModelNames : public ::testing::TestWithParam<Expected224> {};

TEST_P(SeedModelNames, EqualTheReferenceStateDictKeys) {
  testing::expectReferenceKeys(referenceKeys(), std::string(GetParam().name), 100,
                               build(GetParam().name, {.resolution = 64}), "the reference");
}

INSTANTIATE_TEST_SUITE_P(Torch, SeedModelNames, ::testing::ValuesIn(kTorchCounts),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace kiln::models
