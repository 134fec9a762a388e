// `kiln profile`: per-node times of a compiled graph (median over iterations), sorted by time,
// with each node's share of the total and its GFLOP/s, and the run latency without profiling.
#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "passes/autodiff.h"
#include "runtime/session.h"
#include "tools/commands.h"

namespace kiln::tools {

namespace {

struct Options {
  SourceOptions source;
  std::string backend = "onednn";
  int threads = 0;
  int iters = 20;
  int warmup = 3;
  bool json = false;
  bool train = false;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Row {
  runtime::NodeProfile node;  // ms: median over the iterations
  double share = 0;
};

Status runProfile(const Options& o) {
  SourceOptions src = o.source;
  const int64_t batch = src.batch > 0 ? src.batch : 1;
  src.batch = -1;        // keep N symbolic: the session binds it to the inputs
  src.randomWeights = true;  // times do not depend on the values; --weights still binds real ones
  KILN_ASSIGN_OR_RETURN(ir::Module m, loadSource(src));
  int64_t classes = 1;
  if (o.train) {
    // The train step of passes/autodiff.h (SGD momentum 0.9, weight decay 1e-4).
    if (m.graph.outputs().size() == 1 && m.graph.outputs()[0]->type().shape.rank() == 2)
      classes = std::max<int64_t>(1, m.graph.outputs()[0]->type().shape[1]);
    passes::TrainStepOptions to;
    to.weightDecay = 1e-4;
    KILN_ASSIGN_OR_RETURN(m, passes::buildTrainStep(m, to));
  }
  std::vector<ir::Tensor> inputs;
  std::mt19937_64 rng(src.seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (const ir::Value* in : m.graph.inputs()) {
    ir::TensorType t = in->type();
    t.shape = t.shape.bind(batch);
    if (o.train && t.dtype == ir::DType::I64) {  // labels i % classes, seed 0
      ir::Tensor l = ir::Tensor::zeros(t);
      if (in->name() == "labels")
        for (int64_t i = 0; i < l.numElements(); ++i) l.data<int64_t>()[i] = i % classes;
      inputs.push_back(std::move(l));
      continue;
    }
    if (o.train && in->name() == "lr") {
      ir::Tensor lr = ir::Tensor::zeros(t);
      lr.data<float>()[0] = 0.01f;
      inputs.push_back(std::move(lr));
      continue;
    }
    if (t.dtype != ir::DType::F32) return error("profile makes f32 inputs; input %{} is {}", in->name(), t.str());
    ir::Tensor x = ir::Tensor::zeros(t);
    for (float& v : x.span<float>()) v = dist(rng);
    inputs.push_back(std::move(x));
  }
  runtime::SessionOptions so;
  so.backend = o.backend;
  so.threads = o.threads;
  so.batch = batch;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<runtime::Session> session, runtime::Session::create(std::move(m), so));

  using Clock = std::chrono::steady_clock;
  // step: a train step's run without copying its state out (the same as run otherwise).
  for (int i = 0; i < o.warmup; ++i) KILN_TRY(session->step(inputs).status());
  // Plain runs first: the latency a user sees, without the per-step timing.
  std::vector<double> runMs;
  for (int i = 0; i < o.iters; ++i) {
    const auto start = Clock::now();
    KILN_TRY(session->step(inputs).status());
    runMs.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  std::vector<runtime::NodeProfile> first, nodes;
  std::vector<std::vector<double>> perNode;
  for (int i = 0; i < o.iters; ++i) {
    KILN_TRY(session->profile(inputs, nodes).status());
    if (perNode.empty()) {
      first = nodes;
      perNode.resize(nodes.size());
    }
    for (size_t k = 0; k < nodes.size() && k < perNode.size(); ++k) perNode[k].push_back(nodes[k].ms);
  }
  std::vector<Row> rows;
  double total = 0;
  for (size_t k = 0; k < first.size(); ++k) {
    Row r{first[k], 0};
    r.node.ms = median(perNode[k]);
    total += r.node.ms;
    rows.push_back(std::move(r));
  }
  for (Row& r : rows) r.share = total > 0 ? 100.0 * r.node.ms / total : 0;
  // Slowest first, ties in graph order (std::sort on indices: std::stable_sort's temporary
  // buffer trips ASan's alloc-dealloc-mismatch check with libstdc++ 12).
  std::vector<size_t> byTime(rows.size());
  std::iota(byTime.begin(), byTime.end(), size_t{0});
  std::sort(byTime.begin(), byTime.end(), [&](size_t a, size_t b) {
    return rows[a].node.ms != rows[b].node.ms ? rows[a].node.ms > rows[b].node.ms : a < b;
  });
  std::vector<Row> sorted;
  for (size_t k : byTime) sorted.push_back(std::move(rows[k]));
  rows = std::move(sorted);
  auto gflops = [](double flops, double ms) { return ms > 0 ? flops / (ms * 1e6) : 0.0; };
  double totalFlops = 0;
  for (const Row& r : rows) totalFlops += r.node.flops;
  const runtime::SessionStats stats = session->stats();
  const double latency = median(runMs);

  if (o.json) {
    nlohmann::json j;
    j["source"] = o.source.source;
    j["backend"] = o.backend;
    j["batch"] = batch;
    j["threads"] = runtime::resolveThreads(o.threads);
    j["iters"] = o.iters;
    j["compile_ms"] = stats.compileMs;
    j["run_median_ms"] = latency;
    j["run_min_ms"] = runMs.empty() ? 0.0 : *std::min_element(runMs.begin(), runMs.end());
    j["total_ms"] = total;
    j["gflops"] = gflops(totalFlops, latency);
    j["arena_bytes"] = stats.arenaBytes;
    j["weight_bytes"] = stats.weightBytes;
    nlohmann::json list = nlohmann::json::array();
    for (const Row& r : rows)
      list.push_back({{"name", r.node.name}, {"op", r.node.op}, {"layout", r.node.layout},
                      {"shape", r.node.shape}, {"ms", r.node.ms}, {"percent", r.share},
                      {"flops", r.node.flops}, {"gflops", gflops(r.node.flops, r.node.ms)}});
    j["nodes"] = std::move(list);
    fmt::print("{}\n", j.dump(2));
    return Status::ok();
  }
  fmt::print("{:<28} {:<24} {:<8} {:<20} {:>9} {:>7} {:>9}\n", "node", "op", "layout", "shape", "ms",
             "%", "GFLOP/s");
  for (const Row& r : rows)
    fmt::print("{:<28} {:<24} {:<8} {:<20} {:>9.4f} {:>6.2f}% {:>9.2f}\n", r.node.name, r.node.op,
               r.node.layout, r.node.shape, r.node.ms, r.share, gflops(r.node.flops, r.node.ms));
  fmt::print("{:<28} {:<24} {:<8} {:<20} {:>9.4f} {:>6.2f}% {:>9.2f}\n", "total (sum of nodes)",
             fmt::format("{} nodes", rows.size()), "", "", total, total > 0 ? 100.0 : 0.0,
             gflops(totalFlops, total));
  fmt::print("\n{} on {}, batch {}, {} threads: run median {:.3f} ms (min {:.3f}) over {} iterations, "
             "{:.2f} GFLOP/s; compile {:.1f} ms; arena {:.2f} MB, weights {:.2f} MB\n",
             o.source.source, o.backend, batch, runtime::resolveThreads(o.threads), latency,
             runMs.empty() ? 0.0 : *std::min_element(runMs.begin(), runMs.end()), o.iters,
             gflops(totalFlops, latency), stats.compileMs, static_cast<double>(stats.arenaBytes) / 1e6,
             static_cast<double>(stats.weightBytes) / 1e6);
  return Status::ok();
}

}  // namespace

Action registerProfile(CLI::App& app) {
  auto o = std::make_shared<Options>();
  addSourceOptions(app, o->source, /*withWeights=*/true);
  addSessionOptions(app, o->backend, o->threads);
  app.add_option("--iters", o->iters, "timed iterations (each node's time is the median)")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", o->warmup, "untimed runs first")->check(CLI::NonNegativeNumber);
  app.add_flag("--json", o->json, "print one JSON object instead of the table");
  app.add_flag("--train", o->train,
               "profile the model's train step (passes/autodiff.h: SGD momentum 0.9, weight "
               "decay 1e-4) on labels i % classes");
  return [o] { return runProfile(*o); };
}

}  // namespace kiln::tools
