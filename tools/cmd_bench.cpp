// `kiln bench`: latency of a model through runtime::Session, and — with --compare — of the same
// model and weights in ONNX Runtime and PyTorch, measured in the same invocation and
// interleaved round by round (the machine is shared and noisy: only same-run ratios mean much).
#include <dnnl.h>
#include <omp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "models/registry.h"
#include "passes/autodiff.h"
#include "runtime/npy.h"
#include "runtime/session.h"
#include "tools/bench_report.h"
#include "tools/commands.h"
#include "tools/peers.h"

namespace kiln::tools {

namespace {

namespace fs = std::filesystem;

/// Peers agree with kiln when max|Δ| <= kAgreeRel · max(1, max|y|), the bound the PyTorch
/// alignment tests hold whole models to: float32 results of differently ordered sums differ
/// less; a wrong weight binding or op differs far more.
constexpr double kAgreeRel = 1e-4;
constexpr int64_t kSgemmN = 2048;
constexpr int kSgemmReps = 5;

struct Options {
  SourceOptions source;
  int threads = 0;
  int iters = 10;
  int rounds = 5;
  int warmup = 3;
  std::string backend = runtime::SessionOptions{}.backend;
  std::string compare;
  bool json = false;
  bool sgemm = false;
  std::string cacheDir;
  std::string peersDir;
  bool train = false;
};

// --train: the train step of passes::buildTrainStep against PyTorch eager training.
constexpr double kTrainLr = 0.01, kTrainMomentum = 0.9, kTrainWeightDecay = 1e-4;

std::string defaultCacheDir() {
  if (const char* d = std::getenv("KILN_BENCH_CACHE"); d && *d) return d;
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d)
    return (fs::path(d) / "kiln" / "bench").string();
  if (const char* d = std::getenv("HOME"); d && *d)
    return (fs::path(d) / ".cache" / "kiln" / "bench").string();
  return (fs::temp_directory_path() / "kiln-bench-cache").string();
}

/// FNV-1a over every weight's name, type and bytes: the cache key of the exported peer models.
uint64_t weightsHash(const ir::WeightStore& store) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  for (const auto& [name, t] : store.entries()) {
    mix(name.data(), name.size());
    const std::string type = t.type().str();
    mix(type.data(), type.size());
    mix(t.raw(), t.nbytes());
  }
  return h;
}

/// Benchmark weights: kiln's seeded init (ir::initMissingWeights, torch's defaults) with every
/// conv weight redrawn He-normal with fan_in (N(0, 2 / fan_in)) and random batch-norm
/// statistics and affine parameters (as tests/align's torch2npz.randomize_batchnorm draws
/// them). torch's default init with identity BN shrinks the activations layer by layer: the
/// logits of depthwise nets (mobilenet_v2, efficientnet) become the classifier bias alone, so
/// the agreement check would compare nothing, and deep activations turn denormal, which times
/// differently from real inference. Variance-preserving weights avoid both.
void initBenchWeights(const ir::Graph& g, ir::WeightStore& store, uint64_t seed) {
  ir::initMissingWeights(g, store, seed);
  std::mt19937_64 rng(seed + 1);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (const ir::Value* w : g.weights()) {
    const ir::Tensor* old = store.find(w->name());
    if (!old || old->dtype() != ir::DType::F32) continue;
    for (const ir::Node* n : g.users(w)) {
      size_t i = 0;
      while (i < n->numOperands() && n->operand(i) != w) ++i;
      std::function<double()> draw;
      if (n->kind() == ir::OpKind::Conv2d && i == 1) {
        const ir::Shape& ws = w->type().shape;
        const double std =
            std::sqrt(2.0 / static_cast<double>(std::max<int64_t>(1, ws[1] * ws[2] * ws[3])));
        draw = [&, std] { return std * normal(rng); };
      } else if (n->kind() == ir::OpKind::BatchNorm && i >= 1 && i <= 4) {
        // operands: x, gamma, beta, mean, var
        if (i == 1) draw = [&] { return 0.5 + unit(rng); };
        if (i == 2 || i == 3) draw = [&] { return 0.2 * normal(rng); };
        if (i == 4) draw = [&] { return 0.5 + 1.5 * unit(rng); };
      }
      if (draw) {
        ir::Tensor t = ir::Tensor::zeros(w->type());
        for (float& v : t.span<float>()) v = static_cast<float>(draw());
        store.set(w->name(), std::move(t));
      }
      break;  // the first use decides, as in initMissingWeights
    }
  }
}

