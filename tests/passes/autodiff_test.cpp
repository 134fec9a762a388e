// autodiff and the train step beyond the numbers: the golden train step of a tiny graph, the
// all-at-once report of nodes without a gradient, training mode (BN, dropout seeds), state
// outputs and their write-back, option and input validation, and dropout's masks.
#include "passes/autodiff.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>

#include "backends/reference/reference.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/pass_manager.h"
#include "tests/passes/pass_test_util.h"

namespace kiln::passes {
namespace {

namespace fs = std::filesystem;

ir::Graph parse(std::string_view text, std::string_view file = "m.kir") {
  Expected<ir::Graph> g = ir::parseGraph(text, file);
  EXPECT_TRUE(g.isOk()) << g.message();
  return g.isOk() ? std::move(*g) : ir::Graph();
}

// ---- golden --------------------------------------------------------------------------

/// The options of a golden case: label smoothing 0.1, momentum 0.9, weight decay 1e-4 and no
/// decay on rank-1 params, changed by a line `// train-step: key=value ...` in the case
/// (optimizer=sgd|rmsproptf|rmsprop|adamw, eps=, clip=, ema=, accum=accumulate|apply:K).
TrainStepOptions goldenOptions(const std::string& text) {
  TrainStepOptions o;
  o.labelSmoothing = 0.1;
  o.weightDecay = 1e-4;
  o.noDecayOnBnAndBias = true;
  const std::string marker = "// train-step:";
  const size_t at = text.find(marker);
  if (at == std::string::npos) return o;
  std::istringstream line(text.substr(at + marker.size(), text.find('\n', at) - at - marker.size()));
  std::string item;
  while (line >> item) {
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "optimizer") {
      o.optimizer = value == "rmsproptf" ? Optimizer::RmsPropTf
                    : value == "rmsprop" ? Optimizer::RmsProp
                    : value == "adamw"   ? Optimizer::AdamW
                                         : Optimizer::Sgd;
      EXPECT_TRUE(value == "sgd" || o.optimizer != Optimizer::Sgd) << item;
    } else if (key == "eps") {
      o.eps = std::stod(value);
    } else if (key == "clip") {
      o.clipGradNorm = std::stod(value);
    } else if (key == "ema") {
      o.emaDecay = std::stod(value);
    } else if (key == "accum") {
      o.accum = value.starts_with("apply") ? TrainStepOptions::Accum::Apply
                                           : TrainStepOptions::Accum::Accumulate;
      o.accumSteps = std::stoi(value.substr(value.find(':') + 1));
    } else {
      ADD_FAILURE() << "unknown train-step option " << item;
    }
  }
  return o;
}

// tests/passes/train_step/<case>.kir → <case>.expected.kir: the train step with the case's
// options (goldenOptions). KILN_UPDATE_GOLDEN=1 rewrites the expected files for review.
TEST(TrainStepGolden, TinyGraphs) {
  const fs::path dir = fs::path(KILN_SOURCE_DIR) / "tests" / "passes" / "train_step";
  int cases = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string file = e.path().filename().string();
    if (!file.ends_with(".kir") || file.ends_with(".expected.kir")) continue;
    ++cases;
    SCOPED_TRACE(file);
    const std::string rel = fs::relative(e.path(), KILN_SOURCE_DIR).string();
    const std::string text = testing::readFile(e.path());
    ir::Module m(parse(text, rel));
    Expected<ir::Module> step = buildTrainStep(m, goldenOptions(text));
    ASSERT_TRUE(step.isOk()) << step.message();
    const std::string actual = ir::printGraph(step->graph);
    fs::path expected = e.path();
    expected.replace_extension(".expected.kir");
    if (std::getenv("KILN_UPDATE_GOLDEN")) {
      testing::writeFile(expected, actual);
      continue;
    }
    ASSERT_TRUE(fs::exists(expected)) << expected << " is missing; run with KILN_UPDATE_GOLDEN=1";
    EXPECT_EQ(actual, testing::readFile(expected));
    // The printed train step is valid .kir.
    EXPECT_TRUE(ir::parseGraph(actual, "expected.kir").isOk());
  }
  EXPECT_GE(cases, 4);
}

