// The fusion passes keep the math: every fuse-conv-act / fuse-residual golden input (and the
// default-pipeline ResNet block) runs unfused on the reference backend and fused on both the
// reference and the oneDNN backends, on random inputs and weights, within kF32. Also: a wrong
// post-op order is caught, and autodiff refuses a fused graph.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/module.h"
#include "ir/printer.h"
#include "passes/autodiff.h"
#include "passes/pass_manager.h"
#include "runtime/session.h"
#include "tests/passes/pass_test_util.h"
#include "tests/tolerance.h"

namespace kiln::passes {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> graphFiles() {
  std::vector<fs::path> files;
  const fs::path root = fs::path(KILN_SOURCE_DIR) / "tests" / "passes" / "golden";
  for (const char* dir : {"fuse-conv-act", "fuse-residual", "default"}) {
    for (const auto& e : fs::directory_iterator(root / dir)) {
      const std::string name = e.path().filename().string();
      // An add of nchw and nhwc operands: the reference backend runs plain layouts only.
      if (name == "no_layout_mismatch.kir") continue;
      if (name.ends_with(".kir") && !name.ends_with(".expected.kir")) files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

/// The pass list of the `// RUN:` line.
std::string runLine(const std::string& text) {
  const size_t at = text.find("// RUN:");
  const size_t end = text.find('\n', at);
  return at == std::string::npos ? "" : text.substr(at + 7, end - at - 7);
}

/// Uniform values in [-4, 4]: both sides of relu6's, clip's and hardsigmoid's bounds.
ir::Tensor randomTensor(const ir::TensorType& type, int64_t batch, std::mt19937& rng) {
  ir::Tensor t(type.dtype, type.shape.bind(batch), type.layout);
  std::uniform_real_distribution<float> dist(-4.0f, 4.0f);
  for (float& v : t.span<float>()) v = dist(rng);
  return t;
}

::testing::AssertionResult allClose(const ir::Tensor& got, const ir::Tensor& want,
                                    kiln::testing::Tolerance tol) {
  if (got.type() != want.type())
    return ::testing::AssertionFailure()
           << "type " << got.type().str() << " vs " << want.type().str();
  for (int64_t i = 0; i < want.numElements(); ++i) {
    const double a = got.at(i), b = want.at(i);
    if (!(std::abs(a - b) <= tol.atol + tol.rtol * std::abs(b)))
      return ::testing::AssertionFailure() << "element " << i << ": " << a << " vs " << b;
  }
  return ::testing::AssertionSuccess();
}

/// Random weights in [-0.5, 0.5] (running variances positive, for fold-bn).
void randomWeights(ir::Module& m, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-0.5f, 0.5f);
  m.weights = ir::WeightStore();
  for (const ir::Value* w : m.graph.weights()) {
    ir::Tensor t(w->type().dtype, w->type().shape, w->type().layout);
    const bool positive = w->name().find("running_var") != std::string::npos;
    for (float& v : t.span<float>()) v = positive ? 0.5f + std::abs(dist(rng)) : dist(rng);
    m.weights.set(w->name(), std::move(t));
  }
}

int countFused(const ir::Graph& g) {
  int n = 0;
  for (const auto& node : g.nodes())
    n += node->kind() == ir::OpKind::Conv2d && !node->attrs<ir::Conv2dAttrs>().post_ops.empty();
  return n;
}

Expected<std::vector<ir::Tensor>> runOn(const std::string& backend, const ir::Module& m,
                                        const std::vector<ir::Tensor>& inputs, int64_t batch) {
  runtime::SessionOptions o;
  o.backend = backend;
  o.batch = batch;
  o.threads = 1;
  o.optimize = false;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<runtime::Session> s,
                        runtime::Session::create(m.clone(), o));
  return s->run(inputs);
}

class FusionNumeric : public ::testing::TestWithParam<fs::path> {};

TEST_P(FusionNumeric, FusedMatchesUnfusedOnBothBackends) {
  const std::string text = testing::readFile(GetParam());
  ir::Module before = testing::parseModule(text, GetParam().string());
  ASSERT_FALSE(HasFailure());
  randomWeights(before, 23);
  ir::Module after = before.clone();
  backends::reference::ReferenceEvaluator evaluator;
  PassManagerOptions options;
  Expected<std::vector<std::string>> names = parsePipeline(runLine(text));
  ASSERT_TRUE(names.isOk()) << names.message();
  options.passes = *names;
  options.verifyEach = true;
  PassManager pm(options, PassEnv{&evaluator}, nullptr);
  Status st = pm.run(after);
  ASSERT_TRUE(st.isOk()) << st.message();
  const bool fused = countFused(after.graph) > countFused(before.graph);

  constexpr int64_t kBatch = 2;
  for (uint32_t seed : {1u, 2u}) {
    std::mt19937 rng(seed);
    std::vector<ir::Tensor> inputs;
    for (const ir::Value* v : before.graph.inputs())
      inputs.push_back(randomTensor(v->type(), kBatch, rng));
    Expected<std::vector<ir::Tensor>> want = backends::reference::run(before, inputs);
    ASSERT_TRUE(want.isOk()) << want.message();
    for (const char* backend : {"reference", "onednn"}) {
      SCOPED_TRACE(backend);
      Expected<std::vector<ir::Tensor>> got = runOn(backend, after, inputs, kBatch);
      ASSERT_TRUE(got.isOk()) << got.message() << "\n" << ir::printGraph(after.graph);
      ASSERT_EQ(got->size(), want->size());
      for (size_t i = 0; i < want->size(); ++i)
        EXPECT_TRUE(allClose((*got)[i], (*want)[i], kiln::testing::kF32))
            << "output " << i << " of " << GetParam() << (fused ? " (fused)" : " (unfused)")
            << ":\n"
            << ir::printGraph(after.graph);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Goldens, FusionNumeric, ::testing::ValuesIn(graphFiles()),
                         [](const ::testing::TestParamInfo<fs::path>& info) {
                           std::string name = info.param.parent_path().filename().string() + "_" +
                                              info.param.stem().string();
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

constexpr const char* kBlock = R"(graph @block {
  input %x : f32[N,4,5,5]{nchw}
  param %w1 : f32[4,4,3,3]{oihw}
  param %w2 : f32[4,4,3,3]{oihw}
  %0 = conv2d(%x, %w1) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,5,5]{nchw}
  %1 = relu(%0) : f32[N,4,5,5]{nchw}
  %2 = conv2d(%1, %w2) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,5,5]{nchw}
  %3 = add(%2, %1) : f32[N,4,5,5]{nchw}
  %y = relu(%3) : f32[N,4,5,5]{nchw}
  output %y
}
)";

// The test can fail: the block fused with its post-ops in the wrong order ([relu, sum]
// instead of [sum, relu]) gives other outputs, on both backends.
TEST(FusionNumericSelfCheck, AWrongPostOpOrderIsCaught) {
  ir::Module before = testing::parseModule(kBlock);
  randomWeights(before, 5);
  ir::Module after = before.clone();
  PassManagerOptions options;
  options.passes = {"fuse-conv-act", "fuse-residual"};
  PassManager pm(options, PassEnv{}, nullptr);
  ASSERT_TRUE(pm.run(after).isOk());
  ASSERT_EQ(countFused(after.graph), 2);
  for (const auto& n : after.graph.nodes()) {
    if (!ir::convSummand(*n)) continue;
    ir::Conv2dAttrs a = n->attrs<ir::Conv2dAttrs>();
    ASSERT_EQ(a.post_ops.size(), 2u);
    std::swap(a.post_ops[0], a.post_ops[1]);
    n->setAttrs(a);
  }
  std::mt19937 rng(3);
  std::vector<ir::Tensor> inputs{randomTensor(before.graph.inputs()[0]->type(), 2, rng)};
  Expected<std::vector<ir::Tensor>> want = backends::reference::run(before, inputs);
  ASSERT_TRUE(want.isOk()) << want.message();
  for (const char* backend : {"reference", "onednn"}) {
    Expected<std::vector<ir::Tensor>> got = runOn(backend, after, inputs, 2);
    ASSERT_TRUE(got.isOk()) << got.message();
    EXPECT_FALSE(allClose((*got)[0], (*want)[0], kiln::testing::kF32)) << backend;
  }
}

// Training callers differentiate before -O2: autodiff refuses a conv2d with post-ops.
TEST(FusionAutodiff, TrainStepRefusesFusedConvs) {
  ir::Module m = testing::parseModule(R"(graph @net {
  input %x : f32[N,4,5,5]{nchw}
  param %w1 : f32[4,4,3,3]{oihw}
  param %fc.weight : f32[3,4]{oi}
  %0 = conv2d(%x, %w1) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,5,5]{nchw}
  %1 = relu(%0) : f32[N,4,5,5]{nchw}
  %2 = global_avg_pool(%1) : f32[N,4,1,1]{nchw}
  %3 = flatten(%2) {axis=1} : f32[N,4]{nc}
  %logits = linear(%3, %fc.weight) : f32[N,3]{nc}
  output %logits
}
)");
  Expected<ir::Module> unfused = buildTrainStep(m, {});
  ASSERT_TRUE(unfused.isOk()) << unfused.message();
  PassManagerOptions options;
  options.passes = {"fuse-conv-act"};
  PassManager pm(options, PassEnv{}, nullptr);
  ASSERT_TRUE(pm.run(m).isOk());
  ASSERT_EQ(countFused(m.graph), 1);
  Expected<ir::Module> step = buildTrainStep(m, {});
  ASSERT_FALSE(step.isOk());
  EXPECT_NE(step.message().find("fused post_ops: differentiate the graph before fusion"),
            std::string::npos)
      << step.message();
}

}  // namespace
}  // namespace kiln::passes