/// Deletes a directory tree when it goes out of scope.
struct ScopedDir {
  fs::path path;
  ~ScopedDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

/// model.onnx and model.pt for `module` (a registry model with its weights) under the cache,
/// exported once per model / batch / resolution / weights by bench/peers/export.py.
Expected<fs::path> exportPeerModels(const Options& o, const PeerEnv& env, const ir::Module& m,
                                    const ir::Shape& in, int64_t numClasses) {
  const fs::path dir =
      fs::path(o.cacheDir) / fmt::format("{}_b{}_c{}_r{}_k{}_{:016x}", o.source.source, in[0],
                                         in[1], in[2], numClasses, weightsHash(m.weights));
  if (fs::exists(dir / "model.onnx") && fs::exists(dir / "model.pt")) return dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return error("cannot create the bench cache {}: {}", dir.string(), ec.message());
  const fs::path weights = dir / fmt::format("weights_{}.npz", ::getpid());
  KILN_TRY(runtime::writeNpz(weights.string(), m.weights));
  fmt::print(stderr, "exporting {} for the peers into {} (once)\n", o.source.source, dir.string());
  Expected<std::string> out = runToCompletion(
      {env.python, (fs::path(env.peersDir) / "export.py").string(), "--model", o.source.source,
       "--weights", weights.string(), "--batch", std::to_string(in[0]), "--resolution",
       std::to_string(in[2]), "--in-channels", std::to_string(in[1]), "--num-classes",
       std::to_string(numClasses), "--out", dir.string()},
      {});
  fs::remove(weights, ec);
  if (!out.isOk()) return error("exporting the peer models failed: {}", out.message());
  return dir;
}

/// dnnl_sgemm on n×n×n with `threads` OpenMP threads: median GFLOP/s of kSgemmReps runs.
Expected<SgemmResult> timeSgemm(int threads, int64_t n) {
  omp_set_num_threads(threads);
  std::vector<float> a(n * n), b(n * n), c(n * n);
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (float& v : a) v = dist(rng);
  for (float& v : b) v = dist(rng);
  std::vector<double> gflops;
  for (int rep = 0; rep <= kSgemmReps; ++rep) {  // rep 0 warms up
    const auto start = std::chrono::steady_clock::now();
    const dnnl_status_t st =
        dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (st != dnnl_success) return error("dnnl_sgemm failed (status {})", static_cast<int>(st));
    if (rep > 0) gflops.push_back(2.0 * n * n * n / s / 1e9);
  }
  return SgemmResult{n, median(gflops)};
}

/// N(0,1) inputs drawn from --seed, one per graph input, N bound to `batch`.
Expected<std::vector<ir::Tensor>> randomInputs(const ir::Graph& g, int64_t batch, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<ir::Tensor> out;
  for (const ir::Value* in : g.inputs()) {
    ir::TensorType t = in->type();
    t.shape = t.shape.bind(batch);
    if (t.dtype != ir::DType::F32)
      return error("kiln bench makes f32 inputs; input %{} is {}", in->name(), t.str());
    ir::Tensor x = ir::Tensor::zeros(t);
    for (float& v : x.span<float>()) v = dist(rng);
    out.push_back(std::move(x));
  }
  return out;
}

/// `iters` timed runs of `s` (Session::step: a train step keeps its state in the session
/// instead of copying it out; any other graph runs as with run).
Expected<std::vector<double>> timeKiln(const runtime::Session& s, std::span<const ir::Tensor> x,
                                       int iters) {
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    const auto start = std::chrono::steady_clock::now();
    Expected<std::vector<ir::Tensor>> y = s.step(x);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
    if (!y.isOk()) return Status::error(y.message());
  }
  return ms;
}

