// Graph verifier.
#include "ir/verifier.h"

#include <unordered_set>

namespace kiln::ir {

namespace {

std::string valueRef(const Value* v) {
  if (!v->name().empty()) return "%" + v->name();
  if (v->producer()) return fmt::format("result {} of {}", v->resultIndex(), v->producer()->opName());
  return fmt::format("value #{}", v->id());
}

Status checkLayoutRank(const Value* v, std::string_view what) {
  const TensorType& t = v->type();
  if (layoutRank(t.layout) != t.shape.rank())
    return error(v->loc(), "{} {}: layout {{{}}} is for rank {}, but the shape {} has rank {}",
                 what, valueRef(v), layoutName(t.layout), layoutRank(t.layout), t.shape.str(),
                 t.shape.rank());
  return Status::ok();
}

/// The limits of ir/types.h, for graphs from any source (.kir, .kpb, the DSL, passes), and
/// static shapes for weights: only activations have the symbolic batch N.
Status checkTypeLimits(const Value* v, std::string_view what) {
  const TensorType& t = v->type();
  if (Status st = checkShapeLimits(t.shape); !st)
    return error(v->loc(), "{} {}: {}", what, valueRef(v), st.message());
  if (v->kind() != ValueKind::Input && v->kind() != ValueKind::Result && !t.shape.isStatic())
    return error(v->loc(), "{} {}: a weight must have a static shape, got {}", what, valueRef(v),
                 t.str());
  return Status::ok();
}

}  // namespace

Status verify(const Graph& g) {
  std::unordered_set<const Value*> defined;
  std::unordered_set<std::string> names;
  auto declare = [&](const Value* v, std::string_view what) -> Status {
    if (!v->name().empty() && !names.insert(v->name()).second)
      return error(v->loc(), "{} %{} is defined more than once", what, v->name());
    defined.insert(v);
    KILN_TRY(checkTypeLimits(v, what));
    return checkLayoutRank(v, what);
  };
  for (const Value* v : g.inputs()) KILN_TRY(declare(v, "input"));
  for (const Value* v : g.weights()) KILN_TRY(declare(v, valueKindKeyword(v->kind())));

  for (const auto& n : g.nodes()) {
    const OpInfo& info = opInfo(n->kind());
    const int arity = static_cast<int>(n->numOperands());
    if (arity < info.minArity || (info.maxArity >= 0 && arity > info.maxArity))
      return error(n->loc(), "{}: has {} operands, expected {}{}", info.name, arity,
                   info.minArity, info.maxArity < 0 ? " or more" : info.maxArity == info.minArity ? "" : fmt::format(" to {}", info.maxArity));
    if (n->attrs().index() != info.attrsIndex)
      return error(n->loc(), "{}: carries the attributes of another op", info.name);
    for (size_t i = 0; i < n->numOperands(); ++i) {
      const Value* v = n->operand(i);
      if (!v) return error(n->loc(), "{}: operand {} is null", info.name, i);
      if (!defined.count(v))
        return error(n->loc(), "{}: operand {} ({}) is not defined before its use", info.name, i,
                     valueRef(v));
    }
    std::vector<TensorType> inferred;
    KILN_TRY(inferResultTypes(*n, inferred));
    if (inferred.size() != n->numResults())
      return error(n->loc(), "{}: has {} results, its shape rule gives {}", info.name,
                   n->numResults(), inferred.size());
    for (size_t i = 0; i < inferred.size(); ++i) {
      const Value* r = n->result(i);
      if (r->producer() != n.get())
        return error(n->loc(), "{}: result {} does not point back to its node", info.name, i);
      const TensorType& t = r->type();
      if (t.dtype != inferred[i].dtype || t.shape != inferred[i].shape)
        return error(n->loc(), "{}: {} is {}, expected {}", info.name, valueRef(r), t.str(),
                     inferred[i].str());
      KILN_TRY(declare(r, info.name));
    }
  }
  if (g.outputs().empty()) return error("graph @{} has no outputs", g.name());
  for (const Value* v : g.outputs())
    if (!defined.count(v)) return error("graph @{}: output {} is not defined", g.name(), valueRef(v));
  return Status::ok();
}

}  // namespace kiln::ir
