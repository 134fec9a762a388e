// Google Benchmark: IR-side costs a user pays on every compile (lowering, printing, parsing,
// the default pipeline) and the reference backend's conv, the oracle later backends beat.
#include <benchmark/benchmark.h>

#include <random>

#include "backends/reference/reference.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "models/registry.h"
#include "passes/pass_manager.h"

namespace kiln {
namespace {

ir::Module buildOrDie(std::string_view name) {
  Expected<ir::Module> m = models::buildModel(name, {});
  KILN_ASSERT(m.isOk(), "model failed to build");
  return std::move(m).value();
}

void BM_LowerResnet50(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(buildOrDie("resnet50"));
}
BENCHMARK(BM_LowerResnet50)->Unit(benchmark::kMillisecond);

void BM_PrintResnet50(benchmark::State& state) {
  ir::Module m = buildOrDie("resnet50");
  for (auto _ : state) benchmark::DoNotOptimize(ir::printGraph(m.graph));
}
BENCHMARK(BM_PrintResnet50)->Unit(benchmark::kMillisecond);

void BM_ParseResnet50(benchmark::State& state) {
  const std::string text = ir::printGraph(buildOrDie("resnet50").graph);
  for (auto _ : state) benchmark::DoNotOptimize(ir::parseGraph(text, "r50.kir"));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ParseResnet50)->Unit(benchmark::kMillisecond);

void BM_DefaultPipelineResnet50(benchmark::State& state) {
  backends::reference::ReferenceEvaluator evaluator;
  for (auto _ : state) {
    state.PauseTiming();
    ir::Module m = buildOrDie("resnet50");
    passes::PassManagerOptions o;
    o.passes = *passes::parsePipeline("default");
    passes::PassManager pm(o, passes::PassEnv{&evaluator}, [](std::string_view) {});
    state.ResumeTiming();
    KILN_ASSERT(pm.run(m).isOk());
  }
}
BENCHMARK(BM_DefaultPipelineResnet50)->Unit(benchmark::kMillisecond);

// resnet50 layer1 3x3 conv: 64→64 channels at 56×56, batch 1 (115.6 M MACs).
void BM_ReferenceConv3x3(benchmark::State& state) {
  ir::Graph g("conv");
  ir::Value* x = g.addInput("x", ir::makeType(ir::DType::F32, {1, 64, 56, 56}));
  ir::Value* w = g.addWeight(ir::ValueKind::Param, "w",
                             ir::TensorType{ir::DType::F32, {64, 64, 3, 3}, ir::Layout::OIHW});
  ir::Conv2dAttrs a;
  a.pad = {1, 1, 1, 1};
  Expected<ir::Node*> n = g.createNode(ir::OpKind::Conv2d, {x, w}, a);
  KILN_ASSERT(n.isOk());
  std::mt19937 rng(0);
  std::normal_distribution<float> dist;
  std::vector<ir::Tensor> operands{ir::Tensor::zeros(x->type()), ir::Tensor::zeros(w->type())};
  for (ir::Tensor& t : operands)
    for (float& v : t.span<float>()) v = dist(rng);
  for (auto _ : state) benchmark::DoNotOptimize(backends::reference::evaluateNode(**n, operands));
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * 64 * 56 * 56 * 64 * 9 * state.iterations(),
                                                 benchmark::Counter::kIsRate,
                                                 benchmark::Counter::kIs1000);
}
BENCHMARK(BM_ReferenceConv3x3)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace kiln

BENCHMARK_MAIN();
