// The pass interface, the pass table expanded from passes/passes.def, and the factory.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/status.h"
#include "passes/fusion_log.h"

namespace kiln::ir {
struct Module;
class Evaluator;
}  // namespace kiln::ir

namespace kiln::passes {

class LayoutPolicy;
struct LayoutOverride;

/// A transformation of a module (graph plus weight store). Passes are constructed by
/// `createPass` (or directly with their options struct) and hold no global state.
class Pass {
 public:
  virtual ~Pass();
  virtual std::string_view name() const = 0;
  virtual std::string_view summary() const = 0;
  /// Rewrites `module` in place; on error the module may be partly rewritten.
  virtual Status run(ir::Module& module) = 0;
  /// What the last run found, for people (plan-memory's buffer table); the pass manager
  /// prints it as `//` lines after the pass's IR dump. Empty: nothing to say.
  virtual std::string report() const { return {}; }
  /// What the last run fused and left unfused (fold-bn and the fuse-* passes); the pass
  /// manager collects them for `kiln opt --report-fusions`.
  virtual std::span<const FusionRecord> fusions() const { return {}; }
};

/// What passes may need from outside the IR layer. constant-fold runs nodes through
/// `evaluator`; the CLI hands in the reference backend's.
struct PassEnv {
  const ir::Evaluator* evaluator = nullptr;
  /// select-layout asks it which layouts conv2d runs best in (a backend's answer, queried
  /// from its library); null: the rule-based policy (passes/select_layout.h).
  const LayoutPolicy* layoutPolicy = nullptr;
  /// select-layout's per-value overrides (`kiln opt --layout-of`); null: none.
  const std::vector<LayoutOverride>* layoutOverrides = nullptr;
};

/// One row of passes/passes.def.
enum class PassId {
#define KILN_PASS(cls, ...) cls,
#include "passes/passes.def"
#undef KILN_PASS
};

struct PassInfo {
  PassId id;
  std::string_view name;
  std::string_view summary;
  bool inDefault;
};

inline constexpr PassInfo kPasses[] = {
#define KILN_PASS(cls, name, summary, inDefault) PassInfo{PassId::cls, name, summary, inDefault},
#include "passes/passes.def"
#undef KILN_PASS
};

inline constexpr const PassInfo& passInfo(PassId id) { return kPasses[static_cast<size_t>(id)]; }

/// Every pass, in pipeline order.
inline std::span<const PassInfo> allPasses() { return kPasses; }

/// The pass with this name, or null.
const PassInfo* findPass(std::string_view name);

/// The names of the `default` pipeline (what -O2 runs), in order.
std::vector<std::string> defaultPipeline();

// One factory function per pass, defined beside the pass (passes/<pass>.cpp).
#define KILN_PASS(cls, ...) std::unique_ptr<Pass> create##cls##Pass(const PassEnv& env);
#include "passes/passes.def"
#undef KILN_PASS

/// A new instance of the named pass; an unknown name is an error listing the known passes.
Expected<std::unique_ptr<Pass>> createPass(std::string_view name, const PassEnv& env);

/// "default" (= -O2) or a comma list "a,b,c" (spaces around names are ignored, "default"
/// may appear inside a list and expands in place). Unknown names → error listing the
/// known passes. An empty spec is an empty pipeline.
Expected<std::vector<std::string>> parsePipeline(std::string_view spec);

}  // namespace kiln::passes
