// The subcommand table of the kiln CLI (each registered from its own tools/cmd_*.cpp).
#pragma once

#include <span>
#include <string_view>

#include "tools/common.h"

namespace kiln::tools {

struct Command {
  std::string_view name;
  std::string_view summary;
  Register registerOptions;
};

Action registerModels(CLI::App& app);
Action registerOps(CLI::App& app);
Action registerShow(CLI::App& app);
Action registerOpt(CLI::App& app);
Action registerRun(CLI::App& app);
Action registerPredict(CLI::App& app);
Action registerBench(CLI::App& app);
Action registerProfile(CLI::App& app);
Action registerTrain(CLI::App& app);
Action registerEval(CLI::App& app);

inline std::span<const Command> commands() {
  static constexpr Command kCommands[] = {
      {"models", "list the model zoo: parameters and MACs vs published figures", &registerModels},
      {"ops", "list the op table (--markdown for docs/ir.md)", &registerOps},
      {"show", "print a model or file as kiln IR (.kir)", &registerShow},
      {"opt", "run passes over a graph, with per-pass dumps", &registerOpt},
      {"run", "run a graph on inputs (oneDNN backend by default)", &registerRun},
      {"predict", "classify JPEG/PNG images: top-K classes with their names", &registerPredict},
      {"bench", "latency, throughput and memory, vs ONNX Runtime / PyTorch in the same run",
       &registerBench},
      {"profile", "per-node times of a compiled graph, sorted, with GFLOP/s", &registerProfile},
      {"train", "train a model on a data set: schedule, evaluation, checkpoints, --resume",
       &registerTrain},
      {"eval", "top-1 / top-5 of a model's weights (.npz or checkpoint) on a data set",
       &registerEval},
  };
  return kCommands;
}

}  // namespace kiln::tools
