// dce: dead code elimination — removes nodes and const declarations no output needs.
#pragma once

#include "passes/pass.h"

namespace kiln::passes {

/// A node is live when one of its results reaches a graph output; every other node is
/// removed (Stochastic ones too: a dropout nobody reads has no effect). `const`
/// declarations nothing live reads are removed with their weight-store entry (passes made
/// them). Inputs, params and buffers are kept even when unused: they are the model's
/// interface and state, bound by name to inputs and checkpoints.
class Dce final : public Pass {
 public:
  std::string_view name() const override { return passInfo(PassId::Dce).name; }
  std::string_view summary() const override { return passInfo(PassId::Dce).summary; }
  Status run(ir::Module& module) override;

  /// Nodes and const declarations removed by the last run.
  int numErasedNodes() const { return numErasedNodes_; }
  int numErasedConsts() const { return numErasedConsts_; }

 private:
  int numErasedNodes_ = 0;
  int numErasedConsts_ = 0;
};

}  // namespace kiln::passes
