// canonicalize: a table of local patterns, applied sweep after sweep until none fires.
#include "passes/canonicalize.h"

#include <cmath>
#include <optional>

#include "ir/graph.h"
#include "ir/module.h"

namespace kiln::passes {

namespace {

using ir::Node;
using ir::OpKind;
using ir::Value;

/// Graph edits shared by the patterns: replacement with name transfer and erasure of the
/// nodes a rewrite leaves dead.
class Rewriter {
 public:
  Rewriter(ir::Graph& graph, const ir::WeightStore& weights) : graph_(graph), weights_(weights) {}
  ir::Graph& graph() { return graph_; }

  /// Replaces n's (only) result by `v` and erases n.
  void replace(Node& n, Value* v) {
    Value* r = n.result();
    if (v->kind() == ir::ValueKind::Result && v->name().empty() && !r->name().empty()) {
      v->setName(r->name());
      r->setName("");
    }
    graph_.replaceAllUsesWith(r, v);
    eraseDead(&n);
  }

  /// Creates `kind(operands) {attrs}` before n with n's location and replaces n by it, if
  /// its inferred type is n's result type; otherwise leaves the graph as it was.
  bool replaceWithNew(Node& n, OpKind kind, std::vector<Value*> operands, ir::Attrs attrs) {
    Expected<Node*> created = graph_.createNode(kind, std::move(operands), std::move(attrs),
                                                n.loc(), &n);
    if (!created.isOk()) return false;
    Node* m = *created;
    if (m->numResults() != 1 || m->result()->type() != n.result()->type()) {
      graph_.eraseNode(m);
      return false;
    }
    replace(n, m->result());
    return true;
  }

  /// The value of a constant whose elements are all equal: a `constant` op or a `const`
  /// declaration with data in the store. Params and buffers are not constants.
  std::optional<double> splatValue(const Value* v) const {
    if (const Node* p = v->producer(); p && p->kind() == OpKind::Constant) {
      const ir::FloatList& values = p->attrs<ir::ConstantAttrs>().value;
      if (values.empty()) return std::nullopt;
      for (double x : values)
        if (x != values[0]) return std::nullopt;
      return values[0];
    }
    if (v->kind() != ir::ValueKind::Const) return std::nullopt;
    const ir::Tensor* t = weights_.find(v->name());
    if (!t || t->numElements() == 0 || t->type() != v->type()) return std::nullopt;
    const double first = t->at(0);
    for (int64_t i = 1; i < t->numElements(); ++i)
      if (t->at(i) != first) return std::nullopt;
    return first;
  }

 private:
  /// Erases n if none of its results is used, then the producers that became dead with it.
  void eraseDead(Node* n) {
    for (const Value* r : n->results())
      if (graph_.numUses(r) != 0) return;
    std::vector<Value*> operands = n->operands();
    graph_.eraseNode(n);
    for (Value* o : operands)
      if (Node* p = o->producer()) eraseDead(p);
  }