// ---- missing gradients -----------------------------------------------------------------

TEST(Autodiff, ReportsEveryNodeWithoutAGradientAtOnce) {
  // An inference batch_norm (no rule), a slice with step 2 (the rule refuses it) and a
  // reduce_sum (no rule), all on the path from %w to the loss; the count_correct is not.
  ir::Graph g = parse(R"(graph @g {
  input %x : f32[2,3,4,4]{nchw}
  param %w : f32[3,3,1,1]{oihw}
  param %bn.weight : f32[3]{x}
  param %bn.bias : f32[3]{x}
  buffer %bn.mean : f32[3]{x}
  buffer %bn.var : f32[3]{x}
  input %ids : i64[2]{x}
  %0 = conv2d(%x, %w) {stride=[1,1], pad=[0,0,0,0], dilation=[1,1], groups=1} : f32[2,3,4,4]{nchw}
  %bn = batch_norm(%0, %bn.weight, %bn.bias, %bn.mean, %bn.var) {epsilon=1e-05} : f32[2,3,4,4]{nchw}
  %2 = slice(%bn) {axes=[3], starts=[0], ends=[4], steps=[2]} : f32[2,3,4,2]{nchw}
  %3 = reduce_sum(%2) {axes=[2,3], keepdims=false} : f32[2,3]{nc}
  %4 = count_correct(%3, %ids) : i64[]{}
  %loss = softmax_cross_entropy(%3, %ids) {label_smoothing=0.0} : f32[]{}
  output %loss, %4
}
)");
  Expected<ir::Node*> one =
      g.createNode(ir::OpKind::Constant, {}, ir::ConstantAttrs{{1.0}, {}, ir::DType::F32});
  ASSERT_TRUE(one.isOk());
  const GradSeed seed{g.findValue("loss"), (*one)->result()};
  std::vector<ir::Value*> wrt{g.findValue("w"), g.findValue("bn.weight")};
  Expected<std::vector<ir::Value*>> grads = appendGradients(g, std::span(&seed, 1), wrt);
  ASSERT_FALSE(grads.isOk());
  EXPECT_EQ(grads.message(),
            "autodiff: 3 nodes on the path to the loss have no gradient:\n"
            "  no gradient for op reduce_sum at m.kir:12:3 (the op has no gradient rule)\n"
            "  no gradient for op slice at m.kir:11:3 (step 2 on axis 3: only step 1 is "
            "differentiable)\n"
            "  no gradient for op batch_norm at m.kir:10:3 (%bn: the op has no gradient rule)");
}

TEST(Autodiff, OpsOffThePathNeedNoGradient) {
  // The reduce_sum only feeds an output that is not differentiated: no error.
  ir::Graph g = parse(R"(graph @g {
  input %x : f32[2,4]{nc}
  param %w : f32[3,4]{oi}
  %0 = linear(%x, %w) : f32[2,3]{nc}
  %1 = reduce_sum(%0) {axes=[], keepdims=false} : f32[]{}
  %2 = relu(%0) : f32[2,3]{nc}
  output %2, %1
}
)");
  ir::Value* dy = g.addInput("dy", g.outputs()[0]->type());
  const GradSeed seed{g.outputs()[0], dy};
  std::vector<ir::Value*> wrt{g.findValue("w"), g.findValue("x")};
  Expected<std::vector<ir::Value*>> grads = appendGradients(g, std::span(&seed, 1), wrt);
  ASSERT_TRUE(grads.isOk()) << grads.message();
  ASSERT_NE((*grads)[0], nullptr);
  ASSERT_NE((*grads)[1], nullptr);
  EXPECT_EQ((*grads)[0]->type().shape, (ir::Shape{3, 4}));
  EXPECT_TRUE(ir::verify(g).isOk());
}

