// cse: one walk in graph order with a hash table of the nodes seen so far.
#include "passes/cse.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "ir/graph.h"
#include "ir/module.h"

namespace kiln::passes {

namespace {

using ir::Node;
using ir::Value;

/// The operands in the order that identifies the node: as given, or sorted by value id for
/// a commutative op so that add(a, b) and add(b, a) agree.
std::vector<const Value*> keyOperands(const Node& n) {
  std::vector<const Value*> ops(n.operands().begin(), n.operands().end());
  if (ir::hasTrait(n.kind(), ir::Commutative))
    std::sort(ops.begin(), ops.end(),
              [](const Value* a, const Value* b) { return a->id() < b->id(); });
  return ops;
}

void mix(size_t& h, size_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); }

size_t hashNode(const Node& n) {
  size_t h = static_cast<size_t>(n.kind());
  mix(h, ir::attrsHash(n.attrs()));
  for (const Value* v : keyOperands(n)) mix(h, static_cast<size_t>(v->id()));
  mix(h, n.numResults());
  return h;
}

bool equivalent(const Node& a, const Node& b) {
  if (a.kind() != b.kind() || a.numOperands() != b.numOperands() ||
      a.numResults() != b.numResults())
    return false;
  if (keyOperands(a) != keyOperands(b)) return false;
  if (!ir::attrsEqual(a.attrs(), b.attrs())) return false;
  for (size_t i = 0; i < a.numResults(); ++i)
    if (a.result(i)->type() != b.result(i)->type()) return false;
  return true;
}

/// Whether merging `dup` into `keep` would drop the name of a graph output: the names of
/// outputs are an interface (a train step's `new:<weight>` outputs say which weight each one
/// replaces), and a value has one name, so two equal constants that are both named outputs
/// (zeroed gradient accumulators) must stay two values.
bool losesOutputName(const Node& keep, const Node& dup,
                     const std::unordered_set<const Value*>& outputs) {
  for (size_t i = 0; i < dup.numResults(); ++i) {
    const Value* from = dup.result(i);
    const Value* to = keep.result(i);
    if (outputs.count(from) && !from->name().empty() && !to->name().empty() &&
        from->name() != to->name())
      return true;
  }
  return false;
}

/// Sends every use of `dup`'s results to `keep`'s and erases `dup`.
void merge(ir::Graph& g, Node& keep, Node& dup) {
  for (size_t i = 0; i < dup.numResults(); ++i) {
    Value* from = dup.result(i);
    Value* to = keep.result(i);
    if (to->name().empty() && !from->name().empty()) {
      to->setName(from->name());
      from->setName("");
    }
    g.replaceAllUsesWith(from, to);
  }
  g.eraseNode(&dup);
}

}  // namespace

Status Cse::run(ir::Module& module) {
  numMerged_ = 0;
  ir::Graph& g = module.graph;
  std::unordered_multimap<size_t, Node*> seen;
  const std::unordered_set<const Value*> outputs(g.outputs().begin(), g.outputs().end());
  auto& nodes = g.nodes();
  // Only the node being visited is erased, after the iterator moved past it.
  for (auto it = nodes.begin(); it != nodes.end();) {
    Node& n = **it;
    ++it;
    if (ir::hasTrait(n.kind(), ir::Stochastic)) continue;
    const size_t h = hashNode(n);
    Node* match = nullptr;
    for (auto [b, e] = seen.equal_range(h); b != e; ++b) {
      if (equivalent(*b->second, n)) {
        match = b->second;
        break;
      }
    }
    if (!match) {
      seen.emplace(h, &n);
      continue;
    }
    if (losesOutputName(*match, n, outputs)) continue;
    merge(g, *match, n);
    ++numMerged_;
  }
  return Status::ok();
}

std::unique_ptr<Pass> createCsePass(const PassEnv&) { return std::make_unique<Cse>(); }

}  // namespace kiln::passes
