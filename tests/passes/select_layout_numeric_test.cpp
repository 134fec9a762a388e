// select-layout keeps the math exactly: small registry models (32x32, random weights) and the
// golden cases run on the reference backend before and after the pass (which computes on
// row-major copies of blocked operands, so every value must come out bit-identical), and the
// pass really blocked something and left no padded layout behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/graph.h"
#include "ir/module.h"
#include "models/registry.h"
#include "passes/autodiff.h"
#include "passes/select_layout.h"
#include "tests/passes/pass_test_util.h"
#include "tests/tolerance.h"

namespace kiln::passes {
namespace {

std::vector<ir::Tensor> randomInputs(const ir::Graph& g, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<ir::Tensor> inputs;
  for (const ir::Value* v : g.inputs()) {
    ir::Tensor t(v->type().dtype, v->type().shape.bind(2), v->type().layout);
    if (t.dtype() == ir::DType::I64) {  // a train step's labels: class ids valid for any K >= 2
      for (int64_t i = 0; i < t.numElements(); ++i) t.data<int64_t>()[i] = i % 2;
    } else {
      for (float& x : t.span<float>()) x = dist(rng);
    }
    inputs.push_back(std::move(t));
  }
  return inputs;
}

struct Counts {
  int blocked = 0, reorders = 0, padded = 0;
};

Counts count(const ir::Graph& g) {
  Counts c;
  for (const auto& n : g.nodes()) {
    if (n->kind() == ir::OpKind::Reorder) ++c.reorders;
    for (const ir::Value* r : n->results()) {
      const auto [dim, block] = ir::layoutBlock(r->type().layout);
      if (dim < 0) continue;
      ++c.blocked;
      if (r->type().shape[dim] % block != 0) ++c.padded;
    }
  }
  return c;
}

/// Runs `before` and a copy after select-layout; outputs must be identical.
void expectSameOutputs(const ir::Module& before, const LayoutPolicy* policy,
                       Counts* counts = nullptr) {
  ir::Module after = before.clone();
  SelectLayout pass(policy);
  Status st = pass.run(after);
  ASSERT_TRUE(st.isOk()) << st.message();
  const Counts c = count(after.graph);
  EXPECT_EQ(c.padded, 0) << "select-layout made a padded layout";
  EXPECT_EQ(c.reorders, pass.numReorders());
  if (counts) *counts = c;
  const std::vector<ir::Tensor> inputs = randomInputs(before.graph, 7);
  auto want = backends::reference::run(before, inputs);
  auto got = backends::reference::run(after, inputs);
  ASSERT_TRUE(want.isOk()) << want.message();
  ASSERT_TRUE(got.isOk()) << got.message();
  ASSERT_EQ(got->size(), want->size());
  for (size_t k = 0; k < want->size(); ++k) {
    const ir::Tensor &a = (*got)[k], &b = (*want)[k];
    ASSERT_EQ(a.type(), b.type()) << "output " << k;
    for (int64_t i = 0; i < b.numElements(); ++i)
      ASSERT_EQ(a.at(i), b.at(i)) << "output " << k << " element " << i;
  }
}

class SelectLayoutModels : public ::testing::TestWithParam<std::string_view> {};

INSTANTIATE_TEST_SUITE_P(Zoo, SelectLayoutModels,
                         ::testing::Values("resnet18", "mobilenet_v2", "squeezenet1_0", "peleenet",
                                           "densenet121", "efficientnet_b0", "mobilenext_035"),
                         [](const auto& info) { return std::string(info.param); });

TEST_P(SelectLayoutModels, ReferenceOutputsUnchanged) {
  const models::ModelInfo* info = models::findModel(GetParam());
  ASSERT_NE(info, nullptr);
  models::ModelConfig cfg = models::defaultConfig(*info);
  cfg.resolution = 32;
  auto built = models::buildModel(info->name, cfg);
  ASSERT_TRUE(built.isOk()) << built.message();
  ir::Module m = std::move(*built);
  ir::initMissingWeights(m.graph, m.weights, 3);
  Counts c;
  expectSameOutputs(m, nullptr, &c);
  EXPECT_GT(c.blocked, 10) << "the convs of " << GetParam() << " should run blocked";
}

// A train step (forward, loss, backward, SGD with momentum): the training ops run in the
// layouts of their forward ops and every output (loss, gradients, new params, new BN
// statistics) stays bit-identical.
TEST(SelectLayoutNumeric, TrainStepOutputsUnchanged) {
  auto built = models::buildModel(
      "resnet20", {.batch = -1, .resolution = 16, .numClasses = 10, .inChannels = 1});
  ASSERT_TRUE(built.isOk()) << built.message();
  ir::initMissingWeights(built->graph, built->weights, 3);
  TrainStepOptions o;
  o.momentum = 0.9;
  o.weightDecay = 1e-4;
  o.outputGradients = true;
  auto step = buildTrainStep(*built, o);
  ASSERT_TRUE(step.isOk()) << step.message();
  Counts c;
  expectSameOutputs(*step, nullptr, &c);
  EXPECT_GT(c.blocked, 100) << "the training ops should run blocked";
  EXPECT_LE(c.reorders, 2);
}

TEST(SelectLayoutNumeric, GoldenCasesUnchanged) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(KILN_SOURCE_DIR) / "tests/passes/golden/select-layout";
  int cases = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string file = e.path().filename().string();
    if (!file.ends_with(".kir") || file.ends_with(".expected.kir") || file.starts_with("bad_"))
      continue;
    SCOPED_TRACE(file);
    ir::Module m = testing::parseModule(testing::readFile(e.path()), file);
    expectSameOutputs(m, nullptr);
    ++cases;
  }
  EXPECT_GE(cases, 5);
}

/// A policy that asks for nhwc everywhere: the pass keeps the math for any answer.
class NhwcPolicy final : public LayoutPolicy {
 public:
  std::string_view name() const override { return "nhwc"; }
  ConvLayouts convLayouts(const ir::Node&) const override {
    return {ir::Layout::NHWC, ir::Layout::NHWC};
  }
};

TEST(SelectLayoutNumeric, AnyPolicyKeepsTheMath) {
  const models::ModelInfo* info = models::findModel("peleenet");
  ASSERT_NE(info, nullptr);
  models::ModelConfig cfg = models::defaultConfig(*info);
  cfg.resolution = 32;
  auto built = models::buildModel(info->name, cfg);
  ASSERT_TRUE(built.isOk()) << built.message();
  ir::initMissingWeights(built->graph, built->weights, 5);
  NhwcPolicy nhwc;
  Counts c;
  expectSameOutputs(*built, &nhwc, &c);
  EXPECT_EQ(c.blocked, 0);
  EXPECT_GT(c.reorders, 0);
}

}  // namespace
}  // namespace kiln::passes
