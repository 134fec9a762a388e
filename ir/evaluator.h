// Evaluator: how passes (constant-fold) run a node without depending on a backend. The
// tools hand in the reference backend's implementation.
#pragma once

#include <span>
#include <vector>

#include "ir/graph.h"
#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln::ir {

class Evaluator {
 public:
  virtual ~Evaluator() = default;
  /// Runs one node on concrete operands; returns one tensor per result.
  virtual Expected<std::vector<Tensor>> evaluate(const Node& node,
                                                 std::span<const Tensor> operands) const = 0;
};

}  // namespace kiln::ir
