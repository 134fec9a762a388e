// What the fusion passes (fold-bn, fuse-conv-act, fuse-residual) folded and what they left
// alone, and why: one record per decision, and the table `kiln opt --report-fusions` and the
// passes' reports print.
#pragma once

#include <span>
#include <string>
#include <vector>

namespace kiln::ir {
class Graph;
class Node;
class Value;
}  // namespace kiln::ir

namespace kiln::passes {

/// One fusion decision. Value pointers stay valid while the graph lives (a graph keeps the
/// values of erased nodes), so records of several passes can be merged at the end.
struct FusionRecord {
  bool fused = false;
  /// The pass that made the decision (set by the pass manager).
  std::string pass;
  /// fused: the result of the fused node (a conv2d or linear); refused: the result of the
  /// node left alone.
  const ir::Value* value = nullptr;
  /// fused: the ops folded in, in order ("batch_norm", "add, relu"); refused: the node's op.
  std::string pattern;
  /// fused: the resulting op, "conv2d+sum+relu" (ir::fusedOpName).
  std::string result;
  /// refused: why, e.g. "relu after add: no conv2d to fold into".
  std::string reason;
  /// The fused node's weight operand name (stable across passes; the value names of
  /// anonymous results are not). Empty for refusals.
  std::string weight;
  /// fused: results of the nodes it replaced (now gone), including an earlier fused node.
  std::vector<const ir::Value*> replaced;
  /// The printed name of `value` in the graph the recording pass left (for values a later
  /// pass removed).
  std::string name;
};

/// The records of one pass run.
class FusionLog {
 public:
  void clear() { records_.clear(); }
  /// `node` (conv2d or linear, in its final form) now computes what the nodes with results
  /// `replaced` did.
  void fused(const ir::Node& node, std::string pattern, std::vector<const ir::Value*> replaced);
  /// `value`'s node (of op `op`) was left alone.
  void refused(const ir::Value* value, std::string op, std::string reason);
  /// Fills the records' printed names from the graph the pass leaves.
  void finish(const ir::Graph& g);
  const std::vector<FusionRecord>& records() const { return records_; }

 private:
  std::vector<FusionRecord> records_;
};

/// Counts over merged records (see formatFusions).
struct FusionSummary {
  int fusedNodes = 0;      // conv2d/linear lines in the fused table
  int withSum = 0;         // conv2d with a sum post-op
  int withActivation = 0;  // conv2d with an activation post-op
  int notFused = 0;        // lines in the not-fused table
};

/// Merges the records of a pipeline (in the order the passes ran): a fused node that a
/// later fusion replaced is one line with both patterns; a refusal is dropped when a later
/// fusion took its node, and repeated refusals of one node keep the last reason.
FusionSummary summarizeFusions(const ir::Graph& g, std::span<const FusionRecord> records);

/// The report table over the final graph `g`: "fused:" lines (value, resulting op, what was
/// folded in, weight, passes), "not fused:" lines (value, op, reason), then a summary line.
/// Rows are in graph order, values named as printGraph(g) names them.
std::string formatFusions(const ir::Graph& g, std::span<const FusionRecord> records);

}  // namespace kiln::passes
