// Helpers for the reference backend tests: literal tensors, one-node graphs, comparisons.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/graph.h"
#include "ir/tensor.h"
#include "tests/tolerance.h"

namespace kiln::testing {

/// A tensor from literal values in row-major order (default layout unless given).
inline ir::Tensor literal(ir::Shape shape, const std::vector<double>& values,
                          ir::DType dtype = ir::DType::F32,
                          std::optional<ir::Layout> layout = std::nullopt) {
  ir::Tensor t = layout ? ir::Tensor(dtype, shape, *layout) : ir::Tensor(dtype, shape);
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.numElements()) << "literal " << shape.str();
  for (size_t i = 0; i < values.size() && static_cast<int64_t>(i) < t.numElements(); ++i) {
    if (dtype == ir::DType::F64)
      t.data<double>()[i] = values[i];
    else if (dtype == ir::DType::F32)
      t.data<float>()[i] = static_cast<float>(values[i]);
    else if (dtype == ir::DType::I64)
      t.data<int64_t>()[i] = static_cast<int64_t>(values[i]);
    else
      ADD_FAILURE() << "literal: unsupported dtype";
  }
  return t;
}

/// 0, 1, 2, … as a tensor of `shape`.
inline ir::Tensor iota(ir::Shape shape, ir::DType dtype = ir::DType::F32) {
  std::vector<double> v(shape.numElements());
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return literal(std::move(shape), v, dtype);
}

inline std::vector<double> valuesOf(const ir::Tensor& t) {
  std::vector<double> v(t.numElements());
  for (int64_t i = 0; i < t.numElements(); ++i) v[i] = t.at(i);
  return v;
}

/// Builds a one-node graph over inputs typed like `operands` (via Graph::createNode, so the
/// op's shape rule runs) and evaluates it with the reference backend.
inline Expected<std::vector<ir::Tensor>> runOp(ir::OpKind kind, ir::Attrs attrs,
                                               const std::vector<ir::Tensor>& operands) {
  ir::Graph g("op");
  std::vector<ir::Value*> ins;
  for (size_t i = 0; i < operands.size(); ++i)
    ins.push_back(g.addInput(fmt::format("x{}", i), operands[i].type()));
  KILN_ASSIGN_OR_RETURN(ir::Node * node, g.createNode(kind, ins, std::move(attrs)));
  return backends::reference::evaluateNode(*node, operands);
}

/// The single result of runOp; fails the test (and returns an empty tensor) on error.
inline ir::Tensor runOne(ir::OpKind kind, ir::Attrs attrs,
                         const std::vector<ir::Tensor>& operands) {
  auto r = runOp(kind, std::move(attrs), operands);
  if (!r.isOk()) {
    ADD_FAILURE() << r.message();
    return ir::Tensor();
  }
  EXPECT_EQ(r->size(), 1u);
  return r->empty() ? ir::Tensor() : (*r)[0];
}

/// |got - want| <= atol + rtol * |want| elementwise (NaN matches NaN).
inline ::testing::AssertionResult allClose(const std::vector<double>& got,
                                           const std::vector<double>& want, Tolerance tol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i]) && std::isnan(got[i])) continue;
    if (std::isinf(want[i]) && got[i] == want[i]) continue;
    const double err = std::fabs(got[i] - want[i]);
    if (!(err <= tol.atol + tol.rtol * std::fabs(want[i])))
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", want "
                                           << want[i] << " (error " << err << ")";
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult tensorIs(const ir::Tensor& t, ir::Shape shape,
                                           const std::vector<double>& want, Tolerance tol = kF32) {
  if (t.empty()) return ::testing::AssertionFailure() << "no tensor";
  if (t.shape() != shape)
    return ::testing::AssertionFailure() << "shape " << t.shape().str() << ", want " << shape.str();
  return allClose(valuesOf(t), want, tol);
}

}  // namespace kiln::testing
