// ResNet-vd, SE-ResNet-vd and ResNet50-vc from the model registry, run on the reference
// backend, vs the PyTorch reference modules (tests/align/torch_resnet_vd.py, timm's structure)
// on the same random weights (He fan-in convs, BN statistics randomized) and input.
//
// The input size is KILN_ALIGN_RES (default 64, batch 2: small enough for CI under ASan);
// KILN_ALIGN_RES=224 records a full-size run (--gtest_filter='*resnet50_vd*' for one model).
// At 64 every feature map the shortcut pools is even; resnet18_vd_72 runs at 72 whatever
// KILN_ALIGN_RES says, where layers 3 and 4 pool 9x9 and 5x5 maps and only ceil_mode pooling
// keeps the shortcut as large as the 3x3/s2 branch. Skips when /usr/bin/python3 lacks torch.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <ostream>
#include <set>
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

int64_t alignResolution() {
  const char* env = std::getenv("KILN_ALIGN_RES");
  if (!env || !*env) return 64;
  char* end = nullptr;
  const long v = std::strtol(env, &end, 10);
  KILN_ASSERT(*end == '\0' && v >= 32 && v <= 1024,
              "KILN_ALIGN_RES must be an integer in [32, 1024]");
  return v;
}

struct AlignCase {
  std::string model;
  int64_t resolution = 0;  // 0: KILN_ALIGN_RES

  int64_t res() const { return resolution ? resolution : alignResolution(); }
  /// The reference's directory and summary key, `model@res`.
  std::string key() const { return fmt::format("{}@{}", model, res()); }
};

// gtest prints a failing test's parameter with this.
void PrintTo(const AlignCase& c, std::ostream* os) {
  *os << c.key();
}

const std::vector<AlignCase> kCases{
    {"resnet18_vd"},    {"se_resnet18_vd"}, {"resnet50_vd"},
    {"se_resnet50_vd"}, {"resnet50_vc"},    {"resnet18_vd", 72},
};

std::pair<int, std::string> runCommand(const std::string& cmd) {
  FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe)) out += buf;
  return {::pclose(pipe), out};
}

/// What torch_resnet_vd.py wrote for one case.
struct Reference {
  ir::WeightStore weights;
  ir::Tensor x, y;
  std::string summary;  // the script's "max|y| … f32_vs_f64 …"
};

class ResNetVdAlign : public ::testing::TestWithParam<AlignCase> {
 protected:
  static void SetUpTestSuite() {
    refs_.emplace();
    const std::string py = KILN_PYTHON;
    if (runCommand(py + " -c 'import torch, numpy'").first != 0) {
      skip_ = py + " cannot import torch and numpy; no PyTorch reference";
      return;
    }
    // One python run for every case that will run (ctest runs one test per process):
    // importing torch is the slow part.
    const std::vector<AlignCase> cases = casesToRun();
    if (cases.empty()) return;
    dir_ = fs::temp_directory_path() / fmt::format("kiln_align_resnet_vd_{}", ::getpid());
    std::string cmd = fmt::format(
        "{} {}/tests/align/torch_resnet_vd.py --seed 0 --batch {} --resolution {} --out {} "
        "--model",
        py, KILN_SOURCE_DIR, kBatch, alignResolution(), dir_.string());
    for (const AlignCase& c : cases) cmd += fmt::format(" {}:{}", c.model, c.res());
    auto [rc, out] = runCommand(cmd);
    ASSERT_EQ(rc, 0) << cmd << "\n" << out;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      const size_t space = line.find(' ');
      if (space != std::string::npos)
        (*refs_)[line.substr(0, space)].summary = line.substr(space + 1);
    }
    for (const AlignCase& c : cases) {
      Reference& r = (*refs_)[c.key()];
      const fs::path d = dir_ / c.key();
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

  /// The cases of the tests the filter selects in this suite (gtest prints a case's
  /// parameter as its key(), see PrintTo).
  static std::vector<AlignCase> casesToRun() {
    const ::testing::TestSuite* suite = ::testing::UnitTest::GetInstance()->current_test_suite();
    std::set<std::string> keys;
    for (int i = 0; suite && i < suite->total_test_count(); ++i) {
      const ::testing::TestInfo* t = suite->GetTestInfo(i);
      if (t->should_run() && t->value_param()) keys.insert(t->value_param());
    }
    std::vector<AlignCase> cases;
    for (const AlignCase& c : kCases)
      if (keys.count(c.key())) cases.push_back(c);
    return cases;
  }

  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
    refs_.reset();
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(refs_.has_value());
    ASSERT_TRUE(refs_->count(GetParam().key())) << "the PyTorch reference was not produced";
    ASSERT_FALSE(ref().y.empty()) << "the PyTorch reference was not produced";
  }

