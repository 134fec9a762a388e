// oneDNN backend through runtime::Session: several batch sizes in one session, concurrent runs,
// bad input, and no heap allocation of ours in a steady-state run.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>

#include "backends/onednn/onednn.h"
#include "models/registry.h"
#include "tests/backends/onednn_test_util.h"

// Counts operator new calls made by the thread that set `tCounting` (the run's own thread; the
// OpenMP workers inside oneDNN are not ours to count).
namespace {
thread_local bool tCounting = false;
thread_local int64_t tAllocations = 0;
}  // namespace

// Not inlined: GCC would otherwise see free() on a pointer from operator new (-Wmismatched-new-delete).
__attribute__((noinline)) void* operator new(std::size_t n) {
  if (tCounting) ++tAllocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept { std::free(p); }
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace kiln::testing {
namespace {

using ir::kBatch;

Expected<ir::Module> smallModel(std::string_view name, int64_t resolution) {
  const models::ModelInfo* info = models::findModel(name);
  if (!info) return error("no model {}", name);
  models::ModelConfig cfg = models::defaultConfig(*info);
  cfg.resolution = resolution;
  KILN_ASSIGN_OR_RETURN(ir::Module m, models::buildModel(name, cfg));
  ir::initMissingWeights(m.graph, m.weights, 3);
  return m;
}

TEST(OneDnnSession, SeveralBatchSizesThroughOneSession) {
  auto m = smallModel("resnet20", 28);
  ASSERT_TRUE(m.isOk()) << m.message();
  auto session = onednnSession(m->clone(), 2, /*optimize=*/true);
  ASSERT_TRUE(session.isOk()) << session.message();
  for (int64_t batch : {2, 1, 5, 2, 3}) {
    SCOPED_TRACE(fmt::format("batch {}", batch));
    const auto inputs = randomInputs(m->graph, batch, static_cast<uint64_t>(batch), 1.0f);
    auto want = backends::reference::run(*m, inputs);
    ASSERT_TRUE(want.isOk()) << want.message();
    auto got = (*session)->run(inputs);
    ASSERT_TRUE(got.isOk()) << got.message();
    EXPECT_EQ((*got)[0].shape(), (ir::Shape{batch, 10}));
    EXPECT_TRUE(closeTensors((*got)[0], (*want)[0], Tolerance{modelTolerance(maxAbs((*want)[0])), 0}));
  }
  EXPECT_GT((*session)->stats().arenaBytes, 0);
  EXPECT_GT((*session)->stats().weightBytes, 0);
}

TEST(OneDnnSession, ConcurrentRunsFromFourThreadsMatchSequentialOnes) {
  auto m = smallModel("mobilenet_v2", 32);
  ASSERT_TRUE(m.isOk()) << m.message();
  auto session = onednnSession(m->clone(), 1, /*optimize=*/true);
  ASSERT_TRUE(session.isOk()) << session.message();
  const runtime::Session& s = **session;
  constexpr int kThreads = 4, kRuns = 3;
  std::vector<std::vector<ir::Tensor>> inputs, want;
  for (int t = 0; t < kThreads; ++t) {
    inputs.push_back(randomInputs(m->graph, 1 + t % 2, 100 + t, 1.0f));
    auto y = s.run(inputs.back());
    ASSERT_TRUE(y.isOk()) << y.message();
    want.push_back(std::move(*y));
  }
  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRuns; ++r) {
        auto y = s.run(inputs[t]);
        if (!y.isOk()) {
          ++failures;
          continue;
        }
        if (!closeTensors((*y)[0], want[t][0], kExact)) ++mismatches;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
}

ir::Module tinyConvModule() {
  ir::Module m;
  ir::Graph& g = m.graph;
  ir::Value* x = g.addInput("x", ir::makeType(ir::DType::F32, {kBatch, 4, 6, 6}));
  ir::Value* w = g.addWeight(ir::ValueKind::Param, "conv.weight", ir::makeType(ir::DType::F32, {8, 4, 3, 3}));
  ir::Value* y = g.createNode(ir::OpKind::Conv2d, {x, w}, ir::Conv2dAttrs{}).value()->result();
  g.addOutput(g.createNode(ir::OpKind::Relu, {y}, ir::NoAttrs{}).value()->result());
  ir::initMissingWeights(g, m.weights, 1);
  return m;
}

TEST(OneDnnSession, BadInputsAreClearErrors) {
  auto session = onednnSession(tinyConvModule());
  ASSERT_TRUE(session.isOk()) << session.message();
  const runtime::Session& s = **session;
  auto wrongShape = s.run(std::vector<ir::Tensor>{ir::Tensor(ir::DType::F32, {1, 3, 6, 6})});
  ASSERT_FALSE(wrongShape.isOk());
  EXPECT_EQ(wrongShape.message(), "input %x: expected f32[N,4,6,6], got f32[1,3,6,6]");
  auto wrongType = s.run(std::vector<ir::Tensor>{ir::Tensor(ir::DType::F64, {1, 4, 6, 6})});
  ASSERT_FALSE(wrongType.isOk());
  EXPECT_EQ(wrongType.message(), "input %x: expected f32[N,4,6,6], got f64[1,4,6,6]");
  auto wrongCount = s.run(std::vector<ir::Tensor>{});
  ASSERT_FALSE(wrongCount.isOk());
  EXPECT_NE(wrongCount.message().find("has 1 inputs, 0 tensors were given"), std::string::npos);
  auto wrongLayout = s.run(std::vector<ir::Tensor>{ir::Tensor(ir::DType::F32, {1, 4, 6, 6}, ir::Layout::NHWC)});
  ASSERT_FALSE(wrongLayout.isOk());
  EXPECT_NE(wrongLayout.message().find("expected layout {nchw}, got {nhwc}"), std::string::npos);
  auto empty = s.run(std::vector<ir::Tensor>{ir::Tensor()});
  ASSERT_FALSE(empty.isOk());
  // The session still works after the errors.
  auto ok = s.run(std::vector<ir::Tensor>{ir::Tensor(ir::DType::F32, {2, 4, 6, 6})});
  ASSERT_TRUE(ok.isOk()) << ok.message();
  EXPECT_EQ((*ok)[0].shape(), (ir::Shape{2, 8, 4, 4}));
}

TEST(OneDnnSession, MissingWeightsAndUnsupportedDTypesFailAtCreate) {
  ir::Module m = tinyConvModule();
  m.weights.erase("conv.weight");
  auto missing = onednnSession(std::move(m));
  ASSERT_FALSE(missing.isOk());
  EXPECT_NE(missing.message().find("conv.weight"), std::string::npos) << missing.message();

  ir::Module d;
  ir::Value* x = d.graph.addInput("x", ir::makeType(ir::DType::F64, {kBatch, 3}));
  d.graph.addOutput(d.graph.createNode(ir::OpKind::Relu, {x}, ir::NoAttrs{}).value()->result());
  auto f64 = onednnSession(std::move(d));
  ASSERT_FALSE(f64.isOk());
  EXPECT_NE(f64.message().find("the onednn backend runs f32 graphs"), std::string::npos) << f64.message();

  runtime::SessionOptions o;
  o.backend = "tpu";
  auto unknown = runtime::Session::create(tinyConvModule(), o);
  ASSERT_FALSE(unknown.isOk());
  EXPECT_EQ(unknown.message(), "backend 'tpu' is not available (known: onednn, reference)");
}

TEST(OneDnnSession, ProfileNamesFusedOpsAndCountsFlops) {
  auto session = onednnSession(tinyConvModule(), 3);
  ASSERT_TRUE(session.isOk()) << session.message();
  std::vector<runtime::NodeProfile> nodes;
  auto y = (*session)->profile(std::vector<ir::Tensor>{ir::Tensor(ir::DType::F32, {3, 4, 6, 6})}, nodes);
  ASSERT_TRUE(y.isOk()) << y.message();
  ASSERT_EQ(nodes.size(), 2u);
  EXPECT_EQ(nodes[0].op, "conv2d");
  EXPECT_EQ(nodes[0].shape, "[3,8,4,4]");
  EXPECT_EQ(nodes[0].layout, "nchw");
  EXPECT_DOUBLE_EQ(nodes[0].flops, 3.0 * 2 * 8 * 4 * 4 * 4 * 3 * 3);  // 2 per MAC, × batch
  EXPECT_EQ(nodes[1].op, "relu");
  EXPECT_GE(nodes[0].ms, 0.0);
}

/// Counts the calling thread's allocations inside oneDNN primitives (which allocate their
/// argument maps on every execute); what is left over is ours.
class AllocationObserver final : public backends::onednn::RunObserver {
 public:
  void stepBegin(size_t) override { before_ = tAllocations; }
  void stepEnd(size_t, bool primitive) override {
    if (primitive) inside += tAllocations - before_;
  }
  int64_t inside = 0;

 private:
  int64_t before_ = 0;
};

TEST(OneDnnSession, SteadyStateRunAllocatesOnlyItsOutputs) {
  auto m = smallModel("resnet20", 28);
  ASSERT_TRUE(m.isOk()) << m.message();
  auto program = backends::onednn::Program::compile(std::make_shared<const ir::Module>(std::move(*m)),
                                                     backends::onednn::CompileOptions{2, 2});
  ASSERT_TRUE(program.isOk()) << program.message();
  const auto inputs = randomInputs((*program)->module().graph, 2, 1, 1.0f);
  ASSERT_TRUE((*program)->run(inputs).isOk());  // the first run makes the arena context
  AllocationObserver observer;
  tAllocations = 0;
  tCounting = true;
  auto y = (*program)->run(inputs, &observer);
  tCounting = false;
  ASSERT_TRUE(y.isOk()) << y.message();
  const int64_t ours = tAllocations - observer.inside;
  // The output vector, and per output tensor its shape and its shared buffer's control block.
  EXPECT_LE(ours, 1 + 3 * static_cast<int64_t>(y->size())) << "total " << tAllocations << ", in oneDNN "
                                                           << observer.inside;
  EXPECT_GT((*program)->stats().steps, 50);  // many steps ran without allocating
}

}  // namespace
}  // namespace kiln::testing
