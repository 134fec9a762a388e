// The optimizer side of the train step (passes/autodiff.h) beyond the PyTorch comparison of
// autodiff_torch_test.cpp: the interface of each optimizer (inputs, outputs, buffers and their
// initial values), gradient accumulation equal to one step on the whole batch, clipping that
// does not fire below the norm, option validation, and initMissingWeights on the new buffers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/module.h"
#include "ir/parser.h"
#include "passes/autodiff.h"
#include "passes/pass_manager.h"
#include "tests/tolerance.h"

namespace kiln::passes {
namespace {

using Accum = TrainStepOptions::Accum;

// Without batch norm, so that K micro-batches make exactly the gradient of their union.
constexpr const char* kMlp = R"(graph @mlp {
  input %x : f32[N,2,4,4]{nchw}
  param %conv.weight : f32[4,2,3,3]{oihw}
  param %conv.bias : f32[4]{x}
  param %fc.weight : f32[3,4]{oi}
  param %fc.bias : f32[3]{x}
  %0 = conv2d(%x, %conv.weight, %conv.bias) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,4,4]{nchw}
  %1 = relu(%0) : f32[N,4,4,4]{nchw}
  %2 = global_avg_pool(%1) : f32[N,4,1,1]{nchw}
  %3 = flatten(%2) {axis=1} : f32[N,4]{nc}
  %logits = linear(%3, %fc.weight, %fc.bias) : f32[N,3]{nc}
  output %logits
}
)";

// With batch norm (running statistics: EMA covers buffers too).
constexpr const char* kBnNet = R"(graph @bn {
  input %x : f32[N,2,4,4]{nchw}
  param %conv.weight : f32[4,2,3,3]{oihw}
  param %bn.weight : f32[4]{x}
  param %bn.bias : f32[4]{x}
  buffer %bn.running_mean : f32[4]{x}
  buffer %bn.running_var : f32[4]{x}
  param %fc.weight : f32[3,4]{oi}
  %0 = conv2d(%x, %conv.weight) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,4,4]{nchw}
  %1 = batch_norm(%0, %bn.weight, %bn.bias, %bn.running_mean, %bn.running_var) {epsilon=1e-05} : f32[N,4,4,4]{nchw}
  %2 = global_avg_pool(%1) : f32[N,4,1,1]{nchw}
  %3 = flatten(%2) {axis=1} : f32[N,4]{nc}
  %logits = linear(%3, %fc.weight) : f32[N,3]{nc}
  output %logits
}
)";

ir::Module module(const char* text) {
  Expected<ir::Graph> g = ir::parseGraph(text, "m.kir");
  EXPECT_TRUE(g.isOk()) << g.message();
  ir::Module m(g.isOk() ? std::move(*g) : ir::Graph());
  ir::initMissingWeights(m.graph, m.weights, 21);
  return m;
}

std::vector<std::string> outputNames(const ir::Graph& g) {
  std::vector<std::string> out;
  for (const ir::Value* v : g.outputs()) out.push_back(v->name());
  return out;
}

/// Rows [begin, end) of a batch tensor.
ir::Tensor rows(const ir::Tensor& t, int64_t begin, int64_t end) {
  ir::Shape s = t.shape();
  s[0] = end - begin;
  ir::Tensor out(t.dtype(), s, t.layout());
  const size_t row = t.nbytes() / static_cast<size_t>(t.shape()[0]);
  std::memcpy(out.raw(), t.raw() + static_cast<size_t>(begin) * row, out.nbytes());
  return out;
}

struct Batch {
  ir::Tensor x, labels;
};

Batch batch(int64_t n, int64_t seed) {
  Batch b{ir::Tensor(ir::DType::F32, ir::Shape{n, 2, 4, 4}), ir::Tensor(ir::DType::I64, ir::Shape{n})};
  for (int64_t i = 0; i < b.x.numElements(); ++i)
    b.x.data<float>()[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i + 13 * seed)));
  for (int64_t i = 0; i < n; ++i) b.labels.data<int64_t>()[i] = (i * 2 + seed) % 3;
  return b;
}

/// Runs one step of `step` (on `store`) and writes its state back.
std::vector<ir::Tensor> runStep(const ir::Module& step, ir::WeightStore& store, const Batch& b,
                                float lrValue) {
  ir::Module m(step.graph.clone());
  m.weights = store;
  ir::Tensor lr(ir::DType::F32, ir::Shape{});
  lr.data<float>()[0] = lrValue;
  std::vector<ir::Tensor> in{b.x, b.labels, lr};
  auto out = backends::reference::run(m, in);
  EXPECT_TRUE(out.isOk()) << out.message();
  if (!out.isOk()) return {};
  Status st = applyStateUpdates(step.graph, *out, store);
  EXPECT_TRUE(st.isOk()) << st.message();
  return *out;
}

