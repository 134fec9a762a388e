// cse: common subexpression elimination — merges nodes that compute the same value.
#pragma once

#include "passes/pass.h"

namespace kiln::passes {

/// Two nodes are merged (the later one's uses go to the earlier one, which dominates it in
/// the topological order) when they have the same op, the same operands — in either order
/// for a Commutative op — equal attributes (ir::attrsEqual: doubles bitwise, so NaN
/// attributes never match), and results of equal types, all of them for multi-result ops.
/// Stochastic ops (dropout) are never merged: two dropouts draw different masks. `constant`
/// ops with equal values merge like any other op. A merged result's name moves to the
/// surviving result when that one is anonymous.
class Cse final : public Pass {
 public:
  std::string_view name() const override { return passInfo(PassId::Cse).name; }
  std::string_view summary() const override { return passInfo(PassId::Cse).summary; }
  Status run(ir::Module& module) override;

  /// Nodes removed by the last run.
  int numMerged() const { return numMerged_; }

 private:
  int numMerged_ = 0;
};

}  // namespace kiln::passes
