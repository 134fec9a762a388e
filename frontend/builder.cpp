// The graph DSL's core: Builder and Var.
#include "frontend/builder.h"

#include "ir/verifier.h"

namespace kiln::frontend {

namespace {

/// The kiln source root as this file was compiled ("/work/main/"), derived from our own
/// path, or "" when the compiler gave a relative name.
std::string_view sourceRoot() {
  static const std::string_view root = [] {
    constexpr std::string_view kSelf = "frontend/builder.cpp";
    std::string_view self = std::source_location::current().file_name();
    if (self.size() >= kSelf.size() && self.substr(self.size() - kSelf.size()) == kSelf)
      return self.substr(0, self.size() - kSelf.size());
    return std::string_view();
  }();
  return root;
}

const ir::TensorType& poisonedType() {
  static const ir::TensorType t{};
  return t;
}

}  // namespace

Loc sourceLoc(const std::source_location& loc) {
  std::string_view file = loc.file_name();
  const std::string_view root = sourceRoot();
  if (!root.empty() && file.size() > root.size() && file.substr(0, root.size()) == root)
    file.remove_prefix(root.size());
  return Loc{std::string(file), static_cast<int>(loc.line()), static_cast<int>(loc.column())};
}

// ---- Var ---------------------------------------------------------------------

const ir::TensorType& Var::type() const {
  return value ? value->type() : poisonedType();
}
const ir::Shape& Var::shape() const {
  return type().shape;
}

ir::Dim Var::dim(int64_t i) const {
  const auto r = static_cast<int64_t>(rank());
  if (i < 0) i += r;
  if (i < 0 || i >= r) return 0;
  return shape()[static_cast<size_t>(i)];
}

// ---- Scope -------------------------------------------------------------------

Scope::~Scope() {
  if (!builder_) return;
  KILN_ASSERT(builder_->scopes_.size() == depth_, "DSL name scopes closed out of order");
  builder_->scopes_.pop_back();
}

// ---- Builder -----------------------------------------------------------------

Builder::Builder(std::string graphName) : graph_(std::move(graphName)) {}

Var Builder::fail(const std::source_location& loc, std::string message) {
  if (status_.isOk()) status_ = error(sourceLoc(loc), "{}", message);
  return Var();
}

bool Builder::claimName(const std::string& name, const std::source_location& loc) {
  if (names_.insert(name).second) return true;
  fail(loc, fmt::format("the name %{} is declared twice", name));
  return false;
}

Var Builder::input(std::string name, ir::TensorType type, std::source_location loc) {
  if (!ok() || finished_) return Var();
  if (name.empty()) return fail(loc, "graph inputs need a name");
  if (type.shape.rank() != ir::layoutRank(type.layout))
    return fail(loc, fmt::format("input %{}: layout {{{}}} does not fit rank {} of {}", name,
                                 ir::layoutName(type.layout), type.shape.rank(), type.str()));
  for (ir::Dim d : type.shape.dims())
    if (d < 0 && d != ir::kBatch)
      return fail(loc, fmt::format("input %{}: bad dimension {} in {}", name, d, type.str()));
  if (!claimName(name, loc)) return Var();
  return Var(graph_.addInput(std::move(name), std::move(type), sourceLoc(loc)));
}

Scope Builder::scope(std::string_view name) {
  scopes_.emplace_back(name);
  return Scope(this, scopes_.size());
}

std::string Builder::qualify(std::string_view localName) const {
  std::string out;
  auto append = [&](std::string_view part) {
    if (part.empty()) return;
    if (!out.empty()) out += '.';
    out += part;
  };
  for (const std::string& s : scopes_) append(s);
  append(localName);
  return out;
}

Var Builder::weight(ir::ValueKind kind, std::string_view localName, ir::Shape shape,
                    ir::Layout layout, const std::source_location& loc) {
  if (!ok() || finished_) return Var();
  std::string name = qualify(localName);
  const ir::TensorType type{ir::DType::F32, std::move(shape), layout};
  if (name.empty()) return fail(loc, "a weight needs a name");
  if (type.shape.rank() != ir::layoutRank(layout))
    return fail(loc, fmt::format("%{}: layout {{{}}} does not fit rank {} of {}", name,
                                 ir::layoutName(layout), type.shape.rank(), type.str()));
  for (ir::Dim d : type.shape.dims())
    if (d < 0)
      return fail(
          loc, fmt::format("%{}: weights need static dimensions >= 0, got {}", name, type.str()));
  if (!claimName(name, loc)) return Var();
  return Var(graph_.addWeight(kind, std::move(name), type, sourceLoc(loc)));
}

Var Builder::param(std::string_view localName, ir::Shape shape, ir::Layout layout,
                   std::source_location loc) {
  return weight(ir::ValueKind::Param, localName, std::move(shape), layout, loc);
}

Var Builder::buffer(std::string_view localName, ir::Shape shape, ir::Layout layout,
                    std::source_location loc) {
  return weight(ir::ValueKind::Buffer, localName, std::move(shape), layout, loc);
}

bool Builder::usable(const std::vector<Var>& operands, const std::source_location& loc) {
  if (!ok() || finished_) return false;
  for (size_t i = 0; i < operands.size(); ++i)
    if (!operands[i].valid()) {
      fail(loc, fmt::format("operand {} is an empty Var (never assigned a value)", i));
      return false;
    }
  return true;
}

std::vector<Var> Builder::opN(ir::OpKind kind, std::vector<Var> operands, ir::Attrs attrs,
                              std::source_location loc) {
  if (!usable(operands, loc)) return {};
  if (attrs.index() == 0 && ir::opInfo(kind).attrsIndex != 0) attrs = ir::defaultAttrs(kind);
  std::vector<ir::Value*> values;
  values.reserve(operands.size());
  for (const Var& v : operands) values.push_back(v.value);
  Expected<ir::Node*> node =
      graph_.createNode(kind, std::move(values), std::move(attrs), sourceLoc(loc));
  if (!node) {
    status_ = node.status();
    return {};
  }
  std::vector<Var> results;
  for (ir::Value* r : (*node)->results()) results.emplace_back(r);
  return results;
}

Var Builder::op(ir::OpKind kind, std::vector<Var> operands, ir::Attrs attrs,
                std::source_location loc) {
  std::vector<Var> results = opN(kind, std::move(operands), std::move(attrs), loc);
  if (results.empty()) return Var();
  if (results.size() != 1)
    return fail(loc, fmt::format("{}: has {} results; use opN", ir::opName(kind), results.size()));
  return results[0];
}

Var Builder::setName(Var v, std::string_view localName, std::source_location loc) {
  if (!usable({v}, loc)) return Var();
  std::string name = qualify(localName);
  if (name.empty()) return fail(loc, "setName: empty name");
  if (v.value->kind() != ir::ValueKind::Result || !v.value->name().empty())
    return fail(loc, fmt::format("setName: %{} already has a name", v.value->name()));
  if (!claimName(name, loc)) return Var();
  v.value->setName(std::move(name));
  return v;
}

void Builder::output(Var v, std::source_location loc) {
  if (!usable({v}, loc)) return;
  graph_.addOutput(v.value);
}

Expected<ir::Module> Builder::finish() {
  if (finished_) return error("graph builder for @{} was already finished", graph_.name());
  finished_ = true;
  if (!ok()) return status_;
  if (graph_.outputs().empty()) return error("graph @{} has no outputs", graph_.name());
  KILN_TRY(ir::verify(graph_));
  return ir::Module(std::move(graph_));
}

}  // namespace kiln::frontend
