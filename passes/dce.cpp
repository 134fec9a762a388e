// dce: liveness from the outputs backwards over the topological order, then erasure.
#include "passes/dce.h"

#include <unordered_set>

#include "ir/graph.h"
#include "ir/module.h"

namespace kiln::passes {

Status Dce::run(ir::Module& module) {
  numErasedNodes_ = 0;
  numErasedConsts_ = 0;
  ir::Graph& g = module.graph;

  // Every user follows its producer, so one backward walk sees each node after all of its
  // users and knows whether any of them is live.
  std::unordered_set<const ir::Value*> live(g.outputs().begin(), g.outputs().end());
  std::vector<ir::Node*> dead;
  for (auto it = g.nodes().rbegin(); it != g.nodes().rend(); ++it) {
    ir::Node* n = it->get();
    bool used = false;
    for (const ir::Value* r : n->results()) used = used || live.count(r) != 0;
    if (!used) {
      dead.push_back(n);  // users first: erasing in this order never leaves a dangling use
      continue;
    }
    for (const ir::Value* v : n->operands()) live.insert(v);
  }
  for (ir::Node* n : dead) g.eraseNode(n);
  numErasedNodes_ = static_cast<int>(dead.size());

  std::vector<ir::Value*> deadConsts;
  for (ir::Value* w : g.weights())
    if (w->kind() == ir::ValueKind::Const && !live.count(w)) deadConsts.push_back(w);
  for (ir::Value* w : deadConsts) {
    g.removeDeclaration(w);
    module.weights.erase(w->name());
  }
  numErasedConsts_ = static_cast<int>(deadConsts.size());
  return Status::ok();
}

std::unique_ptr<Pass> createDcePass(const PassEnv&) { return std::make_unique<Dce>(); }

}  // namespace kiln::passes