TEST(Autodiff, AValueWithSeveralUsersSumsTheirGradients) {
  // y = x * x + x: dy/dx = 2x + 1
  ir::Graph g = parse(R"(graph @g {
  input %x : f64[3]{x}
  %0 = mul(%x, %x) : f64[3]{x}
  %1 = add(%0, %x) : f64[3]{x}
  output %1
}
)");
  ir::Value* dy = g.addInput("dy", g.outputs()[0]->type());
  const GradSeed seed{g.outputs()[0], dy};
  std::vector<ir::Value*> wrt{g.findValue("x")};
  Expected<std::vector<ir::Value*>> grads = appendGradients(g, std::span(&seed, 1), wrt);
  ASSERT_TRUE(grads.isOk()) << grads.message();
  g.setOutputs({(*grads)[0]});
  ir::Tensor x(ir::DType::F64, ir::Shape{3}), ones(ir::DType::F64, ir::Shape{3});
  for (int i = 0; i < 3; ++i) {
    x.data<double>()[i] = i - 1.5;
    ones.data<double>()[i] = 1;
  }
  std::vector<ir::Tensor> in{x, ones};
  auto out = backends::reference::run(ir::Module(std::move(g)), in);
  ASSERT_TRUE(out.isOk()) << out.message();
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*out)[0].at(i), 2 * (i - 1.5) + 1);
}

// ---- the train step ---------------------------------------------------------------------

constexpr const char* kNet = R"(graph @net {
  input %x : f32[N,2,4,4]{nchw}
  param %conv.weight : f32[4,2,3,3]{oihw}
  param %bn.weight : f32[4]{x}
  param %bn.bias : f32[4]{x}
  buffer %bn.running_mean : f32[4]{x}
  buffer %bn.running_var : f32[4]{x}
  param %unused.weight : f32[2]{x}
  param %fc.weight : f32[3,4]{oi}
  param %fc.bias : f32[3]{x}
  %0 = conv2d(%x, %conv.weight) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,4,4]{nchw}
  %1 = batch_norm(%0, %bn.weight, %bn.bias, %bn.running_mean, %bn.running_var) {epsilon=1e-05} : f32[N,4,4,4]{nchw}
  %2 = relu(%1) : f32[N,4,4,4]{nchw}
  %3 = drop_path(%2) {p=0.2, training=false, seed=0} : f32[N,4,4,4]{nchw}
  %4 = global_avg_pool(%3) : f32[N,4,1,1]{nchw}
  %5 = flatten(%4) {axis=1} : f32[N,4]{nc}
  %6 = dropout(%5) {p=0.5, training=false, seed=0} : f32[N,4]{nc}
  %logits = linear(%6, %fc.weight, %fc.bias) : f32[N,3]{nc}
  output %logits
}
)";

std::vector<std::string> names(const std::vector<ir::Value*>& vs) {
  std::vector<std::string> out;
  for (const ir::Value* v : vs) out.push_back(v->name());
  return out;
}

