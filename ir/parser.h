// The .kir text parser: reads what ir/printer.h writes (and hand-written text), checking
// every node against the op table's arity and shape rules.
#pragma once

#include <string_view>

#include "ir/graph.h"
#include "ir/status.h"
#include "ir/types.h"

namespace kiln::ir {

/// Parses a whole .kir text. `fileName` goes into locations and errors
/// ("file.kir:3:14: message", like every located error; the CLI adds "error: "). Never aborts
/// on bad input.
Expected<Graph> parseGraph(std::string_view text, std::string_view fileName);

/// Parses one tensor type (`f32[N,3,224,224]{nchw}`; the `{layout}` may be left out for the
/// row-major layout of the rank). Errors name `<type>` as the file.
Expected<TensorType> parseType(std::string_view text);

}  // namespace kiln::ir
