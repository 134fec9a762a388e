// EfficientNet from the model registry, run on the reference backend, vs torchvision on the
// same random weights (BN statistics randomized) and input: efficientnet_b0 (B0-B4 share
// BatchNorm eps 1e-5) and efficientnet_b5 (width 1.6, depth 2.2, eps 1e-3).
//
// The input size is KILN_ALIGN_RES (default 64, batch 1: small enough for CI under ASan);
// KILN_ALIGN_RES=224 records a full-size run (--gtest_filter=*efficientnet_b0 for B0 alone).
// Skips when /usr/bin/python3 lacks torch.
#include <gtest/gtest.h>

#include <list>
#include <map>
#include <string>

#include "ir/module.h"
#include "models/registry.h"
#include "tests/align/align_util.h"

namespace kiln {
namespace {

using testing::alignResolution;

constexpr int64_t kBatch = 1;

class EfficientNetAlign : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    skip_ = testing::missingPythonModules({"torch", "torchvision", "numpy"});
  }

  static void TearDownTestSuite() {
    refs_.clear();
    dirs_.clear();
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(ref().isOk()) << ref().message();
  }

  /// The torchvision reference for GetParam(), produced on first use.
  const Expected<testing::Reference>& ref() const {
    const std::string& model = GetParam();
    auto it = refs_.find(model);
    if (it == refs_.end()) {
      const testing::TempDir& dir = dirs_.emplace_back(model);
      it = refs_
               .emplace(model,
                        testing::runTorchModels(model, kBatch, alignResolution(), dir.path()))
               .first;
    }
    return it->second;
  }

  /// The registry model at the alignment size with the reference weights bound.
  ir::Module buildWithWeights() const {
    models::ModelConfig config;
    config.batch = kBatch;
    config.resolution = alignResolution();
    Expected<ir::Module> m = testing::buildWithWeights(GetParam(), config, *ref());
    KILN_ASSERT(m.isOk(), "model failed to build");
    return std::move(m).value();
  }

  static inline std::map<std::string, Expected<testing::Reference>> refs_;
  static inline std::list<testing::TempDir> dirs_;
  static inline std::string skip_;
};

TEST_P(EfficientNetAlign, MatchesTorchvision) {
  ir::Module module = buildWithWeights();
  ASSERT_NO_FATAL_FAILURE(testing::expectMatchesReference(
      module, *ref(), {.name = GetParam(), .batch = kBatch, .resolution = alignResolution()}));
}

TEST_P(EfficientNetAlign, WrongSqueezeExcitationBiasIsDetected) {
  // The comparison must be able to fail: shift the SE gate bias of one late block (a
  // sigmoid input, so the change reaches the logits only through the channel scale).
  ir::Module module = buildWithWeights();
  const std::string key = "features.6.1.block.2.fc2.bias";
  ASSERT_NE(module.weights.find(key), nullptr) << key;
  testing::shiftWeight(module.weights, key, 1.0f);
  // Seen at 64x64: 3.7e-4 (b0), 4.6e-4 (b5), against a tolerance of 1e-4 (randomly
  // initialized EfficientNets have small logits, max|y| < 1, so the tolerance is absolute).
  testing::expectDetected(module, *ref(), 2);
}

TEST_P(EfficientNetAlign, WrongBatchNormEpsilonIsDetected) {
  // torchvision uses eps 1e-5 for B0-B4 and 1e-3 for B5-B7; the other one must not pass.
  ir::Module module = buildWithWeights();
  for (const auto& n : module.graph.nodes()) {
    if (n->kind() != ir::OpKind::BatchNorm) continue;
    const double eps = n->attrs<ir::BatchNormAttrs>().epsilon;
    n->setAttrs(ir::BatchNormAttrs{eps == 1e-3 ? 1e-5 : 1e-3});
  }
  // Seen at 64x64: 4.0e-4 (b0), 9.2e-4 (b5), against a tolerance of 1e-4.
  testing::expectDetected(module, *ref(), 2);
}

INSTANTIATE_TEST_SUITE_P(Torchvision, EfficientNetAlign,
                         ::testing::Values("efficientnet_b0", "efficientnet_b5"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kiln
