// select-layout: chooses the memory layout of every 4-D activation (nchw, nhwc, nChw8c,
// nChw16c) and makes each conversion an explicit `reorder` node. Which layout a conv2d runs
// best in is a backend question, asked through LayoutPolicy (passes/ may not depend on a
// backend); RuleLayoutPolicy answers it without one.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ir/status.h"
#include "ir/types.h"
#include "passes/pass.h"

namespace kiln::ir {
class Node;
}

namespace kiln::passes {

/// The activation layouts a conv2d should read (src) and write (dst). Weights are not part
/// of it: they stay oihw in the IR and the backend prepacks them once (OIhw16i16o, …).
struct ConvLayouts {
  ir::Layout src = ir::Layout::NCHW;
  ir::Layout dst = ir::Layout::NCHW;
};

/// Where the layout of a conv2d comes from. select-layout never asks for a layout whose
/// block does not divide the channels (it clamps such answers itself), so a policy may answer
/// what its library prefers.
class LayoutPolicy {
 public:
  virtual ~LayoutPolicy();
  /// For messages and reports ("rules", "onednn").
  virtual std::string_view name() const = 0;
  /// `conv` is a conv2d with a rank-4 input; its operand and result types are final except
  /// for their layouts.
  virtual ConvLayouts convLayouts(const ir::Node& conv) const = 0;
};

/// The backend-free policy (`kiln opt -O2`): channels divisible by 16 → nChw16c, else by 8 →
/// nChw8c, else nchw, for input and output channels together (per group for grouped convs);
/// a conv with fewer than 8 input channels (the stem) reads nchw and writes the blocked
/// layout of its output channels, as oneDNN's direct convolutions do.
class RuleLayoutPolicy final : public LayoutPolicy {
 public:
  std::string_view name() const override { return "rules"; }
  ConvLayouts convLayouts(const ir::Node& conv) const override;
};

/// The blocked layout (nChw16c, then nChw8c) whose block divides every count, else nchw.
ir::Layout blockedLayoutFor(std::initializer_list<int64_t> channels);

/// `--layout-of=NODE:LAYOUT`: the value printed as %NODE gets LAYOUT.
struct LayoutOverride {
  std::string value;  // a value name as printed before select-layout, without the %
  ir::Layout layout = ir::Layout::NCHW;
};

/// Parses `NODE:LAYOUT` (`%12:nhwc`, `layer1.0.conv1:nChw8c`); LAYOUT must be one of the 4-D
/// activation layouts nchw, nhwc, nChw8c, nChw16c.
Expected<LayoutOverride> parseLayoutOverride(std::string_view spec);

/// The pass. Walks the graph once in order:
/// - conv2d: the policy's (or an override's) src/dst layouts; a summand takes the dst layout;
/// - layout-agnostic ops (elementwise, batch_norm, poolings, channel_scale, inference
///   dropout): the layout of their blocked rank-4 operand, when its block divides every
///   rank-4 operand's channels, else nchw;
/// - concat/split along channels: the operands' blocked layout when every part's channels
///   divide by its block, else nChw8c when they divide by 8, else nchw;
/// - train steps: batch_norm_train/backward, max/avg_pool2d_backward and the activation
///   gradients follow like their forward ops; conv2d_backward_data/weight read dy (and x) and
///   write dx in the layouts the policy gives the forward conv2d of the same shapes; their
///   weight gradients stay oihw (optimizer updates and the weight store are plain);
///   reduce_sum reads any layout;
/// - every other op (flatten, reshape, linear, softmax, pad, slice, training dropout, the
///   losses, the optimizer updates): nchw operands.
/// An operand in another layout gets a `reorder` right before its first reader (shared by
/// later readers). Graph inputs keep their layout; graph outputs get their declared layout
/// back (the reorder takes over the output's name). A graph without conv2d is left
/// unchanged; otherwise existing reorders are removed first, so layouts are chosen afresh
/// (a second run is a no-op; another policy does not stack reorders).
class SelectLayout final : public Pass {
 public:
  /// `policy` null: RuleLayoutPolicy.
  explicit SelectLayout(const LayoutPolicy* policy = nullptr,
                        std::vector<LayoutOverride> overrides = {});
  std::string_view name() const override { return passInfo(PassId::SelectLayout).name; }
  std::string_view summary() const override { return passInfo(PassId::SelectLayout).summary; }
  Status run(ir::Module& module) override;
  /// Counts of the last run: "12 values blocked (nChw16c 10, nChw8c 2), 3 reorders".
  std::string report() const override { return report_; }

  int numReorders() const { return numReorders_; }

 private:
  RuleLayoutPolicy rules_;
  const LayoutPolicy* policy_;
  std::vector<LayoutOverride> overrides_;
  int numReorders_ = 0;
  std::string report_;
};

}  // namespace kiln::passes
