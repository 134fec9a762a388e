// constant-fold: one walk in graph order; folded results feed the folding of later nodes.
#include "passes/constant_fold.h"

#include <optional>
#include <unordered_map>

#include "ir/evaluator.h"
#include "ir/graph.h"
#include "ir/module.h"

namespace kiln::passes {

namespace {

using ir::Node;
using ir::Tensor;
using ir::Value;

/// `<first operand's name or op name>.folded`, without piling up `.folded.folded`.
std::string foldedBase(const Node& n) {
  std::string base;
  for (const Value* v : n.operands()) {
    if (!v->name().empty()) {
      base = v->name();
      break;
    }
  }
  if (base.empty()) base = std::string(n.opName());
  // Strip a `.folded` or `.folded.<k>` suffix left by an earlier fold.
  const size_t at = base.rfind(".folded");
  if (at != std::string::npos) {
    std::string_view rest = std::string_view(base).substr(at + 7);
    bool digits = rest.empty() || (rest.size() > 1 && rest[0] == '.');
    for (size_t i = 1; digits && i < rest.size(); ++i) digits = rest[i] >= '0' && rest[i] <= '9';
    if (digits) base.resize(at);
  }
  return base + ".folded";
}

/// A name free both in the weight store and among the graph's values.
std::string freshName(const ir::Module& m, const std::string& base) {
  std::string name = m.weights.uniqueName(base);
  for (int k = 1; m.graph.findValue(name) || m.weights.contains(name); ++k)
    name = fmt::format("{}.{}", base, k);
  return name;
}

/// Whether a tensor can be written as a `constant` op's double values without loss.
bool inlinable(const Tensor& t, const ir::TensorType& type, int64_t maxElements) {
  if (t.numElements() > maxElements) return false;
  if (t.dtype() == ir::DType::F16 || t.dtype() == ir::DType::BF16) return false;
  if (t.dtype() == ir::DType::I64) {  // doubles hold integers up to 2^53 exactly
    for (int64_t v : t.span<const int64_t>())
      if (v > (int64_t{1} << 53) || v < -(int64_t{1} << 53)) return false;
  }
  return type.layout == ir::defaultLayout(type.shape.rank());
}

class Folder {
 public:
  Folder(ir::Module& m, const ConstantFoldOptions& o) : m_(m), o_(o) {}

  /// The tensor of a constant value, or nullopt when `v` is not a constant (or a `constant`
  /// op the evaluator cannot materialize).
  std::optional<Tensor> constantOf(const Value* v, std::vector<std::string>& skipped) {
    if (auto it = known_.find(v); it != known_.end()) return it->second;
    if (v->kind() == ir::ValueKind::Const) {
      const Tensor* t = m_.weights.find(v->name());
      if (!t || t->dtype() != v->type().dtype || t->shape() != v->type().shape) return std::nullopt;
      known_[v] = *t;
      return *t;
    }
    const Node* p = v->producer();
    if (!p || p->kind() != ir::OpKind::Constant) return std::nullopt;
    Expected<std::vector<Tensor>> r = o_.evaluator->evaluate(*p, {});
    if (!r.isOk() || r->size() != 1) {
      skipped.push_back(r.isOk() ? "constant: the evaluator returned several tensors" : r.message());
      return std::nullopt;
    }
    known_[v] = (*r)[0];
    return (*r)[0];
  }

