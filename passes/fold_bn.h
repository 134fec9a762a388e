// fold-bn: folds inference batch_norm into the conv2d (or linear) feeding it, by scaling the
// weight per output channel and folding the shift into a new bias.
#pragma once

#include <string>
#include <vector>

#include "ir/status.h"
#include "passes/pass.h"

namespace kiln::passes {

/// A batch_norm the last run left alone, and why (for a fusion report).
struct UnfoldableBn {
  Loc loc;             // the batch_norm's location
  std::string reason;  // e.g. "input is produced by concat, not conv2d or linear"
};

/// Rewrites `batch_norm(conv2d(x, W[, b]), gamma, beta, mean, var) {epsilon}` into
/// `conv2d(x, W', b')` with, per output channel o and s[o] = gamma[o] / sqrt(var[o] + eps):
///   W'[o] = W[o] * s[o],   b'[o] = (b[o] - mean[o]) * s[o] + beta[o]   (b = 0 when absent).
/// Grouped and depthwise convs fold the same way (output channel o is BN channel o), and so
/// does `linear` into a batch_norm over [N, C]. The pattern needs the conv/linear result to
/// have exactly one use (the batch_norm), and W, b and the four BN operands to be weight
/// declarations (param/buffer/const) with f32 or f64 data in module.weights.
///
/// W' and b' are computed in double, stored in W's dtype and layout, and added to the store
/// as new `const` declarations named `<W>.folded` and `<b>.folded` (the bias named after W,
/// `….weight` → `….bias.folded`, when the conv had none), made unique with
/// WeightStore::uniqueName. The new node keeps the conv's location; the batch_norm's result
/// name moves to it. Declarations that become unused are left to dce.
///
/// A batch_norm that does not match is left as it is and listed in unfoldable(); that is
/// not an error (DenseNet's pre-activation BNs follow concat or pooling, and a graph loaded
/// without weights has nothing to fold).
class FoldBn final : public Pass {
 public:
  std::string_view name() const override { return passInfo(PassId::FoldBn).name; }
  std::string_view summary() const override { return passInfo(PassId::FoldBn).summary; }
  Status run(ir::Module& module) override;

  /// batch_norms folded by the last run.
  int numFolded() const { return numFolded_; }
  /// batch_norms the last run left alone, in graph order.
  const std::vector<UnfoldableBn>& unfoldable() const { return unfoldable_; }
  /// Both, as fusion records (folded: pattern "batch_norm"; left alone: the reason).
  std::span<const FusionRecord> fusions() const override { return log_.records(); }

 private:
  int numFolded_ = 0;
  std::vector<UnfoldableBn> unfoldable_;
  FusionLog log_;
};

}  // namespace kiln::passes
