// The train step vs PyTorch autograd + torch.optim (tests/passes/torch_train_step.py): two or
// three optimizer steps (different learning rates, each from the previous one's optimizer
// state and running statistics) on a tiny conv-BN-ReLU-pool-linear net, one EfficientNet block
// and resnet20: SGD, timm's RMSpropTF, torch's RMSprop, AdamW, with gradient clipping, EMA of
// the weights and gradient accumulation (Accumulate steps then an Apply step), run in f32 on
// the reference backend and compared with PyTorch's f64 run of the same f32 start. Every
// loss, gradient, updated param, BN running statistic and optimizer buffer must be within
// ||kiln - torch||_2 / ||torch||_2 <= 1e-4. KILN_TRAIN_REPORT=1 prints every tensor's error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "frontend/nn.h"
#include "ir/verifier.h"
#include "models/blocks.h"
#include "models/registry.h"
#include "passes/autodiff.h"
#include "runtime/npy.h"
#include "tests/python_util.h"

namespace kiln::passes {
namespace {

namespace fs = std::filesystem;

constexpr double kMaxRelativeError = 1e-4;  // per tensor, ||g - g_ref|| / ||g_ref||

/// tests/passes/torch_train_step.py's Tiny, in the DSL (same parameter names).
Expected<ir::Module> tinyNet() {
  using namespace frontend;
  Builder b("tiny");
  Var x = b.input("x", ir::makeType(ir::DType::F32, {ir::kBatch, 3, 8, 8}));
  x = relu(b, batchNorm2d(b, "bn1", conv2d(b, "conv1", x, {.out = 8, .kernel = 3, .padding = 1})));
  x = maxPool2d(b, x, {.kernel = 2});
  Var y = conv2d(b, "conv2", x,
                 {.out = 8, .kernel = 3, .stride = 2, .padding = 1, .groups = 4, .bias = true});
  y = add(b, hardswish(b, y), avgPool2d(b, x, {.kernel = 2}));
  y = linear(b, "fc", flatten(b, adaptiveAvgPool2d(b, y, 1)), 5);
  b.output(b.setName(y, "logits"));
  return b.finish();
}

/// tests/passes/torch_train_step.py's TinyMBConv: one EfficientNet block.
Expected<ir::Module> tinyMBConv() {
  using namespace frontend;
  Builder b("tiny_mbconv");
  Var x = b.input("x", ir::makeType(ir::DType::F32, {ir::kBatch, 3, 8, 8}));
  x = swish(b,
            batchNorm2d(b, "stem_bn", conv2d(b, "stem", x, {.out = 8, .kernel = 3, .padding = 1})));
  Var y = swish(b, batchNorm2d(b, "expand_bn", conv2d(b, "expand", x, {.out = 16})));
  y = swish(b,
            batchNorm2d(b, "dw_bn",
                        conv2d(b, "dw", y, {.out = 16, .kernel = 3, .padding = 1, .groups = 16})));
  y = models::squeezeExcitation(b, "se", y, {.squeeze = 4, .act = models::Activation::Swish});
  y = batchNorm2d(b, "project_bn", conv2d(b, "project", y, {.out = 8}));
  x = add(b, x, dropPath(b, y, 0.0));
  x = dropout(b, flatten(b, adaptiveAvgPool2d(b, x, 1)), 0.0);
  b.output(b.setName(linear(b, "fc", x, 5), "logits"));
  return b.finish();
}

struct TrainRun {
  std::string name;   // for messages
  std::string model;  // tiny or resnet20
  int64_t resolution;
  std::string args;  // for torch_train_step.py
  TrainStepOptions options;
  bool f64 = false;  // run kiln in f64 (else f32)
  int steps = 2;
  int accum = 1;  // micro-batches per step: Accumulate steps, then an Apply step
};

double norm(const ir::Tensor& t) {
  double s = 0;
  for (int64_t i = 0; i < t.numElements(); ++i) s += t.at(i) * t.at(i);
  return std::sqrt(s);
}

/// ||got - want||.
double distance(const ir::Tensor& got, const ir::Tensor& want) {
  double diff = 0;
  for (int64_t i = 0; i < want.numElements(); ++i) diff += std::pow(got.at(i) - want.at(i), 2);
  return std::sqrt(diff);
}

TrainStepOptions options(double smoothing, double momentum, double wd, bool nesterov, bool noDecay,
                         bool soft) {
  TrainStepOptions o;
  o.labelSmoothing = smoothing;
  o.momentum = momentum;
  o.weightDecay = wd;
  o.nesterov = nesterov;
  o.noDecayOnBnAndBias = noDecay;
  o.softTargets = soft;
  o.outputGradients = true;
  return o;
}

/// `o` with changes (the optimizer runs).
template <typename F>
TrainStepOptions with(TrainStepOptions o, F change) {
  change(o);
  return o;
}

const std::vector<TrainRun>& optimizerRuns() {
  const TrainStepOptions plain = options(0.0, 0.9, 0.0, false, false, false);
  static const std::vector<TrainRun> kRuns{
      // timm's RMSpropTF as EfficientNet trains with it, and ModelEmaV2
      {"tiny_rmsproptf_ema", "tiny", 8,
       "--optimizer rmsproptf --alpha 0.9 --eps 1e-3 --momentum 0.9 --weight-decay 1e-4 "
       "--no-bias-decay --ema-decay 0.9",
       with(plain,
            [](TrainStepOptions& o) {
              o.optimizer = Optimizer::RmsPropTf;
              o.weightDecay = 1e-4;
              o.noDecayOnBnAndBias = true;
              o.emaDecay = 0.9;
            })},
      {"tiny_rmsprop", "tiny", 8,
       "--optimizer rmsprop --alpha 0.99 --eps 1e-8 --momentum 0.5 --weight-decay 1e-3",
       with(plain,
            [](TrainStepOptions& o) {
              o.optimizer = Optimizer::RmsProp;
              o.rmsAlpha = 0.99;
              o.eps = 1e-8;
              o.momentum = 0.5;
              o.weightDecay = 1e-3;
            })},
      // three steps: the bias correction follows the optimizer.step buffer
      {"tiny_adamw_clip", "tiny", 8,
       "--optimizer adamw --eps 1e-8 --weight-decay 0.05 --no-bias-decay --clip-grad-norm 0.5 "
       "--lrs 0.01,0.02,0.005",
       with(plain,
            [](TrainStepOptions& o) {
              o.optimizer = Optimizer::AdamW;
              o.eps = 1e-8;
              o.weightDecay = 0.05;
              o.noDecayOnBnAndBias = true;
              o.clipGradNorm = 0.5;
            }),
       false, 3},
      // accumulation with batch norm (per micro-batch statistics on both sides) and clipping
      {"tiny_mbconv_accum_clip", "tiny_mbconv", 8, "--accum 3 --momentum 0.9 --clip-grad-norm 0.3",
       with(plain,
            [](TrainStepOptions& o) {
              o.clipGradNorm = 0.3;
              o.outputGradients = false;
            }),
       false, 2, 3},
      {"tiny_adamw_accum_ema", "tiny", 8,
       "--optimizer adamw --eps 1e-8 --weight-decay 0.01 --accum 2 --ema-decay 0.5 "
       "--lrs 0.01,0.02",
       with(plain,
            [](TrainStepOptions& o) {
              o.optimizer = Optimizer::AdamW;
              o.eps = 1e-8;
              o.weightDecay = 0.01;
              o.emaDecay = 0.5;
              o.outputGradients = false;
            }),
       false, 2, 2}};
  return kRuns;
}

const std::vector<TrainRun>& runs() {
  static const std::vector<TrainRun> kRuns{
      {"tiny_nesterov", "tiny", 8,
       "--label-smoothing 0.1 --momentum 0.9 --weight-decay 5e-4 --nesterov --no-bias-decay",
       options(0.1, 0.9, 5e-4, true, true, false)},
      {"tiny_mbconv_soft_targets", "tiny_mbconv", 8,
       "--soft-targets --label-smoothing 0.2 --momentum 0.5",
       options(0.2, 0.5, 0.0, false, false, true)},
      {"resnet20", "resnet20", 16, "--label-smoothing 0.1 --momentum 0.9 --weight-decay 1e-4",
       options(0.1, 0.9, 1e-4, false, false, false)}};
  return kRuns;
}

// EfficientNet-B0 at 32x32 (dropout and stochastic depth at p = 0 on both sides), in f64:
// in f32 its SE gradients are only good to ~1e-3 (16 BN layers over 4 values per channel at
// 1x1 amplify rounding), which says nothing about the math. The reference is ~200 MB and the
// run takes a minute, so it is opt-in: KILN_TRAIN_LARGE=1.
const std::vector<TrainRun>& largeRuns() {
  static const std::vector<TrainRun> kRuns{{"efficientnet_b0", "efficientnet_b0", 32,
                                            "--label-smoothing 0.1 --momentum 0.9",
                                            options(0.1, 0.9, 0.0, false, false, false), true}};
  return kRuns;
}

/// The module in f64: every f32 value and weight (so that a badly conditioned model compares
/// its math, not float32 rounding).
void promoteToF64(ir::Module& m) {
  auto promote = [](ir::Value* v) {
    ir::TensorType t = v->type();
    if (t.dtype == ir::DType::F32) t.dtype = ir::DType::F64;
    v->setType(t);
  };
  for (ir::Value* v : m.graph.inputs()) promote(v);
  for (ir::Value* v : m.graph.weights()) promote(v);
  for (auto& n : m.graph.nodes())
    for (ir::Value* r : n->results()) promote(r);
  ir::WeightStore store;
  for (const auto& [name, t] : m.weights.entries()) {
    ir::Tensor d(ir::DType::F64, t.shape(), t.layout());
    for (int64_t i = 0; i < t.numElements(); ++i) d.data<double>()[i] = t.at(i);
    store.set(name, d);
  }
  m.weights = std::move(store);
}

ir::Tensor toF64(const ir::Tensor& t) {
  if (t.dtype() != ir::DType::F32) return t;
  ir::Tensor d(ir::DType::F64, t.shape(), t.layout());
  for (int64_t i = 0; i < t.numElements(); ++i) d.data<double>()[i] = t.at(i);
  return d;
}

/// One run: builds its train step, feeds it the reference's inputs for each step and compares
/// every output with the reference's tensor of the same name.
void checkRun(const TrainRun& run, const fs::path& dir) {
  Expected<ir::Module> forward =
      run.model == "tiny" ? tinyNet()
      : run.model == "tiny_mbconv"
          ? tinyMBConv()
          : models::buildModel(run.model, {.batch = -1,
                                           .resolution = run.resolution,
                                           .numClasses = 10,
                                           .inChannels = run.model == "resnet20" ? 1 : 3});
  ASSERT_TRUE(forward.isOk()) << forward.message();
  for (auto& n : forward->graph.nodes())  // random masks cannot be compared: p = 0, as in torch
    if (n->kind() == ir::OpKind::Dropout || n->kind() == ir::OpKind::DropPath) {
      ir::DropoutAttrs a = n->attrs<ir::DropoutAttrs>();
      a.p = 0;
      n->setAttrs(a);
    }
  auto weights = runtime::readNpz((dir / "weights.npz").string());
  ASSERT_TRUE(weights.isOk()) << weights.message();
  forward->weights = *weights;
  Status binding = ir::checkWeightBinding(forward->graph, forward->weights, /*strict=*/true);
  ASSERT_TRUE(binding.isOk()) << binding.message();

  if (run.f64) {
    promoteToF64(*forward);
    ASSERT_TRUE(ir::verify(forward->graph).isOk()) << ir::verify(forward->graph).message();
  }
  TrainStepOptions stepOptions = run.options;
  if (run.accum > 1) {
    stepOptions.accum = TrainStepOptions::Accum::Apply;
    stepOptions.accumSteps = run.accum;
  }
  Expected<ir::Module> step = buildTrainStep(*forward, stepOptions);
  ASSERT_TRUE(step.isOk()) << step.message();
  // Micro-batches 1..K-1 run the Accumulate step on the Apply step's store.
  stepOptions.accum = TrainStepOptions::Accum::Accumulate;
  Expected<ir::Module> accumulate = buildTrainStep(*forward, stepOptions);
  ASSERT_TRUE(accumulate.isOk()) << accumulate.message();
  std::vector<double> lrs{0.1, 0.05};  // torch_train_step.py's default --lrs
  if (const size_t at = run.args.find("--lrs "); at != std::string::npos) {
    lrs.clear();
    std::string list = run.args.substr(at + 6);
    for (size_t start = 0; start < list.size();) {
      const size_t end = std::min(list.find_first_of(", ", start), list.size());
      lrs.push_back(std::stod(list.substr(start, end - start)));
      if (end >= list.size() || list[end] == ' ') break;
      start = end + 1;
    }
  }
  ASSERT_GE(lrs.size(), static_cast<size_t>(run.steps));
  const bool report = std::getenv("KILN_TRAIN_REPORT") != nullptr;
  for (int s = 0; s < run.steps; ++s) {
    SCOPED_TRACE(fmt::format("{} step {}", run.name, s));
    auto expected = runtime::readNpz((dir / fmt::format("expected{}.npz", s)).string());
    ASSERT_TRUE(expected.isOk());
    Expected<std::vector<ir::Tensor>> outputs = Status::error("no micro-batch ran");
    for (int k = 0; k < run.accum; ++k) {
      const std::string suffix = run.accum > 1 ? fmt::format("{}_{}", s, k) : fmt::format("{}", s);
      auto x = runtime::readNpy((dir / fmt::format("x{}.npy", suffix)).string());
      auto labels = runtime::readNpy((dir / fmt::format("labels{}.npy", suffix)).string());
      ASSERT_TRUE(x.isOk() && labels.isOk());
      ir::Tensor lr(ir::DType::F32, ir::Shape{});
      lr.data<float>()[0] = static_cast<float>(lrs[s]);
      if (run.f64) {
        x = toF64(*x);
        labels = toF64(*labels);
        lr = ir::Tensor(ir::DType::F64, ir::Shape{});
        lr.data<double>()[0] = lrs[s];
      }
      ir::Tensor seed(ir::DType::I64, ir::Shape{});  // dropout/drop_path masks (p = 0 here)
      seed.data<int64_t>()[0] = s;
      std::map<std::string, ir::Tensor> feeds{
          {"x", *x}, {"labels", *labels}, {"lr", lr}, {"seed", seed}};
      const bool last = k + 1 == run.accum;
      ir::Module* m = &*step;
      ir::Module micro;
      if (!last) {
        micro.graph = accumulate->graph.clone();
        micro.weights = step->weights;
        m = &micro;
      }
      std::vector<ir::Tensor> inputs;
      for (const ir::Value* v : m->graph.inputs()) {
        ASSERT_TRUE(feeds.count(v->name())) << "unexpected input %" << v->name();
        inputs.push_back(feeds[v->name()]);
      }
      outputs = backends::reference::run(*m, inputs);
      ASSERT_TRUE(outputs.isOk()) << outputs.message();
      if (!last) {
        Status st = applyStateUpdates(m->graph, *outputs, step->weights);
        ASSERT_TRUE(st.isOk()) << st.message();
      }
    }

    // Every tensor torch wrote has a kiln output of the same name, and the other way round
    // (but `correct`, which torch does not write).
    std::map<std::string, double> errors;  // ||got - want|| per output
    const auto& outs = step->graph.outputs();
    for (size_t i = 0; i < outs.size(); ++i) {
      const std::string& name = outs[i]->name();
      if (name == "correct") continue;
      const ir::Tensor* want = expected->find(name);
      ASSERT_NE(want, nullptr) << "torch has no tensor for output %" << name;
      ASSERT_EQ((*outputs)[i].shape(), want->shape()) << name;
      errors[name] = distance((*outputs)[i], *want);
    }
    EXPECT_EQ(errors.size(), expected->size()) << "torch wrote tensors kiln does not output";
    // A gradient that is 0 in exact arithmetic (a BN bias whose output reaches the loss only
    // through another conv + training BN, which removes any per-channel shift) is rounding
    // noise on both sides: its relative error means nothing. Such tensors must be that small
    // in kiln too: ||g - g_ref|| <= 1e-6 * the largest gradient norm of the step.
    double scale = 0;
    for (const auto& [name, t] : expected->entries())
      if (name.starts_with("grad:")) scale = std::max(scale, norm(t));
    if (const ir::Tensor* gn = expected->find("grad_norm")) {  // clipping: it clipped
      EXPECT_GT(gn->at(0), run.options.clipGradNorm) << "choose a smaller clipGradNorm";
    }
    std::string worst;
    int zeros = 0;
    for (auto& [name, err] : errors) {
      const double ref = norm(*expected->find(name));
      if (ref <= 1e-10 * scale) {
        ++zeros;
        EXPECT_LE(err, 1e-6 * scale) << name << " should be 0";
        if (report)
          fmt::print("{} step {} {:<50} zero: |ref| {:.3g}, |kiln| {:.3g}\n", run.name, s, name,
                     ref, err);
        err = 0;
        continue;
      }
      err /= ref;
      EXPECT_LE(err, kMaxRelativeError) << name;
      if (worst.empty() || err > errors[worst]) worst = name;
      if (report) fmt::print("{} step {} {:<50} {:.3g}\n", run.name, s, name, err);
    }
    fmt::print(
        "[ train ] {} ({}) step {}: {} tensors ({} zero), loss {:.6f} (torch {:.6f}), "
        "max relative error {:.3g} ({})\n",
        run.name, run.f64 ? "f64" : "f32", s, errors.size(), zeros, (*outputs)[0].at(0),
        expected->find("loss")->at(0), errors[worst], worst);
    Status st = applyStateUpdates(step->graph, *outputs, step->weights);
    ASSERT_TRUE(st.isOk()) << st.message();
  }
}

/// One python process writes every run's reference (importing torch is the slow part), then
/// each run is checked.
void checkRuns(const std::vector<TrainRun>& runs) {
  if (std::string why = testing::cannotImport({"torch", "numpy", "torchvision"}); !why.empty())
    GTEST_SKIP() << why << "; no PyTorch reference";
  const fs::path dir = fs::temp_directory_path() / fmt::format("kiln_train_step_{}", ::getpid());
  struct Cleanup {
    fs::path p;
    ~Cleanup() { fs::remove_all(p); }
  } cleanup{dir};
  std::string cmd = fmt::format("{} {}/tests/passes/torch_train_step.py --out {}", KILN_PYTHON,
                                KILN_SOURCE_DIR, dir.string());
  for (const TrainRun& r : runs)
    cmd += fmt::format(" '{} --model {} --batch 4 --resolution {} {}'", r.name, r.model,
                       r.resolution, r.args);
  auto [rc, out] = testing::runCommand(cmd);
  ASSERT_EQ(rc, 0) << cmd << "\n" << out;
  for (const TrainRun& r : runs) {
    SCOPED_TRACE(r.name);
    checkRun(r, dir / r.name);
  }
}

// ctest runs each test in its own process: one test for all the small runs.
TEST(TrainStepVsTorch, TinyNetsAndResNet20) {
  checkRuns(runs());
}

// RMSpropTF, RMSprop, AdamW, clipping, EMA and accumulation on the tiny nets.
TEST(TrainStepVsTorch, OptimizersClippingEmaAccumulation) {
  checkRuns(optimizerRuns());
}

TEST(TrainStepVsTorch, EfficientNetB0) {
  if (!std::getenv("KILN_TRAIN_LARGE")) GTEST_SKIP() << "set KILN_TRAIN_LARGE=1 to run it";
  checkRuns(largeRuns());
}

}  // namespace
}  // namespace kiln::passes
