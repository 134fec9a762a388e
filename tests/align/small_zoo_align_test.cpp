// squeezenet1_0/1_1, mobilenet_v2, densenet121, resnet34…152 (torchvision) and resnet20 (the PyTorch module
// in torch_models.py) from the model registry, run on the reference backend, vs PyTorch on the
// same random weights (BN statistics randomized) and input.
//
// Each model runs at a small resolution (batch 2) so the suite fits CI under ASan;
// KILN_ALIGN_RES=224 runs all of them at that size for a recorded full-size run. Each test
// also shifts one weight slightly and checks the comparison notices. Skips when
// /usr/bin/python3 lacks torch.
#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>

#include "ir/module.h"
#include "models/registry.h"
#include "tests/align/align_util.h"

namespace kiln {
namespace {

constexpr int64_t kBatch = 2;

struct AlignCase {
  std::string_view model;
  int64_t resolution;               // unless KILN_ALIGN_RES is set
  std::string_view perturbed;       // a weight the model's output depends on
  float shift;                      // added to every element of `perturbed`
  std::string_view torchArgs = "";  // extra torch_models.py arguments
};

void PrintTo(const AlignCase& c, std::ostream* os) {
  *os << c.model;
}

class SmallZooAlign : public ::testing::TestWithParam<AlignCase> {
 protected:
  void SetUp() override {
    const std::string skip = testing::missingPythonModules({"torch", "torchvision", "numpy"});
    if (!skip.empty()) GTEST_SKIP() << skip;
    dir_.emplace(GetParam().model);
  }
  void TearDown() override { dir_.reset(); }
  std::optional<testing::TempDir> dir_;
};

TEST_P(SmallZooAlign, MatchesPyTorch) {
  const AlignCase& c = GetParam();
  const int64_t res = testing::alignResolution(c.resolution, /*minimum=*/28);
  Expected<testing::Reference> ref =
      testing::runTorchModels(c.model, kBatch, res, dir_->path(), c.torchArgs);
  ASSERT_TRUE(ref.isOk()) << ref.message();

  const models::ModelInfo* info = models::findModel(c.model);
  ASSERT_NE(info, nullptr);
  models::ModelConfig config = models::defaultConfig(*info);
  config.batch = kBatch;
  config.resolution = res;
  Expected<ir::Module> built = testing::buildWithWeights(c.model, config, *ref);
  ASSERT_TRUE(built.isOk()) << built.message();
  ir::Module module = std::move(built).value();
  ASSERT_NO_FATAL_FAILURE(testing::expectMatchesReference(
      module, *ref,
      {.name = std::string(c.model),
       .batch = kBatch,
       .resolution = res,
       .inChannels = config.inChannels,
       .numClasses = config.numClasses,
       .minMaxRef = 0.01}));

  // The comparison must be able to fail: shift one weight near the input a little and run
  // again (this also shows the logits depend on the early layers).
  const std::string key(c.perturbed);
  ASSERT_NE(module.weights.find(key), nullptr) << key;
  testing::shiftWeight(module.weights, key, c.shift);
  SCOPED_TRACE(fmt::format("{} shifted by {}", key, c.shift));
  testing::expectDetected(module, *ref, 10);
}

INSTANTIATE_TEST_SUITE_P(
    Zoo, SmallZooAlign,
    ::testing::Values(
        AlignCase{"squeezenet1_0", 64, "features.3.squeeze.bias", 0.05f},
        AlignCase{"squeezenet1_1", 64, "features.3.expand1x1.bias", 0.05f},
        // Depthwise convs under torchvision's fan_out init shrink the signal ~100x a block;
        // without --fan-in-init the logits would not depend on the first blocks at all.
        AlignCase{"mobilenet_v2", 64, "features.2.conv.1.1.running_mean", 0.05f, "--fan-in-init"},
        AlignCase{"densenet121", 32, "features.denseblock1.denselayer2.norm2.running_mean", 0.05f},
        AlignCase{"resnet20", 28, "layer1.1.bn1.running_mean", 0.05f},
        // resnet18 has its own suite (tests/align/resnet_align_test.cpp); the deeper ResNets here.
        AlignCase{"resnet34", 64, "layer1.0.bn1.running_mean", 0.05f},
        AlignCase{"resnet50", 64, "layer1.0.bn1.running_mean", 0.05f},
        // Random BN statistics through 33/50 residual adds grow logits to 1e4/1e7; damp them.
        AlignCase{"resnet101", 64, "bn1.running_mean", 0.05f, "--residual-scale 0.3"},
        AlignCase{"resnet152", 64, "bn1.running_mean", 0.05f, "--residual-scale 0.3"}),
    [](const auto& info) { return std::string(info.param.model); });

}  // namespace
}  // namespace kiln
