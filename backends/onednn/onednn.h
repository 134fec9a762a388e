// The oneDNN CPU backend: compiles a module into plans of oneDNN primitives (one per batch
// size), with weights reordered once and one activation arena per concurrent run.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ir/module.h"
#include "ir/status.h"
#include "ir/tensor.h"
#include "passes/select_layout.h"

namespace kiln::backends::onednn {

struct CompileOptions {
  /// The batch size whose plan is built up front (others are built on first use).
  int64_t batch = 1;
  /// OpenMP threads for each run (set in the calling thread); 0 leaves the OpenMP default.
  int threads = 0;
  /// Train steps (passes/autodiff.h): every weight `w` with an output `new:w` is state. Its
  /// store tensor is read by each run and the run writes the new value into it, in place
  /// where the plan allows (sgd_update and batch_norm_train write straight into it), else
  /// by a copy at the end; run returns those outputs as empty tensors. Such a program
  /// changes its module's weights, so its runs must not overlap. Every param and buffer is
  /// then read from its store tensor by each run (none is reordered once), so the caller may
  /// also change them between runs. Without this option weights are constants (reordered
  /// once) and every output is returned.
  bool stateInPlace = false;
};

/// select-layout's policy for this backend: creates each conv2d's primitive descriptor with
/// format_tag::any activations (N bound to `batch`) and reads back the formats oneDNN picks
/// (nChw16c / nChw8c / nhwc / nchw). When oneDNN would pad the channels, or picks a format
/// kiln has no layout for, the rule-based answer stands.
class LayoutPolicy final : public passes::LayoutPolicy {
 public:
  explicit LayoutPolicy(int64_t batch = 1) : batch_(batch) {}
  std::string_view name() const override { return "onednn"; }
  passes::ConvLayouts convLayouts(const ir::Node& conv) const override;

 private:
  int64_t batch_;
  passes::RuleLayoutPolicy rules_;
};

/// What a profile needs to know about one node of the compiled graph.
struct NodeInfo {
  const ir::Node* node = nullptr;
  std::string label;   // result value as printed: %name or %id
  std::string op;      // op spelling with post-ops ("conv2d+sum+relu")
  double flopsPerSample = 0;  // from the op table's cost rule (N = 1)
};

/// Called around every step of a run (a primitive or one of our kernels), in the calling
/// thread. Steps of a node are contiguous; nodes that are views run no step.
class RunObserver {
 public:
  virtual ~RunObserver() = default;
  virtual void stepBegin(size_t node) = 0;
  /// `primitive`: the step was a oneDNN primitive (false: a kernel of ours).
  virtual void stepEnd(size_t node, bool primitive) = 0;
};

/// Figures of a compiled program.
struct ProgramStats {
  int64_t weightBytes = 0;  // weights as held for the primitives (after reorders)
  int64_t arenaBytes = 0;   // activation arena of the most recently planned batch size
  int64_t steps = 0;        // steps of that plan
};

class Program {
 public:
  class Impl;
  ~Program();

  /// Lowers every node of `module` to oneDNN primitives or kernels of ours and builds the
  /// plan for `options.batch`. Values must be f32; weights must be bound in the store.
  static Expected<std::unique_ptr<Program>> compile(std::shared_ptr<const ir::Module> module,
                                                    const CompileOptions& options);

  /// Runs on `inputs` (one per graph input, in order); N binds to the inputs' batch size and
  /// a new N builds its plan first. Thread-safe: concurrent runs take separate arenas
  /// (but see CompileOptions::stateInPlace).
  Expected<std::vector<ir::Tensor>> run(std::span<const ir::Tensor> inputs,
                                        RunObserver* observer = nullptr) const;

  /// The graph's nodes in order; RunObserver's node indices point here.
  std::span<const NodeInfo> nodes() const;
  ProgramStats stats() const;
  const ir::Module& module() const;

 private:
  explicit Program(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::backends::onednn