  /// Folds n if it can; returns whether it did.
  Expected<bool> tryFold(Node& n, std::vector<std::string>& skipped) {
    if (n.kind() == ir::OpKind::Constant || n.numOperands() == 0 ||
        ir::hasTrait(n.kind(), ir::Stochastic))
      return false;
    std::vector<Tensor> operands;
    for (const Value* v : n.operands()) {
      std::optional<Tensor> t = constantOf(v, skipped);
      if (!t) return false;
      operands.push_back(std::move(*t));
    }
    int64_t total = 0;
    for (const Value* r : n.results()) {
      if (!r->type().shape.isStatic()) return false;
      total += r->type().shape.numElements();
    }
    if (total > o_.maxFoldElements) {
      skipped.push_back(fmt::format("{}: {} result elements exceed the fold limit {}",
                                    n.opName(), total, o_.maxFoldElements));
      return false;
    }
    Expected<std::vector<Tensor>> results = o_.evaluator->evaluate(n, operands);
    if (!results.isOk()) {
      skipped.push_back(results.message());
      return false;
    }
    if (results->size() != n.numResults())
      return error(n.loc(), "{}: the evaluator returned {} tensors for {} results", n.opName(),
                   results->size(), n.numResults());
    for (size_t i = 0; i < n.numResults(); ++i) {
      const Tensor& t = (*results)[i];
      const ir::TensorType& want = n.result(i)->type();
      if (t.dtype() != want.dtype || t.shape() != want.shape)
        return error(n.loc(), "{}: the evaluator returned {} for result {}, expected {}",
                     n.opName(), t.type().str(), i, want.str());
      if (t.layout() != want.layout) {
        skipped.push_back(fmt::format("{}: the evaluator returned layout {{{}}}, the result is {}",
                                      n.opName(), ir::layoutName(t.layout()), want.str()));
        return false;
      }
    }
    for (size_t i = 0; i < n.numResults(); ++i) {
      Value* r = n.result(i);
      if (m_.graph.numUses(r) == 0) continue;
      KILN_ASSIGN_OR_RETURN(Value * v, materialize(n, r, (*results)[i]));
      m_.graph.replaceAllUsesWith(r, v);
    }
    m_.graph.eraseNode(&n);
    return true;
  }

 private:
  /// A `constant` op before n, or a new `const` declaration with the tensor in the store.
  Expected<Value*> materialize(const Node& n, Value* r, const Tensor& t) {
    if (inlinable(t, r->type(), o_.maxInlineElements)) {
      ir::ConstantAttrs a;
      a.dtype = t.dtype();
      a.shape = t.shape().dims();
      bool splat = t.numElements() > 0;
      for (int64_t i = 0; i < t.numElements(); ++i) {
        a.value.push_back(t.at(i));
        splat = splat && a.value[i] == a.value[0];
      }
      if (splat) a.value.resize(1);
      KILN_ASSIGN_OR_RETURN(Node * c, m_.graph.createNode(ir::OpKind::Constant, {}, std::move(a),
                                                          n.loc(), &n));
      Value* v = c->result();
      if (!r->name().empty()) {
        v->setName(r->name());
        r->setName("");
      }
      known_[v] = t;
      return v;
    }
    const std::string name = freshName(m_, foldedBase(n));
    Value* v = m_.graph.addWeight(ir::ValueKind::Const, name, r->type(), n.loc());
    m_.weights.set(name, t);
    known_[v] = t;
    return v;
  }

  ir::Module& m_;
  const ConstantFoldOptions& o_;
  std::unordered_map<const Value*, Tensor> known_;
};

}  // namespace

Status ConstantFold::run(ir::Module& module) {
  numFolded_ = 0;
  skipped_.clear();
  if (!options_.evaluator)
    return error("constant-fold needs an evaluator to run nodes (PassEnv::evaluator is null; "
                 "the kiln CLI passes the reference backend's)");
  Folder folder(module, options_);
  auto& nodes = module.graph.nodes();
  // Folding n inserts constants before n and erases n, so the iterator to the next node
  // stays valid.
  for (auto it = nodes.begin(); it != nodes.end();) {
    Node& n = **it;
    ++it;
    KILN_ASSIGN_OR_RETURN(bool folded, folder.tryFold(n, skipped_));
    if (folded) ++numFolded_;
  }
  return Status::ok();
}

std::unique_ptr<Pass> createConstantFoldPass(const PassEnv& env) {
  return std::make_unique<ConstantFold>(ConstantFoldOptions{.evaluator = env.evaluator});
}

}  // namespace kiln::passes
