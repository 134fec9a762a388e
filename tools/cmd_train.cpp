// `kiln train`: trains a model on a data set with the train-step graph (runtime/trainer.h):
// schedule, evaluation per epoch, metrics, checkpoints, --resume, SIGINT → checkpoint.
#include <fmt/format.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <optional>
#include <vector>

#include "runtime/session.h"
#include "runtime/trainer.h"
#include "tools/commands.h"
#include "tools/train_data.h"

namespace kiln::tools {

namespace {

std::atomic<bool> gStop{false};

void onSigint(int) {
  gStop.store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C kills
}

struct Options {
  SourceOptions source;
  DataArgs data;
  runtime::TrainerOptions trainer;
  std::string schedule = "cosine";
  std::string optimizer = "sgd";
  double ema = 0;
  std::optional<double> eps, rmsAlpha;
  std::vector<double> betas;
  bool noAugment = false;
};

Expected<passes::Optimizer> parseOptimizer(const std::string& s) {
  if (s == "sgd") return passes::Optimizer::Sgd;
  if (s == "rmsprop-tf") return passes::Optimizer::RmsPropTf;
  if (s == "rmsprop") return passes::Optimizer::RmsProp;
  if (s == "adamw") return passes::Optimizer::AdamW;
  return error("--optimizer {}: expected sgd, rmsprop-tf, rmsprop or adamw", s);
}

Status runTrain(Options& o) {
  runtime::TrainerOptions& t = o.trainer;
  auto kind = runtime::parseSchedule(o.schedule);
  if (!kind)
    return error("--schedule {}: expected constant, step, multistep or cosine", o.schedule);
  t.schedule = *kind;
  if (t.schedule == runtime::ScheduleKind::MultiStep && t.milestoneEpochs.empty())
    return error("--schedule multistep needs --milestones (epochs, e.g. 30,60,80)");
  KILN_ASSIGN_OR_RETURN(t.step.optimizer, parseOptimizer(o.optimizer));
  // Each optimizer's own defaults: timm's RMSpropTF (alpha 0.9, eps 1e-3), torch's RMSprop
  // (0.99, 1e-8) and AdamW (eps 1e-8, betas 0.9, 0.999).
  const bool tf = t.step.optimizer == passes::Optimizer::RmsPropTf;
  t.step.eps = o.eps.value_or(tf ? 1e-3 : 1e-8);
  t.step.rmsAlpha = o.rmsAlpha.value_or(tf ? 0.9 : 0.99);
  if (!o.betas.empty()) {
    if (o.betas.size() != 2 || o.betas[0] >= 1 || o.betas[1] >= 1)
      return error("--betas: expected two values in [0, 1), e.g. 0.9,0.999");
    t.step.beta1 = o.betas[0];
    t.step.beta2 = o.betas[1];
  }
  t.step.emaDecay = o.ema;
  if (t.step.nesterov && t.step.momentum == 0) return error("--nesterov needs a momentum > 0");
  if (t.resume && t.checkpointDir.empty()) return error("--resume needs --checkpoint-dir");
  t.model = o.source.source;
  t.seed = o.source.seed;
  t.threads = runtime::resolveThreads(t.threads);
  o.source.randomWeights = true;  // torch's default init for what --weights does not give

  KILN_ASSIGN_OR_RETURN(ModelData md, openModelData(o.source, o.data, t.batch, t.seed,
                                                    /*withTrain=*/true, !o.noAugment));
  t.evalName = md.evalName.empty() ? "test" : md.evalName;
  t.dataDescription = fmt::format("{}: {} images, {} classes", md.options.source,
                                  md.train->numSamples(), md.train->numClasses());
  t.stop = &gStop;
  t.onProgress = [](std::string_view line) { fmt::print(stderr, "{}\n", line); };
  gStop.store(false);
  struct sigaction sa {};
  sa.sa_handler = onSigint;
  sigemptyset(&sa.sa_mask);
  struct sigaction old {};
  ::sigaction(SIGINT, &sa, &old);
  Expected<runtime::TrainResult> r = runtime::train(md.model, *md.train, md.eval.get(), t);
  ::sigaction(SIGINT, &old, nullptr);
  KILN_TRY(r.status());
  fmt::print(
      "trained {} for {} step(s) ({} this run, {} epoch(s) complete) in {:.1f} s of steps, "
      "{:.0f} img/s\n",
      o.source.source, r->steps, r->stepsThisRun, r->epochsDone, r->seconds, r->imagesPerSecond);
  fmt::print("last epoch: train loss {:.4f}, train top-1 {:.2f}%\n", r->lastLoss, r->trainTop1);
  if (!r->checkpoint.empty()) fmt::print("checkpoint: {}\n", r->checkpoint);
  if (r->eval)
    fmt::print("{} top-1: {:.2f}% top-5: {:.2f}%\n", t.evalName, r->eval->top1, r->eval->top5);
  return Status::ok();
}

}  // namespace

Action registerTrain(CLI::App& app) {
  auto o = std::make_shared<Options>();
  runtime::TrainerOptions& t = o->trainer;
  t.step.momentum = 0.9;
  t.step.weightDecay = 5e-4;
  app.add_option("source", o->source.source, "model name (see `kiln models`), .kir or .kpb file")
      ->required();
  addDataOptions(app, o->data);
  app.add_option("--epochs", t.epochs, "epochs (default 1)")->check(CLI::PositiveNumber);
  app.add_option("--batch", t.batch, "batch size (default 128)")->check(CLI::PositiveNumber);
  app.add_option("--lr", t.lr, "base learning rate (default 0.1)")->check(CLI::PositiveNumber);
  app.add_option("--schedule", o->schedule,
                 "learning-rate schedule, per iteration: cosine (default), step, multistep, "
                 "constant");
  app.add_option("--warmup", t.warmupEpochs, "linear warmup epochs (default 0)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--step-epochs", t.stepEpochs,
                 "--schedule step: decay every N epochs (default 30)")
      ->check(CLI::PositiveNumber);
  app.add_option("--milestones", t.milestoneEpochs,
                 "--schedule multistep: the epochs at which the lr decays (comma-separated)")
      ->delimiter(',')
      ->check(CLI::NonNegativeNumber);
  app.add_option("--gamma", t.gamma, "step/multistep decay factor (default 0.1)")
      ->check(CLI::PositiveNumber);
  app.add_option("--wd", t.step.weightDecay, "weight decay (default 5e-4)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--momentum", t.step.momentum, "momentum (default 0.9)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_flag("--nesterov", t.step.nesterov, "Nesterov momentum");
  app.add_option("--label-smoothing", t.step.labelSmoothing, "cross-entropy label smoothing")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--optimizer", o->optimizer, "sgd (default), rmsprop-tf, rmsprop or adamw");
  app.add_option("--clip-grad-norm", t.step.clipGradNorm, "clip the gradient norm (0: off)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--eps", o->eps,
                 "rmsprop-tf / rmsprop / adamw epsilon (default 1e-3 for rmsprop-tf, else 1e-8)")
      ->check(CLI::PositiveNumber);
  app.add_option("--rms-alpha", o->rmsAlpha,
                 "RMSProp smoothing constant (default 0.9 for rmsprop-tf, 0.99 for rmsprop)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--betas", o->betas, "AdamW beta1,beta2 (default 0.9,0.999)")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--ema", o->ema, "keep an EMA of the weights with this decay (0: off)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--accum", t.accumSteps, "accumulate gradients over K batches (default 1)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--no-augment", o->noAugment,
               "no RandomResizedCrop/flip for image folders (IDX data has none anyway)");
  app.add_option("--weights", o->source.weights, "initial weights .npz (default: torch's init)");
  app.add_option("--checkpoint-dir", t.checkpointDir,
                 "write checkpoints here (each epoch, --checkpoint-every, the end, SIGINT)");
  app.add_flag("--resume", t.resume, "continue from the latest checkpoint of --checkpoint-dir");
  app.add_option("--checkpoint-every", t.checkpointEvery, "also checkpoint every N steps")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--metrics-file", t.metricsFile, "write metrics as JSON lines here");
  addSessionOptions(app, t.backend, t.threads);
  app.add_option("--seed", o->source.seed, "seed of the init, the data order and dropout");
  app.add_option("--max-steps", t.maxSteps, "stop after N steps in all (default: all epochs)")
      ->check(CLI::PositiveNumber);
  return [o] { return runTrain(*o); };
}

}  // namespace kiln::tools