/// max |a - b| (shapes must match).
Expected<double> maxAbsDiff(const ir::Tensor& a, const ir::Tensor& b, std::string_view peer) {
  if (a.shape() != b.shape())
    return error("{} peer's output has shape {}, kiln's {}", peer, b.shape().str(),
                 a.shape().str());
  double d = 0;
  for (int64_t i = 0; i < a.numElements(); ++i) d = std::max(d, std::abs(a.at(i) - b.at(i)));
  return d;
}

/// Seeded class ids in [0, classes) for the train step's labels.
ir::Tensor randomLabels(int64_t batch, int64_t classes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  ir::Tensor t(ir::DType::I64, ir::Shape{batch});
  for (int64_t i = 0; i < batch; ++i)
    t.data<int64_t>()[i] = static_cast<int64_t>(rng() % static_cast<uint64_t>(classes));
  return t;
}

/// The warm-up, then `o.rounds` rounds of kiln (`o.iters` timed runs of `session`) and each
/// peer in turn, then every participant's peak memory, into `report`.
Status timeInterleaved(const Options& o, const runtime::Session& session,
                       std::span<const ir::Tensor> inputs,
                       std::vector<std::unique_ptr<Peer>>& peers, BenchReport& report) {
  if (o.warmup > 0) {
    KILN_TRY(timeKiln(session, inputs, o.warmup).status());
    for (auto& p : peers) KILN_TRY(p->run(o.warmup).status());
  }
  for (int r = 0; r < o.rounds; ++r) {
    KILN_ASSIGN_OR_RETURN(std::vector<double> k, timeKiln(session, inputs, o.iters));
    report.kiln.rounds.push_back(std::move(k));
    for (size_t i = 0; i < peers.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(std::vector<double> t, peers[i]->run(o.iters));
      report.peers[i].rounds.push_back(std::move(t));
    }
  }
  report.kiln.peakBytes = selfPeakBytes();
  for (size_t i = 0; i < peers.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(report.peers[i].peakBytes, peers[i]->peakBytes());
  }
  return Status::ok();
}

