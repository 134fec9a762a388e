// Test helpers for the .kir printer/parser: a valid sample node for every op in the table,
// and a seeded generator of random valid graphs built from those samples.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/ops.h"

namespace kiln::ir::kirtest {

/// Operand types (covering optional operands) and attributes of one valid node of an op.
struct OpSample {
  std::vector<TensorType> operands;
  Attrs attrs;
};

inline TensorType sampleType(DType d, Shape s, Layout l) {
  return TensorType{d, std::move(s), l};
}

/// A valid sample for `kind`, or nullopt for an op this table does not know yet (the tests
/// fail then, so a new op gets a sample here).
inline std::optional<OpSample> sampleFor(OpKind kind) {
  const DType f = DType::F32;
  const TensorType x = sampleType(f, {kBatch, 4, 8, 8}, Layout::NCHW);
  const TensorType ch = sampleType(f, {4}, Layout::X);
  const std::string_view op = opName(kind);
  Attrs a = defaultAttrs(kind);
  auto with = [&](auto edit) {
    edit(a);
    return a;
  };
  if (op == "conv2d")
    return OpSample{{x, sampleType(f, {6, 4, 3, 3}, Layout::OIHW), sampleType(f, {6}, Layout::X)},
                    a};
  if (op == "batch_norm") return OpSample{{x, ch, ch, ch, ch}, a};
  if (op == "relu" || op == "relu6" || op == "sigmoid" || op == "swish" || op == "hardswish" ||
      op == "hardsigmoid" || op == "tanh" || op == "clip" || op == "dropout" || op == "softmax" ||
      op == "log_softmax" || op == "max_pool2d" || op == "avg_pool2d" || op == "global_avg_pool" ||
      op == "adaptive_avg_pool2d" || op == "flatten" || op == "reorder")
    return OpSample{{x}, a};
  if (op == "add" || op == "sub" || op == "mul" || op == "div")
    return OpSample{{x, sampleType(f, {4, 1, 1}, Layout::NCW)}, a};
  if (op == "channel_scale")
    return OpSample{{x, sampleType(f, {kBatch, 4, 1, 1}, Layout::NCHW)}, a};
  if (op == "matmul")
    return OpSample{{sampleType(f, {2, 3, 5}, Layout::NCW), sampleType(f, {5, 7}, Layout::NC)}, a};
  if (op == "linear")
    return OpSample{{sampleType(f, {kBatch, 16}, Layout::NC), sampleType(f, {10, 16}, Layout::OI),
                     sampleType(f, {10}, Layout::X)},
                    a};
  if (op == "concat") return OpSample{{x, x, x}, a};
  if (op == "split")
    return OpSample{{x}, with([](Attrs& v) { std::get<SplitAttrs>(v).sizes = {1, 3}; })};
  if (op == "slice")
    return OpSample{{x}, with([](Attrs& v) {
                      auto& s = std::get<SliceAttrs>(v);
                      s.axes = {1, 3};
                      s.starts = {0, 1};
                      s.ends = {2, 8};
                      s.steps = {1, 2};
                    })};
  if (op == "reshape")
    return OpSample{{x}, with([](Attrs& v) { std::get<ReshapeAttrs>(v).shape = {0, -1}; })};
  if (op == "transpose")
    return OpSample{{x}, with([](Attrs& v) { std::get<TransposeAttrs>(v).perm = {0, 2, 3, 1}; })};
  if (op == "pad")
    return OpSample{{x},
                    with([](Attrs& v) { std::get<PadAttrs>(v).pads = {0, 0, 1, 2, 0, 0, 3, 4}; })};
  // training ops
  const TensorType logits = sampleType(f, {kBatch, 10}, Layout::NC);
  const TensorType ids = sampleType(DType::I64, {kBatch}, Layout::X);
  const TensorType scalar = sampleType(f, {}, Layout::Scalar);
  const TensorType dy = sampleType(f, {kBatch, 6, 6, 6}, Layout::NCHW);
  if (op == "batch_norm_train") return OpSample{{x, ch, ch, ch, ch}, a};
  if (op == "drop_path")
    return OpSample{{x, sampleType(DType::I64, {}, Layout::Scalar)},
                    with([](Attrs& v) { std::get<DropoutAttrs>(v).training = true; })};
  if (op == "reduce_sum")
    return OpSample{{x}, with([](Attrs& v) { std::get<ReduceAttrs>(v).axes = {1, 3}; })};
  if (op == "conv2d_backward_data")
    return OpSample{{dy, sampleType(f, {6, 4, 3, 3}, Layout::OIHW)}, with([](Attrs& v) {
                      std::get<Conv2dBackwardDataAttrs>(v).input_size = {8, 8};
                    })};
  if (op == "conv2d_backward_weight")
    return OpSample{{x, dy}, with([](Attrs& v) {
                      std::get<Conv2dBackwardWeightAttrs>(v).kernel = {3, 3};
                    })};
  if (op == "batch_norm_backward") return OpSample{{x, x, ch, ch, ch}, a};
  if (op == "max_pool2d_backward" || op == "relu_backward" || op == "clip_backward" ||
      op == "swish_backward" || op == "hardswish_backward" || op == "hardsigmoid_backward")
    return OpSample{{x, x}, a};
  if (op == "avg_pool2d_backward")
    return OpSample{{x}, with([](Attrs& v) {
                      std::get<AvgPool2dBackwardAttrs>(v).input_size = {8, 8};
                    })};
  if (op == "softmax_cross_entropy" || op == "count_correct") return OpSample{{logits, ids}, a};
  if (op == "softmax_cross_entropy_backward") return OpSample{{scalar, logits, logits}, a};
  if (op == "sgd_update") {
    const TensorType w = sampleType(f, {6, 4, 3, 3}, Layout::OIHW);
    return OpSample{{w, w, scalar, w},
                    with([](Attrs& v) { std::get<SgdAttrs>(v).momentum = 0.9; })};
  }
  if (op == "rmsprop_update") {
    const TensorType w = sampleType(f, {6, 4, 3, 3}, Layout::OIHW);
    return OpSample{{w, w, scalar, w, w},
                    with([](Attrs& v) { std::get<RmsPropAttrs>(v).momentum = 0.9; })};
  }
  if (op == "adamw_update") {
    const TensorType w = sampleType(f, {6, 4}, Layout::OI);
    return OpSample{{w, w, scalar, w, w, scalar},
                    with([](Attrs& v) { std::get<AdamWAttrs>(v).weight_decay = 0.01; })};
  }
  if (op == "ema_update") return OpSample{{ch, ch}, a};
  if (op == "global_norm") return OpSample{{x, ch, scalar}, a};
  if (op == "constant")
    return OpSample{{}, with([](Attrs& v) {
                      auto& c = std::get<ConstantAttrs>(v);
                      c.value = {0.5, -1.0};
                      c.shape = {2};
                    })};
  return std::nullopt;
}

/// Seeded random graphs that the shape rules accept, with awkward names, attribute values,
/// layouts and locations, for round-trip and fuzz tests.
class RandomGraphGen {
 public:
  explicit RandomGraphGen(uint64_t seed) : rng_(seed) {}

