// Gradient checks: for every op with a gradient rule, the gradients autodiff builds (run on
// the reference backend in f64) match central finite differences of the op's forward kernel,
// on random shapes with strides, groups, padding and broadcasting (tolerance kGradCheck).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/graph.h"
#include "ir/module.h"
#include "ir/printer.h"
#include "passes/autodiff.h"
#include "tests/tolerance.h"

namespace kiln::passes {
namespace {

using ir::DType;
using ir::Layout;
using ir::OpKind;
using ir::Shape;
using ir::Tensor;
using ir::TensorType;

/// One operand of a case: its tensor, whether it is checked, and whether the graph declares
/// its batch dimension as the symbolic N.
struct Operand {
  Tensor t;
  bool check = true;
  bool symbolic = false;
};

struct GradCase {
  std::string name;
  OpKind op;
  std::vector<Operand> operands;
  ir::Attrs attrs;
  std::vector<size_t> seeded;  // results that get a gradient (all float results when empty)
};

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  /// Standard normal f64 values.
  Tensor normal(Shape s, Layout layout = Layout::Scalar, double scale = 1.0) {
    Tensor t = layout == Layout::Scalar && s.rank() ? Tensor(DType::F64, s)
                                                    : Tensor(DType::F64, s, layout);
    std::normal_distribution<double> d(0.0, scale);
    for (double& v : t.span<double>()) v = d(rng_);
    return t;
  }
  /// Uniform in [lo, hi), kept at least 0.02 away from every kink.
  Tensor awayFrom(Shape s, double lo, double hi, std::vector<double> kinks) {
    Tensor t(DType::F64, s);
    std::uniform_real_distribution<double> d(lo, hi);
    for (double& v : t.span<double>()) {
      do v = d(rng_);
      while (std::any_of(kinks.begin(), kinks.end(),
                         [&](double k) { return std::fabs(v - k) < 0.02; }));
    }
    return t;
  }
  Tensor positive(Shape s) {
    Tensor t = normal(std::move(s));
    for (double& v : t.span<double>()) v = 0.5 + std::fabs(v);
    return t;
  }
  Tensor ids(int64_t n, int64_t k) {
    Tensor t(DType::I64, Shape{n});
    std::uniform_int_distribution<int64_t> d(0, k - 1);
    for (int64_t& v : t.span<int64_t>()) v = d(rng_);
    return t;
  }
  /// Rows of probabilities.
  Tensor probabilities(int64_t n, int64_t k) {
    Tensor t = positive(Shape{n, k});
    for (int64_t i = 0; i < n; ++i) {
      double sum = 0;
      for (int64_t j = 0; j < k; ++j) sum += t.data<double>()[i * k + j];
      for (int64_t j = 0; j < k; ++j) t.data<double>()[i * k + j] /= sum;
    }
    return t;
  }
  Tensor seed(int64_t v) {
    Tensor t(DType::I64, Shape{});
    t.data<int64_t>()[0] = v;
    return t;
  }

