// infer-shapes: recomputes every result's dtype and shape with the op table's shape rules.
#pragma once

#include <string>
#include <vector>

#include "ir/types.h"
#include "passes/pass.h"

namespace kiln::passes {

/// Re-runs each node's shape rule in graph order and updates its results' dtypes and shapes,
/// so consumers see the new types of their producers (useful after editing a .kir by hand or
/// after an importer guessed types). A result keeps its layout when its rank is unchanged
/// (layouts are chosen by select-layout, not by shape rules); otherwise it takes the layout
/// the rule gives, which is the default layout of the rank for every rank-changing op.
/// Declarations (inputs and weights) are the graph's interface and are never changed.
/// A rule error is reported with the node's location.
class InferShapes final : public Pass {
 public:
  /// One result whose type changed, for tests and debugging.
  struct Change {
    std::string value;  // `%name` or `<op> result i`
    ir::TensorType before, after;
  };

  std::string_view name() const override { return passInfo(PassId::InferShapes).name; }
  std::string_view summary() const override { return passInfo(PassId::InferShapes).summary; }
  Status run(ir::Module& module) override;

  /// The results the last run changed, in graph order.
  const std::vector<Change>& changes() const { return changes_; }

 private:
  std::vector<Change> changes_;
};

}  // namespace kiln::passes
