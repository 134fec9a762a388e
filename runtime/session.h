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
  std::string backend = "reference";
  /// Intra-op threads; 0 takes OMP_NUM_THREADS, else every core.
  int threads = 0;
  /// Run the default (-O2) pass pipeline before compiling.
  bool optimize = true;
};

/// Time spent in one node of a profiled run.
struct NodeProfile {
  std::string name;    // result value name as printed (e.g. %layer1.0.conv1 or %12)
  std::string op;      // op spelling, with post-ops for fused convs ("conv2d+sum+relu")
  std::string layout;  // result layout
  std::string shape;   // result shape
  double ms = 0;
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
  Expected<std::vector<ir::Tensor>> run(std::span<const ir::Tensor> inputs) const;
  /// Like run, and fills one entry per executed node with its time.
  Expected<std::vector<ir::Tensor>> profile(std::span<const ir::Tensor> inputs,
                                            std::vector<NodeProfile>& nodes) const;

  /// The module as compiled (after the passes).
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
