// The op table: OpKind and everything known about an op, generated from ir/ops.def.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/attrs.h"
#include "ir/status.h"
#include "ir/types.h"

namespace kiln::ir {

class Node;
class Value;
class GradContext;  // ir/grad.h

enum class OpKind : uint16_t {
#define KILN_OP(e, ...) e,
#include "ir/ops.def"
#undef KILN_OP
};

inline constexpr size_t kNumOps = 0
#define KILN_OP(e, ...) +1
#include "ir/ops.def"
#undef KILN_OP
    ;

enum Trait : uint32_t {
  NoTraits = 0,
  Elementwise = 1u << 0,  // y[i] depends on x[i] only (after broadcasting)
  Commutative = 1u << 1,  // operands may be swapped
  Unary = 1u << 2,
  Binary = 1u << 3,
  Stochastic = 1u << 4,   // may draw random numbers: never merged by CSE or folded
  ShapeOnly = 1u << 5,    // reinterprets the same row-major data (reshape, flatten)
};

/// Operation counts per sample (N = 1).
struct Cost {
  int64_t macs = 0;   // multiply-accumulates of conv2d / linear / matmul
  int64_t flops = 0;  // all floating-point operations (a MAC is 2)
};

/// What a shape or cost rule sees of a node.
struct OpContext {
  const Node& node;
  std::span<const TensorType> in;  // operand types, in order
  std::string_view op;             // spelling, for messages
  const Loc& loc;
  /// `%name` of operand i, for messages.
  std::string operandName(size_t i) const;
};

using InferFn = Status (*)(const OpContext&, std::vector<TensorType>& results);
using CostFn = Cost (*)(const OpContext&, std::span<const TensorType> results);
/// A gradient rule (ir/grad_rules.h): given the gradients of the node's results
/// (`resultGrads[i]`, null where none flows), builds nodes through `ctx` that compute the
/// gradients of the operands `ctx.needs(i)` names and stores them in `operandGrads[i]`
/// (sized to the operand count, null on entry; null on exit means zero). An operand the rule
/// cannot differentiate is reported with `ctx.unsupported(...)`.
using GradFn = Status (*)(GradContext& ctx, const Node& node, std::span<Value* const> resultGrads,
                          std::vector<Value*>& operandGrads);
inline constexpr GradFn kNoGrad = nullptr;

struct OpInfo {
  OpKind kind;
  std::string_view name;
  int minArity;
  int maxArity;  // -1: variadic
  size_t attrsIndex;  // alternative of `Attrs` this op carries
  InferFn infer;
  CostFn cost;
  GradFn grad;
  std::string_view onnx;
  uint32_t traits;
};

const OpInfo& opInfo(OpKind kind);
inline std::string_view opName(OpKind kind) { return opInfo(kind).name; }
std::optional<OpKind> parseOpKind(std::string_view spelling);
inline bool hasTrait(OpKind kind, Trait t) { return (opInfo(kind).traits & t) != 0; }
/// The op's attribute struct with its defaults.
Attrs defaultAttrs(OpKind kind);
std::span<const OpInfo> allOps();

}  // namespace kiln::ir
