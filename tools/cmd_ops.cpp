// `kiln ops`: the op table as text or as the Markdown table in docs/ir.md.
#include <CLI/CLI.hpp>

#include "ir/ops.h"
#include "tools/commands.h"

namespace kiln::tools {

namespace {

std::string traitList(uint32_t traits) {
  static constexpr std::pair<ir::Trait, std::string_view> kNames[] = {
      {ir::Elementwise, "elementwise"},
      {ir::Commutative, "commutative"},
      {ir::Unary, "unary"},
      {ir::Binary, "binary"},
      {ir::Stochastic, "stochastic"},
      {ir::ShapeOnly, "shape-only"}};
  std::string s;
  for (const auto& [t, name] : kNames)
    if (traits & t) s += (s.empty() ? "" : ", ") + std::string(name);
  return s.empty() ? "-" : s;
}

std::string attrNames(ir::OpKind kind) {
  std::string s;
  std::visit(
      [&](const auto& a) {
        ir::forEachField(a, [&](std::string_view name, const auto&) {
          s += (s.empty() ? "" : ", ") + std::string(name);
        });
      },
      ir::defaultAttrs(kind));
  return s.empty() ? "-" : s;
}

std::string arity(const ir::OpInfo& op) {
  if (op.maxArity < 0) return fmt::format("{}+", op.minArity);
  if (op.minArity == op.maxArity) return std::to_string(op.minArity);
  return fmt::format("{}-{}", op.minArity, op.maxArity);
}

}  // namespace

Action registerOps(CLI::App& app) {
  auto markdown = std::make_shared<bool>(false);
  app.add_flag("--markdown", *markdown, "print the Markdown table used in docs/ir.md");
  return [markdown]() -> Status {
    if (*markdown) {
      fmt::print("| op | operands | attributes | ONNX | traits | gradient |\n");
      fmt::print("|---|---|---|---|---|---|\n");
    }
    for (const ir::OpInfo& op : ir::allOps()) {
      const std::string onnx = op.onnx.empty() ? "-" : std::string(op.onnx);
      if (*markdown)
        fmt::print("| `{}` | {} | {} | {} | {} | {} |\n", op.name, arity(op), attrNames(op.kind),
                   onnx, traitList(op.traits), op.grad ? "yes" : "-");
      else
        fmt::print("{:<20} {:>4}  {:<50} {:<20} {}\n", op.name, arity(op), attrNames(op.kind), onnx,
                   traitList(op.traits));
    }
    return Status::ok();
  };
}

}  // namespace kiln::tools