 private:
  std::mt19937_64 rng_;
};

// gtest prints a parameter by its name.
void PrintTo(const GradCase& c, std::ostream* os) {
  *os << c.name;
}

Operand in(Tensor t, bool symbolic = false) {
  return Operand{std::move(t), true, symbolic};
}
Operand fixed(Tensor t) {
  return Operand{std::move(t), false, false};
}

std::vector<GradCase> cases() {
  Gen g(2024);
  std::vector<GradCase> c;
  auto add = [&](std::string name, OpKind op, std::vector<Operand> operands, ir::Attrs attrs = {},
                 std::vector<size_t> seeded = {}) {
    if (std::holds_alternative<ir::NoAttrs>(attrs)) attrs = ir::defaultAttrs(op);
    c.push_back({std::move(name), op, std::move(operands), std::move(attrs), std::move(seeded)});
  };

  // conv2d: stride, asymmetric padding, dilation, groups, depthwise, bias
  auto conv = [&](std::string name, Shape x, Shape w, ir::Conv2dAttrs a, bool bias) {
    std::vector<Operand> ops{in(g.normal(x), true), in(g.normal(w))};
    if (bias) ops.push_back(in(g.normal(Shape{w[0]})));
    add("conv2d_" + name, OpKind::Conv2d, std::move(ops), a);
  };
  conv("3x3_pad1_bias", {2, 3, 5, 4}, {4, 3, 3, 3}, {{1, 1}, {1, 1, 1, 1}, {1, 1}, 1, {}}, true);
  conv("stride2_asym_pad", {1, 2, 7, 6}, {3, 2, 3, 2}, {{2, 2}, {0, 1, 2, 0}, {1, 1}, 1, {}}, false);
  conv("dilation_rect_stride", {1, 2, 9, 8}, {2, 2, 2, 3}, {{1, 2}, {1, 0, 1, 2}, {2, 2}, 1, {}}, true);
  conv("groups2", {2, 4, 5, 5}, {6, 2, 3, 3}, {{2, 1}, {1, 1, 1, 1}, {1, 1}, 2, {}}, true);
  conv("depthwise", {2, 3, 6, 6}, {3, 1, 3, 3}, {{2, 2}, {1, 1, 1, 1}, {1, 1}, 3, {}}, false);

  // batch_norm_train: only y is differentiated (the statistics feed no differentiable op)
  for (auto [name, shape] : {std::pair{std::string("4d"), Shape{3, 2, 3, 2}},
                             std::pair{std::string("2d"), Shape{5, 3}}}) {
    const int64_t ch = shape[1];
    add("batch_norm_train_" + name, OpKind::BatchNormTrain,
        {in(g.normal(shape, Layout::Scalar, 2.0), true), in(g.normal(Shape{ch})),
         in(g.normal(Shape{ch})), fixed(g.normal(Shape{ch})), fixed(g.positive(Shape{ch}))},
        ir::BatchNormTrainAttrs{1e-3, 0.1}, {0});
  }

  // activations, away from their kinks
  const Shape act{2, 3, 4};
  add("relu", OpKind::Relu, {in(g.awayFrom(act, -3, 3, {0}), true)});
  add("relu6", OpKind::Relu6, {in(g.awayFrom(act, -2, 8, {0, 6}), true)});
  add("clip", OpKind::Clip, {in(g.awayFrom(act, -2, 2, {-0.5, 1.25}))}, ir::ClipAttrs{-0.5, 1.25});
  add("clip_half_open", OpKind::Clip, {in(g.awayFrom(act, -2, 2, {0.5}))},
      ir::ClipAttrs{-std::numeric_limits<double>::infinity(), 0.5});
  add("sigmoid", OpKind::Sigmoid, {in(g.normal(act, Layout::Scalar, 3.0), true)});
  add("tanh", OpKind::Tanh, {in(g.normal(act, Layout::Scalar, 2.0))});
  add("swish", OpKind::Swish, {in(g.normal(act, Layout::Scalar, 3.0))});
  add("hardswish", OpKind::HardSwish, {in(g.awayFrom(act, -5, 5, {-3, 3}))});
  add("hardsigmoid", OpKind::HardSigmoid, {in(g.awayFrom(act, -5, 5, {-3, 3}))});
  add("hardsigmoid_onnx", OpKind::HardSigmoid, {in(g.awayFrom(act, -4, 4, {-2.5, 2.5}))},
      ir::HardSigmoidAttrs{0.2, 0.5});

  // broadcasting binaries
  const std::vector<std::pair<Shape, Shape>> shapes{{{2, 3, 4}, {2, 3, 4}},
                                                    {{2, 3, 4, 2}, {3, 1, 1}},
                                                    {{3, 1}, {2, 1, 4}},
                                                    {{}, {2, 3}},
                                                    {{4, 1, 3}, {1}}};
  for (OpKind op : {OpKind::Add, OpKind::Sub, OpKind::Mul, OpKind::Div}) {
    int k = 0;
    for (const auto& [sa, sb] : shapes) {
      Tensor b = g.normal(sb);
      if (op == OpKind::Div)
        for (double& v : b.span<double>()) v = v < 0 ? v - 0.5 : v + 0.5;
      add(fmt::format("{}_{}", ir::opName(op), k++), op, {in(g.normal(sa)), in(std::move(b))});
    }
  }
  add("add_symbolic", OpKind::Add, {in(g.normal({3, 2, 2}), true), in(g.normal({2, 1}))});
  add("channel_scale_per_sample", OpKind::ChannelScale,
      {in(g.normal({2, 3, 2, 3}), true), in(g.normal({2, 3, 1, 1}), true)});
  add("channel_scale_shared", OpKind::ChannelScale,
      {in(g.normal({2, 3, 2, 3}), true), in(g.normal({1, 3, 1, 1}))});

  // dense
  add("matmul_2d", OpKind::MatMul, {in(g.normal({3, 4})), in(g.normal({4, 5}))});
  add("matmul_batched_broadcast", OpKind::MatMul,
      {in(g.normal({2, 1, 3, 4})), in(g.normal({3, 4, 2}))});
  add("matmul_broadcast_b", OpKind::MatMul, {in(g.normal({2, 3, 4})), in(g.normal({4, 2}))});
  add("linear_bias", OpKind::Linear,
      {in(g.normal({3, 5}), true), in(g.normal({4, 5})), in(g.normal({4}))});
  add("linear_3d_nobias", OpKind::Linear, {in(g.normal({2, 3, 5})), in(g.normal({4, 5}))});

  // pooling
  auto maxPool = [&](std::string name, Shape x, ir::MaxPool2dAttrs a) {
    add("max_pool2d_" + name, OpKind::MaxPool2d, {in(g.normal(x), true)}, a);
  };
  maxPool("k3s2p1", {2, 2, 7, 7}, {{3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, false});
  maxPool("ceil_dilation", {1, 2, 8, 7}, {{2, 3}, {2, 1}, {1, 1, 1, 1}, {2, 1}, true});
  maxPool("overlap_s1", {1, 1, 5, 6}, {{3, 3}, {1, 1}, {0, 0, 0, 0}, {1, 1}, false});
  auto avgPool = [&](std::string name, Shape x, ir::AvgPool2dAttrs a) {
    add("avg_pool2d_" + name, OpKind::AvgPool2d, {in(g.normal(x), true)}, a);
  };
  avgPool("k3s2p1_cip", {2, 2, 7, 6}, {{3, 3}, {2, 2}, {1, 1, 1, 1}, false, true});
  avgPool("ceil_nocip", {1, 2, 7, 7}, {{3, 2}, {2, 2}, {1, 1, 1, 0}, true, false});
  avgPool("k2s2", {1, 3, 4, 6}, {{2, 2}, {2, 2}, {0, 0, 0, 0}, false, true});
  add("global_avg_pool", OpKind::GlobalAvgPool, {in(g.normal({2, 3, 4, 5}), true)});
  add("adaptive_avg_pool2d_to1", OpKind::AdaptiveAvgPool2d, {in(g.normal({2, 3, 3, 5}))},
      ir::AdaptiveAvgPool2dAttrs{{1, 1}});
  add("adaptive_avg_pool2d_divisible", OpKind::AdaptiveAvgPool2d, {in(g.normal({1, 2, 6, 4}))},
      ir::AdaptiveAvgPool2dAttrs{{3, 2}});

  // data movement
  add("concat", OpKind::Concat,
      {in(g.normal({2, 2, 3})), in(g.normal({2, 1, 3})), fixed(g.normal({2, 3, 3}))},
      ir::AxisAttrs{1});
  add("split_all", OpKind::Split, {in(g.normal({2, 5, 2}), true)}, ir::SplitAttrs{1, {2, 3}});
  add("split_some", OpKind::Split, {in(g.normal({2, 6, 2}))}, ir::SplitAttrs{-2, {1, 2, 3}},
      {0, 2});
  add("slice", OpKind::Slice, {in(g.normal({3, 5, 6}), true)},
      ir::SliceAttrs{{1, 2}, {1, -4}, {4, 100}, {1, 1}});
  add("reshape", OpKind::Reshape, {in(g.normal({2, 3, 4}), true)}, ir::ReshapeAttrs{{0, 2, -1}});
  add("flatten", OpKind::Flatten, {in(g.normal({2, 3, 2, 2}), true)}, ir::AxisAttrs{1});
  add("transpose", OpKind::Transpose, {in(g.normal({2, 3, 4}))}, ir::TransposeAttrs{{2, 0, 1}});
  add("pad", OpKind::Pad, {in(g.normal({2, 3, 3}), true)}, ir::PadAttrs{{0, 1, 2, 0, 0, 1}, 0.5});
  add("reorder_nhwc", OpKind::Reorder, {in(g.normal({2, 3, 2, 4}))},
      ir::ReorderAttrs{Layout::NHWC});

  // normalized exponentials
  add("softmax_last", OpKind::Softmax, {in(g.normal({3, 5}), true)}, ir::AxisAttrs{-1});
  add("softmax_axis1", OpKind::Softmax, {in(g.normal({2, 3, 4}))}, ir::AxisAttrs{1});
  add("log_softmax_last", OpKind::LogSoftmax, {in(g.normal({3, 5}), true)}, ir::AxisAttrs{-1});
  add("log_softmax_axis0", OpKind::LogSoftmax, {in(g.normal({3, 2, 2}))}, ir::AxisAttrs{0});

  // regularization (training: the seed fixes the mask, so the op is linear)
  add("dropout_train", OpKind::Dropout, {in(g.normal({4, 5}), true), fixed(g.seed(17))},
      ir::DropoutAttrs{0.3, true, 5});
  add("dropout_eval", OpKind::Dropout, {in(g.normal({4, 5}))}, ir::DropoutAttrs{0.3, false, 0});
  add("drop_path_train", OpKind::DropPath, {in(g.normal({6, 2, 2, 2}), true), fixed(g.seed(3))},
      ir::DropoutAttrs{0.5, true, 1});

  // loss
  add("softmax_cross_entropy_ids", OpKind::SoftmaxCrossEntropy,
      {in(g.normal({4, 5}, Layout::Scalar, 2.0)), fixed(g.ids(4, 5))}, ir::CrossEntropyAttrs{0.0});
  add("softmax_cross_entropy_smoothed", OpKind::SoftmaxCrossEntropy,
      {in(g.normal({4, 5}, Layout::Scalar, 2.0)), fixed(g.ids(4, 5))}, ir::CrossEntropyAttrs{0.2});
  add("softmax_cross_entropy_soft", OpKind::SoftmaxCrossEntropy,
      {in(g.normal({3, 4}, Layout::Scalar, 2.0)), fixed(g.probabilities(3, 4))},
      ir::CrossEntropyAttrs{0.1});
  return c;
}

/// sum_i x[i] * y[i] in memory order (equal types).
double dot(const Tensor& x, const Tensor& y) {
  double s = 0;
  for (int64_t i = 0; i < x.numElements(); ++i) s += x.at(i) * y.at(i);
  return s;
}

class GradCheck : public ::testing::TestWithParam<GradCase> {};

TEST_P(GradCheck, MatchesFiniteDifferences) {
  const GradCase& c = GetParam();
  ir::Graph graph("gradcheck");
  std::vector<ir::Value*> ins, wrt;
  std::vector<Tensor> feeds;
  for (size_t i = 0; i < c.operands.size(); ++i) {
    TensorType t = c.operands[i].t.type();
    if (c.operands[i].symbolic) t.shape[0] = ir::kBatch;
    ins.push_back(graph.addInput(fmt::format("x{}", i), t));
    feeds.push_back(c.operands[i].t);
    if (c.operands[i].check) wrt.push_back(ins.back());
  }
  Expected<ir::Node*> node = graph.createNode(c.op, ins, c.attrs, Loc{"case.cpp", 1, 1});
  ASSERT_TRUE(node.isOk()) << node.message();

  // L = sum_j <result_j, dy_j> for random dy_j.
  Gen gen(7);
  std::vector<GradSeed> seeds;
  std::vector<Tensor> dys;
  std::vector<size_t> seeded = c.seeded;
  if (seeded.empty())
    for (size_t r = 0; r < (*node)->numResults(); ++r) seeded.push_back(r);
  std::vector<Tensor> forward;
  {
    auto out = backends::reference::evaluateNode(**node, feeds);
    ASSERT_TRUE(out.isOk()) << out.message();
    forward = *out;
  }
  for (size_t r : seeded) {
    ir::Value* y = (*node)->result(r);
    Tensor dy = gen.normal(forward[r].shape(), forward[r].layout());
    seeds.push_back({y, graph.addInput(fmt::format("dy{}", r), y->type())});
    dys.push_back(dy);
    feeds.push_back(dy);
  }
  auto loss = [&](const std::vector<Tensor>& operands) {
    auto out = backends::reference::evaluateNode(**node, operands);
    EXPECT_TRUE(out.isOk()) << out.message();
    double l = 0;
    if (out.isOk())
      for (size_t j = 0; j < seeded.size(); ++j) l += dot((*out)[seeded[j]], dys[j]);
    return l;
  };

  Expected<std::vector<ir::Value*>> grads = appendGradients(graph, seeds, wrt);
  ASSERT_TRUE(grads.isOk()) << grads.message();
  for (ir::Value* v : *grads) ASSERT_NE(v, nullptr) << "no gradient reached an operand";
  graph.setOutputs(*grads);
  ir::Module m(std::move(graph));
  auto analytic = backends::reference::run(m, feeds);
  ASSERT_TRUE(analytic.isOk()) << analytic.message() << "\n" << ir::printGraph(m.graph);

  constexpr double kStep = 1e-6;
  constexpr int64_t kMaxElements = 96;  // checked per tensor (sampled when larger)
  std::mt19937_64 pick(11);
  size_t k = 0;
  for (size_t i = 0; i < c.operands.size(); ++i) {
    if (!c.operands[i].check) continue;
    const Tensor& got = (*analytic)[k++];
    ASSERT_EQ(got.shape(), c.operands[i].t.shape()) << "operand " << i;
    std::vector<Tensor> x;
    for (const Tensor& t : std::span(feeds).first(c.operands.size())) x.push_back(t.clone());
    const int64_t n = x[i].numElements();
    std::vector<int64_t> elems;
    for (int64_t e = 0; e < n; ++e) elems.push_back(e);
    if (n > kMaxElements) {
      std::shuffle(elems.begin(), elems.end(), pick);
      elems.resize(kMaxElements);
    }
    for (int64_t e : elems) {
      double& v = x[i].data<double>()[e];
      const double saved = v;
      v = saved + kStep;
      const double up = loss(x);
      v = saved - kStep;
      const double down = loss(x);
      v = saved;
      const double numeric = (up - down) / (2 * kStep);
      const double analyticValue = got.at(e);
      EXPECT_LE(std::fabs(analyticValue - numeric),
                testing::kGradCheck.atol + testing::kGradCheck.rtol * std::fabs(numeric))
          << c.name << ": d/d operand " << i << " element " << e << ": autodiff " << analyticValue
          << ", finite differences " << numeric;
      if (::testing::Test::HasFailure()) return;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, GradCheck, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<GradCase>& i) { return i.param.name; });

TEST(GradCheckCoverage, EveryGradientRuleHasACase) {
  std::set<OpKind> covered;
  for (const GradCase& c : cases()) covered.insert(c.op);
  for (const ir::OpInfo& op : ir::allOps()) {
    if (op.grad) {
      EXPECT_TRUE(covered.count(op.kind))
          << "op " << op.name << " has a gradient rule but no gradient check";
    }
  }
}

}  // namespace
}  // namespace kiln::passes
