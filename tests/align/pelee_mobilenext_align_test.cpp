// PeleeNet and MobileNeXt from the model registry, run on the reference backend, vs the
// PyTorch modules written from the same seed code (tests/align/torch_seed_models.py) on the
// same random weights (BN statistics randomized) and input.
//
// The input size is KILN_ALIGN_RES (default 64, batch 2: small enough for CI under ASan; for
// PeleeNet it must be 0 or 3 mod 4); KILN_ALIGN_RES=224 records a full-size run. Skips when
// /usr/bin/python3 lacks torch.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/module.h"
#include "models/registry.h"
#include "runtime/npy.h"
#include "tests/tolerance.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kBatch = 2;
// mobilenext_035 covers the width < 1 rules (stem 16 channels, last stage kept at 1280).
const std::vector<std::string> kModels{"peleenet", "mobilenext_100", "mobilenext_035"};

int64_t alignResolution() {
  const char* env = std::getenv("KILN_ALIGN_RES");
  if (!env || !*env) return 64;
  char* end = nullptr;
  const long v = std::strtol(env, &end, 10);
  KILN_ASSERT(*end == '\0' && v >= 32 && v <= 1024,
              "KILN_ALIGN_RES must be an integer in [32, 1024]");
  return v;
}

std::pair<int, std::string> runCommand(const std::string& cmd) {
  FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe)) out += buf;
  return {::pclose(pipe), out};
}

/// What torch_seed_models.py wrote for one model.
struct Reference {
  ir::WeightStore weights;
  ir::Tensor x, y;
  std::string summary;  // the script's "max|y| … f32_vs_f64 …"
};

class SeedModelAlign : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    refs_.emplace();
    const std::string py = KILN_PYTHON;
    if (runCommand(py + " -c 'import torch, numpy'").first != 0) {
      skip_ = py + " cannot import torch and numpy; no PyTorch reference";
      return;
    }
    // One python run for every model: importing torch is the slow part.
    dir_ = fs::temp_directory_path() / fmt::format("kiln_align_seed_{}", ::getpid());
    std::string cmd = fmt::format(
        "{} {}/tests/align/torch_seed_models.py --seed 0 --batch {} --resolution {} --out {} "
        "--model",
        py, KILN_SOURCE_DIR, kBatch, alignResolution(), dir_.string());
    for (const std::string& m : kModels) cmd += " " + m;
    auto [rc, out] = runCommand(cmd);
    ASSERT_EQ(rc, 0) << cmd << "\n" << out;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      const size_t space = line.find(' ');
      if (space != std::string::npos)
        (*refs_)[line.substr(0, space)].summary = line.substr(space + 1);
    }
    for (const std::string& m : kModels) {
      Reference& r = (*refs_)[m];
      const fs::path d = dir_ / m;
      auto weights = runtime::readNpz((d / "weights.npz").string());
      ASSERT_TRUE(weights.isOk()) << weights.message();
      r.weights = std::move(weights).value();
      auto x = runtime::readNpy((d / "x.npy").string());
      ASSERT_TRUE(x.isOk()) << x.message();
      r.x = std::move(x).value();
      auto y = runtime::readNpy((d / "y.npy").string());
      ASSERT_TRUE(y.isOk()) << y.message();
      r.y = std::move(y).value();
    }
  }

  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
    refs_.reset();
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(refs_.has_value());
    ASSERT_TRUE(refs_->count(GetParam())) << "the PyTorch reference was not produced";
    ASSERT_FALSE(ref().y.empty()) << "the PyTorch reference was not produced";
  }

  const Reference& ref() const { return refs_->at(GetParam()); }

  /// The registry model at the alignment size with the reference weights bound.
  ir::Module buildWithWeights() const {
    models::ModelConfig config;
    config.batch = kBatch;
    config.resolution = alignResolution();
    Expected<ir::Module> m = models::buildModel(GetParam(), config);
    KILN_ASSERT(m.isOk(), "model failed to build");
    ir::Module module = std::move(m).value();
    module.weights = ref().weights;
    return module;
  }

  ir::Tensor runReference(const ir::Module& module) const {
    Expected<std::vector<ir::Tensor>> out =
        backends::reference::run(module, std::span<const ir::Tensor>(&ref().x, 1));
    KILN_ASSERT(out.isOk(), "reference run failed");
    KILN_ASSERT(out->size() == 1);
    return (*out)[0];
  }

  /// max |got - y| over all logits, and max |y|.
  std::pair<double, double> compare(const ir::Tensor& got) const {
    double maxDiff = 0, maxRef = 0;
    for (int64_t i = 0; i < ref().y.numElements(); ++i) {
      maxRef = std::max(maxRef, std::abs(ref().y.at(i)));
      maxDiff = std::max(maxDiff, std::abs(got.at(i) - ref().y.at(i)));
    }
    return {maxDiff, maxRef};
  }

  static inline std::optional<std::map<std::string, Reference>> refs_;
  static inline std::string skip_;
  static inline fs::path dir_;
};

