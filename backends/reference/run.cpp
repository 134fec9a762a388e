// Whole-module execution: binds inputs (with the symbolic batch) and weights, runs the nodes in
// order and frees each intermediate after its last use.
#include <chrono>
#include <cstring>
#include <optional>

#include "backends/reference/reference.h"

namespace kiln::backends::reference {

using namespace ir;

namespace {

std::string valueRef(const Value& v) {
  return v.name().empty() ? fmt::format("(value #{})", v.id()) : "%" + v.name();
}

/// `f32[1,3,112,112]`: dtype and shape (layouts are reported separately).
std::string dtypeShape(DType t, const Shape& s) {
  return fmt::format("{}{}", dtypeName(t), s.str());
}

// A tensor read from a file carries the default layout of its rank, so only a real
// difference in memory order (ir::sameMemoryOrder) is an error.

/// The tensor with the declared layout (a cheap relabel when only the name differs).
Tensor withLayout(const Tensor& t, Layout layout) {
  if (t.layout() == layout) return t;
  Tensor r(t.dtype(), t.shape(), layout);
  if (t.nbytes()) std::memcpy(r.raw(), t.raw(), t.nbytes());
  return r;
}

/// Checks a tensor against a declared type. `batch` is the value of N so far (bound here on
/// first sight of a symbolic dim); `batchFrom` names the value that bound it.
Status checkBinding(const Value& v, const Tensor& t, std::optional<int64_t>& batch,
                    std::string& batchFrom, std::string_view what) {
  const TensorType& want = v.type();
  const Shape& got = t.shape();
  auto mismatch = [&](std::string_view extra) {
    return error(v.loc(), "{} {}: expected {}, got {}{}", what, valueRef(v),
                 dtypeShape(want.dtype, want.shape), dtypeShape(t.dtype(), got), extra);
  };
  if (t.empty()) return error(v.loc(), "{} {}: the tensor has no data", what, valueRef(v));
  if (t.dtype() != want.dtype || got.rank() != want.shape.rank()) return mismatch("");
  for (size_t i = 0; i < got.rank(); ++i) {
    if (want.shape[i] != kBatch) {
      if (got[i] != want.shape[i]) return mismatch("");
      continue;
    }
    if (!batch) {
      batch = got[i];
      batchFrom = valueRef(v);
    } else if (*batch != got[i]) {
      return mismatch(fmt::format(" (N is {}, bound by {})", *batch, batchFrom));
    }
  }
  if (!sameMemoryOrder(t.layout(), want.layout))
    return error(v.loc(), "{} {}: expected layout {{{}}}, got {{{}}}", what, valueRef(v),
                 layoutName(want.layout), layoutName(t.layout()));
  return Status::ok();
}

/// The result must have the type the graph declares (with N bound): a node whose shape rule
/// disagrees with its declaration is a malformed graph, not something to compute past.
Status checkResult(const Node& n, const Value& v, const Tensor& t, std::optional<int64_t> batch) {
  const TensorType& want = v.type();
  bool ok = t.dtype() == want.dtype && t.shape().rank() == want.shape.rank();
  for (size_t i = 0; ok && i < want.shape.rank(); ++i)
    ok = want.shape[i] == kBatch ? (!batch || t.shape()[i] == *batch)
                                 : t.shape()[i] == want.shape[i];
  if (!ok)
    return error(n.loc(), "{}: result {} is {}, but the graph declares {}", n.opName(), valueRef(v),
                 t.type().str(), want.str());
  return Status::ok();
}

}  // namespace

Expected<std::vector<Tensor>> run(const Module& module, std::span<const Tensor> inputs,
                                  const NodeObserver& observe) {
  const Graph& g = module.graph;
  if (inputs.size() != g.inputs().size())
    return error("graph @{} has {} inputs, {} tensors were given", g.name(), g.inputs().size(),
                 inputs.size());

  std::vector<Tensor> values(g.numValueIds());
  std::optional<int64_t> batch;
  std::string batchFrom;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = *g.inputs()[i];
    KILN_TRY(checkBinding(v, inputs[i], batch, batchFrom, "input"));
    values[v.id()] = withLayout(inputs[i], v.type().layout);
  }
  for (const Value* w : g.weights()) {
    const Tensor* t = module.weights.find(w->name());
    if (!t)
      return error(w->loc(), "{} {}: missing from the weight store", valueKindKeyword(w->kind()),
                   valueRef(*w));
    KILN_TRY(checkBinding(*w, *t, batch, batchFrom, valueKindKeyword(w->kind())));
    values[w->id()] = withLayout(*t, w->type().layout);
  }

  // Last node index reading each value; graph outputs live to the end, unread results die
  // at once.
  constexpr size_t kForever = static_cast<size_t>(-1), kUnread = kForever - 1;
  std::vector<size_t> lastUse(g.numValueIds(), kUnread);
  size_t index = 0;
  for (const auto& n : g.nodes()) {
    for (const Value* o : n->operands()) lastUse[o->id()] = index;
    ++index;
  }
  for (const Value* o : g.outputs()) lastUse[o->id()] = kForever;

  std::vector<Tensor> operands;
  index = 0;
  for (const auto& n : g.nodes()) {
    operands.clear();
    for (const Value* o : n->operands()) {
      if (values[o->id()].empty())
        return error(n->loc(),
                     "{}: operand {} has no value (the graph is not in topological "
                     "order)",
                     n->opName(), valueRef(*o));
      operands.push_back(values[o->id()]);
    }
    const auto start = std::chrono::steady_clock::now();
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> results, evaluateNode(*n, operands));
    if (observe)
      observe(*n, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                      .count());
    operands.clear();
    for (size_t r = 0; r < results.size(); ++r) {
      KILN_TRY(checkResult(*n, *n->result(r), results[r], batch));
      if (lastUse[n->result(r)->id()] != kUnread)
        values[n->result(r)->id()] = std::move(results[r]);
    }
    for (const Value* o : n->operands())
      if (lastUse[o->id()] == index) values[o->id()] = Tensor();
    ++index;
  }

  std::vector<Tensor> outputs;
  outputs.reserve(g.outputs().size());
  for (const Value* o : g.outputs()) {
    if (values[o->id()].empty())
      return error("graph @{}: output {} was never computed", g.name(), valueRef(*o));
    outputs.push_back(values[o->id()]);
  }
  return outputs;
}

}  // namespace kiln::backends::reference
