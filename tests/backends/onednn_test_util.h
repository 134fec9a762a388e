// Helpers for the oneDNN backend tests: one-op graphs with their activations moved into a
// layout by reorder nodes, random data, and runs compared against the reference backend.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/graph.h"
#include "ir/module.h"
#include "runtime/session.h"
#include "tests/tolerance.h"

namespace kiln::testing {

/// One operand of an op under test: a graph input (moved into the case's layout when it has
/// rank 4) or a weight (seeded random, bound by name).
struct Operand {
  ir::TensorType type;
  bool weight = false;
  bool relayout = true;
  double lo = -1, hi = 1;  // weights: U(lo, hi)
};

inline Operand act(ir::Shape shape, bool relayout = true) {
  return Operand{ir::makeType(ir::DType::F32, std::move(shape)), false, relayout};
}
inline Operand param(ir::Shape shape, double lo = -1, double hi = 1) {
  return Operand{ir::makeType(ir::DType::F32, std::move(shape)), true, false, lo, hi};
}

/// Seeded U(lo, hi) values of `type`.
inline ir::Tensor uniformTensor(const ir::TensorType& type, double lo, double hi, uint64_t seed) {
  ir::Tensor t = ir::Tensor::zeros(type);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(static_cast<float>(lo), static_cast<float>(hi));
  for (float& v : t.span<float>()) v = dist(rng);
  return t;
}

/// x_k (row-major) -> [reorder to `layout`] -> op -> [reorder back] -> outputs.
inline Expected<ir::Module> opModule(ir::OpKind kind, ir::Attrs attrs,
                                     const std::vector<Operand>& operands, ir::Layout layout,
                                     uint64_t seed = 1) {
  ir::Module m;
  ir::Graph& g = m.graph;
  std::vector<ir::Value*> ins;
  for (size_t k = 0; k < operands.size(); ++k) {
    const Operand& o = operands[k];
    if (o.weight) {
      ins.push_back(g.addWeight(ir::ValueKind::Param, fmt::format("w{}", k), o.type));
      m.weights.set(fmt::format("w{}", k), uniformTensor(o.type, o.lo, o.hi, seed + k));
      continue;
    }
    ir::Value* x = g.addInput(fmt::format("x{}", k), o.type);
    if (o.relayout && o.type.shape.rank() == 4 && layout != ir::Layout::NCHW) {
      KILN_ASSIGN_OR_RETURN(ir::Node * r, g.createNode(ir::OpKind::Reorder, {x}, ir::ReorderAttrs{layout}));
      x = r->result();
    }
    ins.push_back(x);
  }
  KILN_ASSIGN_OR_RETURN(ir::Node * node, g.createNode(kind, ins, std::move(attrs)));
  for (ir::Value* r : node->results()) {
    ir::Value* out = r;
    if (!ir::isRowMajor(r->type().layout)) {
      const ir::Layout plain = *ir::defaultLayout(r->type().shape.rank());
      KILN_ASSIGN_OR_RETURN(ir::Node * back, g.createNode(ir::OpKind::Reorder, {r}, ir::ReorderAttrs{plain}));
      out = back->result();
    }
    g.addOutput(out);
  }
  return m;
}

/// Seeded N(0, sigma) values for every graph input (N bound to `batch`), in the declared
/// layout. sigma 3 reaches the bends of relu6, hardswish and hardsigmoid.
inline std::vector<ir::Tensor> randomInputs(const ir::Graph& g, int64_t batch, uint64_t seed,
                                            float sigma = 3.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<ir::Tensor> inputs;
  for (const ir::Value* in : g.inputs()) {
    ir::TensorType t = in->type();
    t.shape = t.shape.bind(batch);
    ir::Tensor x = ir::Tensor::zeros(t);
    for (float& v : x.span<float>()) v = dist(rng);
    inputs.push_back(std::move(x));
  }
  return inputs;
}

/// |got - want| <= atol + rtol |want| for every element (NaN matches NaN), naming the first miss.
inline ::testing::AssertionResult closeTensors(const ir::Tensor& got, const ir::Tensor& want,
                                               Tolerance tol) {
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << "type " << got.type().str() << ", want " << want.type().str();
  for (int64_t i = 0; i < want.numElements(); ++i) {
    const double g = got.at(i), w = want.at(i);
    if (std::isnan(g) && std::isnan(w)) continue;
    if (std::isinf(w) && g == w) continue;
    if (!(std::fabs(g - w) <= tol.atol + tol.rtol * std::fabs(w)))
      return ::testing::AssertionFailure() << "element " << i << " of " << want.shape().str()
                                           << ": got " << g << ", want " << w;
  }
  return ::testing::AssertionSuccess();
}

/// Largest |x| over the tensor.
inline double maxAbs(const ir::Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numElements(); ++i) m = std::max(m, std::fabs(t.at(i)));
  return m;
}

/// An onednn Session over `m` as given (no passes).
inline Expected<std::unique_ptr<runtime::Session>> onednnSession(ir::Module m, int64_t batch = 1,
                                                                 bool optimize = false) {
  runtime::SessionOptions o;
  o.backend = "onednn";
  o.optimize = optimize;
  o.batch = batch;
  o.threads = 2;
  return runtime::Session::create(std::move(m), o);
}

/// Builds the op in `layout` for oneDNN and in NCHW for the reference backend, runs both on the
/// same random inputs and compares every output.
inline void expectOpMatchesReference(ir::OpKind kind, const ir::Attrs& attrs,
                                     const std::vector<Operand>& operands,
                                     ir::Layout layout = ir::Layout::NCHW, int64_t batch = 2,
                                     Tolerance tol = kF32) {
  SCOPED_TRACE(fmt::format("{} in {}", ir::opName(kind), ir::layoutName(layout)));
  auto ref = opModule(kind, attrs, operands, ir::Layout::NCHW);
  ASSERT_TRUE(ref.isOk()) << ref.message();
  auto mine = opModule(kind, attrs, operands, layout);
  ASSERT_TRUE(mine.isOk()) << mine.message();
  const std::vector<ir::Tensor> inputs = randomInputs(ref->graph, batch, 7);
  auto want = backends::reference::run(*ref, inputs);
  ASSERT_TRUE(want.isOk()) << want.message();
  auto session = onednnSession(std::move(*mine), batch);
  ASSERT_TRUE(session.isOk()) << session.message();
  auto got = (*session)->run(inputs);
  ASSERT_TRUE(got.isOk()) << got.message();
  ASSERT_EQ(got->size(), want->size());
  for (size_t i = 0; i < want->size(); ++i)
    EXPECT_TRUE(closeTensors((*got)[i], (*want)[i], tol)) << "output " << i;
}

}  // namespace kiln::testing
