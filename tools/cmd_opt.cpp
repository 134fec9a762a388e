// `kiln opt`: run a pass pipeline over a graph with per-pass dumps, timings and verification.
#include <CLI/CLI.hpp>

#include "backends/reference/reference.h"
#include "passes/pass_manager.h"
#include "runtime/npy.h"
#include "tools/commands.h"

namespace kiln::tools {

namespace {

struct Options {
  SourceOptions source;
  bool o2 = false;
  std::string passes;
  passes::PassManagerOptions pm;
  std::string output = "-";
  std::string saveWeights;
};

/// The store entries the graph declares: what a user needs to run the optimized graph.
ir::WeightStore referencedWeights(const ir::Module& m) {
  ir::WeightStore out;
  for (const ir::Value* v : m.graph.weights())
    if (const ir::Tensor* t = m.weights.find(v->name())) out.set(v->name(), *t);
  return out;
}

Status runOpt(Options& o) {
  KILN_ASSIGN_OR_RETURN(ir::Module m, loadSource(o.source));
  std::string spec = o.passes;
  if (o.o2) spec = spec.empty() ? "default" : "default," + spec;
  if (!spec.empty()) {
    KILN_ASSIGN_OR_RETURN(o.pm.passes, passes::parsePipeline(spec));
  }
  backends::reference::ReferenceEvaluator evaluator;
  passes::PassEnv env{&evaluator};
  passes::PassManager pm(o.pm, env, [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stderr);
  });
  KILN_TRY(pm.run(m));
  KILN_TRY(writeModule(o.output, m, o.pm.debugLocations));
  if (!o.saveWeights.empty()) {
    ir::WeightStore used = referencedWeights(m);
    KILN_TRY(ir::checkWeightBinding(m.graph, used, /*strict=*/false)
                 .withContext("--save-weights needs every weight (pass --weights or --random-weights)"));
    KILN_TRY(runtime::writeNpz(o.saveWeights, used));
  }
  return Status::ok();
}

}  // namespace

Action registerOpt(CLI::App& app) {
  auto o = std::make_shared<Options>();
  addSourceOptions(app, o->source, /*withWeights=*/true);
  app.add_flag("--O2", o->o2, "-O2: the default pipeline (same as --passes=default)");
  app.add_option("--passes", o->passes, "comma-separated pass list, or 'default'");
  app.add_flag("--print-after-all", o->pm.printAfterAll, "print the IR after every pass (stderr)");
  app.add_option("--print-after", o->pm.printAfter, "print the IR after this pass (repeatable)");
  app.add_option("--print-before", o->pm.printBefore, "print the IR before this pass (repeatable)");
  app.add_flag("--print-changed", o->pm.printChanged, "print the IR only after passes that changed it");
  app.add_option("--dump-dir", o->pm.dumpDir, "write one numbered .kir per pass into this folder");
  app.add_flag("--time-passes", o->pm.timePasses, "print a table of pass timings (stderr)");
  app.add_flag("--verify-each", o->pm.verifyEach, "run the verifier after every pass");
  app.add_flag("--debug-locations", o->pm.debugLocations, "print source locations on every line");
  app.add_option("-o,--output", o->output, "write the result here (.kir or .kpb) instead of stdout");
  app.add_option("--save-weights", o->saveWeights,
                 "write the weights the optimized graph uses (incl. folded tensors) to this .npz");
  return [o] { return runOpt(*o); };
}

}  // namespace kiln::tools
