// fuse-conv-act: folds the activations that follow a conv2d into its post_ops.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "passes/pass.h"

namespace kiln::ir {
class Graph;
class Node;
struct PostOp;
}  // namespace kiln::ir

namespace kiln::passes {

/// The post-op that computes activation node `n` (relu, relu6, sigmoid, swish, hardswish,
/// tanh, hardsigmoid, clip), or nullopt for any other op.
std::optional<ir::PostOp> activationPostOp(const ir::Node& n);

/// Folds into `conv` (a conv2d) the activations that follow it while its result has exactly
/// one reader, that reader is an activation and the result is not a graph output: each one
/// is appended to post_ops, its readers read the conv instead and it is erased (its result
/// name moves to the conv's result). Returns the results of the erased activations and
/// appends their op names to `ops`.
std::vector<const ir::Value*> absorbActivations(ir::Graph& g, ir::Node& conv,
                                                std::vector<std::string>& ops);

/// For every conv2d: `act(conv2d(...))`, and chains like `clip(swish(conv2d(...)))`, become
/// one conv2d with the activations appended to its post_ops (after any it already has, a
/// `sum` included: oneDNN applies them in order). The conv's result must have no other
/// reader and must not be a graph output, since the fused node no longer computes the plain
/// convolution. linear is left alone: the oneDNN backend gives inner products no post-ops.
///
/// Every activation the pass does not fold is recorded in fusions() with the reason (its
/// input is not a conv2d, or the conv result is also read elsewhere or is an output).
class FuseConvAct final : public Pass {
 public:
  std::string_view name() const override { return passInfo(PassId::FuseConvAct).name; }
  std::string_view summary() const override { return passInfo(PassId::FuseConvAct).summary; }
  Status run(ir::Module& module) override;
  std::string report() const override { return report_; }
  std::span<const FusionRecord> fusions() const override { return log_.records(); }

 private:
  FusionLog log_;
  std::string report_;
};

}  // namespace kiln::passes
