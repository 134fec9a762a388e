// The pass manager: runs a pipeline with IR dumps (--print-after, --dump-dir), timings
// and verification after each pass.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ir/module.h"
#include "ir/status.h"
#include "passes/pass.h"

namespace kiln::passes {

struct PassManagerOptions {
  /// Pass names in order ("default" expands to the default pipeline).
  std::vector<std::string> passes{};
  /// Print the IR after every pass.
  bool printAfterAll = false;
  /// Print the IR after / before each run of these passes (names must be known passes).
  std::vector<std::string> printAfter{}, printBefore{};
  /// Print after a pass only when it changed the printed IR; alone, it applies to every pass.
  bool printChanged = false;
  /// Write DIR/00-input.kir, DIR/01-<pass>.kir, … (one numbered file per pass run).
  std::string dumpDir{};
  /// Print a table of pass times (ms and % of the total) at the end.
  bool timePasses = false;
  /// Verify the input, then the graph after every pass; a failure names the pass.
  bool verifyEach = false;
  /// Print source locations in dumps.
  bool debugLocations = false;
};

class PassManager {
 public:
  /// `out` receives the IR dumps and the timing table (the CLI passes stderr).
  PassManager(PassManagerOptions options, PassEnv env, std::function<void(std::string_view)> out);

  /// Appends a pass built by the caller (a backend's own pipeline, or a test's); it runs
  /// after the passes named in the options, with the same dumps, timing and verification.
  void addPass(std::unique_ptr<Pass> pass) { extra_.push_back(std::move(pass)); }

  /// Creates every pass first (so a bad name fails before the module is touched), then runs
  /// them in order. A failing pass's error is prefixed with its name.
  Status run(ir::Module& module);

  /// The non-empty Pass::report()s of the last run, in pipeline order.
  struct Report {
    std::string pass;
    std::string text;
  };
  const std::vector<Report>& reports() const { return reports_; }
  /// The Pass::fusions() of the last run, in pipeline order, each with its pass name
  /// (formatFusions merges them).
  const std::vector<FusionRecord>& fusions() const { return fusions_; }

 private:
  PassManagerOptions options_;
  PassEnv env_;
  std::function<void(std::string_view)> out_;
  std::vector<std::unique_ptr<Pass>> extra_;
  std::vector<Report> reports_;
  std::vector<FusionRecord> fusions_;
};

/// The dump header MLIR-style tools print: `// -----// IR Dump After cse //----- //`.
std::string dumpHeader(std::string_view when, std::string_view passName);

/// A pass report as `.kir` comment lines, so a dump with it still parses:
/// `// plan-memory report:` then each line of `report` behind `// `.
std::string reportComment(std::string_view passName, std::string_view report);

}  // namespace kiln::passes