// K micro-batches (K-1 Accumulate steps, then Apply) make the same update as one step on
// their union, for every optimizer, with clipping that fires and EMA; twice in a row, so the
// accumulators must come back to zero and the optimizer state must carry over.
TEST(TrainStepAccumulation, EqualsOneStepOnTheWholeBatch) {
  const int64_t k = 3, micro = 2;
  for (Optimizer opt : {Optimizer::Sgd, Optimizer::RmsPropTf, Optimizer::RmsProp, Optimizer::AdamW}) {
    SCOPED_TRACE(static_cast<int>(opt));
    const ir::Module forward = module(kMlp);
    TrainStepOptions o;
    o.optimizer = opt;
    o.weightDecay = 1e-2;
    o.eps = 1e-2;  // a well-conditioned first RMSProp / Adam step (no sign(g) steps)
    o.clipGradNorm = 0.01;
    o.emaDecay = 0.5;
    Expected<ir::Module> whole = buildTrainStep(forward, o);
    ASSERT_TRUE(whole.isOk()) << whole.message();
    o.accumSteps = static_cast<int>(k);
    o.accum = Accum::Accumulate;
    Expected<ir::Module> accumulate = buildTrainStep(forward, o);
    ASSERT_TRUE(accumulate.isOk()) << accumulate.message();
    o.accum = Accum::Apply;
    Expected<ir::Module> apply = buildTrainStep(forward, o);
    ASSERT_TRUE(apply.isOk()) << apply.message();

    ir::WeightStore big = whole->weights, acc = apply->weights;
    for (int step = 0; step < 2; ++step) {
      const Batch b = batch(k * micro, step);
      const float lr = step == 0 ? 0.1f : 0.05f;
      const std::vector<ir::Tensor> bigOut = runStep(*whole, big, b, lr);
      std::vector<ir::Tensor> out;
      for (int64_t i = 0; i < k; ++i) {
        const Batch part{rows(b.x, i * micro, (i + 1) * micro),
                         rows(b.labels, i * micro, (i + 1) * micro)};
        out = runStep(i + 1 < k ? *accumulate : *apply, acc, part, lr);
      }
      ASSERT_FALSE(bigOut.empty() || out.empty());
      // The clipping norm is the whole batch's (it fired: the norm is above 0.01).
      ASSERT_EQ(apply->graph.outputs()[2]->name(), kGradNormOutput);
      EXPECT_GT(bigOut[2].at(0), o.clipGradNorm);
      EXPECT_NEAR(out[2].at(0), bigOut[2].at(0), 1e-5 * bigOut[2].at(0));
      for (const auto& [name, t] : big.entries()) {
        const ir::Tensor* got = acc.find(name);
        ASSERT_NE(got, nullptr) << name;
        for (int64_t e = 0; e < t.numElements(); ++e)
          ASSERT_NEAR(got->at(e), t.at(e), testing::kF32.atol + testing::kF32.rtol * std::fabs(t.at(e)))
              << name << "[" << e << "] after step " << step;
      }
      for (const auto& [name, t] : acc.entries()) {
        if (!name.ends_with(kGradAccSuffix)) continue;
        for (int64_t e = 0; e < t.numElements(); ++e) ASSERT_EQ(t.at(e), 0.0) << name;
      }
    }
  }
}

