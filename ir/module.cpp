// Module helpers: cloning, checking the weight binding, deterministic weight init.
#include "ir/module.h"

#include <cmath>
#include <random>

namespace kiln::ir {

Module Module::clone() const {
  Module m(graph.clone());
  m.weights = weights;
  return m;
}

Status checkWeightBinding(const Graph& g, const WeightStore& store, bool strict) {
  std::vector<std::string> missing, mismatched, unexpected;
  std::map<std::string, bool> declared;
  for (const Value* v : g.weights()) {
    declared[v->name()] = true;
    const Tensor* t = store.find(v->name());
    if (!t) {
      missing.push_back(v->name());
      continue;
    }
    const TensorType& want = v->type();
    if (t->dtype() != want.dtype || t->shape() != want.shape) {
      mismatched.push_back(fmt::format("{}: expected {}{}, got {}{}", v->name(),
                                       dtypeName(want.dtype), want.shape.str(),
                                       dtypeName(t->dtype()), t->shape().str()));
    }
  }
  if (strict) {
    for (const auto& [name, t] : store.entries())
      if (!declared.count(name)) unexpected.push_back(name);
  }
  if (missing.empty() && mismatched.empty() && unexpected.empty()) return Status::ok();
  std::string msg = fmt::format("weights do not match graph @{}", g.name());
  auto list = [&](std::string_view what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    msg += fmt::format("; {} {}: ", names.size(), what);
    for (size_t i = 0; i < names.size(); ++i) msg += (i ? ", " : "") + names[i];
  };
  list("missing", missing);
  list("mis-shaped", mismatched);
  list("unexpected", unexpected);
  return Status::error(msg);
}

namespace {

enum class InitRule { Uniform, Zeros, Ones, CopyOfAveraged };

struct WeightUse {
  InitRule rule = InitRule::Uniform;
  int64_t fanIn = 0;
};

/// How the first node that reads a weight uses it decides its initial values.
WeightUse weightUse(const Graph& g, const Value* w) {
  for (const Node* n : g.users(w)) {
    for (size_t i = 0; i < n->numOperands(); ++i) {
      if (n->operand(i) != w) continue;
      switch (n->kind()) {
        case OpKind::Conv2d: {
          const Shape& ws = n->operand(1)->type().shape;
          return {InitRule::Uniform, ws[1] * ws[2] * ws[3]};
        }
        case OpKind::Linear: return {InitRule::Uniform, n->operand(1)->type().shape[1]};
        case OpKind::BatchNorm:
        case OpKind::BatchNormTrain:
          if (i == 1 || i == 4) return {InitRule::Ones, 0};
          if (i == 2 || i == 3) return {InitRule::Zeros, 0};
          break;
        case OpKind::SgdUpdate:
          if (i == 3) return {InitRule::Zeros, 0};  // momentum buffer
          break;
        case OpKind::RmsPropUpdate:  // square_avg: ones for RMSpropTF, zeros for torch's
          if (i == 3) return {n->attrs<RmsPropAttrs>().tf ? InitRule::Ones : InitRule::Zeros, 0};
          if (i == 4) return {InitRule::Zeros, 0};  // momentum buffer
          break;
        case OpKind::AdamWUpdate:  // exp_avg, exp_avg_sq, step count
          if (i >= 3) return {InitRule::Zeros, 0};
          break;
        case OpKind::EmaUpdate:  // the average starts as a copy of the weight it follows
          if (i == 0) return {InitRule::CopyOfAveraged, 0};
          break;
        default: break;
      }
    }
  }
  return {InitRule::Uniform, std::max<int64_t>(1, w->type().shape.numElements(1))};
}

}  // namespace

void initMissingWeights(const Graph& g, WeightStore& store, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<const Value*> averages;
  for (const Value* v : g.weights()) {
    if (store.contains(v->name())) continue;
    Tensor t = Tensor::zeros(v->type());
    const WeightUse use = weightUse(g, v);
    if (use.rule == InitRule::CopyOfAveraged) {
      averages.push_back(v);
      continue;
    }
    // torch's default: kaiming_uniform(a=sqrt(5)) → U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    const double bound = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(use.fanIn, 1)));
    std::uniform_real_distribution<double> dist(-bound, bound);
    for (int64_t i = 0; i < t.numElements(); ++i) {
      double x = use.rule == InitRule::Uniform ? dist(rng) : use.rule == InitRule::Ones ? 1.0 : 0.0;
      if (t.dtype() == DType::F32) t.data<float>()[i] = static_cast<float>(x);
      else if (t.dtype() == DType::F64) t.data<double>()[i] = x;
    }
    store.set(v->name(), std::move(t));
  }
  // An EMA buffer `<name>.ema` (passes/autodiff.h) starts as a copy of `<name>`, once that
  // has its values (zeros when there is no such weight).
  for (const Value* v : averages) {
    const std::string_view name = v->name();
    const Tensor* src =
        name.ends_with(".ema") ? store.find(std::string(name.substr(0, name.size() - 4))) : nullptr;
    const bool same = src && src->dtype() == v->type().dtype && src->shape() == v->type().shape;
    store.set(v->name(), same ? *src : Tensor::zeros(v->type()));
  }
}

}  // namespace kiln::ir