  const Reference& ref() const { return refs_->at(GetParam().key()); }

  /// The registry model at the case's size with the reference weights bound.
  Expected<ir::Module> buildWithWeights() const {
    models::ModelConfig config;
    config.batch = kBatch;
    config.resolution = GetParam().res();
    KILN_ASSIGN_OR_RETURN(ir::Module module, models::buildModel(GetParam().model, config));
    module.weights = ref().weights;
    return module;
  }

  ir::Tensor runReference(const ir::Module& module) const {
    Expected<std::vector<ir::Tensor>> out =
        backends::reference::run(module, std::span<const ir::Tensor>(&ref().x, 1));
    KILN_ASSERT(out.isOk(), "reference run failed");
    KILN_ASSERT(out->size() == 1 && (*out)[0].shape() == ref().y.shape());
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

TEST_P(ResNetVdAlign, MatchesThePyTorchReference) {
  Expected<ir::Module> module = buildWithWeights();
  ASSERT_TRUE(module.isOk()) << module.message();
  // Like PyTorch's strict load_state_dict: every name and shape matches, nothing left over.
  Status binding = ir::checkWeightBinding(module->graph, module->weights, /*strict=*/true);
  ASSERT_TRUE(binding.isOk()) << binding.message();
  const int64_t res = GetParam().res();
  ASSERT_EQ(ref().x.shape(), (ir::Shape{kBatch, 3, res, res}));
  ASSERT_EQ(ref().y.shape(), (ir::Shape{kBatch, 1000}));

  Expected<std::vector<ir::Tensor>> out =
      backends::reference::run(*module, std::span<const ir::Tensor>(&ref().x, 1));
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
               GetParam().model.c_str(), static_cast<long long>(res), static_cast<long long>(res),
               static_cast<long long>(kBatch), maxDiff, maxRef, tol, ref().summary.c_str());
  // A reference that is all zeros would make the comparison vacuous.
  EXPECT_GT(maxRef, 0.1);
  EXPECT_LE(maxDiff, tol) << "max|y| = " << maxRef;
}

TEST_P(ResNetVdAlign, WrongStemStatisticIsDetected) {
  // The comparison must see the first layer: shift the running mean of the BN right after the
  // stem's first conv (He fan-in weights keep its effect alive through the depth).
  Expected<ir::Module> module = buildWithWeights();
  ASSERT_TRUE(module.isOk()) << module.message();
  const std::string key = "conv1.1.running_mean";
  ASSERT_NE(module->weights.find(key), nullptr) << key;
  ir::Tensor mean = module->weights.find(key)->clone();
  for (float& v : mean.span<float>()) v += 0.05f;
  module->weights.set(key, mean);
  auto [maxDiff, maxRef] = compare(runReference(*module));
  // Seen at 64x64: 230-330x the tolerance (resnet18_vd 0.78 vs 0.0032).
  EXPECT_GT(maxDiff, 10 * testing::modelTolerance(maxRef)) << "max|y| = " << maxRef;
}

TEST_P(ResNetVdAlign, SubsamplingShortcutIsDetected) {
  // The vd shortcut averages each 2x2 window; torchvision's strided 1x1 conv sees only its top
  // left pixel. Make every shortcut pool a 1x1/s2 subsampling (same output size) and the
  // logits must move well past the tolerance.
  Expected<ir::Module> module = buildWithWeights();
  ASSERT_TRUE(module.isOk()) << module.message();
  int pools = 0;
  for (const auto& n : module->graph.nodes()) {
    if (n->kind() != ir::OpKind::AvgPool2d) continue;
    ir::AvgPool2dAttrs a = n->attrs<ir::AvgPool2dAttrs>();
    a.kernel = {1, 1};
    n->setAttrs(a);
    ++pools;
  }
  if (GetParam().model == "resnet50_vc") {
    EXPECT_EQ(pools, 0) << "resnet50_vc's shortcut is a strided 1x1 conv, not a pool";
    return;
  }
  ASSERT_EQ(pools, 3);
  auto [maxDiff, maxRef] = compare(runReference(*module));
  // Seen at 64x64: 1400-2500x the tolerance (resnet50_vd 98 vs 0.068).
  EXPECT_GT(maxDiff, 10 * testing::modelTolerance(maxRef)) << "max|y| = " << maxRef;
}

INSTANTIATE_TEST_SUITE_P(Torch, ResNetVdAlign, ::testing::ValuesIn(kCases), [](const auto& info) {
  return info.param.resolution ? fmt::format("{}_{}", info.param.model, info.param.resolution)
                               : info.param.model;
});

}  // namespace
}  // namespace kiln
