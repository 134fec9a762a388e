// plan-memory beyond the goldens: reuse on chains, residuals, in-place ops and views, graph
// outputs, batch scaling, options, the checker rejecting bad plans, the pass report, random
// graphs and every registered model.
#include "passes/plan_memory.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "backends/reference/reference.h"
#include "ir/module.h"
#include "ir/parser.h"
#include "ir/printer.h"
#include "models/registry.h"
#include "passes/pass_manager.h"
#include "tests/passes/pass_test_util.h"

namespace kiln::passes {
namespace {

using testing::parseModule;

const ir::Value& value(const ir::Graph& g, std::string_view name) {
  const ir::Value* v = g.findValue(name);
  EXPECT_NE(v, nullptr) << "no value %" << name;
  return *v;
}

const ValuePlan& planOf(const MemoryPlan& p, const ir::Graph& g, std::string_view name) {
  return p.values[value(g, name).id()];
}

MemoryPlan plan(const ir::Graph& g, const MemoryPlanOptions& o = {}) {
  Expected<MemoryPlan> p = planMemory(g, o);
  EXPECT_TRUE(p.isOk()) << p.message();
  if (!p.isOk()) return MemoryPlan();
  Status v = verifyPlan(g, *p);
  EXPECT_TRUE(v.isOk()) << v.message() << "\n" << formatPlan(g, *p);
  return *p;
}

bool bytesOverlap(const ValuePlan& a, const ValuePlan& b) {
  return a.bytes > 0 && b.bytes > 0 && a.offset < b.offset + b.bytes &&
         b.offset < a.offset + a.bytes;
}

// Five convolutions in a row; each f32[1,4,8,8] result is 1024 bytes.
constexpr std::string_view kChain = R"(graph @chain {
  input %x : f32[N,4,8,8]{nchw}
  param %w : f32[4,4,3,3]{oihw}
  %a = conv2d(%x, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %b = conv2d(%a, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %c = conv2d(%b, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %d = conv2d(%c, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %e = conv2d(%d, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  output %e
}
)";

TEST(PlanMemory, LinearChainReusesTwoBuffers) {
  ir::Module m = parseModule(kChain);
  const MemoryPlan p = plan(m.graph);
  std::set<int64_t> offsets;
  for (std::string_view v : {"a", "b", "c", "d", "e"}) {
    EXPECT_EQ(planOf(p, m.graph, v).bytes, 1024);
    EXPECT_EQ(planOf(p, m.graph, v).alias, AliasKind::None);
    offsets.insert(planOf(p, m.graph, v).offset);
  }
  EXPECT_EQ(offsets.size(), 2u);
  EXPECT_EQ(p.peakBytes, 2048);
  EXPECT_EQ(p.naiveBytes, 5 * 1024);
  EXPECT_EQ(p.lowerBoundBytes, 2048);
  EXPECT_EQ(p.numInPlace, 0);
  // Neighbours are live together at the node between them.
  EXPECT_NE(planOf(p, m.graph, "a").offset, planOf(p, m.graph, "b").offset);
  EXPECT_FALSE(planOf(p, m.graph, "x").inArena);  // the input is bound from outside
  EXPECT_FALSE(planOf(p, m.graph, "w").inArena);
}

TEST(PlanMemory, ResidualKeepsTheSkipAlive) {
  ir::Module m = parseModule(R"(graph @res {
  input %x : f32[N,4,8,8]{nchw}
  param %w : f32[4,4,3,3]{oihw}
  %skip = conv2d(%x, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %b = conv2d(%skip, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %c = conv2d(%b, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %d = conv2d(%c, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %sum = add(%d, %skip) : f32[N,4,8,8]{nchw}
  output %sum
}
)");
  const MemoryPlan p = plan(m.graph);
  const ValuePlan& skip = planOf(p, m.graph, "skip");
  EXPECT_EQ(skip.firstUse, 0);
  EXPECT_EQ(skip.lastUse, 4);  // read by the add
  for (std::string_view v : {"b", "c", "d"})
    EXPECT_FALSE(bytesOverlap(skip, planOf(p, m.graph, v))) << v;
  EXPECT_EQ(p.peakBytes, 3 * 1024);  // skip + two chain buffers
  // The add writes over its first operand of the result's type; both operands die there.
  EXPECT_EQ(planOf(p, m.graph, "sum").alias, AliasKind::InPlace);
  EXPECT_EQ(planOf(p, m.graph, "sum").aliasOf, value(m.graph, "d").id());
}

TEST(PlanMemory, InPlaceRelu) {
  ir::Module m = parseModule(R"(graph @g {
  input %x : f32[N,4,8,8]{nchw}
  param %w : f32[4,4,3,3]{oihw}
  %c = conv2d(%x, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %r = relu(%c) : f32[N,4,8,8]{nchw}
  %s = conv2d(%r, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  output %s
}
)");
  const MemoryPlan p = plan(m.graph);
  const ValuePlan& r = planOf(p, m.graph, "r");
  EXPECT_EQ(r.alias, AliasKind::InPlace);
  EXPECT_EQ(r.aliasOf, value(m.graph, "c").id());
  EXPECT_EQ(r.offset, planOf(p, m.graph, "c").offset);
  EXPECT_EQ(r.buffer, planOf(p, m.graph, "c").buffer);
  EXPECT_EQ(p.numInPlace, 1);
  EXPECT_EQ(p.peakBytes, 2048);
  EXPECT_EQ(p.naiveBytes, 3 * 1024);  // the in-place result counts as its own buffer there

  // A backend that cannot run relu in place narrows the rules: the relu needs a buffer
  // (still two live at a time, but three buffers).
  MemoryPlanOptions none;
  none.inPlaceOperands = [](const ir::Node&) { return std::vector<size_t>{}; };
  const MemoryPlan q = plan(m.graph, none);
  EXPECT_EQ(q.numInPlace, 0);
  EXPECT_EQ(q.values[value(m.graph, "r").id()].alias, AliasKind::None);
  EXPECT_EQ(q.buffers.size(), 3u);
}

TEST(PlanMemory, ReluOverAValueReadLaterIsNotInPlace) {
  ir::Module m = parseModule(R"(graph @g {
  input %x : f32[N,4,8,8]{nchw}
  param %w : f32[4,4,3,3]{oihw}
  %c = conv2d(%x, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %r = relu(%c) : f32[N,4,8,8]{nchw}
  %y = add(%r, %c) : f32[N,4,8,8]{nchw}
  output %y
}
)");
  const MemoryPlan p = plan(m.graph);
  EXPECT_EQ(planOf(p, m.graph, "r").alias, AliasKind::None);
  EXPECT_FALSE(bytesOverlap(planOf(p, m.graph, "r"), planOf(p, m.graph, "c")));
  EXPECT_EQ(planOf(p, m.graph, "y").alias, AliasKind::InPlace);  // both operands die there
}

TEST(PlanMemory, ViewsShareTheBufferAndKeepItAlive) {
  ir::Module m = parseModule(R"(graph @g {
  input %x : f32[N,4,4,4]{nchw}
  param %w : f32[4,4,1,1]{oihw}
  %xv = flatten(%x) {axis=1} : f32[N,64]{nc}
  %c = conv2d(%x, %w) {stride=[1,1], pad=[0,0,0,0], dilation=[1,1], groups=1} : f32[N,4,4,4]{nchw}
  %v = flatten(%c) {axis=1} : f32[N,64]{nc}
  %vv = reshape(%v) {shape=[-1,4,16]} : f32[N,4,16]{ncw}
  %r = relu(%c) : f32[N,4,4,4]{nchw}
  %rv = flatten(%r) {axis=1} : f32[N,64]{nc}
  %s = add(%rv, %xv) : f32[N,64]{nc}
  output %s, %vv
}
)");
  const MemoryPlan p = plan(m.graph);
  const ValuePlan& c = planOf(p, m.graph, "c");
  const ValuePlan& v = planOf(p, m.graph, "v");
  const ValuePlan& vv = planOf(p, m.graph, "vv");
  EXPECT_EQ(v.alias, AliasKind::View);
  EXPECT_EQ(v.aliasOf, value(m.graph, "c").id());
  EXPECT_EQ(vv.alias, AliasKind::View);
  EXPECT_EQ(vv.aliasOf, value(m.graph, "v").id());
  EXPECT_EQ(v.offset, c.offset);
  EXPECT_EQ(vv.offset, c.offset);
  EXPECT_EQ(v.buffer, c.buffer);
  EXPECT_EQ(p.buffers[c.buffer].lastUse, p.numNodes);  // %vv is a graph output
  // %c's own last use is the relu, but its bytes live on through %vv: no relu in place.
  EXPECT_EQ(c.lastUse, 4);
  EXPECT_EQ(planOf(p, m.graph, "r").alias, AliasKind::None);
  EXPECT_FALSE(bytesOverlap(planOf(p, m.graph, "r"), c));
  // A view of the input is outside the arena like the input.
  const ValuePlan& xv = planOf(p, m.graph, "xv");
  EXPECT_FALSE(xv.inArena);
  EXPECT_EQ(xv.alias, AliasKind::View);
  EXPECT_EQ(xv.aliasOf, value(m.graph, "x").id());
  // Views cost nothing in the naive sum either: c, r, s.
  EXPECT_EQ(p.naiveBytes, 3 * 256);
}

TEST(PlanMemory, GraphOutputsAreNeverOverwritten) {
  ir::Module m = parseModule(R"(graph @g {
  input %x : f32[N,4,8,8]{nchw}
  param %w : f32[4,4,3,3]{oihw}
  %o = conv2d(%x, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %a = relu(%o) : f32[N,4,8,8]{nchw}
  %b = conv2d(%a, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %c = sigmoid(%b) : f32[N,4,8,8]{nchw}
  %d = conv2d(%c, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %e = tanh(%d) : f32[N,4,8,8]{nchw}
  output %e, %o
}
)");
  const MemoryPlan p = plan(m.graph);
  const ValuePlan& o = planOf(p, m.graph, "o");
  EXPECT_EQ(o.lastUse, p.numNodes);
  EXPECT_EQ(planOf(p, m.graph, "a").alias, AliasKind::None);  // %o is read after the run
  for (std::string_view v : {"a", "b", "c", "d", "e"})
    EXPECT_FALSE(bytesOverlap(o, planOf(p, m.graph, v))) << v;
  EXPECT_EQ(planOf(p, m.graph, "e").lastUse, p.numNodes);
}

TEST(PlanMemory, PeakScalesWithTheBatch) {
  ir::Module m = parseModule(kChain);  // 1024 bytes per sample per value: aligned at any batch
  const MemoryPlan one = plan(m.graph);
  for (int64_t batch : {2, 3, 8}) {
    SCOPED_TRACE(batch);
    const MemoryPlan p = plan(m.graph, {.batch = batch});
    EXPECT_EQ(p.batch, batch);
    EXPECT_EQ(p.peakBytes, batch * one.peakBytes);
    EXPECT_EQ(p.naiveBytes, batch * one.naiveBytes);
    EXPECT_EQ(planOf(p, m.graph, "a").bytes, batch * 1024);
  }
  // A graph with a static batch does not depend on the option.
  ir::Module fixed = parseModule(R"(graph @g {
  input %x : f32[2,4]{nc}
  %0 = tanh(%x) : f32[2,4]{nc}
  output %0
}
)");
  EXPECT_EQ(plan(fixed.graph, {.batch = 8}).peakBytes, 64);  // 32 bytes, aligned to 64
  EXPECT_EQ(plan(fixed.graph, {.batch = 8, .alignment = 16}).peakBytes, 32);
}

TEST(PlanMemory, ASizeFunctionPadsValues) {
  ir::Module m = parseModule(kChain);
  MemoryPlanOptions o;
  o.byteSize = [](const ir::Value& v) { return v.type().shape.numElements(1) * 4 + 100; };
  const MemoryPlan p = plan(m.graph, o);
  EXPECT_EQ(planOf(p, m.graph, "a").bytes, 1124);
  EXPECT_EQ(p.peakBytes, 2 * 1152);  // 1124 aligned to 64

  o.byteSize = [](const ir::Value&) { return int64_t{8}; };
  Expected<MemoryPlan> bad = planMemory(m.graph, o);
  ASSERT_FALSE(bad.isOk());
  EXPECT_EQ(bad.message(),
            "test.kir:4:3: memory plan: the size function gives %a : f32[N,4,8,8]{nchw} 8 bytes; "
            "it needs at least 1024 and at most 2^62");
}

TEST(PlanMemory, BadOptionsAndHugeBatchesAreErrors) {
  ir::Module m = parseModule(kChain);
  Expected<MemoryPlan> p = planMemory(m.graph, {.batch = 0});
  ASSERT_FALSE(p.isOk());
  EXPECT_EQ(p.message(), "memory plan: batch must be >= 1, got 0");
  p = planMemory(m.graph, {.alignment = 48});
  ASSERT_FALSE(p.isOk());
  EXPECT_EQ(p.message(), "memory plan: alignment must be a power of two up to 2^30, got 48");
  p = planMemory(m.graph, {.batch = int64_t{1} << 60});
  ASSERT_FALSE(p.isOk());
  EXPECT_EQ(p.message(),
            "test.kir:4:3: memory plan: %a : f32[N,4,8,8]{nchw} needs more than "
            "2^62 bytes at batch 1152921504606846976");
  // Each value fits (2^62 bytes), two of them do not.
  p = planMemory(m.graph, {.batch = int64_t{1} << 52});
  ASSERT_FALSE(p.isOk());
  EXPECT_EQ(p.message(),
            "memory plan: the arena of @chain exceeds 2^62 bytes at batch 4503599627370496");
}

TEST(PlanMemory, AnEmptyGraphHasAnEmptyArena) {
  ir::Module m = parseModule(R"(graph @g {
  input %x : f32[N,4]{nc}
  output %x
}
)");
  const MemoryPlan p = plan(m.graph);
  EXPECT_EQ(p.peakBytes, 0);
  EXPECT_EQ(p.naiveBytes, 0);
  EXPECT_TRUE(p.buffers.empty());
}

// ---- the checker ------------------------------------------------------------

class VerifyPlan : public ::testing::Test {
 protected:
  void SetUp() override {
    m_ = parseModule(R"(graph @g {
  input %x : f32[N,4,8,8]{nchw}
  param %w : f32[4,4,3,3]{oihw}
  %a = conv2d(%x, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %b = conv2d(%a, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  %r = relu(%b) : f32[N,4,8,8]{nchw}
  %v = flatten(%r) {axis=1} : f32[N,256]{nc}
  %c = conv2d(%r, %w) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,8,8]{nchw}
  output %c, %v
}
)");
    p_ = plan(m_.graph);
    ASSERT_TRUE(verifyPlan(m_.graph, p_).isOk());
  }
  ValuePlan& at(std::string_view name) { return p_.values[value(m_.graph, name).id()]; }
  std::string rejected() {
    Status s = verifyPlan(m_.graph, p_);
    EXPECT_FALSE(s.isOk()) << "the checker accepted:\n" << formatPlan(m_.graph, p_);
    return s.message();
  }
  ir::Module m_;
  MemoryPlan p_;
};

TEST_F(VerifyPlan, RejectsTwoLiveValuesInOneRegion) {
  // %a and %b are both live at node 1 (the conv reading %a writes %b).
  at("b").offset = at("a").offset;
  EXPECT_EQ(rejected(),
            "memory plan: %a (bytes [0, 1024)) and %b (bytes [0, 1024)) overlap and are "
            "both live at node 1 (conv2d)");
}

TEST_F(VerifyPlan, RejectsAPartialOverlap) {
  at("b").offset = at("a").offset + 512;
  p_.peakBytes += 1024;
  EXPECT_NE(rejected().find("overlap and are both live at node 1"), std::string::npos);
}

TEST_F(VerifyPlan, RejectsInPlaceForAnOpThatCannotRunInPlace) {
  // %c = conv2d(%r): %r dies there, but a convolution reads neighbours it would overwrite.
  // (%v, the view of %r, is a graph output, so give it its own bytes first.)
  at("v").alias = AliasKind::None;
  at("v").offset = p_.peakBytes;
  p_.peakBytes += 1024;
  ASSERT_TRUE(verifyPlan(m_.graph, p_).isOk()) << "a copy instead of a view is a valid plan";
  at("c").offset = at("r").offset;
  EXPECT_NE(rejected().find("%r (bytes"), std::string::npos);
}

TEST_F(VerifyPlan, RejectsWritingOverAValueStillViewed) {
  // %c may not overwrite %r: %v views %r's bytes and is read after the run.
  at("c").offset = at("r").offset;
  EXPECT_NE(rejected().find("overlap and are both live"), std::string::npos);
}

TEST_F(VerifyPlan, RejectsAViewAwayFromItsOperand) {
  at("v").offset = p_.peakBytes;
  p_.peakBytes += 1024;
  EXPECT_EQ(rejected(), "memory plan: %v (flatten) is planned as a view of value #" +
                            std::to_string(value(m_.graph, "r").id()) +
                            " but is not a reshape/flatten of it at its offset");
}

TEST_F(VerifyPlan, RejectsBadPlacementsAndRanges) {
  const MemoryPlan good = p_;
  at("a").offset += 8;
  EXPECT_NE(rejected().find("64-aligned"), std::string::npos);
  p_ = good;
  at("a").bytes = 1000;
  EXPECT_NE(rejected().find("needs 1024 bytes"), std::string::npos);
  p_ = good;
  at("c").offset = p_.peakBytes;
  EXPECT_NE(rejected().find("inside the"), std::string::npos);
  p_ = good;
  at("a").lastUse = 0;
  EXPECT_EQ(rejected(),
            "memory plan: %a is planned live over [0, 0], the graph has it live over [0, 1]");
  p_ = good;
  at("x").inArena = true;
  EXPECT_EQ(rejected(), "memory plan: value #" + std::to_string(value(m_.graph, "x").id()) +
                            " (%x) is in the arena but no node of @g defines it");
  p_ = good;
  at("b").inArena = false;
  EXPECT_EQ(rejected(), "memory plan: %b (conv2d) is not in the arena");
  p_ = good;
  p_.values.pop_back();
  EXPECT_NE(rejected().find("value ids"), std::string::npos);
  p_ = good;
  p_.numNodes = 3;
  EXPECT_EQ(rejected(), "memory plan: it is for 3 nodes, the graph has 5");
}

// ---- the pass and its report ------------------------------------------------

TEST(PlanMemoryPass, ReportFollowsTheDumpAndTheDumpParses) {
  ir::Module m = parseModule(kChain);
  PassManagerOptions o;
  o.passes = {"plan-memory"};
  o.printAfter = {"plan-memory"};
  o.dumpDir =
      (std::filesystem::temp_directory_path() / ("kiln_plan_memory_" + std::to_string(::getpid())))
          .string();
  std::string out;
  PassManager pm(o, PassEnv{}, [&](std::string_view s) { out += s; });
  ASSERT_TRUE(pm.run(m).isOk());
  ASSERT_EQ(pm.reports().size(), 1u);
  EXPECT_EQ(pm.reports()[0].pass, "plan-memory");
  EXPECT_NE(out.find("}\n// plan-memory report:\n// value  op "), std::string::npos) << out;
  EXPECT_NE(out.find("\n// peak 2048 bytes (2.00 KiB), naive 5120 bytes (5.00 KiB), peak/naive "
                     "0.400\n"),
            std::string::npos)
      << out;
  const std::string dumped =
      testing::readFile(std::filesystem::path(o.dumpDir) / "01-plan-memory.kir");
  std::filesystem::remove_all(o.dumpDir);
  EXPECT_NE(dumped.find("// plan-memory report:"), std::string::npos);
  for (const std::string& text : {out, dumped}) {
    Expected<ir::Graph> g = ir::parseGraph(text, "dump.kir");
    ASSERT_TRUE(g.isOk()) << g.message();
    EXPECT_EQ(ir::printGraph(*g), ir::printGraph(m.graph));
  }
}

TEST(PlanMemoryPass, DoesNotChangeTheGraph) {
  ir::Module m = parseModule(kChain);
  const std::string before = ir::printGraph(m.graph);
  PlanMemory pass;
  ASSERT_TRUE(pass.run(m).isOk());
  EXPECT_EQ(ir::printGraph(m.graph), before);
  EXPECT_EQ(pass.plan().peakBytes, 2048);
  EXPECT_EQ(pass.report(), formatPlan(m.graph, pass.plan()));
  EXPECT_EQ(defaultPipeline().back(), "plan-memory");
}

// ---- random graphs and the model zoo -----------------------------------------

/// A random DAG over f32[N,4,4,4] values: unary and binary elementwise ops, 1x1 convs,
/// flatten/reshape views (and back), pools, concat/split pairs; random graph outputs.
ir::Graph randomGraph(uint32_t seed) {
  std::mt19937 rng(seed);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  ir::Graph g("random");
  const ir::TensorType t = ir::makeType(ir::DType::F32, {ir::kBatch, 4, 4, 4});
  std::vector<ir::Value*> pool{g.addInput("x", t)};
  ir::Value* w = g.addWeight(ir::ValueKind::Param, "w", ir::makeType(ir::DType::F32, {4, 4, 1, 1}));
  auto create = [&](ir::OpKind k, std::vector<ir::Value*> operands,
                    ir::Attrs attrs = ir::NoAttrs{}) {
    Expected<ir::Node*> n = g.createNode(k, std::move(operands), std::move(attrs));
    EXPECT_TRUE(n.isOk()) << n.message();
    return *n;
  };
  const int numNodes = 4 + static_cast<int>(pick(24));
  for (int i = 0; i < numNodes; ++i) {
    ir::Value* a = pool[pick(pool.size())];
    ir::Value* b = pool[pick(pool.size())];
    switch (pick(7)) {
      case 0:
        pool.push_back(create(ir::OpKind::Relu, {a})->result());
        break;
      case 1:
        pool.push_back(create(pick(2) ? ir::OpKind::Add : ir::OpKind::Mul, {a, b})->result());
        break;
      case 2: {
        ir::Conv2dAttrs c;
        pool.push_back(create(ir::OpKind::Conv2d, {a, w}, c)->result());
        break;
      }
      case 3: {  // view there and back: flatten then reshape
        ir::AxisAttrs f;
        f.axis = 1;
        ir::Value* flat = create(ir::OpKind::Flatten, {a}, f)->result();
        ir::ReshapeAttrs r;
        r.shape = {-1, 4, 4, 4};
        pool.push_back(create(ir::OpKind::Reshape, {flat}, r)->result());
        break;
      }
      case 4: {  // a smaller value broadcast back
        ir::Value* s = create(ir::OpKind::GlobalAvgPool, {a})->result();
        pool.push_back(
            create(ir::OpKind::ChannelScale, {b, create(ir::OpKind::Sigmoid, {s})->result()})
                ->result());
        break;
      }
      case 5: {
        ir::AxisAttrs ax;
        ax.axis = 1;
        ir::Value* cat = create(ir::OpKind::Concat, {a, b}, ax)->result();
        ir::SplitAttrs sp;
        sp.axis = 1;
        sp.sizes = {4, 4};
        ir::Node* split = create(ir::OpKind::Split, {cat}, sp);
        pool.push_back(split->result(pick(2)));
        break;
      }
      default:
        pool.push_back(create(ir::OpKind::Tanh, {a})->result());
        break;
    }
  }
  g.addOutput(pool.back());
  for (size_t i = 1; i < pool.size(); ++i)
    if (pick(6) == 0) g.addOutput(pool[i]);
  return g;
}

TEST(PlanMemory, RandomGraphsPlanAndVerify) {
  int inPlace = 0, views = 0;
  for (uint32_t seed = 0; seed < 300; ++seed) {
    SCOPED_TRACE(seed);
    const ir::Graph g = randomGraph(seed);
    // Padded sizes (as a blocked layout would need) and byte alignment change the packing.
    MemoryPlanOptions padded{.batch = 2, .alignment = 1};
    padded.byteSize = [](const ir::Value& v) {
      return v.type().shape.numElements(2) * 4 + v.id() % 5 * 12;
    };
    for (const MemoryPlanOptions& o :
         {MemoryPlanOptions{}, MemoryPlanOptions{.batch = 3}, padded}) {
      const MemoryPlan p = plan(g, o);
      ASSERT_FALSE(::testing::Test::HasFailure()) << ir::printGraph(g);
      EXPECT_LE(p.lowerBoundBytes, p.peakBytes);
      EXPECT_LE(p.peakBytes, p.naiveBytes);
      inPlace += p.numInPlace;
      for (const ValuePlan& v : p.values) views += v.alias == AliasKind::View;
    }
  }
  EXPECT_GT(inPlace, 100);  // the generator exercises both kinds of reuse
  EXPECT_GT(views, 100);
}

/// -O2; without `fuse`, minus the fuse-* passes (so activations stay nodes and run in place).
void runDefaultPipeline(ir::Module& m, bool fuse) {
  backends::reference::ReferenceEvaluator evaluator;
  PassManagerOptions o;
  for (const std::string& name : defaultPipeline())
    if (fuse || !name.starts_with("fuse-")) o.passes.push_back(name);
  PassManager pm(o, PassEnv{&evaluator}, nullptr);
  Status st = pm.run(m);
  ASSERT_TRUE(st.isOk()) << st.message();
}

TEST(PlanMemory, EveryRegisteredModelPlansAndVerifies) {
  for (const models::ModelInfo& info : models::allModels()) {
    SCOPED_TRACE(std::string(info.name));
    models::ModelConfig c = models::defaultConfig(info);
    c.resolution = std::min<int64_t>(c.resolution, 64);
    Expected<ir::Module> m = info.build(c);
    ASSERT_TRUE(m.isOk()) << m.message();
    // Without weights fold-bn leaves the batch_norms (FoldedModelsPlanAndVerify folds them).
    runDefaultPipeline(*m, /*fuse=*/false);
    for (int64_t batch : {1, 2}) {
      const MemoryPlan p = plan(m->graph, {.batch = batch});
      EXPECT_LT(p.peakBytes, p.naiveBytes);
      EXPECT_LE(p.lowerBoundBytes, p.peakBytes);
      EXPECT_GT(p.numInPlace, 0);
    }
  }
}

// With weights -O2 folds the batch_norms: conv -> relu runs in place; with the fusion passes
// the relus are post-ops and the residual convs write over their summands instead.
TEST(PlanMemory, FoldedModelsPlanAndVerify) {
  for (std::string_view name : {"resnet18", "mobilenet_v2"}) {
    SCOPED_TRACE(std::string(name));
    for (bool fuse : {false, true}) {
      SCOPED_TRACE(fuse ? "with fusion" : "without fusion");
      Expected<ir::Module> m = models::buildModel(name, {.resolution = 32, .numClasses = 10});
      ASSERT_TRUE(m.isOk()) << m.message();
      ir::initMissingWeights(m->graph, m->weights, 1);
      runDefaultPipeline(*m, fuse);
      for (const auto& n : m->graph.nodes()) ASSERT_NE(n->kind(), ir::OpKind::BatchNorm);
      const MemoryPlan p = plan(m->graph);
      int reluInPlace = 0, sumInPlace = 0;
      for (const auto& n : m->graph.nodes()) {
        const bool inPlace = p.values[n->result()->id()].alias == AliasKind::InPlace;
        if (n->kind() == ir::OpKind::Relu || n->kind() == ir::OpKind::Relu6) reluInPlace += inPlace;
        if (n->kind() == ir::OpKind::Conv2d && ir::convSummand(*n)) sumInPlace += inPlace;
      }
      if (fuse) {
        EXPECT_EQ(reluInPlace, 0);  // no relu is left
        EXPECT_GT(sumInPlace, 5);
        EXPECT_LT(p.peakBytes, p.naiveBytes / 2);
      } else {
        EXPECT_GT(reluInPlace, 5);
        EXPECT_LT(p.peakBytes, p.naiveBytes / 4);
      }
    }
  }
}

}  // namespace
}  // namespace kiln::passes