TEST(TrainStep, InterfaceTrainingModeAndState) {
  ir::Module m(parse(kNet));
  testing::fillPatternWeights(m);
  TrainStepOptions o;
  o.momentum = 0.5;
  o.weightDecay = 0.01;
  o.noDecayOnBnAndBias = true;
  Expected<ir::Module> step = buildTrainStep(m, o);
  ASSERT_TRUE(step.isOk()) << step.message();
  const ir::Graph& g = step->graph;
  EXPECT_EQ(g.name(), "net.train");
  EXPECT_EQ(names(g.inputs()), (std::vector<std::string>{"x", "labels", "lr", "seed"}));
  EXPECT_EQ(g.findValue("labels")->type().str(), "i64[N]{x}");
  EXPECT_EQ(g.findValue("lr")->type().str(), "f32[]{}");
  // %unused.weight gets no gradient, so no update and no momentum buffer.
  EXPECT_EQ(
      names(g.outputs()),
      (std::vector<std::string>{"loss", "correct", "new:conv.weight", "new:bn.weight",
                                "new:bn.bias", "new:bn.running_mean", "new:bn.running_var",
                                "new:fc.weight", "new:fc.bias", "new:conv.weight.momentum_buffer",
                                "new:bn.weight.momentum_buffer", "new:bn.bias.momentum_buffer",
                                "new:fc.weight.momentum_buffer", "new:fc.bias.momentum_buffer"}));
  int bnTrain = 0, stochastic = 0;
  std::set<int64_t> seeds;
  for (const auto& n : g.nodes()) {
    EXPECT_NE(n->kind(), ir::OpKind::BatchNorm);
    if (n->kind() == ir::OpKind::BatchNormTrain) {
      ++bnTrain;
      EXPECT_EQ(n->attrs<ir::BatchNormTrainAttrs>().momentum, 0.1);
    }
    if (n->kind() == ir::OpKind::Dropout || n->kind() == ir::OpKind::DropPath) {
      ++stochastic;
      const auto& a = n->attrs<ir::DropoutAttrs>();
      EXPECT_TRUE(a.training);
      seeds.insert(a.seed);
      ASSERT_EQ(n->numOperands(), 2u);
      EXPECT_EQ(n->operand(1), g.findValue("seed"));
    }
    if (n->kind() == ir::OpKind::SgdUpdate) {
      const auto& a = n->attrs<ir::SgdAttrs>();
      EXPECT_EQ(a.momentum, 0.5);
      // rank-1 params are not decayed
      EXPECT_EQ(a.weight_decay, n->operand(0)->type().shape.rank() == 1 ? 0.0 : 0.01)
          << n->operand(0)->name();
    }
  }
  EXPECT_EQ(bnTrain, 1);
  EXPECT_EQ(stochastic, 4);     // two forward, two backward (same masks)
  EXPECT_EQ(seeds.size(), 2u);  // distinct per forward node, shared with its backward
  // Momentum buffers start at zero in the store; the forward store is untouched.
  const ir::Tensor* buf = step->weights.find("conv.weight.momentum_buffer");
  ASSERT_NE(buf, nullptr);
  for (int64_t i = 0; i < buf->numElements(); ++i) ASSERT_EQ(buf->at(i), 0.0);
  EXPECT_FALSE(m.weights.contains("conv.weight.momentum_buffer"));
  EXPECT_EQ(g.findValue("conv.weight.momentum_buffer")->kind(), ir::ValueKind::Buffer);
}

TEST(TrainStep, RunsAndWritesItsStateBack) {
  ir::Module m(parse(kNet));
  testing::fillPatternWeights(m);
  TrainStepOptions o;
  o.outputGradients = true;
  Expected<ir::Module> step = buildTrainStep(m, o);
  ASSERT_TRUE(step.isOk()) << step.message();
  ir::Tensor x(ir::DType::F32, ir::Shape{2, 2, 4, 4});
  for (int64_t i = 0; i < x.numElements(); ++i) x.data<float>()[i] = float(i % 7) - 3.0f;
  ir::Tensor labels(ir::DType::I64, ir::Shape{2}), lr(ir::DType::F32, ir::Shape{}),
      seed(ir::DType::I64, ir::Shape{});
  labels.data<int64_t>()[0] = 2;
  labels.data<int64_t>()[1] = 0;
  lr.data<float>()[0] = 0.1f;
  seed.data<int64_t>()[0] = 42;
  std::vector<ir::Tensor> in{x, labels, lr, seed};
  auto out = backends::reference::run(*step, in);
  ASSERT_TRUE(out.isOk()) << out.message();
  const auto& outs = step->graph.outputs();
  ASSERT_EQ(out->size(), outs.size());
  EXPECT_TRUE(std::isfinite((*out)[0].at(0)));
  const double before = step->weights.find("fc.bias")->at(0);
  // new:fc.bias = fc.bias - lr * grad (the buffer starts at 0, so buf = grad on step 1)
  size_t newBias = 0, gradBias = 0;
  for (size_t i = 0; i < outs.size(); ++i) {
    if (outs[i]->name() == "new:fc.bias") newBias = i;
    if (outs[i]->name() == "grad:fc.bias") gradBias = i;
  }
  ASSERT_TRUE(newBias && gradBias);
  EXPECT_NEAR((*out)[newBias].at(0), before - 0.1 * (*out)[gradBias].at(0), 1e-6);
  Status st = applyStateUpdates(step->graph, *out, step->weights);
  ASSERT_TRUE(st.isOk()) << st.message();
  EXPECT_EQ(step->weights.find("fc.bias")->at(0), (*out)[newBias].at(0));
  EXPECT_NE(step->weights.find("bn.running_var")->at(0), m.weights.find("bn.running_var")->at(0));

  // Outputs that do not fit are refused.
  std::vector<ir::Tensor> wrong = *out;
  wrong[newBias] = ir::Tensor(ir::DType::F32, ir::Shape{4});
  Status bad = applyStateUpdates(step->graph, wrong, step->weights);
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(
      bad.message(),
      "train step @net.train: output %new:fc.bias is f32[4]{x}, weight %fc.bias is f32[3]{x}");
  EXPECT_FALSE(applyStateUpdates(step->graph, std::span(*out).first(2), step->weights).isOk());
}