/// `kiln bench --train`: train steps per second of kiln's train step (SGD momentum 0.9, weight
/// decay 1e-4, fixed data) against PyTorch eager training of the same model and weights, NCHW
/// and channels_last, each in its own process (its own peak RSS). The first step's loss of
/// each must agree (same weights, same data) before any timing counts.
Status runTrainBench(Options& o, std::vector<PeerKind> kinds, const PeerEnv& env, int threads) {
  for (PeerKind k : kinds)
    if (k != PeerKind::Torch)
      return error("--train compares with torch only (ONNX Runtime does not train)");
  const bool benchWeights = o.source.weights.empty();
  if (benchWeights) o.source.randomWeights = true;
  KILN_ASSIGN_OR_RETURN(ir::Module forward, loadSource(o.source));
  if (benchWeights) initBenchWeights(forward.graph, forward.weights, o.source.seed);
  const ir::Graph& fg = forward.graph;
  if (fg.inputs().size() != 1 || fg.outputs().size() != 1 ||
      fg.outputs()[0]->type().shape.rank() != 2)
    return error("--train needs one input and one [N, classes] output");
  const int64_t batch = o.source.batch;
  const int64_t classes = fg.outputs()[0]->type().shape[1];
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> x, randomInputs(fg, batch, o.source.seed));
  const ir::Tensor labels = randomLabels(batch, classes, o.source.seed);

  passes::TrainStepOptions to;
  to.momentum = kTrainMomentum;
  to.weightDecay = kTrainWeightDecay;
  KILN_ASSIGN_OR_RETURN(ir::Module step, passes::buildTrainStep(forward, to));
  std::vector<ir::Tensor> inputs;
  for (const ir::Value* v : step.graph.inputs()) {
    if (v->name() == "labels") {
      inputs.push_back(labels);
    } else if (v->name() == "lr") {
      ir::Tensor lr(ir::DType::F32, ir::Shape{});
      lr.data<float>()[0] = static_cast<float>(kTrainLr);
      inputs.push_back(lr);
    } else if (v->name() == "seed") {
      ir::Tensor seed(ir::DType::I64, ir::Shape{});
      seed.data<int64_t>()[0] = static_cast<int64_t>(o.source.seed);
      inputs.push_back(seed);
    } else {
      inputs.push_back(x.at(0));
    }
  }
  const bool symbolicBatch =
      x[0].shape().rank() > 0 && fg.inputs()[0]->type().shape[0] == ir::kBatch;

  BenchReport report;
  report.model = o.source.source + " (train step)";
  report.batch = batch;
  report.inputShape = x[0].shape().dims();
  report.threads = threads;
  report.warmup = o.warmup;
  report.rounds = o.rounds;
  report.iters = o.iters;
  report.modelFlops =
      static_cast<double>(ir::graphCost(step.graph).flops) * (symbolicBatch ? batch : 1);

  // The peers: PyTorch eager in NCHW and in channels_last, each its own process.
  std::vector<std::unique_ptr<Peer>> peers;
  std::optional<ScopedDir> scratch;
  if (!kinds.empty()) {
    scratch.emplace(
        ScopedDir{fs::temp_directory_path() / fmt::format("kiln_bench_{}", ::getpid())});
    fs::create_directories(scratch->path);
    const fs::path w = scratch->path / "w.npz", xp = scratch->path / "x.npy",
                   lp = scratch->path / "labels.npy";
    KILN_TRY(runtime::writeNpz(w.string(), forward.weights));
    KILN_TRY(runtime::writeNpy(xp.string(), x[0]));
    KILN_TRY(runtime::writeNpy(lp.string(), labels));
    for (bool channelsLast : {false, true}) {
      KILN_ASSIGN_OR_RETURN(std::unique_ptr<Peer> p, Peer::start(PeerKind::Torch, env, threads));
      KILN_ASSIGN_OR_RETURN(nlohmann::json reply,
                            p->request({{"cmd", "load_train"},
                                        {"model", o.source.source},
                                        {"weights", w.string()},
                                        {"input", xp.string()},
                                        {"labels", lp.string()},
                                        {"in_channels", x[0].shape()[1]},
                                        {"num_classes", classes},
                                        {"threads", threads},
                                        {"channels_last", channelsLast},
                                        {"lr", kTrainLr},
                                        {"momentum", kTrainMomentum},
                                        {"weight_decay", kTrainWeightDecay}}));
      Participant part;
      part.name = channelsLast ? "torch_cl" : "torch";
      part.loadMs = reply.value("load_ms", 0.0);
      part.detail = fmt::format("PyTorch {} eager training, {}, SGD, {} threads, BLAS {}",
                                p->version(), channelsLast ? "channels_last" : "NCHW", threads,
                                fs::path(reply.value("blas", std::string())).filename().string());
      report.peers.push_back(std::move(part));
      peers.push_back(std::move(p));
    }
  }

  runtime::SessionOptions so;
  so.backend = o.backend;
  so.threads = threads;
  so.batch = batch;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<runtime::Session> session,
                        runtime::Session::create(std::move(step), so));
  const runtime::SessionStats stats = session->stats();
  report.backend = session->options().backend;
  report.kiln.name = "kiln";
  report.kiln.loadMs = stats.compileMs;
  report.arenaBytes = stats.arenaBytes;
  report.weightBytes = stats.weightBytes;

  // Agreement: the first step's loss, from the same weights and data.
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> first, session->step(inputs));
  const double loss = first[0].at(0);
  report.maxAbsRef = std::abs(loss);
  report.tolerance = kAgreeRel * std::max(1.0, std::abs(loss));
  report.weakCheck = -1;  // the loss of a random batch depends on it; no weak-check warning
  for (size_t i = 0; i < peers.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(nlohmann::json reply, peers[i]->request({{"cmd", "train_loss"}}));
    report.peers[i].maxAbsDiff = std::abs(reply.value("loss", 0.0) - loss);
    report.peers[i].agrees = report.peers[i].maxAbsDiff <= report.tolerance;
    if (!report.peers[i].agrees)
      fmt::print(stderr, "WARNING: kiln and {} disagree on the first step's loss: {} vs {}\n",
                 report.peers[i].name, loss, reply.value("loss", 0.0));
  }

  KILN_TRY(timeInterleaved(o, *session, inputs, peers, report));
  peers.clear();
  if (o.json) {
    fmt::print("{}\n", toJson(report).dump(2));
  } else {
    fmt::print("{}", formatText(report));
  }
  return Status::ok();
}

