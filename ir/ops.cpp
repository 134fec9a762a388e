// The op table, expanded from ir/ops.def: names, arities, rules and traits per OpKind.
#include "ir/ops.h"

#include <array>

#include "ir/grad_rules.h"
#include "ir/graph.h"
#include "ir/shape_rules.h"

namespace kiln::ir {

namespace {

template <typename A>
constexpr size_t attrsIndexOf() {
  Attrs probe{A{}};
  return probe.index();
}

// Adapters from the typed rules to the uniform table signatures.
template <typename A, Status (*Rule)(const OpContext&, const A&, Results&)>
Status inferThunk(const OpContext& c, std::vector<TensorType>& out) {
  return Rule(c, std::get<A>(c.node.attrs()), out);
}
template <typename A, Cost (*Rule)(const OpContext&, const A&, ResultTypes)>
Cost costThunk(const OpContext& c, std::span<const TensorType> r) {
  return Rule(c, std::get<A>(c.node.attrs()), r);
}

template <typename A>
using TypedInfer = Status (*)(const OpContext&, const A&, Results&);
template <typename A>
using TypedCost = Cost (*)(const OpContext&, const A&, ResultTypes);

// static_cast picks the overload (or deduces the template) for the row's attribute type.
const std::array<OpInfo, kNumOps> kOps = {{
#define KILN_OP(e, s, mn, mx, A, infer, cost, grad, onnx, traits)                  \
  OpInfo{OpKind::e,                                                                \
         s,                                                                        \
         mn,                                                                       \
         mx,                                                                       \
         attrsIndexOf<A>(),                                                        \
         &inferThunk<A, static_cast<TypedInfer<A>>(&infer)>,                       \
         &costThunk<A, static_cast<TypedCost<A>>(&cost)>,                          \
         grad,                                                                     \
         onnx,                                                                     \
         static_cast<uint32_t>(traits)},
#include "ir/ops.def"
#undef KILN_OP
}};

}  // namespace

const OpInfo& opInfo(OpKind kind) { return kOps[static_cast<size_t>(kind)]; }

std::optional<OpKind> parseOpKind(std::string_view spelling) {
  for (const OpInfo& info : kOps)
    if (info.name == spelling) return info.kind;
  return std::nullopt;
}

Attrs defaultAttrs(OpKind kind) {
  switch (kind) {
#define KILN_OP(e, s, mn, mx, A, ...) \
  case OpKind::e:                    \
    return Attrs{A{}};
#include "ir/ops.def"
#undef KILN_OP
  }
  return Attrs{};
}

std::span<const OpInfo> allOps() { return kOps; }

std::string OpContext::operandName(size_t i) const {
  const Value* v = node.operand(i);
  if (!v->name().empty()) return "%" + v->name();
  return fmt::format("operand {}", i);
}

}  // namespace kiln::ir