  Graph build(int numNodes) {
    Graph g(pick({std::string("g"), std::string("resnet18"), std::string("my graph \"x\"")}));
    g_ = &g;
    names_.clear();
    values_.clear();
    int numInputs = uniform(1, 3);
    for (int i = 0; i < numInputs; ++i) {
      DType d = chance(0.8) ? DType::F32 : randomDType();
      Layout l = chance(0.7) ? Layout::NCHW : Layout::NHWC;
      values_.push_back(g.addInput(name(true), TensorType{d, {kBatch, 4, 8, 8}, l}, loc()));
    }
    for (int i = 0; i < numNodes; ++i) addRandomNode();
    int numOutputs = uniform(1, 3);
    for (int i = 0; i < numOutputs; ++i) g.addOutput(values_[uniform(0, values_.size() - 1)]);
    g_ = nullptr;
    return g;
  }

 private:
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  int uniform(int lo, size_t hi) { return uniform(lo, static_cast<int>(hi)); }
  bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <typename T>
  T pick(std::initializer_list<T> items) {
    return *(items.begin() + uniform(0, items.size() - 1));
  }

  DType randomDType() {
    return pick({DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I8,
                 DType::U8, DType::Bool});
  }
  Layout randomLayout() {
    return pick({Layout::Scalar, Layout::X, Layout::NC, Layout::OI, Layout::NCW, Layout::NCHW,
                 Layout::NHWC, Layout::OIHW, Layout::HWIO, Layout::OHWI, Layout::NChw8c,
                 Layout::NChw16c, Layout::NCDHW});
  }

  /// A fresh unique name: anonymous (when allowed), plain, or one that needs quotes.
  std::string name(bool anonymousOk) {
    while (true) {
      std::string n;
      switch (uniform(0, 7)) {
        case 0:
        case 1:
          if (anonymousOk) return "";
          n = "w";
          break;
        case 2:
          n = "x";
          break;
        case 3:
          n = "layer1.0.conv1.weight";
          break;
        case 4:
          n = "_a-b.c";
          break;
        case 5:
          n = pick({std::string("42"), std::string("0.weight"), std::string("a b")});
          break;
        case 6:
          n = pick({std::string("q\"uote"), std::string("back\\slash"), std::string("new\nline"),
                    std::string("tab\there"), std::string("caf\xc3\xa9"), std::string("%x")});
          break;
        default:
          n = pick({std::string("N"), std::string("loc"), std::string("input")});
          break;
      }
      n += std::to_string(uniform(0, 99));
      if (names_.insert(n).second) return n;
    }
  }

  Loc loc() {
    std::string file = pick({std::string("models/resnet.cpp"), std::string(""),
                             std::string("we\"ird\\ path\n.cpp"), std::string("node_17")});
    return Loc{file, uniform(0, 5000), uniform(0, 120)};
  }