Status runBench(Options& o) {
  KILN_ASSIGN_OR_RETURN(std::vector<PeerKind> kinds, parsePeerList(o.compare));
  const models::ModelInfo* info =
      isFileSource(o.source.source) ? nullptr : models::findModel(o.source.source);
  if (!kinds.empty() && !info)
    return error(
        "--compare needs a registry model (the peers rebuild it in PyTorch by name); "
        "'{}' is a file",
        o.source.source);
  if (o.cacheDir.empty()) o.cacheDir = defaultCacheDir();
  PeerEnv env = defaultPeerEnv();
  if (!o.peersDir.empty()) env.peersDir = o.peersDir;
  const int threads = runtime::resolveThreads(o.threads);
  if (o.train) return runTrainBench(o, kinds, env, threads);

  // Peers first: a missing runtime should fail before minutes of work.
  std::vector<std::unique_ptr<Peer>> peers;
  for (PeerKind k : kinds) {
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<Peer> p, Peer::start(k, env, threads));
    peers.push_back(std::move(p));
  }

  const bool benchWeights = o.source.weights.empty();
  if (benchWeights) o.source.randomWeights = true;
  KILN_ASSIGN_OR_RETURN(ir::Module m, loadSource(o.source));
  if (benchWeights) initBenchWeights(m.graph, m.weights, o.source.seed);
  const int64_t batch = o.source.batch;
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> inputs,
                        randomInputs(m.graph, batch, o.source.seed));
  const ir::Cost cost = ir::graphCost(m.graph);
  const bool symbolicBatch = !m.graph.inputs().empty() &&
                             m.graph.inputs()[0]->type().shape.rank() > 0 &&
                             m.graph.inputs()[0]->type().shape[0] == ir::kBatch;

  BenchReport report;
  report.model = o.source.source;
  report.batch = batch;
  report.inputShape = inputs.empty() ? std::vector<int64_t>{} : inputs[0].shape().dims();
  report.threads = threads;
  report.warmup = o.warmup;
  report.rounds = o.rounds;
  report.iters = o.iters;
  // graphCost counts N as 1; a graph built for a fixed batch already counts all of it.
  report.modelFlops = 2.0 * static_cast<double>(cost.macs) * (symbolicBatch ? batch : 1);

  std::optional<ScopedDir> scratch;
  fs::path peerModels, inputPath;
  if (!peers.empty()) {
    const ir::Graph& g = m.graph;
    if (g.inputs().size() != 1 || g.outputs().size() != 1 || inputs[0].shape().rank() != 4 ||
        g.outputs()[0]->type().shape.rank() != 2)
      return error("--compare needs one [N,C,H,W] input and one [N,classes] output");
    const ir::Shape& in = inputs[0].shape();
    KILN_ASSIGN_OR_RETURN(peerModels,
                          exportPeerModels(o, env, m, in, g.outputs()[0]->type().shape[1]));
    scratch.emplace(
        ScopedDir{fs::temp_directory_path() / fmt::format("kiln_bench_{}", ::getpid())});
    fs::create_directories(scratch->path);
    inputPath = scratch->path / "x.npy";
    KILN_TRY(runtime::writeNpy(inputPath.string(), inputs[0]));
  }

  runtime::SessionOptions so;
  so.backend = o.backend;
  so.threads = threads;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<runtime::Session> session,
                        runtime::Session::create(std::move(m), so));
  const runtime::SessionStats stats = session->stats();
  report.backend = session->options().backend;
  report.kiln.name = "kiln";
  report.kiln.loadMs = stats.compileMs;
  report.arenaBytes = stats.arenaBytes;
  report.weightBytes = stats.weightBytes;

  for (const auto& p : peers) {
    Participant part;
    part.name = std::string(peerName(p->kind()));
    const bool ort = p->kind() == PeerKind::Ort;
    KILN_ASSIGN_OR_RETURN(
        Peer::Loaded loaded,
        p->load((peerModels / (ort ? "model.onnx" : "model.pt")).string(), inputPath.string()));
    part.loadMs = loaded.ms;
    part.detail = ort ? fmt::format(
                            "ONNX Runtime {} (onnxruntime-node, CPU EP, {} intra-op "
                            "threads, graph optimization all)",
                            p->version(), threads)
                      : fmt::format(
                            "PyTorch {} (TorchScript freeze + optimize_for_inference, "
                            "{} threads, BLAS {})",
                            p->version(), threads, fs::path(loaded.blas).filename().string());
    report.peers.push_back(std::move(part));
  }

  // The comparison means something only if everyone computes the same function.
  if (!peers.empty()) {
    KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> y, session->run(inputs));
    for (int64_t i = 0; i < y[0].numElements(); ++i)
      report.maxAbsRef = std::max(report.maxAbsRef, std::abs(y[0].at(i)));
    report.tolerance = kAgreeRel * std::max(1.0, report.maxAbsRef);
    // The check is only as good as the output's dependence on the input: another input must
    // move the logits by much more than the tolerance.
    KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> other,
                          randomInputs(session->module().graph, batch, o.source.seed + 1));
    KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> y2, session->run(other));
    KILN_ASSIGN_OR_RETURN(report.inputSensitivity, maxAbsDiff(y[0], y2[0], "kiln"));
    if (report.inputSensitivity <= report.weakCheck * report.tolerance)
      fmt::print(stderr,
                 "WARNING: the output barely depends on the input (max|y(x) - y(x')| "
                 "{:.3g}): the agreement check is weak\n",
                 report.inputSensitivity);
    for (size_t i = 0; i < peers.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(ir::Tensor py, peers[i]->output(inputPath.string()));
      KILN_ASSIGN_OR_RETURN(report.peers[i].maxAbsDiff,
                            maxAbsDiff(y[0], py, peerName(peers[i]->kind())));
      report.peers[i].agrees = report.peers[i].maxAbsDiff <= report.tolerance;
      if (!report.peers[i].agrees)
        fmt::print(stderr,
                   "WARNING: kiln and {} disagree on the same input: max|Δ| {:.3g} > {:.3g}\n",
                   report.peers[i].name, report.peers[i].maxAbsDiff, report.tolerance);
    }
  }

  KILN_TRY(timeInterleaved(o, *session, inputs, peers, report));
  peers.clear();  // the peers exit before sgemm takes the cores
  if (o.sgemm) {
    KILN_ASSIGN_OR_RETURN(report.sgemm, timeSgemm(threads, kSgemmN));
  }

  if (o.json) {
    fmt::print("{}\n", toJson(report).dump(2));
  } else {
    fmt::print("{}", formatText(report));
  }
  return Status::ok();
}

}  // namespace

