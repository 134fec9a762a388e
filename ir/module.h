// A Module is what passes, backends and files carry: a graph and its weight store.
#pragma once

#include <string>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace kiln::ir {

struct Module {
  Graph graph;
  WeightStore weights;

  Module() = default;
  explicit Module(Graph g) : graph(std::move(g)) {}
  Module clone() const;
};

/// Checks every weight declaration against the store and reports all problems at once,
/// like PyTorch's strict load_state_dict: missing keys, mis-shaped/mis-typed keys and, when
/// `strict`, unexpected keys (entries no declaration names).
Status checkWeightBinding(const Graph& g, const WeightStore& store, bool strict);

/// Adds deterministic random values for weights the store lacks (seeded, Kaiming-uniform for
/// params like torch's default init, zeros for means and optimizer buffers, ones for variances
/// / BN scales and RMSpropTF's square_avg, a copy of `<name>` for an EMA buffer `<name>.ema`).
void initMissingWeights(const Graph& g, WeightStore& store, uint64_t seed);

}  // namespace kiln::ir
