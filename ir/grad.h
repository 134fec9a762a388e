// GradContext: what a gradient rule (ir/grad_rules.h, the gradRule column of ir/ops.def)
// builds its nodes with. Reverse-mode autodiff (passes/autodiff.h) owns one, points it at
// each node in turn and calls the node's rule.
//
// Errors are sticky, as in the DSL's Builder: a node whose shape rule fails records the first
// error, later calls return null, and a null operand makes op() return null. Rules therefore
// chain calls without checking and end with `return ctx.status();`.
#pragma once

#include <string>
#include <vector>

#include "ir/attrs.h"
#include "ir/graph.h"
#include "ir/ops.h"
#include "ir/status.h"
#include "ir/types.h"

namespace kiln::ir {

class GradContext {
 public:
  /// New nodes are appended to `graph`.
  explicit GradContext(Graph& graph) : graph_(graph) {}

  /// Points the context at `node`; `needs[i]` says whether operand i wants a gradient.
  void begin(const Node& node, std::vector<bool> needs);
  bool needs(size_t operand) const { return operand < needs_.size() && needs_[operand]; }
  /// The node being differentiated (new nodes get its location).
  const Node& node() const { return *node_; }

  /// A node of `kind` with the current node's location; `attrs` left as {} means the op's
  /// defaults. Null when an operand is null or after an error.
  Value* op(OpKind kind, std::vector<Value*> operands, Attrs attrs = {});
  /// Every result of a node (split, batch_norm_backward).
  std::vector<Value*> opN(OpKind kind, std::vector<Value*> operands, Attrs attrs = {});

  /// constant() {value=[v], shape, dtype}: `v` broadcast to a static shape ([] = scalar).
  Value* constant(double v, DType dtype, Shape shape = {});
  /// -v (v times the scalar -1).
  Value* neg(Value* v);
  /// reduce_sum(v) {axes, keepdims}.
  Value* reduceSum(Value* v, IntList axes, bool keepdims);
  /// The gradient of a value of shape `target` that numpy broadcasting stretched to
  /// `grad`'s shape: `grad` summed over the broadcast dimensions (itself if there are none).
  Value* sumTo(Value* grad, const Shape& target);

  /// Marks the current node as one the rule cannot differentiate, with the reason (the first
  /// reason is kept); returns null. Autodiff lists every such node at the end.
  Value* unsupported(std::string why);
  const std::string& unsupportedReason() const { return unsupported_; }

  /// Ok unless building a node failed.
  const Status& status() const { return status_; }

 private:
  Graph& graph_;
  const Node* node_ = nullptr;
  std::vector<bool> needs_;
  std::string unsupported_;
  Status status_;
};

}  // namespace kiln::ir
