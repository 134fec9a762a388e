// The .kir text printer: a Graph as text that ir/parser.h reads back exactly.
#pragma once

#include <string>
#include <vector>

#include "ir/attrs.h"
#include "ir/graph.h"

namespace kiln::ir {

struct PrintOptions {
  /// Ends every declaration and node line with ` loc("file":line:col)`.
  bool debugLocations = false;
};

/// The whole graph; anonymous values are numbered %0, %1, ... in definition order.
std::string printGraph(const Graph& g, const PrintOptions& options = {});

/// One node line as printGraph writes it (no indent, no newline), with anonymous values
/// numbered as in printGraph(g).
std::string printNode(const Node& n, const Graph& g, const PrintOptions& options = {});
/// The same for messages when no graph is at hand: anonymous values print as %<value id>.
std::string printNode(const Node& n, const PrintOptions& options = {});

/// `{stride=[2,2], pad=[0,0,0,0], ...}` with every field in declaration order; "" for NoAttrs.
std::string printAttrs(const Attrs& attrs);

/// Shortest round-trip spelling that always reads as a double: 1.0, 1e-05, inf, -inf, nan.
std::string printDouble(double d);

/// The printed name of every value of `g` (`%x`, `%"a b"`, `%3`), indexed by value id, with
/// anonymous values numbered as in printGraph(g); ids of values the graph no longer defines
/// get "".
std::vector<std::string> printedValueNames(const Graph& g);

/// `%name`, `%"quoted name"` as the text IR spells a named value.
std::string printValueName(std::string_view name);

}  // namespace kiln::ir
