// fuse-residual: folds `add(conv2d(...), r)` (and the activations after it) into the conv2d
// as a `sum` post-op with r as the summand.
#pragma once

#include <string>

#include "passes/pass.h"

namespace kiln::passes {

/// `add(c, r)` or `add(r, c)` with c = conv2d(x, w[, b]) {post_ops=P} becomes
/// `conv2d(x, w[, b], r) {post_ops=P + [sum]}`, and the activations after the add are
/// appended too (absorbActivations): a ResNet block's `relu(add(conv, r))` ends as
/// `conv2d+sum+relu`. Activations already in P stay before the sum (oneDNN runs conv,
/// eltwise, sum, eltwise in order).
///
/// Conditions, per conv operand: c has no other reader and is not a graph output; the conv
/// has no `sum` yet (at most one); r has exactly c's type (no broadcasting: the backend adds
/// r into the conv's destination, and writes the result in r's memory when r dies there);
/// and r is defined before the conv (the summand is read when the conv runs; nodes are never
/// moved, so the graph stays in topological order). When both operands qualify, the conv
/// whose summand is defined earlier is taken.
///
/// Every add left alone is recorded in fusions() with the reason per operand.
class FuseResidual final : public Pass {
 public:
  std::string_view name() const override { return passInfo(PassId::FuseResidual).name; }
  std::string_view summary() const override { return passInfo(PassId::FuseResidual).summary; }
  Status run(ir::Module& module) override;
  std::string report() const override { return report_; }
  std::span<const FusionRecord> fusions() const override { return log_.records(); }

 private:
  FusionLog log_;
  std::string report_;
};

}  // namespace kiln::passes
