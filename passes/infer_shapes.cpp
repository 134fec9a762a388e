// infer-shapes: shape rules re-run in topological order, so each rule sees the already
// updated types of its operands.
#include "passes/infer_shapes.h"

#include "ir/graph.h"
#include "ir/module.h"

namespace kiln::passes {

namespace {

std::string resultRef(const ir::Node& n, const ir::Value* v) {
  return v->name().empty() ? fmt::format("{} result {}", n.opName(), v->resultIndex())
                           : "%" + v->name();
}

/// The new type of a result: the rule's dtype and shape; the old layout when the rank is the
/// same, else the rule's layout (or the rank's default if the rule's does not fit).
Expected<ir::TensorType> mergeType(const ir::Node& n, const ir::Value* r,
                                   const ir::TensorType& inferred) {
  const ir::TensorType& old = r->type();
  ir::TensorType t = inferred;
  if (old.shape.rank() == inferred.shape.rank()) {
    t.layout = old.layout;
  } else if (ir::layoutRank(t.layout) != t.shape.rank()) {
    std::optional<ir::Layout> layout = ir::defaultLayout(t.shape.rank());
    if (!layout)
      return error(n.loc(), "{}: {} would have rank {}, which no layout supports", n.opName(),
                   resultRef(n, r), t.shape.rank());
    t.layout = *layout;
  }
  return t;
}

}  // namespace

Status InferShapes::run(ir::Module& module) {
  changes_.clear();
  for (auto& node : module.graph.nodes()) {
    ir::Node& n = *node;
    std::vector<ir::TensorType> inferred;
    KILN_TRY(ir::inferResultTypes(n, inferred));
    if (inferred.size() != n.numResults())
      return error(n.loc(), "{}: has {} results, but its shape rule now gives {}", n.opName(),
                   n.numResults(), inferred.size());
    for (size_t i = 0; i < inferred.size(); ++i) {
      ir::Value* r = n.result(i);
      KILN_ASSIGN_OR_RETURN(ir::TensorType t, mergeType(n, r, inferred[i]));
      if (t == r->type()) continue;
      changes_.push_back(Change{resultRef(n, r), r->type(), t});
      r->setType(std::move(t));
    }
  }
  return Status::ok();
}

std::unique_ptr<Pass> createInferShapesPass(const PassEnv&) {
  return std::make_unique<InferShapes>();
}

}  // namespace kiln::passes
