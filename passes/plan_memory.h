// plan-memory: static memory planning from liveness (ARCHITECTURE.md decision 6). An analysis
// (planMemory, verifyPlan, formatPlan) that backends use for their activation arena, and the
// pass that computes, verifies and reports the plan without changing the graph.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ir/status.h"
#include "passes/pass.h"

namespace kiln::ir {
class Graph;
class Node;
class Value;
}  // namespace kiln::ir

namespace kiln::passes {

/// Which operand slots of `n` its (single) result may overwrite, most preferred first.
using InPlaceFn = std::function<std::vector<size_t>(const ir::Node& n)>;

/// The slots the default rules allow (the most any plan may use; verifyPlan checks against
/// them): operand 0 of a unary Elementwise op; each operand of a binary Elementwise op whose
/// type is the result's (no broadcasting into it); `x` of channel_scale; the summand of a
/// conv2d with a `sum` post-op (oneDNN writes the result into the summand's memory).
std::vector<size_t> defaultInPlaceOperands(const ir::Node& n);

struct MemoryPlanOptions {
  /// Binds the symbolic batch N.
  int64_t batch = 1;
  /// Every offset and buffer size is a multiple of this (a power of two).
  int64_t alignment = 64;
  /// The bytes a value needs (a backend may pad blocked layouts); never less than
  /// elements x dtype size. Empty: exactly elements (N = batch) x dtype size, with the
  /// blocked dim of a blocked layout rounded up to whole blocks (nChw16c pads 24 channels to
  /// 32).
  std::function<int64_t(const ir::Value&)> byteSize{};
  /// Which operands a node's result may overwrite. Empty: defaultInPlaceOperands. A backend
  /// narrows it to what its kernels can do (return {} to run a node out of place).
  InPlaceFn inPlaceOperands{};
};

/// How a value's memory relates to another value's.
enum class AliasKind : uint8_t {
  None,     // its own bytes
  View,     // a reshape/flatten (ShapeOnly op) of `aliasOf`: the same bytes, read differently
  InPlace,  // written over `aliasOf`, which dies at this value's node
};

/// The plan of one value. Node indices count the graph's nodes in order, 0-based; a graph
/// output lives to `MemoryPlan::numNodes` (past the last node: it is read after the run).
struct ValuePlan {
  /// In the arena: a result of a node of the graph (views of inputs and weights are not).
  bool inArena = false;
  int64_t offset = 0;  // into the arena; a multiple of the alignment
  int64_t bytes = 0;   // the value's own size (MemoryPlanOptions::byteSize)
  int buffer = -1;     // index into MemoryPlan::buffers, -1 outside the arena
  int firstUse = -1;   // the node that defines it
  int lastUse = -1;    // the last node that reads it (== firstUse when nothing does)
  AliasKind alias = AliasKind::None;
  int aliasOf = -1;  // value id (View: the operand viewed; InPlace: the operand overwritten)
};

/// A region of the arena shared by a value and its views and in-place successors.
struct MemoryBuffer {
  int64_t offset = 0;
  int64_t bytes = 0;              // aligned; the largest of its values
  int firstUse = 0, lastUse = 0;  // union of its values' live ranges
  std::vector<int> values;        // value ids, in definition order
};

struct MemoryPlan {
  int64_t batch = 1;
  int64_t alignment = 64;
  int numNodes = 0;
  /// Indexed by value id (Graph::numValueIds()); values outside the arena have inArena false.
  std::vector<ValuePlan> values;
  std::vector<MemoryBuffer> buffers;
  /// The arena size: the end of the highest buffer.
  int64_t peakBytes = 0;
  /// Without any reuse: every arena value its own aligned allocation, in-place results
  /// included (views cost nothing either way).
  int64_t naiveBytes = 0;
  /// No plan can do better: the most bytes of buffers live at one node.
  int64_t lowerBoundBytes = 0;
  /// Results written over an operand.
  int numInPlace = 0;
};

/// Plans the arena of `graph` for `options.batch`: liveness over the node order, views and
/// in-place reuse, then greedy-by-size best-fit placement (TFLite's arena planner). Fails on
/// bad options or a size that overflows int64; never on a valid graph otherwise.
Expected<MemoryPlan> planMemory(const ir::Graph& graph, const MemoryPlanOptions& options = {});

/// Checks `plan` against `graph` from scratch (it recomputes liveness and trusts no field):
/// every result of the graph is in the arena at an aligned offset inside peakBytes with at
/// least elements x dtype bytes; inputs and weights are not; and two values whose bytes
/// overlap are never live at the same node unless one is a view of the other at the same
/// offset, or the later one is written in place over the earlier one by an op whose
/// defaultInPlaceOperands slot holds it (same type and offset, and it dies there).
Status verifyPlan(const ir::Graph& graph, const MemoryPlan& plan);

/// A table, one row per arena value (value, op, type with N bound, bytes, offset, live range,
/// buffer, view/in-place), then a summary: peak, naive and lower-bound bytes, the peak/naive
/// ratio and the number of in-place reuses.
std::string formatPlan(const ir::Graph& graph, const MemoryPlan& plan);

/// The pass: plans batch-1 memory with default sizes, verifies the plan and keeps it for
/// report(); the graph is not changed.
class PlanMemory final : public Pass {
 public:
  explicit PlanMemory(MemoryPlanOptions options = {}) : options_(std::move(options)) {}
  std::string_view name() const override { return passInfo(PassId::PlanMemory).name; }
  std::string_view summary() const override { return passInfo(PassId::PlanMemory).summary; }
  Status run(ir::Module& module) override;
  std::string report() const override { return report_; }

  /// The plan of the last run.
  const MemoryPlan& plan() const { return plan_; }

 private:
  MemoryPlanOptions options_;
  MemoryPlan plan_;
  std::string report_;
};

}  // namespace kiln::passes
