// kiln::Session — the library API: load a module, optimize and compile it once, run it many
// times. `run` is thread-safe: each call uses its own arena (oneDNN) or scratch (reference).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ir/module.h"
#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln::runtime {

struct SessionOptions {
  /// "onednn" (compiled plan) or "reference" (the interpreter; the numeric oracle).
  std::string backend = "onednn";
  /// Intra-op threads; 0 takes OMP_NUM_THREADS, else every core.
  int threads = 0;
  /// The batch size compiled up front (onednn); runs with another N compile theirs on first use.
  int64_t batch = 1;
  /// Run the default (-O2) pass pipeline before compiling.
  bool optimize = true;
};

/// Time spent in one node of a profiled run.
struct NodeProfile {
  std::string name;    // result value name as printed (e.g. %layer1.0.conv1 or %12)
  std::string op;      // op spelling, with post-ops for fused convs ("conv2d+sum+relu")
  std::string layout;  // result layout
  std::string shape;   // result shape (N bound to the run's batch size)
  double ms = 0;       // 0 for views (reshape of row-major data, inference dropout)
  double flops = 0;    // for this batch
};

/// Figures of a compiled session.
struct SessionStats {
  double compileMs = 0;       // passes + plan creation + weight preparation
  int64_t weightBytes = 0;    // weights as the backend holds them (after reorders)
  int64_t arenaBytes = 0;     // activation arena of the last planned batch size (0: none)
};

class Session {
 public:
  class Impl;
  ~Session();

  /// Optimizes (options.optimize) and compiles `module`; every weight must be bound.
  static Expected<std::unique_ptr<Session>> create(ir::Module module, const SessionOptions& options);

  /// Runs on `inputs` (one per graph input, in order; any batch size for a symbolic N).
  /// Thread-safe.
  ///
  /// A train step (passes::buildTrainStep: outputs `new:<weight>`) is stateful: each run
  /// reads the session's weights and writes the new ones back (onednn: in place), so
  /// module().weights always holds the current state; runs of a train step are serialized.
  /// `run` returns every output, the `new:` ones as copies of the new state.
  Expected<std::vector<ir::Tensor>> run(std::span<const ir::Tensor> inputs) const;
  /// A train step's run that does not copy the state out: the `new:` outputs are empty
  /// tensors (read module().weights instead). For other graphs, the same as run.
  Expected<std::vector<ir::Tensor>> step(std::span<const ir::Tensor> inputs) const;
  /// Whether the module is a train step (has `new:<weight>` outputs).
  bool isTrainStep() const;
  /// Like run, and fills one entry per executed node with its time.
  Expected<std::vector<ir::Tensor>> profile(std::span<const ir::Tensor> inputs,
                                            std::vector<NodeProfile>& nodes) const;

  /// Copies `values` into the current weights of the same names (a train step's state; every
  /// name must be a weight of the module with the same dtype and shape). Serialized with the
  /// train steps. Gradient accumulation keeps an Accumulate and an Apply step in sync with it.
  Status setWeights(const ir::WeightStore& values) const;

  /// The module as compiled (after the passes); a train step's current weights.
  const ir::Module& module() const;
  const SessionOptions& options() const;
  SessionStats stats() const;

 private:
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// The thread count a backend should use for `requested` (0: OMP_NUM_THREADS, else cores).
int resolveThreads(int requested);

}  // namespace kiln::runtime
