// The verifier: SSA well-formedness, op arity and attributes, and types vs the op table.
#pragma once

#include "ir/graph.h"
#include "ir/status.h"

namespace kiln::ir {

/// Checks that every operand is defined before use and belongs to the graph, arity and
/// attribute kinds match the op table, result dtypes/shapes equal what the shape rules
/// infer, layouts have the right rank, names are unique and outputs are defined.
/// The message names the op, the value and what was expected vs got.
Status verify(const Graph& g);

}  // namespace kiln::ir
