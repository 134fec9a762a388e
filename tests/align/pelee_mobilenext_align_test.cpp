// PeleeNet and MobileNeXt from the model registry, run on the reference backend, vs the
// PyTorch modules written from the same seed code (tests/align/torch_seed_models.py) on the
// same random weights (BN statistics randomized) and input.
//
// The input size is KILN_ALIGN_RES (default 64, batch 2: small enough for CI under ASan; for
// PeleeNet it must be 0 or 3 mod 4); KILN_ALIGN_RES=224 records a full-size run. Skips when
// /usr/bin/python3 lacks torch.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/module.h"
#include "models/registry.h"
#include "tests/align/align_util.h"

namespace kiln {
namespace {

using testing::alignResolution;

constexpr int64_t kBatch = 2;
// mobilenext_035 covers the width < 1 rules (stem 16 channels, last stage kept at 1280).
const std::vector<std::string> kModels{"peleenet", "mobilenext_100", "mobilenext_035"};

class SeedModelAlign : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    refs_.emplace();
    skip_ = testing::missingPythonModules({"torch", "numpy"});
    if (!skip_.empty()) return;
    // One python run for every model: importing torch is the slow part.
    dir_.emplace("seed");
    auto refs = testing::runReferenceScript("torch_seed_models.py", kBatch, alignResolution(),
                                            dir_->path(), kModels, kModels);
    ASSERT_TRUE(refs.isOk()) << refs.message();
    refs_ = std::move(refs).value();
  }

  static void TearDownTestSuite() {
    refs_.reset();
    dir_.reset();
  }

  void SetUp() override {
    testing::requireReference(skip_, refs_, GetParam());
  }

  const testing::Reference& ref() const { return refs_->at(GetParam()); }

  /// The registry model at the alignment size with the reference weights bound.
  ir::Module buildWithWeights() const {
    models::ModelConfig config;
    config.batch = kBatch;
    config.resolution = alignResolution();
    Expected<ir::Module> m = testing::buildWithWeights(GetParam(), config, ref());
    KILN_ASSERT(m.isOk(), "model failed to build");
    return std::move(m).value();
  }

  static inline std::optional<std::map<std::string, testing::Reference>> refs_;
  static inline std::string skip_;
  static inline std::optional<testing::TempDir> dir_;
};

TEST_P(SeedModelAlign, MatchesThePyTorchReference) {
  ir::Module module = buildWithWeights();
  ASSERT_NO_FATAL_FAILURE(testing::expectMatchesReference(
      module, ref(), {.name = GetParam(), .batch = kBatch, .resolution = alignResolution()}));
}

TEST_P(SeedModelAlign, WrongBatchNormStatisticIsDetected) {
  // The comparison must be able to fail: shift one BN's running mean deep in the net (for
  // MobileNeXt, inside a block whose output also feeds an identity shortcut).
  ir::Module module = buildWithWeights();
  const std::string key = GetParam() == "peleenet"
                              ? "features.denseblock3.denselayer5.branch2b.norm.running_mean"
                              : "features.14.conv.6.running_mean";
  ASSERT_NE(module.weights.find(key), nullptr) << key;
  testing::shiftWeight(module.weights, key, 0.05f);
  testing::expectDetected(module, ref(), 10);
}

INSTANTIATE_TEST_SUITE_P(Seed, SeedModelAlign, ::testing::ValuesIn(kModels),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kiln
