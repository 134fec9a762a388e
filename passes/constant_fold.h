// constant-fold: evaluates nodes whose operands are all constants and replaces their results
// by `constant` ops (small) or new `const` declarations backed by the weight store (large).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "passes/pass.h"

namespace kiln::passes {

struct ConstantFoldOptions {
  /// Runs the nodes (the CLI hands in the reference backend's); required.
  const ir::Evaluator* evaluator = nullptr;
  /// Results with at most this many elements become `constant` ops in the graph text.
  int64_t maxInlineElements = 16;
  /// Results with more elements than this (all results of a node together) are left
  /// unfolded, so a broadcast of a scalar cannot blow up the weight store.
  int64_t maxFoldElements = int64_t{1} << 26;
};

/// Constants are `constant` ops and `const` declarations whose tensor is in module.weights.
/// Params and buffers are not constants (they are trained or updated), nor are Stochastic
/// ops foldable. A folded result with ≤ maxInlineElements elements (and a dtype a constant's
/// double values hold exactly, in the default layout) becomes a `constant` op that takes over
/// its name; a larger one becomes `const %<base>.folded`, its tensor added to the store under
/// that name, where <base> is the first operand's name (or the op's name). A node the
/// evaluator cannot run (e.g. a dtype the reference backend lacks) is left as it is and
/// listed in skipped(). Operands that become unused are left to dce.
class ConstantFold final : public Pass {
 public:
  explicit ConstantFold(ConstantFoldOptions options) : options_(options) {}

  std::string_view name() const override { return passInfo(PassId::ConstantFold).name; }
  std::string_view summary() const override { return passInfo(PassId::ConstantFold).summary; }
  Status run(ir::Module& module) override;

  /// Nodes folded by the last run.
  int numFolded() const { return numFolded_; }
  /// Why foldable-looking nodes were left alone in the last run (one line each).
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  ConstantFoldOptions options_;
  int numFolded_ = 0;
  std::vector<std::string> skipped_;
};

}  // namespace kiln::passes