TEST(TrainStep, O2KeepsItsResults) {
  // The passes of -O2 handle the training ops: the optimized step computes the same outputs.
  ir::Module m(parse(kNet));
  testing::fillPatternWeights(m);
  Expected<ir::Module> step = buildTrainStep(m, {});
  ASSERT_TRUE(step.isOk()) << step.message();
  ir::Module optimized = step->clone();
  backends::reference::ReferenceEvaluator evaluator;
  PassManagerOptions options;
  options.passes = defaultPipeline();
  options.verifyEach = true;
  PassManager pm(options, PassEnv{&evaluator}, nullptr);
  Status st = pm.run(optimized);
  ASSERT_TRUE(st.isOk()) << st.message();

  ir::Tensor x(ir::DType::F32, ir::Shape{3, 2, 4, 4});
  for (int64_t i = 0; i < x.numElements(); ++i) x.data<float>()[i] = float(i % 11) / 4 - 1;
  ir::Tensor labels(ir::DType::I64, ir::Shape{3}), lr(ir::DType::F32, ir::Shape{}),
      seed(ir::DType::I64, ir::Shape{});
  for (int64_t i = 0; i < 3; ++i) labels.data<int64_t>()[i] = i;
  lr.data<float>()[0] = 0.05f;
  seed.data<int64_t>()[0] = 9;
  std::vector<ir::Tensor> in{x, labels, lr, seed};
  auto before = backends::reference::run(*step, in);
  auto after = backends::reference::run(optimized, in);
  ASSERT_TRUE(before.isOk()) << before.message();
  ASSERT_TRUE(after.isOk()) << after.message();
  ASSERT_EQ(before->size(), after->size());
  for (size_t i = 0; i < before->size(); ++i)
    for (int64_t e = 0; e < (*before)[i].numElements(); ++e)
      ASSERT_EQ((*before)[i].at(e), (*after)[i].at(e)) << step->graph.outputs()[i]->name();
}

TEST(TrainStep, SoftTargetsAndNoMomentum) {
  ir::Module m(parse(kNet));
  TrainStepOptions o;
  o.softTargets = true;
  o.momentum = 0;
  o.countCorrect = false;
  Expected<ir::Module> step = buildTrainStep(m, o);
  ASSERT_TRUE(step.isOk()) << step.message();
  EXPECT_EQ(step->graph.findValue("labels")->type().str(), "f32[N,3]{nc}");
  EXPECT_EQ(step->graph.outputs()[1]->name(), "new:conv.weight");
  EXPECT_EQ(step->graph.findValue("conv.weight.momentum_buffer"), nullptr);
  EXPECT_EQ(step->weights.size(), 0u);  // no data, no buffers made up
}