TEST_P(SeedModelAlign, MatchesThePyTorchReference) {
  ir::Module module = buildWithWeights();
  // Like PyTorch's strict load_state_dict: every name and shape matches, nothing left over.
  Status binding = ir::checkWeightBinding(module.graph, module.weights, /*strict=*/true);
  ASSERT_TRUE(binding.isOk()) << binding.message();
  const int64_t res = alignResolution();
  ASSERT_EQ(ref().x.shape(), (ir::Shape{kBatch, 3, res, res}));
  ASSERT_EQ(ref().y.shape(), (ir::Shape{kBatch, 1000}));

  Expected<std::vector<ir::Tensor>> out =
      backends::reference::run(module, std::span<const ir::Tensor>(&ref().x, 1));
  ASSERT_TRUE(out.isOk()) << out.message();
  ASSERT_EQ(out->size(), 1u);
  const ir::Tensor& logits = (*out)[0];
  ASSERT_EQ(logits.shape(), ref().y.shape());

  auto [maxDiff, maxRef] = compare(logits);
  const double tol = testing::modelTolerance(maxRef);
  RecordProperty("resolution", static_cast<int>(res));
  RecordProperty("max_abs_diff", fmt::format("{:.3g}", maxDiff));
  RecordProperty("max_abs_ref", fmt::format("{:.6g}", maxRef));
  std::fprintf(stderr,
               "%s @%lldx%lld batch %lld: max|kiln - torch| = %.3g, max|torch| = %.4g, "
               "tolerance %.3g (torch: %s)\n",
               GetParam().c_str(), static_cast<long long>(res), static_cast<long long>(res),
               static_cast<long long>(kBatch), maxDiff, maxRef, tol, ref().summary.c_str());
  // A reference that is all zeros would make the comparison vacuous.
  EXPECT_GT(maxRef, 0.1);
  EXPECT_LE(maxDiff, tol) << "max|y| = " << maxRef;
}

TEST_P(SeedModelAlign, WrongBatchNormStatisticIsDetected) {
  // The comparison must be able to fail: shift one BN's running mean deep in the net (for
  // MobileNeXt, inside a block whose output also feeds an identity shortcut).
  ir::Module module = buildWithWeights();
  const std::string key = GetParam() == "peleenet"
                              ? "features.denseblock3.denselayer5.branch2b.norm.running_mean"
                              : "features.14.conv.6.running_mean";
  ASSERT_NE(module.weights.find(key), nullptr) << key;
  ir::Tensor mean = module.weights.find(key)->clone();
  for (float& v : mean.span<float>()) v += 0.05f;
  module.weights.set(key, mean);
  auto [maxDiff, maxRef] = compare(runReference(module));
  EXPECT_GT(maxDiff, 10 * testing::modelTolerance(maxRef)) << "max|y| = " << maxRef;
}

INSTANTIATE_TEST_SUITE_P(Seed, SeedModelAlign, ::testing::ValuesIn(kModels),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kiln
