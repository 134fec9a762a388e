// `kiln opt`: run a pass pipeline over a graph with per-pass dumps, timings and verification.
#include <CLI/CLI.hpp>
#include <algorithm>

#include "backends/reference/reference.h"
#include "passes/pass_manager.h"
#include "passes/plan_memory.h"
#include "passes/select_layout.h"
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
  bool memory = false;
  std::vector<std::string> layoutOf;
  bool reportFusions = false;
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
  std::vector<passes::LayoutOverride> overrides;
  for (const std::string& spec : o.layoutOf) {
    KILN_ASSIGN_OR_RETURN(passes::LayoutOverride lo, passes::parseLayoutOverride(spec));
    overrides.push_back(std::move(lo));
  }
  if (!overrides.empty() &&
      std::find(o.pm.passes.begin(), o.pm.passes.end(), "select-layout") == o.pm.passes.end())
    return error(
        "--layout-of needs select-layout in the pipeline (-O2, or --passes=...,select-layout)");
  backends::reference::ReferenceEvaluator evaluator;
  passes::PassEnv env{&evaluator};
  env.layoutOverrides = &overrides;
  passes::PassManager pm(
      o.pm, env, [](std::string_view text) { std::fwrite(text.data(), 1, text.size(), stderr); });
  KILN_TRY(pm.run(m));
  std::string memoryReport;
  if (o.memory) {
    // A registry model built with --batch is already static; a file's N binds to --batch.
    passes::MemoryPlanOptions mo;
    mo.batch = o.source.batch > 0 ? o.source.batch : 1;
    KILN_ASSIGN_OR_RETURN(passes::MemoryPlan plan, passes::planMemory(m.graph, mo));
    KILN_TRY(passes::verifyPlan(m.graph, plan));
    memoryReport = passes::formatPlan(m.graph, plan);
  }
  const std::string fusionReport =
      o.reportFusions ? passes::formatFusions(m.graph, pm.fusions()) : std::string();
  KILN_TRY(writeModule(o.output, m, o.pm.debugLocations));
  // With the IR on stdout the plan goes to stderr beside the other diagnostics; with -o FILE
  // stdout is free and the plan goes there (`kiln opt m -O2 --memory -o m.kir > plan.txt`).
  std::FILE* reportTo = o.output == "-" ? stderr : stdout;
  if (!memoryReport.empty()) std::fwrite(memoryReport.data(), 1, memoryReport.size(), reportTo);
  if (o.reportFusions) {
    const std::string text =
        fusionReport.empty() ? "fusions: nothing fused and nothing left unfused\n" : fusionReport;
    std::fwrite(text.data(), 1, text.size(), reportTo);
  }
  if (!o.saveWeights.empty()) {
    ir::WeightStore used = referencedWeights(m);
    KILN_TRY(
        ir::checkWeightBinding(m.graph, used, /*strict=*/false)
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
  app.add_flag("--print-changed", o->pm.printChanged,
               "print the IR only after passes that changed it");
  app.add_option("--dump-dir", o->pm.dumpDir, "write one numbered .kir per pass into this folder");
  app.add_flag("--time-passes", o->pm.timePasses, "print a table of pass timings (stderr)");
  app.add_flag("--verify-each", o->pm.verifyEach, "run the verifier after every pass");
  app.add_flag("--debug-locations", o->pm.debugLocations, "print source locations on every line");
  app.add_option("-o,--output", o->output, "write the result here (.kir or .kpb) instead of stdout");
  app.add_flag("--memory", o->memory,
               "print the memory plan of the final graph at --batch (default 1): buffer table "
               "and peak bytes (stderr; stdout when -o writes the IR to a file)");
  app.add_option(
      "--layout-of", o->layoutOf,
      "NODE:LAYOUT: select-layout gives the result printed as %NODE before it runs "
      "(e.g. %12, %layer1.0.conv1) the layout nchw, nhwc, nChw8c or nChw16c (repeatable)");
  app.add_flag("--report-fusions", o->reportFusions,
               "print what fold-bn and the fuse-* passes fused and what they left unfused, with "
               "the reason (stderr; stdout when -o writes the IR to a file)");
  app.add_option("--save-weights", o->saveWeights,
                 "write the weights the optimized graph uses (incl. folded tensors) to this .npz");
  return [o] { return runOpt(*o); };
}

}  // namespace kiln::tools