  // ---- random attribute values, one overload per field type ----
  // Includes the int64 extremes and the dim limit's edges: shape rules check the attributes
  // they compute dims from and must reject these with a Status, never overflow (the ASan/UBSan
  // build runs this).
  void randomize(int64_t& v) {
    v = pick<int64_t>({0, 1, 2, 3, -1, -7, 1000, std::numeric_limits<int64_t>::max(),
                       std::numeric_limits<int64_t>::min(), kMaxDim, kMaxDim + 1});
  }
  void randomize(double& v) {
    constexpr double inf = std::numeric_limits<double>::infinity();
    v = pick({0.0, -0.0, 1.0, 0.5, 1e-5, 1.0 / 3.0, 1e300, -2.5e-300, 5e-324, 1e16, 123456.0, inf,
              -inf, std::numeric_limits<double>::quiet_NaN()});
    if (chance(0.3)) v = std::uniform_real_distribution<double>(-1e6, 1e6)(rng_);
  }
  void randomize(bool& v) { v = chance(0.5); }
  void randomize(DType& v) { v = randomDType(); }
  void randomize(Layout& v) { v = randomLayout(); }
  void randomize(PostOp& v) {
    v.kind = static_cast<PostOpKind>(uniform(0, static_cast<int>(PostOpKind::Clip)));
    randomize(v.alpha);
    randomize(v.beta);
    if (postOpArity(v.kind) == 0) v.alpha = v.beta = 0;  // the text form has no parameters
  }
  template <typename T, size_t N>
  void randomize(std::array<T, N>& v) {
    for (T& e : v) randomize(e);
  }
  template <typename T>
  void randomize(std::vector<T>& v) {
    v.resize(uniform(0, 4));
    for (T& e : v) randomize(e);
  }
  Attrs randomAttrs(Attrs a) {
    std::visit([&](auto& s) { forEachField(s, [&](std::string_view, auto& f) { randomize(f); }); },
               a);
    return a;
  }

  /// Adds a node if the shape rule accepts it; erases it and returns false otherwise.
  bool tryAdd(OpKind kind, const std::vector<Value*>& operands, const Attrs& attrs) {
    Node* probe = g_->addNode(kind, operands, attrs, {}, loc());
    std::vector<TensorType> types;
    bool ok = inferResultTypes(*probe, types).isOk();
    g_->eraseNode(probe);
    // Rules check their results against the limits of ir/types.h; this states it.
    for (const TensorType& t : types) {
      for (Dim d : t.shape.dims()) EXPECT_TRUE(d >= 0 || d == kBatch) << t.str();
      EXPECT_TRUE(checkShapeLimits(t.shape).isOk()) << t.str();
    }
    if (!ok) return false;
    for (TensorType& t : types) {
      // Layouts are chosen, not inferred: any layout of the right rank must survive.
      Layout l = randomLayout();
      if (chance(0.3) && layoutRank(l) == t.shape.rank()) t.layout = l;
    }
    Node* n = g_->addNode(kind, operands, attrs, types, loc());
    for (Value* r : n->results()) {
      r->setName(name(true));
      values_.push_back(r);
    }
    return true;
  }

  void addRandomNode() {
    const auto ops = allOps();
    const OpInfo& info = ops[uniform(0, ops.size() - 1)];
    std::optional<OpSample> sample = sampleFor(info.kind);
    ASSERT_TRUE(sample) << "no sample for op " << info.name;
    // Random wiring from existing values first (sometimes with random attributes).
    for (int attempt = 0; attempt < 3; ++attempt) {
      int maxArity = info.maxArity < 0 ? info.minArity + 3 : info.maxArity;
      std::vector<Value*> operands(uniform(info.minArity, maxArity));
      for (Value*& v : operands) v = values_[uniform(0, values_.size() - 1)];
      Attrs attrs = chance(0.5) ? randomAttrs(sample->attrs) : sample->attrs;
      if (tryAdd(info.kind, operands, attrs)) return;
    }
    // Otherwise the sample's operand types, reusing values of those types where there are any.
    std::vector<Value*> operands;
    for (size_t i = 0; i < sample->operands.size(); ++i) {
      const TensorType& t = sample->operands[i];
      std::vector<Value*> same;
      for (Value* v : values_)
        if (v->type() == t) same.push_back(v);
      if (!same.empty() && chance(0.8)) {
        operands.push_back(same[uniform(0, same.size() - 1)]);
      } else if (i == 0 || !t.shape.isStatic()) {  // weights must be static
        operands.push_back(g_->addInput(name(true), t, loc()));
        values_.push_back(operands.back());
      } else {
        ValueKind k = pick({ValueKind::Param, ValueKind::Buffer, ValueKind::Const});
        operands.push_back(g_->addWeight(k, name(false), t, loc()));
        values_.push_back(operands.back());
      }
    }
    ASSERT_TRUE(tryAdd(info.kind, operands, sample->attrs)) << "sample of " << info.name;
  }

  std::mt19937_64 rng_;
  Graph* g_ = nullptr;
  std::set<std::string> names_;
  std::vector<Value*> values_;
};

}  // namespace kiln::ir::kirtest