TEST(TrainStepOptimizers, InterfaceBuffersAndInitialState) {
  const ir::Module forward = module(kBnNet);
  struct Case {
    Optimizer optimizer;
    double momentum;
    std::vector<std::string> outputs;  // after loss, correct
  };
  const std::vector<Case> cases{
      {Optimizer::RmsPropTf, 0.9,
       {"new:conv.weight", "new:bn.weight", "new:bn.bias", "new:bn.running_mean",
        "new:bn.running_var", "new:fc.weight", "new:conv.weight.square_avg",
        "new:conv.weight.momentum_buffer", "new:bn.weight.square_avg",
        "new:bn.weight.momentum_buffer", "new:bn.bias.square_avg", "new:bn.bias.momentum_buffer",
        "new:fc.weight.square_avg", "new:fc.weight.momentum_buffer"}},
      {Optimizer::RmsProp, 0.0,
       {"new:conv.weight", "new:bn.weight", "new:bn.bias", "new:bn.running_mean",
        "new:bn.running_var", "new:fc.weight", "new:conv.weight.square_avg",
        "new:bn.weight.square_avg", "new:bn.bias.square_avg", "new:fc.weight.square_avg"}},
      {Optimizer::AdamW, 0.9,
       {"new:conv.weight", "new:bn.weight", "new:bn.bias", "new:bn.running_mean",
        "new:bn.running_var", "new:fc.weight", "new:optimizer.step", "new:conv.weight.exp_avg",
        "new:conv.weight.exp_avg_sq", "new:bn.weight.exp_avg", "new:bn.weight.exp_avg_sq",
        "new:bn.bias.exp_avg", "new:bn.bias.exp_avg_sq", "new:fc.weight.exp_avg",
        "new:fc.weight.exp_avg_sq"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(static_cast<int>(c.optimizer));
    TrainStepOptions o;
    o.optimizer = c.optimizer;
    o.momentum = c.momentum;
    Expected<ir::Module> step = buildTrainStep(forward, o);
    ASSERT_TRUE(step.isOk()) << step.message();
    const ir::Graph& g = step->graph;
    std::vector<std::string> want{"loss", "correct"};
    want.insert(want.end(), c.outputs.begin(), c.outputs.end());
    EXPECT_EQ(outputNames(g), want);
    // Only the usual inputs: all optimizer state lives in buffers.
    ASSERT_EQ(g.inputs().size(), 3u);
    EXPECT_EQ(g.inputs()[2]->name(), "lr");
    Status binding = ir::checkWeightBinding(g, step->weights, /*strict=*/true);
    EXPECT_TRUE(binding.isOk()) << binding.message();
    const bool tf = c.optimizer == Optimizer::RmsPropTf;
    for (const auto& [name, t] : step->weights.entries()) {
      if (forward.weights.contains(name)) continue;
      const ir::Value* decl = g.findValue(name);
      ASSERT_NE(decl, nullptr) << name;
      EXPECT_EQ(decl->kind(), ir::ValueKind::Buffer) << name;
      const double init = tf && name.ends_with(kSquareAvgSuffix) ? 1.0 : 0.0;
      for (int64_t e = 0; e < t.numElements(); ++e) ASSERT_EQ(t.at(e), init) << name;
    }
    if (c.optimizer == Optimizer::AdamW) {
      EXPECT_EQ(g.findValue(kStepBuffer)->type().str(), "f32[]{}");
      int adds = 0;  // one increment of the step count per step
      for (const auto& n : g.nodes())
        for (const ir::Value* op : n->operands()) adds += op == g.findValue(kStepBuffer) && n->kind() == ir::OpKind::Add;
      EXPECT_EQ(adds, 1);
    }
    // initMissingWeights makes the same initial state for a train step without a store.
    ir::WeightStore fresh;
    ir::initMissingWeights(g, fresh, 3);
    for (const auto& [name, t] : step->weights.entries()) {
      if (forward.weights.contains(name)) continue;
      const ir::Tensor* f = fresh.find(name);
      ASSERT_NE(f, nullptr) << name;
      for (int64_t e = 0; e < t.numElements(); ++e) ASSERT_EQ(f->at(e), t.at(e)) << name;
    }
  }
}

TEST(TrainStepOptimizers, EmaCoversParamsAndRunningStatistics) {
  const ir::Module forward = module(kBnNet);
  TrainStepOptions o;
  o.emaDecay = 0.75;
  Expected<ir::Module> step = buildTrainStep(forward, o);
  ASSERT_TRUE(step.isOk()) << step.message();
  const std::vector<std::string> weights{"conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                         "bn.running_var", "fc.weight"};
  for (const std::string& w : weights) {
    SCOPED_TRACE(w);
    const ir::Tensor* ema = step->weights.find(w + std::string(kEmaSuffix));
    ASSERT_NE(ema, nullptr);  // starts as a copy of the weight (ModelEmaV2 copies the model)
    const ir::Tensor* src = forward.weights.find(w);
    for (int64_t e = 0; e < src->numElements(); ++e) ASSERT_EQ(ema->at(e), src->at(e));
    // initMissingWeights copies it too
    ir::WeightStore store = forward.weights;
    ir::initMissingWeights(step->graph, store, 5);
    for (int64_t e = 0; e < src->numElements(); ++e)
      ASSERT_EQ(store.find(w + std::string(kEmaSuffix))->at(e), src->at(e));
  }
  // After a step: ema = 0.75 ema + 0.25 new value, for params and statistics alike.
  ir::WeightStore store = step->weights;
  const std::vector<ir::Tensor> out = runStep(*step, store, batch(4, 1), 0.1f);
  ASSERT_FALSE(out.empty());
  for (const std::string& w : weights) {
    const ir::Tensor& before = *forward.weights.find(w);
    const ir::Tensor& after = *store.find(w);
    const ir::Tensor& ema = *store.find(w + std::string(kEmaSuffix));
    bool moved = false;
    for (int64_t e = 0; e < before.numElements(); ++e) {
      EXPECT_NEAR(ema.at(e), 0.75 * before.at(e) + 0.25 * after.at(e), 1e-6) << w;
      moved = moved || after.at(e) != before.at(e);
    }
    EXPECT_TRUE(moved) << w << " did not change: the EMA check says nothing";
  }
}

TEST(TrainStepOptimizers, ClippingBelowTheNormChangesNothing) {
  // A max norm far above the gradients' norm: coefficient 1, the same update as without.
  const ir::Module forward = module(kMlp);
  TrainStepOptions o;
  Expected<ir::Module> plain = buildTrainStep(forward, o);
  o.clipGradNorm = 1e6;
  Expected<ir::Module> clipped = buildTrainStep(forward, o);
  ASSERT_TRUE(plain.isOk() && clipped.isOk());
  ir::WeightStore a = plain->weights, b = clipped->weights;
  const Batch data = batch(4, 2);
  const std::vector<ir::Tensor> outA = runStep(*plain, a, data, 0.1f);
  const std::vector<ir::Tensor> outB = runStep(*clipped, b, data, 0.1f);
  ASSERT_FALSE(outA.empty() || outB.empty());
  EXPECT_LT(outB[2].at(0), 1e6);
  EXPECT_GT(outB[2].at(0), 0.0);
  for (const auto& [name, t] : a.entries())
    for (int64_t e = 0; e < t.numElements(); ++e)
      ASSERT_EQ(b.find(name)->at(e), t.at(e)) << name;
}

TEST(TrainStepOptimizers, O2KeepsEveryStateOutput) {
  // The Apply step zeroes several accumulators of one shape with equal constants; -O2's CSE
  // must not merge them, or the merged outputs lose their `new:` names and those
  // accumulators would never be reset.
  const ir::Module forward = module(kBnNet);
  TrainStepOptions o;
  o.optimizer = Optimizer::AdamW;
  o.clipGradNorm = 1;
  o.emaDecay = 0.9;
  o.accum = Accum::Apply;
  o.accumSteps = 2;
  Expected<ir::Module> step = buildTrainStep(forward, o);
  ASSERT_TRUE(step.isOk()) << step.message();
  ir::Module optimized = step->clone();
  backends::reference::ReferenceEvaluator evaluator;
  PassManagerOptions options;
  options.passes = defaultPipeline();
  options.verifyEach = true;
  PassManager pm(options, PassEnv{&evaluator}, nullptr);
  Status st = pm.run(optimized);
  ASSERT_TRUE(st.isOk()) << st.message();
  EXPECT_EQ(outputNames(optimized.graph), outputNames(step->graph));
}

TEST(TrainStepOptimizers, RejectsBadOptions) {
  const ir::Module m = module(kMlp);
  auto fails = [&](TrainStepOptions o, std::string_view want) {
    Expected<ir::Module> step = buildTrainStep(m, o);
    ASSERT_FALSE(step.isOk()) << want;
    EXPECT_EQ(step.message(), want);
  };
  TrainStepOptions o;
  o.optimizer = Optimizer::AdamW;
  o.nesterov = true;
  fails(o, "train step: nesterov is an SGD option");
  o = {};
  o.rmsAlpha = 1.5;
  fails(o, "train step: RMSProp alpha must be in [0, 1], got 1.5");
  o = {};
  o.eps = -1e-8;
  fails(o, "train step: eps must be finite and >= 0, got -1e-08");
  o = {};
  o.beta2 = 1.0;
  fails(o, "train step: AdamW betas must be in [0, 1), got 0.9 and 1");
  o = {};
  o.clipGradNorm = -1;
  fails(o, "train step: the gradient clipping norm must be finite and >= 0 (0: off), got -1");
  o = {};
  o.emaDecay = 2;
  fails(o, "train step: the EMA decay must be in [0, 1] (0: off), got 2");
  o = {};
  o.accum = Accum::Apply;
  o.accumSteps = 0;
  fails(o, "train step: gradient accumulation needs accumSteps >= 1, got 0");
  o = {};
  o.accumSteps = 4;
  fails(o,
        "train step: accumSteps is 4 but accum is None; build an Accumulate and an Apply step");
}

}  // namespace
}  // namespace kiln::passes
