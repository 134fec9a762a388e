// resnet18 from the model registry, run on the reference backend, vs PyTorch (torchvision) on
// the same random weights (BN statistics randomized) and input.
//
// The input size is KILN_ALIGN_RES (default 64, batch 2: small enough for CI under ASan);
// KILN_ALIGN_RES=224 records a full-size run. Skips when /usr/bin/python3 lacks torch.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <tuple>

#include "backends/reference/reference.h"
#include "ir/module.h"
#include "models/registry.h"
#include "runtime/npy.h"
#include "tests/tolerance.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kBatch = 2;

int64_t alignResolution() {
  const char* env = std::getenv("KILN_ALIGN_RES");
  if (!env || !*env) return 64;
  char* end = nullptr;
  const long v = std::strtol(env, &end, 10);
  KILN_ASSERT(*end == '\0' && v >= 32 && v <= 1024,
              "KILN_ALIGN_RES must be an integer in [32, 1024]");
  return v;
}

/// Runs a shell command; returns its exit status and stdout+stderr.
std::pair<int, std::string> runCommand(const std::string& cmd) {
  FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe)) out += buf;
  return {::pclose(pipe), out};
}

/// What torch_models.py wrote, loaded once for the whole suite.
struct TorchReference {
  std::string skip;  // non-empty: why the suite skips
  ir::WeightStore weights;
  ir::Tensor x, y;
  std::string summary;  // the script's "max|y| … f32_vs_f64 …" line
};

class ResNetAlign : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ref_.emplace();
    const std::string py = KILN_PYTHON;
    if (runCommand(py + " -c 'import torch, torchvision, numpy'").first != 0) {
      ref_->skip = py + " cannot import torch, torchvision and numpy; no PyTorch reference";
      return;
    }
    dir_ = fs::temp_directory_path() / fmt::format("kiln_align_resnet18_{}", ::getpid());
    const std::string cmd = fmt::format(
        "{} {}/tests/align/torch_models.py --model resnet18 --seed 0 --batch {} "
        "--resolution {} --out {}",
        py, KILN_SOURCE_DIR, kBatch, alignResolution(), dir_.string());
    auto [rc, out] = runCommand(cmd);
    ASSERT_EQ(rc, 0) << cmd << "\n" << out;
    ref_->summary = out.substr(0, out.find_last_not_of('\n') + 1);
    auto weights = runtime::readNpz((dir_ / "weights.npz").string());
    ASSERT_TRUE(weights.isOk()) << weights.message();
    ref_->weights = std::move(weights).value();
    auto x = runtime::readNpy((dir_ / "x.npy").string());
    ASSERT_TRUE(x.isOk()) << x.message();
    ref_->x = std::move(x).value();
    auto y = runtime::readNpy((dir_ / "y.npy").string());
    ASSERT_TRUE(y.isOk()) << y.message();
    ref_->y = std::move(y).value();
  }

  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
    ref_.reset();
  }

  void SetUp() override {
    ASSERT_TRUE(ref_.has_value());
    if (!ref_->skip.empty()) GTEST_SKIP() << ref_->skip;
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

  /// Runs `module` on the reference input; returns the logits.
  static ir::Tensor runReference(const ir::Module& module) {
    Expected<std::vector<ir::Tensor>> out =
        backends::reference::run(module, std::span<const ir::Tensor>(&ref_->x, 1));
    KILN_ASSERT(out.isOk(), "reference run failed");
    KILN_ASSERT(out->size() == 1);
    return (*out)[0];
  }

  /// max |got - y| over all logits, and max |y|.
  static std::pair<double, double> compare(const ir::Tensor& got) {
    double maxDiff = 0, maxRef = 0;
    for (int64_t i = 0; i < ref_->y.numElements(); ++i) {
      maxRef = std::max(maxRef, std::abs(ref_->y.at(i)));
      maxDiff = std::max(maxDiff, std::abs(got.at(i) - ref_->y.at(i)));
    }
    return {maxDiff, maxRef};
  }

  static inline std::optional<TorchReference> ref_;
  static inline fs::path dir_;
};

TEST_F(ResNetAlign, Resnet18MatchesTorchvision) {
  ir::Module module = buildResnet18();
  module.weights = ref_->weights;
  // Like PyTorch's strict load_state_dict: every name and shape matches, nothing left over.
  Status binding = ir::checkWeightBinding(module.graph, module.weights, /*strict=*/true);
  ASSERT_TRUE(binding.isOk()) << binding.message();

  ASSERT_EQ(ref_->x.shape(), (ir::Shape{kBatch, 3, alignResolution(), alignResolution()}));
  ASSERT_EQ(ref_->y.shape(), (ir::Shape{kBatch, 1000}));
  Expected<std::vector<ir::Tensor>> out =
      backends::reference::run(module, std::span<const ir::Tensor>(&ref_->x, 1));
  ASSERT_TRUE(out.isOk()) << out.message();
  ASSERT_EQ(out->size(), 1u);
  const ir::Tensor& logits = (*out)[0];
  ASSERT_EQ(logits.shape(), ref_->y.shape());
  ASSERT_EQ(logits.dtype(), ir::DType::F32);

  auto [maxDiff, maxRef] = compare(logits);
  const double tol = testing::modelTolerance(maxRef);
  RecordProperty("resolution", static_cast<int>(alignResolution()));
  RecordProperty("max_abs_diff", fmt::format("{:.3g}", maxDiff));
  RecordProperty("max_abs_ref", fmt::format("{:.6g}", maxRef));
  std::fprintf(stderr,
               "resnet18 @%lldx%lld batch %lld: max|kiln - torch| = %.3g, max|torch| = %.4g, "
               "tolerance %.3g (torch: %s)\n",
               static_cast<long long>(alignResolution()), static_cast<long long>(alignResolution()),
               static_cast<long long>(kBatch), maxDiff, maxRef, tol, ref_->summary.c_str());
  // A reference that is all zeros would make the comparison vacuous.
  EXPECT_GT(maxRef, 0.1);
  EXPECT_LE(maxDiff, tol) << "max|y| = " << maxRef;
}

TEST_F(ResNetAlign, WrongBatchNormStatisticIsDetected) {
  // The comparison must be able to fail: shift one BN's running mean a little.
  ir::Module module = buildResnet18();
  module.weights = ref_->weights;
  const std::string key = "layer3.1.bn1.running_mean";
  ir::Tensor mean = module.weights.find(key)->clone();
  for (float& v : mean.span<float>()) v += 0.05f;
  module.weights.set(key, mean);
  auto [maxDiff, maxRef] = compare(runReference(module));
  EXPECT_GT(maxDiff, 10 * testing::modelTolerance(maxRef)) << "max|y| = " << maxRef;
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
  const fs::path pth = dir_ / "ckpt.pth", fromPth = dir_ / "from_pth.npz",
                 fromTv = dir_ / "from_tv.npz";
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
  std::tie(rc, out) = runCommand(fmt::format("{} {} -o {}", py, tool, (dir_ / "x.npz").string()));
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("give either a checkpoint file or --torchvision NAME"), std::string::npos)
      << out;
}

}  // namespace
}  // namespace kiln
