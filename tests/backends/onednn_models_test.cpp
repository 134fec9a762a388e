// oneDNN backend, whole models: every registered model, after the default pipeline (fold-bn,
// the fusion passes and select-layout asking oneDNN), against the reference backend on the
// un-optimized graph (small resolution, random weights); and a set of models whose layouts
// come from the rule-based policy (nChw16c / nChw8c, what `kiln opt -O2` writes), which
// oneDNN on an AVX-512 machine would not pick itself.
#include <gtest/gtest.h>

#include "backends/reference/reference.h"
#include "models/registry.h"
#include "passes/pass_manager.h"
#include "tests/backends/onednn_test_util.h"

namespace kiln::testing {
namespace {

class OneDnnModels : public ::testing::TestWithParam<std::string_view> {};

std::vector<std::string_view> modelNames() {
  std::vector<std::string_view> names;
  for (const models::ModelInfo& info : models::allModels()) names.push_back(info.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Zoo, OneDnnModels, ::testing::ValuesIn(modelNames()),
                         [](const auto& info) { return std::string(info.param); });

/// 4-D node results not in plain nchw: select-layout did something.
int nonPlainResults(const ir::Graph& g) {
  int n = 0;
  for (const auto& node : g.nodes())
    for (const ir::Value* r : node->results())
      n += r->type().shape.rank() == 4 && !ir::isRowMajor(r->type().layout);
  return n;
}

void expectMatchesReference(std::string_view model, bool ruleLayouts) {
  const models::ModelInfo* info = models::findModel(model);
  ASSERT_NE(info, nullptr);
  models::ModelConfig cfg = models::defaultConfig(*info);
  cfg.resolution = std::min<int64_t>(cfg.resolution, 32);
  auto built = models::buildModel(info->name, cfg);
  ASSERT_TRUE(built.isOk()) << built.message();
  ir::Module m = std::move(*built);
  ir::initMissingWeights(m.graph, m.weights, 11);
  const std::vector<ir::Tensor> inputs = randomInputs(m.graph, 1, 5, 1.0f);
  auto want = backends::reference::run(m, inputs);
  ASSERT_TRUE(want.isOk()) << want.message();
  ir::Module compiled = m.clone();
  if (ruleLayouts) {
    backends::reference::ReferenceEvaluator evaluator;
    passes::PassManagerOptions o;
    o.passes = passes::defaultPipeline();
    passes::PassManager pm(o, passes::PassEnv{&evaluator}, nullptr);
    Status st = pm.run(compiled);
    ASSERT_TRUE(st.isOk()) << st.message();
  }
  auto session = onednnSession(std::move(compiled), 1, /*optimize=*/!ruleLayouts);
  ASSERT_TRUE(session.isOk()) << session.message();
  EXPECT_GT(nonPlainResults((*session)->module().graph), 0) << "select-layout chose nothing";
  // -O2 fused: every zoo model has conv2d + activation, so the test runs fused convs.
  int fused = 0;
  for (const auto& n : (*session)->module().graph.nodes())
    fused += n->kind() == ir::OpKind::Conv2d && !n->attrs<ir::Conv2dAttrs>().post_ops.empty();
  EXPECT_GT(fused, 0) << "no conv2d was fused in " << model;
  auto got = (*session)->run(inputs);
  ASSERT_TRUE(got.isOk()) << got.message();
  ASSERT_EQ(got->size(), want->size());
  for (size_t i = 0; i < want->size(); ++i) {
    const double tol = modelTolerance(maxAbs((*want)[i]));
    EXPECT_TRUE(closeTensors((*got)[i], (*want)[i], Tolerance{tol, 0})) << "max|ref| " << maxAbs((*want)[i]);
  }
}

TEST_P(OneDnnModels, MatchesReferenceOnUnoptimizedGraph) {
  expectMatchesReference(GetParam(), false);
}

class OneDnnRuleLayouts : public ::testing::TestWithParam<std::string_view> {};

INSTANTIATE_TEST_SUITE_P(Zoo, OneDnnRuleLayouts,
                         ::testing::Values("resnet18", "se_resnet18_vd", "mobilenet_v2",
                                           "efficientnet_b0", "squeezenet1_0", "peleenet",
                                           "densenet121", "mobilenext_035"),
                         [](const auto& info) { return std::string(info.param); });

TEST_P(OneDnnRuleLayouts, MatchesReferenceOnUnoptimizedGraph) {
  expectMatchesReference(GetParam(), true);
}

}  // namespace
}  // namespace kiln::testing