Action registerBench(CLI::App& app) {
  auto o = std::make_shared<Options>();
  o->source.batch = 1;
  addSourceOptions(app, o->source, /*withWeights=*/true);
  app.get_option("--batch")->description("batch size (default 1)");
  addSessionOptions(app, o->backend, o->threads);
  app.get_option("--threads")->description(
      "intra-op threads for kiln and the peers (default: OMP_NUM_THREADS, else every core)");
  app.add_option("--iters", o->iters, "timed iterations per round, per participant (default 10)")
      ->check(CLI::PositiveNumber);
  app.add_option("--rounds", o->rounds, "interleaved rounds (default 5)")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", o->warmup, "untimed iterations first, per participant (default 3)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--compare", o->compare,
                 "peers measured in the same run: ort (ONNX Runtime), torch (PyTorch), or both "
                 "comma-separated");
  app.add_flag("--json", o->json, "print one JSON object instead of the table");
  app.add_flag("--train", o->train,
               "time train steps (SGD momentum 0.9, weight decay 1e-4) instead of inference; "
               "--compare torch runs PyTorch eager training in NCHW and channels_last");
  app.add_flag("--sgemm", o->sgemm,
               "also time dnnl_sgemm 2048³ with the same threads and relate the model's GFLOP/s");
  app.add_option("--cache-dir", o->cacheDir,
                 "where exported peer models are kept (default $KILN_BENCH_CACHE, else "
                 "~/.cache/kiln/bench)");
  app.add_option("--peers-dir", o->peersDir,
                 "the folder of ort_peer.js / torch_peer.py / export.py (default bench/peers)");
  return [o] { return runBench(*o); };
}

}  // namespace kiln::tools