TEST(TrainStep, RejectsBadOptionsAndGraphs) {
  ir::Module m(parse(kNet));
  auto fails = [&](const ir::Module& mod, TrainStepOptions o, std::string_view want) {
    Expected<ir::Module> step = buildTrainStep(mod, o);
    ASSERT_FALSE(step.isOk()) << want;
    EXPECT_EQ(step.message(), want);
  };
  TrainStepOptions o;
  o.labelSmoothing = 1.5;
  fails(m, o, "train step: label smoothing must be in [0, 1], got 1.5");
  o = {};
  o.momentum = 0;
  o.nesterov = true;
  fails(m, o, "train step: nesterov needs a momentum > 0");
  o = {};
  o.weightDecay = -1;
  fails(m, o, "train step: weight decay must be finite and >= 0, got -1");

  ir::Module two(parse(R"(graph @two {
  input %x : f32[N,4]{nc}
  %0 = relu(%x) : f32[N,4]{nc}
  output %0, %x
}
)"));
  fails(two, {},
        "train step: graph @two has 2 outputs; the loss needs exactly one, the logits "
        "[N, classes]");
  ir::Module rank4(parse(R"(graph @r {
  input %x : f32[N,4,2,2]{nchw}
  %0 = relu(%x) : f32[N,4,2,2]{nchw}
  output %0
}
)"));
  fails(rank4, {},
        "train step: the output of graph @r must be float logits [N, classes], got "
        "f32[N,4,2,2]{nchw}");
  ir::Module clash(parse(R"(graph @c {
  input %labels : f32[N,4]{nc}
  %0 = relu(%labels) : f32[N,4]{nc}
  output %0
}
)"));
  fails(clash, {}, "train step: graph @c already has a value named %labels");
}

// ---- dropout masks --------------------------------------------------------------------

TEST(Dropout, SeededMasksDropTheRightFractionAndVaryWithTheSeedInput) {
  auto mask = [](ir::OpKind kind, int64_t stepSeed, ir::Shape shape) {
    ir::Graph g("d");
    ir::Value* x = g.addInput("x", ir::makeType(ir::DType::F32, shape));
    ir::Value* s = g.addInput("s", ir::TensorType{ir::DType::I64, ir::Shape{}, ir::Layout::Scalar});
    auto n = g.createNode(kind, {x, s}, ir::DropoutAttrs{0.25, true, 7});
    EXPECT_TRUE(n.isOk()) << n.message();
    ir::Tensor ones(ir::DType::F32, shape), seed(ir::DType::I64, ir::Shape{});
    for (float& v : ones.span<float>()) v = 1;
    seed.data<int64_t>()[0] = stepSeed;
    std::vector<ir::Tensor> in{ones, seed};
    auto out = backends::reference::evaluateNode(**n, in);
    EXPECT_TRUE(out.isOk()) << out.message();
    return (*out)[0];
  };
  const ir::Tensor a = mask(ir::OpKind::Dropout, 1, ir::Shape{100, 100});
  const ir::Tensor b = mask(ir::OpKind::Dropout, 2, ir::Shape{100, 100});
  const ir::Tensor a2 = mask(ir::OpKind::Dropout, 1, ir::Shape{100, 100});
  int64_t dropped = 0, differ = 0;
  for (int64_t i = 0; i < a.numElements(); ++i) {
    EXPECT_TRUE(a.at(i) == 0.0 || std::fabs(a.at(i) - 1 / 0.75) < 1e-6);
    dropped += a.at(i) == 0.0;
    differ += a.at(i) != b.at(i);
    ASSERT_EQ(a.at(i), a2.at(i));  // same seeds, same mask
  }
  EXPECT_NEAR(static_cast<double>(dropped) / 1e4, 0.25, 0.02);
  EXPECT_GT(differ, 1000);  // another step seed, another mask

  // drop_path: one draw per sample
  const ir::Tensor p = mask(ir::OpKind::DropPath, 3, ir::Shape{400, 2, 3});
  int64_t droppedSamples = 0;
  for (int64_t s = 0; s < 400; ++s) {
    for (int64_t i = 1; i < 6; ++i) ASSERT_EQ(p.at(s * 6 + i), p.at(s * 6));
    droppedSamples += p.at(s * 6) == 0.0;
  }
  EXPECT_NEAR(static_cast<double>(droppedSamples) / 400, 0.25, 0.07);
}

}  // namespace
}  // namespace kiln::passes
