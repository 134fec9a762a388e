// The reference backend: a plain interpreter for every op in ir/ops.def, the numeric oracle
// that optimized backends and math-changing passes are tested against. Forward only, f32
// and f64 (data movement ops copy any dtype).
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "ir/evaluator.h"
#include "ir/graph.h"
#include "ir/module.h"
#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln::backends::reference {

/// Runs one node. Kernels compute on plain row-major tensors: an operand in a permuted or
/// blocked layout (nhwc, nChw16c after select-layout) is reordered to row-major first, and
/// each result is converted to the layout its node declares (reorder itself takes any
/// layout). Blocked layouts whose block does not divide the dim are an error. Result shapes
/// come from the op's shape rule applied to the operands' concrete types. Returns one tensor
/// per result.
Expected<std::vector<ir::Tensor>> evaluateNode(const ir::Node& node,
                                               std::span<const ir::Tensor> operands);

/// ir::Evaluator for passes (constant folding) that must not depend on a backend.
class ReferenceEvaluator final : public ir::Evaluator {
 public:
  Expected<std::vector<ir::Tensor>> evaluate(const ir::Node& node,
                                             std::span<const ir::Tensor> operands) const override;
};

/// Runs a whole module: binds `inputs` by graph input order and weights from
/// `module.weights` by name, checks each input against its declared type (the symbolic batch
/// N binds to the first input's actual dim and must agree across inputs), executes the nodes
/// in order, frees intermediates after their last use and returns the graph outputs.
/// `observe`, when given, is called after each node with its wall time in milliseconds.
using NodeObserver = std::function<void(const ir::Node& node, double ms)>;
Expected<std::vector<ir::Tensor>> run(const ir::Module& module, std::span<const ir::Tensor> inputs,
                                      const NodeObserver& observe = {});

}  // namespace kiln::backends::reference
