// The .kir printer. Attributes are printed by walking each struct's `fields` list, so a new
// attribute or op needs no change here.
#include "ir/printer.h"

#include <fmt/format.h>

#include <cmath>
#include <unordered_map>

#include "ir/lexer.h"

namespace kiln::ir {

namespace {

void appendValue(std::string& out, int64_t v) {
  out += fmt::format("{}", v);
}
void appendValue(std::string& out, double v) {
  out += printDouble(v);
}
void appendValue(std::string& out, bool v) {
  out += v ? "true" : "false";
}
void appendValue(std::string& out, DType v) {
  out += dtypeName(v);
}
void appendValue(std::string& out, Layout v) {
  // The scalar layout is spelled "" and must stay visible as a value.
  std::string_view name = layoutName(v);
  out += name.empty() ? std::string("\"\"") : std::string(name);
}
void appendValue(std::string& out, const PostOp& v) {
  out += postOpText(v);
}
template <typename List>
void appendList(std::string& out, const List& list) {
  out += '[';
  bool first = true;
  for (const auto& v : list) {
    if (!first) out += ',';
    first = false;
    appendValue(out, v);
  }
  out += ']';
}
template <size_t N>
void appendValue(std::string& out, const Ints<N>& v) {
  appendList(out, v);
}
void appendValue(std::string& out, const IntList& v) {
  appendList(out, v);
}
void appendValue(std::string& out, const FloatList& v) {
  appendList(out, v);
}
void appendValue(std::string& out, const PostOpList& v) {
  out += '[';
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ", ";
    appendValue(out, v[i]);
  }
  out += ']';
}

/// Fields left out of the text when they hold their "nothing" value.
template <typename T>
bool omitted(const T&) {
  return false;
}
bool omitted(const PostOpList& v) { return v.empty(); }

std::string printLoc(const Loc& loc) {
  return fmt::format(" loc({}:{}:{})", kir::quoteString(loc.file), loc.line, loc.col);
}

/// Printed names of values: named ones as written, anonymous ones numbered.
class Namer {
 public:
  explicit Namer(const Graph* g) : hasGraph_(g != nullptr) {
    if (!g) return;
    for (const Value* v : g->inputs()) add(v);
    for (const Value* v : g->weights()) add(v);
    for (const auto& n : g->nodes())
      for (const Value* v : n->results()) add(v);
  }
  std::string name(const Value* v) const {
    if (!v) return "%\"<null>\"";
    if (!v->name().empty()) return printValueName(v->name());
    auto it = numbers_.find(v);
    if (it != numbers_.end()) return fmt::format("%{}", it->second);
    // Without a graph the id identifies the value; in a graph dump a value the graph does not
    // define gets a name that cannot collide with the numbering (and fails to parse).
    if (hasGraph_) return fmt::format("%\"<undefined value #{}>\"", v->id());
    return fmt::format("%{}", v->id());
  }

 private:
  void add(const Value* v) {
    if (v->name().empty()) numbers_.emplace(v, next_++);
  }
  bool hasGraph_;
  std::unordered_map<const Value*, int> numbers_;
  int next_ = 0;
};

std::string nodeLine(const Node& n, const Namer& namer, const PrintOptions& options) {
  std::string out;
  for (size_t i = 0; i < n.numResults(); ++i) {
    if (i) out += ", ";
    out += namer.name(n.result(i));
  }
  if (n.numResults() > 0) out += " = ";
  out += n.opName();
  out += '(';
  for (size_t i = 0; i < n.numOperands(); ++i) {
    if (i) out += ", ";
    out += namer.name(n.operand(i));
  }
  out += ')';
  std::string attrs = printAttrs(n.attrs());
  if (!attrs.empty()) {
    out += ' ';
    out += attrs;
  }
  for (size_t i = 0; i < n.numResults(); ++i) {
    out += i ? ", " : " : ";
    out += n.result(i)->type().str();
  }
  if (options.debugLocations) out += printLoc(n.loc());
  return out;
}

}  // namespace

std::string printDouble(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", d);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string printValueName(std::string_view name) {
  if (kir::isBareName(name)) return fmt::format("%{}", name);
  return fmt::format("%{}", kir::quoteString(name));
}

std::string printAttrs(const Attrs& attrs) {
  return std::visit(
      [](const auto& a) {
        std::string out;
        forEachField(a, [&](std::string_view name, const auto& value) {
          if (omitted(value)) return;
          out += out.empty() ? "{" : ", ";
          out += name;
          out += '=';
          appendValue(out, value);
        });
        if (!out.empty()) out += '}';
        return out;
      },
      attrs);
}

std::string printNode(const Node& n, const Graph& g, const PrintOptions& options) {
  return nodeLine(n, Namer(&g), options);
}

std::string printNode(const Node& n, const PrintOptions& options) {
  return nodeLine(n, Namer(nullptr), options);
}

std::vector<std::string> printedValueNames(const Graph& g) {
  const Namer namer(&g);
  std::vector<std::string> names(g.numValueIds());
  auto add = [&](const Value* v) { names[static_cast<size_t>(v->id())] = namer.name(v); };
  for (const Value* v : g.inputs()) add(v);
  for (const Value* v : g.weights()) add(v);
  for (const auto& n : g.nodes())
    for (const Value* v : n->results()) add(v);
  return names;
}

std::string printGraph(const Graph& g, const PrintOptions& options) {
  Namer namer(&g);
  std::string name = kir::isBareName(g.name()) ? g.name() : kir::quoteString(g.name());
  std::string out = fmt::format("graph @{} {{\n", name);
  auto declare = [&](const Value* v) {
    out += fmt::format("  {} {} : {}", valueKindKeyword(v->kind()), namer.name(v), v->type().str());
    if (options.debugLocations) out += printLoc(v->loc());
    out += '\n';
  };
  for (const Value* v : g.inputs()) declare(v);
  for (const Value* v : g.weights()) declare(v);
  for (const auto& n : g.nodes()) {
    out += "  ";
    out += nodeLine(*n, namer, options);
    out += '\n';
  }
  if (!g.outputs().empty()) {
    out += "  output ";
    for (size_t i = 0; i < g.outputs().size(); ++i) {
      if (i) out += ", ";
      out += namer.name(g.outputs()[i]);
    }
    out += '\n';
  }
  out += "}\n";
  return out;
}

}  // namespace kiln::ir
