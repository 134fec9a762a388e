// The training loop: train step session, schedule, evaluation, metrics, checkpoints, resume.
#include "runtime/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "runtime/checkpoint.h"
#include "runtime/session.h"

namespace kiln::runtime {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// SplitMix64: the per-step seed of dropout / drop_path masks from (seed, step).
int64_t stepSeed(uint64_t seed, int64_t step) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(step + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return static_cast<int64_t>((z ^ (z >> 31)) >> 1);
}

std::string formatDuration(double s) {
  const auto t = static_cast<int64_t>(std::max(0.0, s) + 0.5);
  if (t >= 3600) return fmt::format("{}:{:02d}:{:02d}", t / 3600, t / 60 % 60, t % 60);
  return fmt::format("{}:{:02d}", t / 60, t % 60);
}

/// A JSON-lines file, flushed per line.
class MetricsFile {
 public:
  ~MetricsFile() {
    if (f_) std::fclose(f_);
  }
  Status open(const std::string& path, bool append) {
    if (path.empty()) return Status::ok();
    f_ = std::fopen(path.c_str(), append ? "a" : "w");
    if (!f_) return error("metrics file '{}': cannot open: {}", path, std::strerror(errno));
    return Status::ok();
  }
  void write(const json& j) {
    if (!f_) return;
    const std::string line = j.dump() + "\n";
    std::fwrite(line.data(), 1, line.size(), f_);
    std::fflush(f_);
  }

 private:
  std::FILE* f_ = nullptr;
};

json evalJson(const EvalResult& e) {
  return {{"top1", e.top1}, {"top5", e.top5}, {"loss", e.loss}, {"samples", e.samples}};
}

/// The forward weights as the session holds them now (the train step updates them in place).
ir::WeightStore currentWeights(const Session& s, const ir::Module& forward) {
  ir::WeightStore out;
  const ir::WeightStore& live = s.module().weights;
  for (const ir::Value* w : forward.graph.weights()) {
    if (const ir::Tensor* t = live.find(w->name())) {
      out.set(w->name(), t->clone());
    } else if (const ir::Tensor* f = forward.weights.find(w->name())) {
      out.set(w->name(), f->clone());
    }
  }
  return out;
}

}  // namespace

std::string optionsJson(const TrainerOptions& o) {
  const passes::TrainStepOptions& t = o.step;
  json j = {{"model", o.model},
            {"epochs", o.epochs},
            {"batch", o.batch},
            {"lr", o.lr},
            {"schedule", std::string(scheduleName(o.schedule))},
            {"warmup_epochs", o.warmupEpochs},
            {"step_epochs", o.stepEpochs},
            {"milestone_epochs", o.milestoneEpochs},
            {"gamma", o.gamma},
            {"optimizer", static_cast<int>(t.optimizer)},
            {"momentum", t.momentum},
            {"nesterov", t.nesterov},
            {"weight_decay", t.weightDecay},
            {"label_smoothing", t.labelSmoothing},
            {"clip_grad_norm", t.clipGradNorm},
            {"ema_decay", t.emaDecay},
            {"accum_steps", o.accumSteps},
            {"backend", o.backend},
            {"threads", o.threads},
            {"seed", o.seed},
            {"max_steps", o.maxSteps}};
  return j.dump();
}

Expected<EvalResult> evaluate(const ir::Module& forward, DataLoader& data,
                              const std::string& backend, int threads) {
  const ir::Graph& g = forward.graph;
  if (g.inputs().size() != 1 || g.outputs().size() != 1 || g.outputs()[0]->type().shape.rank() != 2)
    return error("evaluation needs a model with one image input and one [N, classes] output");
  std::unique_ptr<Session> session;
  EvalResult r;
  double lossSum = 0;
  int64_t top1 = 0, top5 = 0;
  data.startEpoch(0);
  while (true) {
    KILN_ASSIGN_OR_RETURN(std::optional<Batch> b, data.next());
    if (!b) break;
    if (!session) {
      SessionOptions so;
      so.backend = backend;
      so.threads = threads;
      so.batch = b->size;
      KILN_ASSIGN_OR_RETURN(session, Session::create(forward.clone(), so));
    }
    const ir::Tensor images = b->images;
    KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> out, session->run(std::span(&images, 1)));
    const ir::Tensor& logits = out.at(0);
    if (logits.shape().rank() != 2 || logits.shape()[0] != b->size)
      return error("evaluation: the model returned {} for a batch of {}", logits.shape().str(),
                   b->size);
    const int64_t k = logits.shape()[1];
    const int64_t* labels = b->labels.data<int64_t>();
    for (int64_t i = 0; i < b->size; ++i) {
      const int64_t y = labels[i];
      if (y < 0 || y >= k)
        return error("evaluation: label {} is outside the model's {} classes", y, k);
      const double ly = logits.at(i * k + y);
      // torch.topk order: larger first, ties by lower index.
      int64_t rank = 0;
      double mx = -INFINITY;
      for (int64_t j = 0; j < k; ++j) {
        const double v = logits.at(i * k + j);
        mx = std::max(mx, v);
        if (v > ly || (v == ly && j < y)) ++rank;
      }
      double sum = 0;
      for (int64_t j = 0; j < k; ++j) sum += std::exp(logits.at(i * k + j) - mx);
      lossSum += mx + std::log(sum) - ly;
      top1 += rank < 1;
      top5 += rank < 5;
    }
    r.samples += b->size;
  }
  if (r.samples == 0) return error("evaluation: the data set has no samples");
  const double n = static_cast<double>(r.samples);
  r.top1 = 100.0 * static_cast<double>(top1) / n;
  r.top5 = 100.0 * static_cast<double>(top5) / n;
  r.loss = lossSum / n;
  return r;
}

