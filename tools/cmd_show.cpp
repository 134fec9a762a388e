// `kiln show`: lower a registry model (or read a file) and print its IR; `--train` prints
// the train step instead (passes/autodiff.h).
#include <CLI/CLI.hpp>

#include "ir/printer.h"
#include "passes/autodiff.h"
#include "tools/commands.h"

namespace kiln::tools {

namespace {
struct Options {
  SourceOptions source;
  std::string output = "-";
  bool debugLocations = false;
  bool train = false;
  passes::TrainStepOptions step;
};
}  // namespace

Action registerShow(CLI::App& app) {
  auto o = std::make_shared<Options>();
  addSourceOptions(app, o->source, /*withWeights=*/true);
  app.add_option("-o,--output", o->output,
                 "write .kir (or .kpb with weights) here instead of stdout");
  app.add_flag("--debug-locations", o->debugLocations,
               "append loc(\"file\":line:col) to every line");
  app.add_flag("--train", o->train,
               "print the train step: training-mode forward, loss, backward and SGD update");
  app.add_option("--label-smoothing", o->step.labelSmoothing,
                 "with --train: cross-entropy label smoothing")
      ->check(CLI::Range(0.0, 1.0));
  app.add_flag("--soft-targets", o->step.softTargets,
               "with --train: labels are [N, classes] probabilities (mixup/cutmix), not class ids");
  app.add_option("--momentum", o->step.momentum, "with --train: SGD momentum (0: no buffers)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--weight-decay", o->step.weightDecay, "with --train: SGD weight decay")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--nesterov", o->step.nesterov, "with --train: Nesterov momentum");
  app.add_flag("--no-bias-decay", o->step.noDecayOnBnAndBias,
               "with --train: no weight decay on rank-1 params (BN weights, biases)");
  return [o]() -> Status {
    KILN_ASSIGN_OR_RETURN(ir::Module m, loadSource(o->source));
    if (o->train) {
      KILN_ASSIGN_OR_RETURN(m, passes::buildTrainStep(m, o->step));
    }
    return writeModule(o->output, m, o->debugLocations);
  };
}

}  // namespace kiln::tools