  ir::Graph& graph_;
  const ir::WeightStore& weights_;
};

bool isConstant(const Value* v) {
  return v->kind() == ir::ValueKind::Const ||
         (v->producer() && v->producer()->kind() == OpKind::Constant);
}

bool sameType(const Value* a, const Value* b) { return a->type() == b->type(); }

/// The producer of operand i when it is a single-result node, else null.
Node* producerOf(const Node& n, size_t i) {
  Node* p = n.operand(i)->producer();
  return p && p->numResults() == 1 ? p : nullptr;
}

bool isIdentityPerm(const ir::IntList& perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != static_cast<int64_t>(i)) return false;
  return true;
}

// ---- patterns --------------------------------------------------------------
// Each looks at one single-result node and returns whether it rewrote the graph.

bool dropoutInEvalMode(Rewriter& rw, Node& n) {
  const auto* a = std::get_if<ir::DropoutAttrs>(&n.attrs());
  if (!a || a->training || !sameType(n.operand(0), n.result())) return false;
  rw.replace(n, n.operand(0));
  return true;
}

bool noOpShapeChange(Rewriter& rw, Node& n) {
  if (!ir::hasTrait(n.kind(), ir::ShapeOnly) || !sameType(n.operand(0), n.result())) return false;
  rw.replace(n, n.operand(0));
  return true;
}

/// The reshape attribute that reaches `shape` from any input with the same element count:
/// the symbolic batch becomes -1 (inferred), which the reshape rule resolves back to N.
ir::ReshapeAttrs reshapeTo(const ir::Shape& shape) {
  ir::ReshapeAttrs a;
  for (ir::Dim d : shape.dims()) a.shape.push_back(d == ir::kBatch ? -1 : d);
  return a;
}

bool shapeOnlyChain(Rewriter& rw, Node& n) {
  if (!ir::hasTrait(n.kind(), ir::ShapeOnly)) return false;
  Node* p = producerOf(n, 0);
  if (!p || !ir::hasTrait(p->kind(), ir::ShapeOnly)) return false;
  Value* x = p->operand(0);
  if (sameType(x, n.result())) {
    rw.replace(n, x);
    return true;
  }
  return rw.replaceWithNew(n, OpKind::Reshape, {x}, reshapeTo(n.result()->type().shape));
}

bool identityTranspose(Rewriter& rw, Node& n) {
  const auto* a = std::get_if<ir::TransposeAttrs>(&n.attrs());
  if (!a || !isIdentityPerm(a->perm) || !sameType(n.operand(0), n.result())) return false;
  rw.replace(n, n.operand(0));
  return true;
}

bool transposeChain(Rewriter& rw, Node& n) {
  const auto* outer = std::get_if<ir::TransposeAttrs>(&n.attrs());
  if (!outer) return false;
  Node* p = producerOf(n, 0);
  const auto* inner = p ? std::get_if<ir::TransposeAttrs>(&p->attrs()) : nullptr;
  if (!inner || outer->perm.size() != inner->perm.size()) return false;
  // y = transpose(x, p1): y[i] = x[p1[i]]; z = transpose(y, p2): z[j] = x[p1[p2[j]]].
  ir::TransposeAttrs composed;
  for (int64_t j : outer->perm) {
    if (j < 0 || j >= static_cast<int64_t>(inner->perm.size())) return false;
    composed.perm.push_back(inner->perm[j]);
  }
  Value* x = p->operand(0);
  if (isIdentityPerm(composed.perm) && sameType(x, n.result())) {
    rw.replace(n, x);
    return true;
  }
  return rw.replaceWithNew(n, OpKind::Transpose, {x}, std::move(composed));
}

bool singleOperandConcat(Rewriter& rw, Node& n) {
  if (n.kind() != OpKind::Concat || n.numOperands() != 1 || !sameType(n.operand(0), n.result()))
    return false;
  rw.replace(n, n.operand(0));
  return true;
}

bool clipToRelu(Rewriter& rw, Node& n) {
  const auto* a = std::get_if<ir::ClipAttrs>(&n.attrs());
  if (!a || a->min != 0.0) return false;
  if (a->max == 6.0) return rw.replaceWithNew(n, OpKind::Relu6, {n.operand(0)}, ir::NoAttrs{});
  if (std::isinf(a->max) && a->max > 0)
    return rw.replaceWithNew(n, OpKind::Relu, {n.operand(0)}, ir::NoAttrs{});
  return false;
}

bool mulSigmoidToSwish(Rewriter& rw, Node& n) {
  if (n.kind() != OpKind::Mul) return false;
  for (size_t i = 0; i < 2; ++i) {
    Value* x = n.operand(i);
    Node* s = producerOf(n, 1 - i);
    if (s && s->kind() == OpKind::Sigmoid && s->operand(0) == x)
      return rw.replaceWithNew(n, OpKind::Swish, {x}, ir::NoAttrs{});
  }
  return false;
}

/// The right identity of a binary op (x op e == x), when it has one. The table lists ops
/// because no trait says "has an identity element"; Commutative makes it a left one too.
std::optional<double> rightIdentity(OpKind k) {
  if (k == OpKind::Add || k == OpKind::Sub) return 0.0;
  if (k == OpKind::Mul || k == OpKind::Div) return 1.0;
  return std::nullopt;
}

bool identityOperand(Rewriter& rw, Node& n) {
  const std::optional<double> e = rightIdentity(n.kind());
  if (!e || n.numOperands() != 2) return false;
  const size_t sides = ir::hasTrait(n.kind(), ir::Commutative) ? 2 : 1;
  for (size_t s = 0; s < sides; ++s) {
    const size_t c = 1 - s;  // the constant's position: right first
    Value* x = n.operand(s);
    // Same type as the result: the constant did not broadcast x to a bigger shape.
    if (rw.splatValue(n.operand(c)) == e && sameType(x, n.result())) {
      rw.replace(n, x);
      return true;
    }
  }
  return false;
}

bool constantSecond(Rewriter&, Node& n) {
  if (!ir::hasTrait(n.kind(), ir::Commutative) || n.numOperands() != 2) return false;
  if (!isConstant(n.operand(0)) || isConstant(n.operand(1))) return false;
  Value* a = n.operand(0);
  n.setOperand(0, n.operand(1));
  n.setOperand(1, a);
  return true;
}

struct Pattern {
  std::string_view name;
  bool (*apply)(Rewriter&, Node&);
};

constexpr Pattern kPatterns[] = {
    {"dropout-eval", &dropoutInEvalMode},
    {"noop-reshape", &noOpShapeChange},
    {"reshape-chain", &shapeOnlyChain},
    {"identity-transpose", &identityTranspose},
    {"transpose-chain", &transposeChain},
    {"single-concat", &singleOperandConcat},
    {"clip-to-relu", &clipToRelu},
    {"swish", &mulSigmoidToSwish},
    {"identity-operand", &identityOperand},
    {"constant-second", &constantSecond},
};

}  // namespace

Status Canonicalize::run(ir::Module& module) {
  stats_.clear();
  Rewriter rw(module.graph, module.weights);
  auto& nodes = module.graph.nodes();
  for (int sweep = 0; sweep < options_.maxSweeps; ++sweep) {
    bool changed = false;
    // A rewrite of n inserts before n and erases n and nodes before it, so the iterator to
    // the next node stays valid.
    for (auto it = nodes.begin(); it != nodes.end();) {
      Node& n = **it;
      ++it;
      if (n.numResults() != 1) continue;
      for (const Pattern& p : kPatterns) {
        if (p.apply(rw, n)) {
          ++stats_[p.name];
          changed = true;
          break;
        }
      }
    }
    if (!changed) break;
  }
  return Status::ok();
}

std::unique_ptr<Pass> createCanonicalizePass(const PassEnv&) {
  return std::make_unique<Canonicalize>();
}

}  // namespace kiln::passes
