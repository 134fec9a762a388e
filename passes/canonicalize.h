// canonicalize: local rewrites (identities, reshape/transpose chains, clip → relu/relu6,
// x * sigmoid(x) → swish, constants second) applied to a fixed point.
#pragma once

#include <map>
#include <string_view>

#include "passes/pass.h"

namespace kiln::passes {

struct CanonicalizeOptions {
  /// Sweeps over the graph before giving up on reaching a fixed point (each pattern shrinks
  /// the graph or moves a constant right, so real graphs settle in two or three).
  int maxSweeps = 32;
};

/// Patterns, each firing only when the rewritten value has exactly the same type (dtype,
/// shape and layout) as the one it replaces, so no broadcast or layout change is lost:
///   dropout {training=false}(x)              → x
///   reshape/flatten(x) to x's own type        → x
///   reshape/flatten(reshape/flatten(x))       → reshape(x)
///   transpose(x) {perm = identity}            → x
///   transpose(transpose(x))                   → transpose(x) with the composed perm (or x)
///   concat(x)                                 → x
///   clip {min=0, max=6}(x)                    → relu6(x);  clip {min=0, max=inf}(x) → relu(x)
///   mul(x, sigmoid(x))                        → swish(x)
///   x * 1, x / 1, x + 0, x - 0 (constant)     → x   (1 * x and 0 + x too: mul/add commute)
///   commutative op(constant, y)               → op(y, constant)
/// A replaced node is erased with the producers that only it used; other dead code is left
/// to dce. New nodes keep the location of the node they replace, and a replaced result's
/// name moves to its anonymous replacement.
class Canonicalize final : public Pass {
 public:
  explicit Canonicalize(CanonicalizeOptions options = {}) : options_(options) {}

  std::string_view name() const override { return passInfo(PassId::Canonicalize).name; }
  std::string_view summary() const override { return passInfo(PassId::Canonicalize).summary; }
  Status run(ir::Module& module) override;

  /// How often each pattern fired in the last run (pattern name → count).
  const std::map<std::string_view, int>& stats() const { return stats_; }

 private:
  CanonicalizeOptions options_;
  std::map<std::string_view, int> stats_;
};

}  // namespace kiln::passes
