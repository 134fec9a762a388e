// The training driver behind `kiln train`: builds the train step of a forward module
// (passes::buildTrainStep), compiles it once (oneDNN or reference), feeds it batches from a
// DataLoader with the schedule's learning rate, evaluates every epoch, writes metrics and
// checkpoints, and resumes from a checkpoint bit-exactly.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/module.h"
#include "ir/status.h"
#include "passes/autodiff.h"
#include "runtime/data.h"
#include "runtime/schedule.h"

namespace kiln::runtime {

struct TrainerOptions {
  std::string model;  // recorded in checkpoints; a resumed one must match
  int64_t epochs = 1;
  int64_t batch = 128;  // the training loader's batch size (recorded, checked on resume)
  double lr = 0.1;
  ScheduleKind schedule = ScheduleKind::Cosine;
  double warmupEpochs = 0;              // linear warmup, converted to iterations
  double stepEpochs = 30;               // step: the decay period
  std::vector<double> milestoneEpochs;  // multistep
  double gamma = 0.1;                   // step / multistep decay factor
  passes::TrainStepOptions step;        // optimizer, momentum, weight decay, label smoothing, …
  int accumSteps = 1;                   // gradient accumulation (needs TrainStepOptions::Accum)
  std::string backend = "onednn";
  int threads = 0;
  uint64_t seed = 0;              // data order and dropout masks (the init is the caller's)
  int64_t maxSteps = 0;           // stop after this many steps in all (0: run every epoch)
  std::string checkpointDir;      // empty: no checkpoints
  int64_t checkpointEvery = 0;    // also every N steps (0: at epoch ends and at the end only)
  bool resume = false;            // continue from checkpointDir's latest checkpoint
  std::string metricsFile;        // JSON lines; empty: none
  std::string evalName = "test";  // how the evaluation split is named in output
  std::string dataDescription;    // for the first progress line
  double progressSeconds = 2.0;   // the least time between two progress lines
  /// Set (e.g. by a SIGINT handler) to stop: a checkpoint is written, then train() fails.
  const std::atomic<bool>* stop = nullptr;
  /// Receives the progress lines (no newline); unset: none.
  std::function<void(std::string_view)> onProgress;
};

/// Top-1 / top-5 accuracy (in %) and mean cross-entropy of a model on a data split.
struct EvalResult {
  double top1 = 0, top5 = 0, loss = 0;
  int64_t samples = 0;
};

struct TrainResult {
  int64_t steps = 0;  // steps taken in all (including a resumed run's earlier ones)
  int64_t stepsThisRun = 0;
  int64_t epochsDone = 0;  // complete epochs
  double seconds = 0;      // training time of this run (without compile and evaluation)
  double imagesPerSecond = 0;
  double lastLoss = 0;             // the mean loss of the last epoch's steps (so far)
  double trainTop1 = 0;            // and their top-1, in %
  std::optional<EvalResult> eval;  // the last evaluation (of the final weights)
  std::string checkpoint;          // the last checkpoint written
  ir::WeightStore weights;         // the final params and statistics (forward names)
};

/// Evaluates `forward` (weights bound) over one pass of `data`: the -O2 graph on `backend`.
Expected<EvalResult> evaluate(const ir::Module& forward, DataLoader& data,
                              const std::string& backend, int threads);

/// Trains `forward` (its weights are the initial ones; a resumed run replaces them) on
/// `train`, evaluating on `val` (may be null) after every epoch and at the end.
/// Fails with a message naming the step for a NaN/Inf loss (no checkpoint of that state is
/// written, the last good one is kept) and when `stop` was set (after checkpointing).
Expected<TrainResult> train(const ir::Module& forward, DataLoader& train, DataLoader* val,
                            const TrainerOptions& options);

/// The options as a JSON object (recorded in checkpoints and the metrics file).
std::string optionsJson(const TrainerOptions& o);

}  // namespace kiln::runtime
