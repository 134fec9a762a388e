// resnet18 from the model registry, run on the reference backend, vs PyTorch (torchvision) on
// the same random weights (BN statistics randomized) and input.
//
// The input size is KILN_ALIGN_RES (default 64, batch 2: small enough for CI under ASan);
// KILN_ALIGN_RES=224 records a full-size run. Skips when /usr/bin/python3 lacks torch.
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <tuple>

#include "ir/module.h"
#include "models/registry.h"
#include "runtime/npy.h"
#include "tests/align/align_util.h"
#include "tests/tolerance.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::alignResolution;
using testing::runCommand;

constexpr int64_t kBatch = 2;

class ResNetAlign : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_ = testing::missingPythonModules({"torch", "torchvision", "numpy"});
    if (!skip_.empty()) return;
    dir_.emplace("resnet18");
    Expected<testing::Reference> ref =
        testing::runTorchModels("resnet18", kBatch, alignResolution(), dir_->path());
    ASSERT_TRUE(ref.isOk()) << ref.message();
    ref_ = std::move(ref).value();
  }

  static void TearDownTestSuite() {
    ref_.reset();
    dir_.reset();
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(ref_.has_value()) << "the PyTorch reference was not produced";
    ASSERT_FALSE(ref_->y.empty()) << "the PyTorch reference was not produced";
  }

  static ir::Module buildResnet18() {
    models::ModelConfig config;
    config.batch = kBatch;
    config.resolution = alignResolution();
    Expected<ir::Module> m = models::buildModel("resnet18", config);
    KILN_ASSERT(m.isOk(), "resnet18 failed to build");
    return std::move(m).value();
  }

  static inline std::optional<testing::Reference> ref_;
  static inline std::optional<testing::TempDir> dir_;
  static inline std::string skip_;
};

TEST_F(ResNetAlign, Resnet18MatchesTorchvision) {
  ir::Module module = buildResnet18();
  module.weights = ref_->weights;
  ASSERT_NO_FATAL_FAILURE(testing::expectMatchesReference(
      module, *ref_, {.name = "resnet18", .batch = kBatch, .resolution = alignResolution()}));
}

TEST_F(ResNetAlign, WrongBatchNormStatisticIsDetected) {
  // The comparison must be able to fail: shift one BN's running mean a little.
  ir::Module module = buildResnet18();
  module.weights = ref_->weights;
  const std::string key = "layer3.1.bn1.running_mean";
  testing::shiftWeight(module.weights, key, 0.05f);
  testing::expectDetected(module, *ref_, 10);
}

TEST_F(ResNetAlign, MissingAndUnexpectedWeightsAreReported) {
  ir::Module module = buildResnet18();
  module.weights = ref_->weights;
  module.weights.erase("layer2.0.downsample.1.running_var");
  module.weights.set("layer2.0.downsample.2.weight", ir::Tensor(ir::DType::F32, {128}));
  Status s = ir::checkWeightBinding(module.graph, module.weights, /*strict=*/true);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("1 missing: layer2.0.downsample.1.running_var"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("1 unexpected: layer2.0.downsample.2.weight"), std::string::npos)
      << s.message();
}

// tools/torch2npz.py: a DataParallel checkpoint ({'state_dict': {'module.…'}}) and a
// torchvision model both become stores that bind strictly, without num_batches_tracked.
TEST_F(ResNetAlign, Torch2NpzConvertsCheckpointsAndTorchvisionModels) {
  const std::string py = KILN_PYTHON;
  const std::string tool = fmt::format("{}/tools/torch2npz.py", KILN_SOURCE_DIR);
  const fs::path& dir = dir_->path();
  const fs::path pth = dir / "ckpt.pth", fromPth = dir / "from_pth.npz",
                 fromTv = dir / "from_tv.npz";
  const std::string save = fmt::format(
      "{} -c \"import torch, torchvision; m = torchvision.models.resnet18(); "
      "torch.save({{'epoch': 3, 'state_dict': {{'module.' + k: v for k, v in "
      "m.state_dict().items()}}}}, '{}')\"",
      py, pth.string());
  auto [rc, out] = runCommand(save);
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) =
      runCommand(fmt::format("{} {} {} -o {}", py, tool, pth.string(), fromPth.string()));
  ASSERT_EQ(rc, 0) << out;
  // 11,689,512 params + 9,600 BN running stats; the 20 num_batches_tracked are dropped.
  EXPECT_NE(out.find("102 tensors, 11,699,112 elements"), std::string::npos) << out;
  std::tie(rc, out) = runCommand(
      fmt::format("{} {} --torchvision resnet18 --random-seed 3 -o {}", py, tool, fromTv.string()));
  ASSERT_EQ(rc, 0) << out;

  ir::Module module = buildResnet18();
  for (const fs::path& npz : {fromPth, fromTv}) {
    auto store = runtime::readNpz(npz.string());
    ASSERT_TRUE(store.isOk()) << store.message();
    EXPECT_FALSE(store->contains("bn1.num_batches_tracked"));
    Status s = ir::checkWeightBinding(module.graph, *store, /*strict=*/true);
    EXPECT_TRUE(s.isOk()) << npz << ": " << s.message();
  }
  // Neither input nor output may be silently accepted when both or none are given.
  std::tie(rc, out) = runCommand(fmt::format("{} {} -o {}", py, tool, (dir / "x.npz").string()));
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("give either a checkpoint file or --torchvision NAME"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace kiln
