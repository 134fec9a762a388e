// fuse-residual: one walk over the adds rewrites those with a valid conv operand; a second
// walk over the adds left explains each one with the final graph's value names.
#include "passes/fuse_residual.h"

#include <algorithm>
#include <optional>
#include <unordered_map>

#include "ir/graph.h"
#include "ir/module.h"
#include "ir/printer.h"
#include "passes/fuse_conv_act.h"

namespace kiln::passes {

using ir::Node;
using ir::OpKind;
using ir::Value;

namespace {

/// Node positions in graph order; inputs and weights come before every node (-1).
class Positions {
 public:
  explicit Positions(const ir::Graph& g) {
    int64_t i = 0;
    for (const auto& n : g.nodes()) at_[n.get()] = i++;
  }
  int64_t of(const Node* n) const { return at_.at(n); }
  int64_t definedAt(const Value* v) const { return v->producer() ? of(v->producer()) : -1; }
  void sameAs(const Node* added, const Node* old) { at_[added] = at_.at(old); }

 private:
  std::unordered_map<const Node*, int64_t> at_;
};

struct Candidate {
  Node* conv = nullptr;
  Value* summand = nullptr;
};

/// The conv operand of `add` to fuse into, or none; `reasons` (when given) collects why
/// each conv operand does not qualify, naming values by `names`.
std::optional<Candidate> pick(const ir::Graph& g, const Node& add, const Positions& pos,
                              std::vector<std::string>* reasons,
                              const std::vector<std::string>* names) {
  auto name = [&](const Value* v) { return names ? (*names)[static_cast<size_t>(v->id())] : ""; };
  std::optional<Candidate> best;
  // add(c, c) is looked at once.
  const size_t slots = add.operand(0) == add.operand(1) ? 1 : 2;
  for (size_t slot = 0; slot < slots; ++slot) {
    Value* c = add.operand(slot);
    Value* r = add.operand(1 - slot);
    Node* conv = c->producer();
    if (!conv || conv->kind() != OpKind::Conv2d) continue;
    std::string why;
    const size_t uses = g.numUses(c);
    if (c == r) {
      why = "the add reads it twice";
    } else if (uses != 1) {
      const bool output = std::count(g.outputs().begin(), g.outputs().end(), c) != 0;
      why =
          output ? "its result is a graph output" : fmt::format("its result has {} readers", uses);
    } else if (ir::convSummand(*conv)) {
      why = fmt::format("it already has a sum post-op ({})",
                        ir::fusedOpName("conv2d", conv->attrs<ir::Conv2dAttrs>().post_ops));
    } else if (r->type() != c->type() || add.result()->type() != c->type()) {
      why = fmt::format("the other operand {} is {}, the conv result {}", name(r), r->type().str(),
                        c->type().str());
    } else if (pos.definedAt(r) >= pos.of(conv)) {
      why = fmt::format("the other operand {} is computed after the conv", name(r));
    }
    if (!why.empty()) {
      if (reasons) reasons->push_back(fmt::format("conv2d {}: {}", name(c), why));
      continue;
    }
    if (!best || pos.definedAt(r) < pos.definedAt(best->summand)) best = Candidate{conv, r};
  }
  return best;
}

std::string operandOrigin(const Value* v) {
  if (const Node* p = v->producer()) return std::string(p->opName());
  return v->isWeight() ? "a weight" : "a graph input";
}

}  // namespace

Status FuseResidual::run(ir::Module& module) {
  log_.clear();
  ir::Graph& g = module.graph;
  std::vector<Node*> adds;
  for (const auto& n : g.nodes())
    if (n->kind() == OpKind::Add) adds.push_back(n.get());

  Positions pos(g);
  for (Node* add : adds) {
    const std::optional<Candidate> c = pick(g, *add, pos, nullptr, nullptr);
    if (!c) continue;
    Node* conv = c->conv;
    std::vector<Value*> operands = conv->operands();
    operands.push_back(c->summand);
    ir::Conv2dAttrs attrs = conv->attrs<ir::Conv2dAttrs>();
    attrs.post_ops.push_back(ir::PostOp{ir::PostOpKind::Sum, 0, 0});
    KILN_ASSIGN_OR_RETURN(Node * fused, g.createNode(OpKind::Conv2d, std::move(operands),
                                                     std::move(attrs), conv->loc(), conv));
    Value* y = fused->result();
    Value* sum = add->result();
    if (y->type() != sum->type())
      return error(add->loc(), "fuse-residual: the fused conv2d gives {}, the add gave {}",
                   y->type().str(), sum->type().str());
    y->setName(sum->name());
    sum->setName("");
    g.replaceAllUsesWith(sum, y);
    std::vector<const Value*> gone{conv->result(), sum};
    g.eraseNode(add);
    g.eraseNode(conv);
    pos.sameAs(fused, conv);  // after the erase: `fused` may reuse an erased node's address
    std::vector<std::string> ops{"add"};
    for (const Value* v : absorbActivations(g, *fused, ops)) gone.push_back(v);
    std::string pattern;
    for (const std::string& op : ops) pattern += (pattern.empty() ? "" : ", ") + op;
    log_.fused(*fused, std::move(pattern), std::move(gone));
  }

  // The adds left, and why.
  const std::vector<std::string> names = ir::printedValueNames(g);
  const Positions finalPos(g);
  for (const auto& n : g.nodes()) {
    if (n->kind() != OpKind::Add) continue;
    std::vector<std::string> reasons;
    if (pick(g, *n, finalPos, &reasons, &names))
      return error(n->loc(), "fuse-residual: an add that qualifies was left unfused");
    std::string why;
    for (const std::string& r : reasons) why += (why.empty() ? "" : "; ") + r;
    if (why.empty())
      why = fmt::format("add of {} and {}: no conv2d operand", operandOrigin(n->operand(0)),
                        operandOrigin(n->operand(1)));
    log_.refused(n->result(), "add", std::move(why));
  }
  log_.finish(g);
  report_ = formatFusions(g, log_.records());
  return Status::ok();
}

std::unique_ptr<Pass> createFuseResidualPass(const PassEnv&) {
  return std::make_unique<FuseResidual>();
}

}  // namespace kiln::passes
