// canonicalize keeps the math: every canonicalize golden input (and the default-pipeline
// ones) runs on the reference backend before and after the pass, on random inputs with
// random weights, and the outputs must agree exactly — or within kF32 when the swish pattern
// fired (swish(x) and x * sigmoid(x) round differently; every other rewrite is exact).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/module.h"
#include "ir/printer.h"
#include "passes/canonicalize.h"
#include "tests/passes/pass_test_util.h"
#include "tests/tolerance.h"

namespace kiln::passes {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> graphFiles() {
  std::vector<fs::path> files;
  const fs::path root = fs::path(KILN_SOURCE_DIR) / "tests" / "passes" / "golden";
  for (const char* dir : {"canonicalize", "default"}) {
    if (!fs::exists(root / dir)) continue;
    for (const auto& e : fs::directory_iterator(root / dir)) {
      const std::string name = e.path().filename().string();
      if (name.ends_with(".kir") && !name.ends_with(".expected.kir")) files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

/// Uniform values in [-8, 8]: both sides of relu6's and clip's bounds.
ir::Tensor randomInput(const ir::TensorType& type, std::mt19937& rng) {
  ir::Tensor t(type.dtype, type.shape.bind(2), type.layout);
  std::uniform_real_distribution<float> dist(-8.0f, 8.0f);
  for (float& v : t.span<float>()) v = dist(rng);
  return t;
}

::testing::AssertionResult allClose(const ir::Tensor& got, const ir::Tensor& want,
                                    kiln::testing::Tolerance tol) {
  if (got.type() != want.type())
    return ::testing::AssertionFailure() << "type " << got.type().str() << " vs " << want.type().str();
  for (int64_t i = 0; i < want.numElements(); ++i) {
    const double a = got.at(i), b = want.at(i);
    if (!(std::abs(a - b) <= tol.atol + tol.rtol * std::abs(b)))
      return ::testing::AssertionFailure() << "element " << i << ": " << a << " vs " << b;
  }
  return ::testing::AssertionSuccess();
}

class CanonicalizeNumeric : public ::testing::TestWithParam<fs::path> {};

TEST_P(CanonicalizeNumeric, SameOutputsBeforeAndAfter) {
  ir::Module before = testing::parseModule(testing::readFile(GetParam()), GetParam().string());
  ASSERT_FALSE(HasFailure());
  before.weights = ir::WeightStore();
  ir::initMissingWeights(before.graph, before.weights, /*seed=*/17);
  ir::Module after = before.clone();
  Canonicalize pass;
  Status st = pass.run(after);
  ASSERT_TRUE(st.isOk()) << st.message();

  const kiln::testing::Tolerance tol =
      pass.stats().count("swish") ? kiln::testing::kF32 : kiln::testing::kExact;
  for (uint32_t seed : {1u, 2u, 3u}) {
    std::mt19937 rng(seed);
    std::vector<ir::Tensor> inputs;
    for (const ir::Value* v : before.graph.inputs()) inputs.push_back(randomInput(v->type(), rng));
    Expected<std::vector<ir::Tensor>> want = backends::reference::run(before, inputs);
    ASSERT_TRUE(want.isOk()) << want.message();
    Expected<std::vector<ir::Tensor>> got = backends::reference::run(after, inputs);
    ASSERT_TRUE(got.isOk()) << got.message() << "\n" << ir::printGraph(after.graph);
    ASSERT_EQ(got->size(), want->size());
    for (size_t i = 0; i < want->size(); ++i)
      EXPECT_TRUE(allClose((*got)[i], (*want)[i], tol))
          << "output " << i << " of " << GetParam() << " after canonicalize:\n"
          << ir::printGraph(after.graph);
  }
}

INSTANTIATE_TEST_SUITE_P(Goldens, CanonicalizeNumeric, ::testing::ValuesIn(graphFiles()),
                         [](const ::testing::TestParamInfo<fs::path>& info) {
                           std::string name = info.param.parent_path().filename().string() + "_" +
                                              info.param.stem().string();
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

// The test can fail: a wrong rewrite (clip(0,6) → relu, dropping the 6) is caught.
TEST(CanonicalizeNumericSelfCheck, AWrongRewriteIsCaught) {
  ir::Module before = testing::parseModule(R"(graph @g {
  input %x : f32[N,4]{nc}
  %0 = relu6(%x) : f32[N,4]{nc}
  output %0
}
)");
  ir::Module after = testing::parseModule(R"(graph @g {
  input %x : f32[N,4]{nc}
  %0 = relu(%x) : f32[N,4]{nc}
  output %0
}
)");
  std::mt19937 rng(1);
  std::vector<ir::Tensor> inputs{randomInput(before.graph.inputs()[0]->type(), rng)};
  Expected<std::vector<ir::Tensor>> want = backends::reference::run(before, inputs);
  Expected<std::vector<ir::Tensor>> got = backends::reference::run(after, inputs);
  ASSERT_TRUE(want.isOk() && got.isOk());
  EXPECT_FALSE(allClose((*got)[0], (*want)[0], kiln::testing::kF32));
}

}  // namespace
}  // namespace kiln::passes
