// `kiln eval`: top-1 / top-5 of a model with given weights (.npz or a checkpoint) on the
// evaluation split of a data set.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <filesystem>

#include "runtime/checkpoint.h"
#include "runtime/npy.h"
#include "runtime/session.h"
#include "runtime/trainer.h"
#include "tools/commands.h"
#include "tools/train_data.h"

namespace kiln::tools {

namespace {

struct Options {
  SourceOptions source;
  DataArgs data;
  std::string weights;
  int64_t batch = 128;
  std::string backend = runtime::SessionOptions{}.backend;
  int threads = 0;
};

Status runEval(Options& o) {
  // Weights first: a wrong path fails before the data is read.
  ir::WeightStore store;
  if (std::filesystem::is_directory(o.weights)) {
    KILN_ASSIGN_OR_RETURN(runtime::Checkpoint c, runtime::loadCheckpoint(o.weights));
    if (c.state.model != o.source.source)
      return error("--weights {}: the checkpoint is of model '{}', not '{}'", o.weights,
                   c.state.model, o.source.source);
    store = std::move(c.weights);
  } else {
    KILN_ASSIGN_OR_RETURN(store, runtime::readNpz(o.weights));
  }
  KILN_ASSIGN_OR_RETURN(ModelData md, openModelData(o.source, o.data, o.batch, 0,
                                                    /*withTrain=*/false, /*augment=*/false));
  if (!md.eval) return error("the data has no evaluation split");
  for (const auto& [name, t] : store.entries()) md.model.weights.set(name, t);
  const bool registry = !isFileSource(o.source.source);
  KILN_TRY(ir::checkWeightBinding(md.model.graph, md.model.weights, /*strict=*/registry)
               .withContext(o.weights));
  KILN_ASSIGN_OR_RETURN(
      runtime::EvalResult r,
      runtime::evaluate(md.model, *md.eval, o.backend, runtime::resolveThreads(o.threads)));
  fmt::print("{} on {} {} ({} images): loss {:.4f}\n", o.source.source, md.options.source,
             md.evalName, r.samples, r.loss);
  fmt::print("{} top-1: {:.2f}% top-5: {:.2f}%\n", md.evalName, r.top1, r.top5);
  return Status::ok();
}

}  // namespace

Action registerEval(CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("source", o->source.source, "model name (see `kiln models`), .kir or .kpb file")
      ->required();
  app.add_option("--weights", o->weights, "weights: .npz, or a checkpoint folder (kiln train)")
      ->required();
  addDataOptions(app, o->data);
  app.add_option("--batch", o->batch, "batch size (default 128)")->check(CLI::PositiveNumber);
  addSessionOptions(app, o->backend, o->threads);
  return [o] { return runEval(*o); };
}

}  // namespace kiln::tools
