// EfficientNet from the model registry, run on the reference backend, vs torchvision on the
// same random weights (BN statistics randomized) and input: efficientnet_b0 (B0-B4 share
// BatchNorm eps 1e-5) and efficientnet_b5 (width 1.6, depth 2.2, eps 1e-3).
//
// The input size is KILN_ALIGN_RES (default 64, batch 1: small enough for CI under ASan);
// KILN_ALIGN_RES=224 records a full-size run (--gtest_filter=*efficientnet_b0 for B0 alone).
// Skips when /usr/bin/python3 lacks torch.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
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

constexpr int64_t kBatch = 1;

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

/// What torch_models.py wrote for one model; `error` set when it could not be produced.
struct Reference {
  std::string error;
  ir::WeightStore weights;
  ir::Tensor x, y;
  std::string summary;  // the script's "max|y| … f32_vs_f64 …"
};

class EfficientNetAlign : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    const std::string py = KILN_PYTHON;
    if (runCommand(py + " -c 'import torch, torchvision, numpy'").first != 0)
      skip_ = py + " cannot import torch, torchvision and numpy; no PyTorch reference";
  }

  static void TearDownTestSuite() {
    for (const fs::path& d : dirs_) fs::remove_all(d);
    dirs_.clear();
    refs_.clear();
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(ref().error.empty()) << ref().error;
  }

  /// The torchvision reference for GetParam(), produced on first use.
  static const Reference& load(const std::string& model) {
    auto [it, inserted] = refs_.try_emplace(model);
    Reference& r = it->second;
    if (!inserted) return r;
    const fs::path dir =
        fs::temp_directory_path() / fmt::format("kiln_align_{}_{}", model, ::getpid());
    dirs_.push_back(dir);
    const std::string cmd = fmt::format(
        "{} {}/tests/align/torch_models.py --model {} --seed 0 --batch {} --resolution {} "
        "--out {}",
        KILN_PYTHON, KILN_SOURCE_DIR, model, kBatch, alignResolution(), dir.string());
    auto [rc, out] = runCommand(cmd);
    if (rc != 0) {
      r.error = cmd + "\n" + out;
      return r;
    }
    r.summary = out.substr(0, out.find_last_not_of('\n') + 1);
    auto weights = runtime::readNpz((dir / "weights.npz").string());
    auto x = runtime::readNpy((dir / "x.npy").string());
    auto y = runtime::readNpy((dir / "y.npy").string());
    if (!weights.isOk() || !x.isOk() || !y.isOk()) {
      r.error = "cannot read the reference in " + dir.string();
      return r;
    }
    r.weights = std::move(weights).value();
    r.x = std::move(x).value();
    r.y = std::move(y).value();
    return r;
  }

  const Reference& ref() const { return load(GetParam()); }

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

  /// Runs `module` on the reference input; max |logits - y| and max |y|.
  std::pair<double, double> runAndCompare(const ir::Module& module) const {
    Expected<std::vector<ir::Tensor>> out =
        backends::reference::run(module, std::span<const ir::Tensor>(&ref().x, 1));
    KILN_ASSERT(out.isOk(), "reference run failed");
    KILN_ASSERT(out->size() == 1 && (*out)[0].shape() == ref().y.shape());
    const ir::Tensor& got = (*out)[0];
    double maxDiff = 0, maxRef = 0;
    for (int64_t i = 0; i < ref().y.numElements(); ++i) {
      maxRef = std::max(maxRef, std::abs(ref().y.at(i)));
      maxDiff = std::max(maxDiff, std::abs(got.at(i) - ref().y.at(i)));
    }
    return {maxDiff, maxRef};
  }

  static inline std::map<std::string, Reference> refs_;
  static inline std::vector<fs::path> dirs_;
  static inline std::string skip_;
};

TEST_P(EfficientNetAlign, MatchesTorchvision) {
  ir::Module module = buildWithWeights();
  // Like PyTorch's strict load_state_dict: every name and shape matches, nothing left over.
  Status binding = ir::checkWeightBinding(module.graph, module.weights, /*strict=*/true);
  ASSERT_TRUE(binding.isOk()) << binding.message();
  const int64_t res = alignResolution();
  ASSERT_EQ(ref().x.shape(), (ir::Shape{kBatch, 3, res, res}));
  ASSERT_EQ(ref().y.shape(), (ir::Shape{kBatch, 1000}));

  auto [maxDiff, maxRef] = runAndCompare(module);
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

TEST_P(EfficientNetAlign, WrongSqueezeExcitationBiasIsDetected) {
  // The comparison must be able to fail: shift the SE gate bias of one late block (a
  // sigmoid input, so the change reaches the logits only through the channel scale).
  ir::Module module = buildWithWeights();
  const std::string key = "features.6.1.block.2.fc2.bias";
  ASSERT_NE(module.weights.find(key), nullptr) << key;
  ir::Tensor bias = module.weights.find(key)->clone();
  for (float& v : bias.span<float>()) v += 1.0f;
  module.weights.set(key, bias);
  auto [maxDiff, maxRef] = runAndCompare(module);
  // Seen at 64x64: 3.7e-4 (b0), 4.6e-4 (b5), against a tolerance of 1e-4 (randomly
  // initialized EfficientNets have small logits, max|y| < 1, so the tolerance is absolute).
  EXPECT_GT(maxDiff, 2 * testing::modelTolerance(maxRef)) << "max|y| = " << maxRef;
}

TEST_P(EfficientNetAlign, WrongBatchNormEpsilonIsDetected) {
  // torchvision uses eps 1e-5 for B0-B4 and 1e-3 for B5-B7; the other one must not pass.
  ir::Module module = buildWithWeights();
  for (const auto& n : module.graph.nodes()) {
    if (n->kind() != ir::OpKind::BatchNorm) continue;
    const double eps = n->attrs<ir::BatchNormAttrs>().epsilon;
    n->setAttrs(ir::BatchNormAttrs{eps == 1e-3 ? 1e-5 : 1e-3});
  }
  auto [maxDiff, maxRef] = runAndCompare(module);
  // Seen at 64x64: 4.0e-4 (b0), 9.2e-4 (b5), against a tolerance of 1e-4.
  EXPECT_GT(maxDiff, 2 * testing::modelTolerance(maxRef)) << "max|y| = " << maxRef;
}

INSTANTIATE_TEST_SUITE_P(Torchvision, EfficientNetAlign,
                         ::testing::Values("efficientnet_b0", "efficientnet_b5"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace kiln