Expected<TrainResult> train(const ir::Module& forward, DataLoader& data, DataLoader* val,
                            const TrainerOptions& o) {
  const int64_t bpe = data.batchesPerEpoch();
  if (bpe <= 0) return error("the training data has no batches");
  if (o.epochs < 1) return error("the number of epochs must be at least 1, got {}", o.epochs);
  if (o.accumSteps < 1) return error("--accum must be at least 1, got {}", o.accumSteps);
  // One step = one update = K batches; an epoch's last bpe % K batches are left out.
  const int K = o.accumSteps;
  const int64_t spe = bpe / K;
  if (spe == 0)
    return error("--accum {} needs at least {} batches per epoch, the data has {}", K, K, bpe);
  auto epochOver = [&](const DataLoader::Position& p) { return bpe - p.batch < K; };
  if (o.resume && o.checkpointDir.empty()) return error("--resume needs --checkpoint-dir");

  ScheduleOptions sched;
  sched.kind = o.schedule;
  sched.baseLr = o.lr;
  sched.total = o.epochs * spe;
  sched.warmup = std::llround(o.warmupEpochs * static_cast<double>(spe));
  sched.stepSize = std::max<int64_t>(1, std::llround(o.stepEpochs * static_cast<double>(spe)));
  for (double m : o.milestoneEpochs)
    sched.milestones.push_back(std::llround(m * static_cast<double>(spe)));
  std::sort(sched.milestones.begin(), sched.milestones.end());
  if (sched.warmup >= sched.total && sched.warmup > 0)
    return error("--warmup {} epochs is not shorter than the run ({} epochs)", o.warmupEpochs,
                 o.epochs);

  ir::Module fwd = forward.clone();
  CheckpointState state;
  state.model = o.model;
  state.seed = o.seed;
  state.optionsJson = optionsJson(o);
  std::optional<Checkpoint> resumed;
  if (o.resume) {
    KILN_ASSIGN_OR_RETURN(Checkpoint c, loadCheckpoint(o.checkpointDir));
    if (c.state.model != o.model)
      return error("checkpoint {} is of model '{}', not '{}'", c.dir, c.state.model, o.model);
    const json opts = json::parse(c.state.optionsJson, nullptr, false);
    if (opts.is_object() && opts.contains("batch") && opts["batch"] != o.batch)
      return error("checkpoint {} was trained with batch {}, not {}: the data order would differ",
                   c.dir, opts["batch"].dump(), o.batch);
    if (c.state.seed != o.seed)
      return error("checkpoint {} was trained with seed {}, not {}", c.dir, c.state.seed, o.seed);
    if (c.state.dataBatch > bpe)
      return error("checkpoint {}: data position batch {} is past the epoch's {} batches", c.dir,
                   c.state.dataBatch, bpe);
    KILN_TRY(ir::checkWeightBinding(fwd.graph, c.weights, /*strict=*/true)
                 .withContext(c.dir + "/weights.npz"));
    for (const auto& [name, t] : c.weights.entries()) fwd.weights.set(name, t);
    state.step = c.state.step;
    state.epoch = c.state.epoch;
    state.dataEpoch = c.state.dataEpoch;
    state.dataBatch = c.state.dataBatch;
    state.scheduleStep = c.state.scheduleStep;
    state.metricsJson = c.state.metricsJson;
    resumed = std::move(c);
  }

  passes::TrainStepOptions stepOptions = o.step;
  if (K > 1) {
    stepOptions.accum = passes::TrainStepOptions::Accum::Apply;
    stepOptions.accumSteps = K;
  }
  KILN_ASSIGN_OR_RETURN(ir::Module stepModule, passes::buildTrainStep(fwd, stepOptions));
  std::set<std::string> forwardNames;
  for (const ir::Value* w : fwd.graph.weights()) forwardNames.insert(w->name());
  std::vector<std::string> optimizerNames;
  for (const ir::Value* w : stepModule.graph.weights())
    if (!forwardNames.count(w->name())) optimizerNames.push_back(w->name());
  if (resumed) {
    for (const auto& [name, t] : resumed->optimizer.entries()) stepModule.weights.set(name, t);
    KILN_TRY(ir::checkWeightBinding(stepModule.graph, stepModule.weights, /*strict=*/true)
                 .withContext(resumed->dir + "/optimizer.npz"));
  }

  // Input slots of the train step.
  int imageSlot = -1, labelSlot = -1, lrSlot = -1, seedSlot = -1;
  const auto& inputs = stepModule.graph.inputs();
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string& n = inputs[i]->name();
    int& slot = n == "labels" ? labelSlot : n == "lr" ? lrSlot : n == "seed" ? seedSlot : imageSlot;
    if (slot >= 0) return error("the model must have one image input, it has more");
    slot = static_cast<int>(i);
  }
  if (imageSlot < 0 || labelSlot < 0 || lrSlot < 0)
    return error("the train step lacks an image, labels or lr input");
  const ir::TensorType lrType = inputs[static_cast<size_t>(lrSlot)]->type();
  const size_t numInputs = inputs.size();  // (the module moves into the session)

  SessionOptions so;
  so.backend = o.backend;
  so.threads = o.threads;
  so.batch = o.batch;
  // --accum K: an Accumulate step (gradients into `<param>.grad_acc`, no update) runs on the
  // first K - 1 batches of a step and the Apply step on the last. Each binds the Apply step's
  // store (a superset of its own); after each run its state goes to the other session.
  std::unique_ptr<Session> accumulate;
  if (K > 1) {
    passes::TrainStepOptions a = stepOptions;
    a.accum = passes::TrainStepOptions::Accum::Accumulate;
    KILN_ASSIGN_OR_RETURN(ir::Module accModule, passes::buildTrainStep(fwd, a));
    for (const ir::Value* w : accModule.graph.weights())
      if (const ir::Tensor* t = stepModule.weights.find(w->name())) accModule.weights.set(w->name(), *t);
    if (accModule.graph.inputs().size() != numInputs)
      return error("the Accumulate and Apply steps take different inputs");
    for (size_t i = 0; i < numInputs; ++i)
      if (accModule.graph.inputs()[i]->name() != inputs[i]->name())
        return error("the Accumulate and Apply steps take different inputs");
    KILN_ASSIGN_OR_RETURN(accumulate, Session::create(std::move(accModule), so));
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> session,
                        Session::create(std::move(stepModule), so));
  // The state a run of `from` writes that `to` reads.
  auto shared = [](const Session& from, const Session& to) {
    std::vector<std::string> names;
    for (const ir::Value* out : from.module().graph.outputs()) {
      if (!out->name().starts_with(passes::kNewPrefix)) continue;
      std::string name = out->name().substr(passes::kNewPrefix.size());
      if (to.module().weights.find(name)) names.push_back(std::move(name));
    }
    return names;
  };
  std::vector<std::string> toApply, toAccumulate;
  if (accumulate) {
    toApply = shared(*accumulate, *session);
    toAccumulate = shared(*session, *accumulate);
  }
  auto sync = [](const Session& from, const Session& to, const std::vector<std::string>& names) {
    ir::WeightStore values;
    for (const std::string& n : names) values.set(n, *from.module().weights.find(n));
    return to.setWeights(values);
  };

  MetricsFile metrics;
  KILN_TRY(metrics.open(o.metricsFile, /*append=*/o.resume));

  TrainResult result;
  std::string lastCheckpoint = resumed ? resumed->dir : std::string();
  auto checkpoint = [&](int64_t step, int64_t epochsDone, DataLoader::Position next,
                        const std::optional<EvalResult>& ev) -> Status {
    if (o.checkpointDir.empty()) return Status::ok();
    if (epochOver(next)) next = {next.epoch + 1, 0};
    state.step = step;
    state.epoch = epochsDone;
    state.dataEpoch = next.epoch;
    state.dataBatch = next.batch;
    state.scheduleStep = step;
    if (ev) state.metricsJson = json{{o.evalName, evalJson(*ev)}}.dump();
    ir::WeightStore opt;
    const ir::WeightStore& live = session->module().weights;
    for (const std::string& n : optimizerNames)
      if (const ir::Tensor* t = live.find(n)) opt.set(n, *t);
    KILN_ASSIGN_OR_RETURN(
        lastCheckpoint, saveCheckpoint(o.checkpointDir, currentWeights(*session, fwd), opt, state));
    metrics.write({{"event", "checkpoint"}, {"step", step}, {"path", lastCheckpoint}});
    return Status::ok();
  };
  auto runEval = [&](int64_t step, int64_t epoch) -> Expected<EvalResult> {
    ir::Module m = fwd.clone();
    const ir::WeightStore now = currentWeights(*session, fwd);
    for (const auto& [name, t] : now.entries()) m.weights.set(name, t);
    const auto t0 = Clock::now();
    KILN_ASSIGN_OR_RETURN(EvalResult ev, evaluate(m, *val, o.backend, o.threads));
    json j = evalJson(ev);
    j["seconds"] = secondsSince(t0);
    j["event"] = "eval";
    j["split"] = o.evalName;
    j["step"] = step;
    j["epoch"] = epoch;
    metrics.write(j);
    if (o.onProgress)
      o.onProgress(fmt::format("epoch {} {} top-1: {:.2f}% top-5: {:.2f}% loss {:.4f}", epoch,
                               o.evalName, ev.top1, ev.top5, ev.loss));
    return ev;
  };

  int64_t step = state.step;
  const int64_t total = o.epochs * spe;
  const int64_t limit = o.maxSteps > 0 ? std::min(o.maxSteps, total) : total;
  DataLoader::Position pos{state.dataEpoch, state.dataBatch};
  if (resumed) {
    KILN_TRY(data.seek(pos));
  }
  int64_t epochsDone = state.epoch;
  std::optional<EvalResult> lastEval;
  int64_t lastEvalStep = -1;
  const int64_t startStep = step;
  double trainSeconds = 0;
  int64_t images = 0;
  auto lastProgress = Clock::now() - std::chrono::hours(1);
  if (resumed)
    metrics.write({{"event", "resume"}, {"step", step}, {"checkpoint", resumed->dir}});
  else
    metrics.write({{"event", "start"}, {"options", json::parse(state.optionsJson)}});
  metrics.write({{"event", "compiled"}, {"ms", session->stats().compileMs}});

  if (o.onProgress)
    o.onProgress(fmt::format(
        "training {} on {}, batch {}, {} batches per epoch, {} epoch(s){}; {} backend, {} "
        "threads",
        o.model, o.dataDescription, o.batch, bpe, o.epochs,
        resumed ? fmt::format(", resuming from {} (step {})", resumed->dir, step) : "", o.backend,
        o.threads));
  std::vector<ir::Tensor> in(numInputs);
  ir::Tensor lrTensor = ir::Tensor::zeros(lrType);
  ir::Tensor seedTensor(ir::DType::I64, ir::Shape{});
  for (int64_t epoch = pos.epoch; epoch < o.epochs && step < limit; ++epoch) {
    if (!(resumed && epoch == pos.epoch)) data.startEpoch(epoch);
    double lossSum = 0;
    int64_t correct = 0, seen = 0;
    bool epochEnded = false;
    while (step < limit) {
      // (after an epoch's last batch the epoch end comes first: its evaluation and checkpoint)
      if (o.stop && o.stop->load() && !epochOver(data.position())) {
        KILN_TRY(checkpoint(step, epochsDone, data.position(), lastEval));
        if (o.checkpointDir.empty())
          return error("interrupted at step {} (epoch {}); nothing saved (no --checkpoint-dir)",
                       step, epoch + 1);
        return error(
            "interrupted at step {} (epoch {}); checkpoint written to {} (continue with "
            "--resume)",
            step, epoch + 1, lastCheckpoint);
      }
      if (epochOver(data.position())) {  // (the bpe % K batches left are not trained on)
        epochEnded = true;
        break;
      }
      const auto t0 = Clock::now();
      const double lr = learningRate(sched, step);
      if (lrTensor.dtype() == ir::DType::F64) {
        lrTensor.data<double>()[0] = lr;
      } else {
        lrTensor.data<float>()[0] = static_cast<float>(lr);
      }
      double loss = 0;  // the step's: the size-weighted mean over its K batches
      int64_t c = 0, size = 0;
      for (int m = 0; m < K; ++m) {
        const int64_t batchIndex = data.position().batch;
        KILN_ASSIGN_OR_RETURN(std::optional<Batch> b, data.next());
        if (!b) return error("the data ended inside a step (batch {} of {})", batchIndex + 1, bpe);
        seedTensor.data<int64_t>()[0] = stepSeed(o.seed, step * K + m);
        in[static_cast<size_t>(imageSlot)] = b->images;
        in[static_cast<size_t>(labelSlot)] = b->labels;
        in[static_cast<size_t>(lrSlot)] = lrTensor;
        if (seedSlot >= 0) in[static_cast<size_t>(seedSlot)] = seedTensor;
        const bool apply = m == K - 1;
        const Session& run = apply ? *session : *accumulate;
        KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> out, run.step(in));
        if (accumulate) KILN_TRY(sync(run, apply ? *accumulate : *session, apply ? toAccumulate : toApply));
        const double microLoss = out.at(0).at(0);
        if (!std::isfinite(microLoss)) {
          metrics.write({{"event", "diverged"}, {"step", step + 1}, {"loss", json()}});
          return error(
              "loss is {} at step {} (epoch {}, batch {}, lr {:.6g}): training diverged; stopped "
              "without saving this state{}",
              std::isnan(microLoss) ? "NaN" : "Inf", step + 1, epoch + 1, batchIndex + 1, lr,
              lastCheckpoint.empty() ? std::string()
                                     : "; the last good checkpoint " + lastCheckpoint + " is kept");
        }
        loss += microLoss * static_cast<double>(b->size);
        size += b->size;
        c += out.size() > 1 && out[1].dtype() == ir::DType::I64 ? out[1].data<int64_t>()[0] : 0;
      }
      loss /= static_cast<double>(size);
      trainSeconds += secondsSince(t0);
      ++step;
      images += size;
      lossSum += loss * static_cast<double>(size);
      seen += size;
      correct += c;
      metrics.write({{"event", "step"},
                     {"step", step},
                     {"epoch", epoch + 1},
                     {"lr", lr},
                     {"loss", loss},
                     {"top1", 100.0 * static_cast<double>(c) / static_cast<double>(size)}});
      const bool lastOfEpoch = epochOver(data.position());
      if (o.onProgress &&
          (secondsSince(lastProgress) >= o.progressSeconds || lastOfEpoch || step == limit)) {
        lastProgress = Clock::now();
        const double perStep = trainSeconds / static_cast<double>(step - startStep);
        o.onProgress(fmt::format(
            "epoch {}/{} step {}/{} loss {:.4f} top-1 {:.2f}% lr {:.4g} {:.0f} img/s ETA {}",
            epoch + 1, o.epochs, step, limit, lossSum / static_cast<double>(seen),
            100.0 * static_cast<double>(correct) / static_cast<double>(seen), lr,
            static_cast<double>(images) / trainSeconds,
            formatDuration(perStep * static_cast<double>(limit - step))));
      }
      if (o.checkpointEvery > 0 && step % o.checkpointEvery == 0 && !lastOfEpoch && step < limit)
        KILN_TRY(checkpoint(step, epochsDone, data.position(), lastEval));
    }
    if (seen > 0) {
      result.lastLoss = lossSum / static_cast<double>(seen);
      result.trainTop1 = 100.0 * static_cast<double>(correct) / static_cast<double>(seen);
    }
    epochEnded = epochEnded || epochOver(data.position());
    if (epochEnded) {
      epochsDone = epoch + 1;
      metrics.write({{"event", "epoch"},
                     {"epoch", epochsDone},
                     {"step", step},
                     {"loss", result.lastLoss},
                     {"top1", result.trainTop1}});
      if (val) {
        KILN_ASSIGN_OR_RETURN(lastEval, runEval(step, epochsDone));
        lastEvalStep = step;
      }
      KILN_TRY(checkpoint(step, epochsDone, {epoch + 1, 0}, lastEval));
    }
  }
  if (val && lastEvalStep != step) {
    KILN_ASSIGN_OR_RETURN(lastEval, runEval(step, epochsDone));
    lastEvalStep = step;
  }
  if (lastCheckpoint.empty() || state.step != step)
    KILN_TRY(checkpoint(step, epochsDone, data.position(), lastEval));

  result.steps = step;
  result.stepsThisRun = step - startStep;
  result.epochsDone = epochsDone;
  result.seconds = trainSeconds;
  result.imagesPerSecond = trainSeconds > 0 ? static_cast<double>(images) / trainSeconds : 0;
  result.eval = lastEval;
  result.checkpoint = lastCheckpoint;
  result.weights = currentWeights(*session, fwd);
  metrics.write({{"event", "end"},
                 {"step", step},
                 {"epochs", epochsDone},
                 {"seconds", trainSeconds},
                 {"images_per_second", result.imagesPerSecond}});
  return result;
}

}  // namespace kiln::runtime
