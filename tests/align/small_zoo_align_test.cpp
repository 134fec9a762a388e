// squeezenet1_0/1_1, mobilenet_v2, densenet121, resnet34…152 (torchvision) and resnet20 (the PyTorch module
// in torch_models.py) from the model registry, run on the reference backend, vs PyTorch on the
// same random weights (BN statistics randomized) and input.
//
// Each model runs at a small resolution (batch 2) so the suite fits CI under ASan;
// KILN_ALIGN_RES=224 runs all of them at that size for a recorded full-size run. Each test
// also shifts one weight slightly and checks the comparison notices. Skips when
// /usr/bin/python3 lacks torch.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <string>

#include "backends/reference/reference.h"
#include "ir/module.h"
#include "models/registry.h"
#include "runtime/npy.h"
#include "tests/tolerance.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

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

/// KILN_ALIGN_RES, or `fallback` when it is unset.
int64_t alignResolution(int64_t fallback) {
  const char* env = std::getenv("KILN_ALIGN_RES");
  if (!env || !*env) return fallback;
  char* end = nullptr;
  const long v = std::strtol(env, &end, 10);
  KILN_ASSERT(*end == '\0' && v >= 28 && v <= 1024,
              "KILN_ALIGN_RES must be an integer in [28, 1024]");
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

/// max |got - want| and max |want|.
std::pair<double, double> compare(const ir::Tensor& got, const ir::Tensor& want) {
  double maxDiff = 0, maxRef = 0;
  for (int64_t i = 0; i < want.numElements(); ++i) {
    maxRef = std::max(maxRef, std::abs(want.at(i)));
    maxDiff = std::max(maxDiff, std::abs(got.at(i) - want.at(i)));
  }
  return {maxDiff, maxRef};
}

class SmallZooAlign : public ::testing::TestWithParam<AlignCase> {
 protected:
  void SetUp() override {
    const std::string py = KILN_PYTHON;
    if (runCommand(py + " -c 'import torch, torchvision, numpy'").first != 0)
      GTEST_SKIP() << py << " cannot import torch, torchvision and numpy; no PyTorch reference";
    dir_ =
        fs::temp_directory_path() / fmt::format("kiln_align_{}_{}", GetParam().model, ::getpid());
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_P(SmallZooAlign, MatchesPyTorch) {
  const AlignCase& c = GetParam();
  const int64_t res = alignResolution(c.resolution);
  const std::string cmd = fmt::format(
      "{} {}/tests/align/torch_models.py --model {} --seed 0 --batch {} --resolution {} --out {} "
      "{}",
      KILN_PYTHON, KILN_SOURCE_DIR, c.model, kBatch, res, dir_.string(), c.torchArgs);
  auto [rc, torchSummary] = runCommand(cmd);
  ASSERT_EQ(rc, 0) << cmd << "\n" << torchSummary;
  torchSummary.erase(torchSummary.find_last_not_of('\n') + 1);
  auto weights = runtime::readNpz((dir_ / "weights.npz").string());
  ASSERT_TRUE(weights.isOk()) << weights.message();
  auto x = runtime::readNpy((dir_ / "x.npy").string());
  ASSERT_TRUE(x.isOk()) << x.message();
  auto y = runtime::readNpy((dir_ / "y.npy").string());
  ASSERT_TRUE(y.isOk()) << y.message();

  const models::ModelInfo* info = models::findModel(c.model);
  ASSERT_NE(info, nullptr);
  models::ModelConfig config = models::defaultConfig(*info);
  config.batch = kBatch;
  config.resolution = res;
  Expected<ir::Module> built = models::buildModel(c.model, config);
  ASSERT_TRUE(built.isOk()) << built.message();
  ir::Module module = std::move(built).value();
  module.weights = *weights;
  // Like PyTorch's strict load_state_dict: every name and shape matches, nothing left over.
  Status binding = ir::checkWeightBinding(module.graph, module.weights, /*strict=*/true);
  ASSERT_TRUE(binding.isOk()) << binding.message();
  ASSERT_EQ(x->shape(), (ir::Shape{kBatch, config.inChannels, res, res}));
  ASSERT_EQ(y->shape(), (ir::Shape{kBatch, config.numClasses}));

  const auto start = std::chrono::steady_clock::now();
  Expected<std::vector<ir::Tensor>> out =
      backends::reference::run(module, std::span<const ir::Tensor>(&*x, 1));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(out.isOk()) << out.message();
  ASSERT_EQ(out->size(), 1u);
  ASSERT_EQ((*out)[0].shape(), y->shape());
  auto [maxDiff, maxRef] = compare((*out)[0], *y);
  const double tol = testing::modelTolerance(maxRef);
  RecordProperty("resolution", static_cast<int>(res));
  RecordProperty("max_abs_diff", fmt::format("{:.3g}", maxDiff));
  RecordProperty("max_abs_ref", fmt::format("{:.6g}", maxRef));
  std::fprintf(stderr,
               "%s @%lldx%lld batch %lld: max|kiln - torch| = %.3g, max|torch| = %.4g, "
               "tolerance %.3g, reference run %.1f s (torch: %s)\n",
               std::string(c.model).c_str(), static_cast<long long>(res),
               static_cast<long long>(res), static_cast<long long>(kBatch), maxDiff, maxRef, tol,
               seconds, torchSummary.c_str());
  // Logits that are all (near) zero would make the comparison vacuous.
  EXPECT_GT(maxRef, 0.01);
  EXPECT_LE(maxDiff, tol) << "max|y| = " << maxRef;

  // The comparison must be able to fail: shift one weight near the input a little and run
  // again (this also shows the logits depend on the early layers).
  const std::string key(c.perturbed);
  const ir::Tensor* original = module.weights.find(key);
  ASSERT_NE(original, nullptr) << key;
  ir::Tensor shifted = original->clone();
  for (float& v : shifted.span<float>()) v += c.shift;
  module.weights.set(key, shifted);
  out = backends::reference::run(module, std::span<const ir::Tensor>(&*x, 1));
  ASSERT_TRUE(out.isOk()) << out.message();
  const double perturbedDiff = compare((*out)[0], *y).first;
  EXPECT_GT(perturbedDiff, 10 * tol) << key << " shifted by " << c.shift;
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
