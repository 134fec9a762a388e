// Program: lowers a module once per batch size into a plan (steps with resolved argument
// locations and an arena layout), and runs plans with a pool of execution contexts, each
// holding its own arena, stream and bound memory objects, so runs never allocate for
// activations and may proceed concurrently.
#include "backends/onednn/onednn.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "backends/onednn/arena.h"
#include "backends/onednn/kernels.h"
#include "backends/onednn/lowering.h"
#include "ir/shape_rules.h"
#include "passes/autodiff.h"

namespace kiln::backends::onednn {

using namespace ir;

namespace {

// ---- the lowering table ----

using LowerFn = Status (*)(LowerContext&);
constexpr LowerFn kLower[] = {
#define KILN_OP(e, ...) &lower<OpKind::e>,
#include "ir/ops.def"
#undef KILN_OP
};
static_assert(std::size(kLower) == kNumOps);

// ---- plans ----

/// Where an argument's bytes are at run time.
struct Ref {
  enum class Space : uint8_t { Arena, Input, Fixed };
  Space space = Space::Arena;
  int input = -1;
  int64_t offset = 0;
  std::byte* fixed = nullptr;
};

struct Step {
  dnnl::primitive prim;  // empty: kernel or check
  Kernel kernel;
  Check check;
  std::vector<int> argIds;
  std::vector<Ref> refs;
  std::vector<Md> mds;
  size_t node = 0;
};

struct OutputSpec {
  Ref ref;
  TensorType type;
  size_t bytes = 0;
  bool state = false;  // written into its weight (stateInPlace): returned empty
};

struct AlignedFree {
  void operator()(std::byte* p) const { std::free(p); }
};

/// Everything one run needs that cannot be shared with a concurrent run.
struct ExecContext {
  std::unique_ptr<std::byte, AlignedFree> arena;
  dnnl::stream stream;
  std::vector<dnnl::memory> memories;
  std::vector<std::vector<dnnl_exec_arg_t>> args;  // per step (primitives)
  std::vector<std::vector<std::byte*>> ptrs;       // per step (kernels)
  struct Patch {
    size_t step, arg;
    int input;
    int64_t offset;
  };
  std::vector<Patch> patches;  // arguments in the caller's input tensors
};

class Plan {
 public:
  int64_t batch = 1;
  int64_t arenaBytes = 0;
  std::vector<Step> steps;
  std::vector<OutputSpec> outputs;

  Expected<std::unique_ptr<ExecContext>> acquire(const dnnl::engine& engine) const {
    {
      std::lock_guard<std::mutex> lock(poolMutex_);
      if (!pool_.empty()) {
        auto c = std::move(pool_.back());
        pool_.pop_back();
        return c;
      }
    }
    return makeContext(engine);
  }
  void release(std::unique_ptr<ExecContext> c) const {
    std::lock_guard<std::mutex> lock(poolMutex_);
    pool_.push_back(std::move(c));
  }

 private:
  Expected<std::unique_ptr<ExecContext>> makeContext(const dnnl::engine& engine) const;
  mutable std::mutex poolMutex_;
  mutable std::vector<std::unique_ptr<ExecContext>> pool_;
};

Expected<std::unique_ptr<ExecContext>> Plan::makeContext(const dnnl::engine& engine) const {
  auto c = std::make_unique<ExecContext>();
  const size_t bytes = static_cast<size_t>(FirstFitArena::rounded(arenaBytes));
  c->arena.reset(static_cast<std::byte*>(std::aligned_alloc(FirstFitArena::kAlignment, bytes)));
  if (!c->arena) return error("onednn: cannot allocate a {}-byte arena", bytes);
  try {
    c->stream = dnnl::stream(engine);
    c->args.resize(steps.size());
    c->ptrs.resize(steps.size());
    for (size_t s = 0; s < steps.size(); ++s) {
      const Step& step = steps[s];
      for (size_t a = 0; a < step.refs.size(); ++a) {
        const Ref& r = step.refs[a];
        std::byte* p = nullptr;
        if (r.space == Ref::Space::Arena) p = c->arena.get() + r.offset;
        if (r.space == Ref::Space::Fixed) p = r.fixed;
        if (r.space == Ref::Space::Input) c->patches.push_back({s, a, r.input, r.offset});
        if (step.prim) {
          c->memories.emplace_back(step.mds[a], engine, p);
          c->args[s].push_back(dnnl_exec_arg_t{step.argIds[a], c->memories.back().get()});
        } else {
          c->ptrs[s].push_back(p);
        }
      }
    }
  } catch (const dnnl::error& e) {
    return error("onednn: cannot bind a plan's memory: {}", e.what());
  }
  return c;
}

std::string dtypeShape(const TensorType& t) {
  return fmt::format("{}{}", dtypeName(t.dtype), t.shape.str());
}

/// Checks inputs against the graph and returns the batch size N binds to (1 without N).
Expected<int64_t> bindBatch(const Graph& g, std::span<const Tensor> inputs) {
  if (inputs.size() != g.inputs().size())
    return error("graph @{} has {} inputs, {} tensors were given", g.name(), g.inputs().size(),
                 inputs.size());
  std::optional<int64_t> batch;
  std::string batchFrom;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = *g.inputs()[i];
    const Tensor& t = inputs[i];
    const TensorType& want = v.type();
    auto mismatch = [&](std::string_view extra) {
      return error(v.loc(), "input {}: expected {}, got {}{}", valueName(v), dtypeShape(want),
                   dtypeShape(t.type()), extra);
    };
    if (t.empty()) return error(v.loc(), "input {}: the tensor has no data", valueName(v));
    if (t.dtype() != want.dtype || t.shape().rank() != want.shape.rank()) return mismatch("");
    for (size_t d = 0; d < want.shape.rank(); ++d) {
      if (want.shape[d] != kBatch) {
        if (t.shape()[d] != want.shape[d]) return mismatch("");
      } else if (!batch) {
        batch = t.shape()[d];
        batchFrom = valueName(v);
      } else if (*batch != t.shape()[d]) {
        return mismatch(fmt::format(" (N is {}, bound by {})", *batch, batchFrom));
      }
    }
    if (!sameMemoryOrder(t.layout(), want.layout))
      return error(v.loc(), "input {}: expected layout {{{}}}, got {{{}}}", valueName(v),
                   layoutName(want.layout), layoutName(t.layout()));
  }
  if (batch && *batch < 1) return error("the batch size must be at least 1, got {}", *batch);
  return batch.value_or(1);
}

/// Operand types of a node, for messages: "f32[1,3,8,8]{nchw}, f32[4,3,3,3]{oihw}".
std::string operandTypes(const Node& n, const std::vector<ValueInfo>& values) {
  std::string s;
  for (const Value* o : n.operands()) s += (s.empty() ? "" : ", ") + values[o->id()].type.str();
  return s;
}

}  // namespace

// ---- Program::Impl ----

class Program::Impl {
 public:
  std::shared_ptr<const Module> module;
  CompileOptions options;
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::vector<NodeInfo> nodes;

  mutable std::mutex plansMutex;
  mutable std::map<int64_t, std::unique_ptr<Plan>> plans;
  mutable WeightCache weights;  // guarded by plansMutex
  mutable ProgramStats stats;   // guarded by plansMutex

  Expected<const Plan*> planFor(int64_t batch) const {
    std::lock_guard<std::mutex> lock(plansMutex);
    auto it = plans.find(batch);
    if (it != plans.end()) return it->second.get();
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<Plan> plan, build(batch));
    stats.arenaBytes = plan->arenaBytes;
    stats.steps = static_cast<int64_t>(plan->steps.size());
    return plans.emplace(batch, std::move(plan)).first->second.get();
  }

  Expected<std::unique_ptr<Plan>> build(int64_t batch) const;
  Expected<std::vector<Tensor>> run(std::span<const Tensor> inputs, RunObserver* observer) const;
};

Expected<std::unique_ptr<Plan>> Program::Impl::build(int64_t batch) const {
  const Graph& g = module->graph;
  std::vector<ValueInfo> values(g.numValueIds());
  auto declare = [&](const Value* v) {
    ValueInfo& info = values[v->id()];
    info.type = v->type();
    info.type.shape = v->type().shape.bind(batch);
    info.md = mdFor(info.type);
  };
  for (size_t i = 0; i < g.inputs().size(); ++i) {
    const Value* v = g.inputs()[i];
    declare(v);
    values[v->id()].storage = Storage::Input;
    values[v->id()].input = static_cast<int>(i);
  }
  for (const Value* w : g.weights()) {
    declare(w);
    const Tensor* t = module->weights.find(w->name());
    if (!t)
      return error(w->loc(), "{} {}: missing from the weight store", valueKindKeyword(w->kind()),
                   valueName(*w));
    // In a train step params and buffers may change between runs (their updates, or
    // Session::setWeights): read from the store each run, never reordered once.
    values[w->id()].storage =
        options.stateInPlace && w->kind() != ValueKind::Const ? Storage::State : Storage::Fixed;
    values[w->id()].fixed = const_cast<std::byte*>(t->raw());
  }
  for (const auto& n : g.nodes())
    for (const Value* r : n->results()) declare(r);
  // Train-step state: result id -> the weight it replaces.
  std::map<int, const Value*> stateOf;
  if (options.stateInPlace) {
    for (const Value* o : g.outputs()) {
      if (!o->name().starts_with(passes::kNewPrefix) || !o->producer()) continue;
      const Value* w = g.findValue(o->name().substr(passes::kNewPrefix.size()));
      if (!w || !w->isWeight() || stateOf.count(o->id())) continue;
      stateOf[o->id()] = w;
      values[w->id()].storage = Storage::State;
    }
  }

  // Lower every node.
  LowerContext ctx(engine, batch, values, weights);
  std::vector<LoweredNode> lowered;
  lowered.reserve(g.numNodes());
  for (const auto& n : g.nodes()) {
    ctx.begin(*n);
    Status st;
    try {
      st = kLower[static_cast<size_t>(n->kind())](ctx);
    } catch (const dnnl::error& e) {
      st = ctx.fail("oneDNN cannot run it on {}: {}", operandTypes(*n, values), e.what());
    }
    KILN_TRY(st);
    lowered.push_back(ctx.finish());
  }

  // Liveness over the node order: the last node reading each value; outputs live forever,
  // unread results die at their own node.
  constexpr size_t kForever = static_cast<size_t>(-1);
  std::vector<size_t> lastUse(g.numValueIds(), 0);
  {
    size_t i = 0;
    for (const auto& n : g.nodes()) {
      for (const Value* r : n->results()) lastUse[r->id()] = i;
      for (const Value* o : n->operands()) lastUse[o->id()] = i;
      ++i;
    }
    for (const Value* o : g.outputs()) lastUse[o->id()] = kForever;
  }
  auto root = [&](int id) {
    while (values[id].storage == Storage::View) id = values[id].viewOf;
    return id;
  };

  struct Buffer {
    int64_t offset, bytes;
    size_t lastUse;
  };
  std::vector<Buffer> buffers;
  std::vector<int> bufferOf(g.numValueIds(), -1);
  FirstFitArena arena;
  struct StateCopy {
    const Value* result;
    const Value* weight;
    size_t node;
  };
  std::vector<StateCopy> copiesAtEnd;
  auto plan = std::make_unique<Plan>();
  plan->batch = batch;

  auto refOf = [&](const Slot& s, const std::vector<int64_t>& temps) {
    Ref r;
    if (s.kind == Slot::Kind::Temp) {
      r.offset = temps[s.id];
      return r;
    }
    if (s.kind == Slot::Kind::Fixed) {
      r.space = Ref::Space::Fixed;
      r.fixed = s.fixed;
      return r;
    }
    const ValueInfo& v = values[root(s.id)];
    if (v.storage == Storage::Input) {
      r.space = Ref::Space::Input;
      r.input = v.input;
    } else if (v.storage == Storage::Fixed || v.storage == Storage::State) {
      r.space = Ref::Space::Fixed;
      r.fixed = v.fixed;
    } else {
      r.offset = buffers[bufferOf[root(s.id)]].offset;
    }
    return r;
  };
  auto emit = [&](ProtoStep& p, size_t node, const std::vector<int64_t>& temps) {
    Step s;
    s.prim = std::move(p.prim);
    s.kernel = std::move(p.kernel);
    s.check = std::move(p.check);
    s.node = node;
    for (StepArg& a : p.args) {
      s.argIds.push_back(a.arg);
      s.refs.push_back(refOf(a.slot, temps));
      s.mds.push_back(a.md);
    }
    plan->steps.push_back(std::move(s));
  };

  size_t i = 0;
  for (const auto& n : g.nodes()) {
    LoweredNode& ln = lowered[i];
    bool inPlace = false;
    for (const Value* r : n->results()) {
      const ValueInfo& info = values[r->id()];
      if (info.storage == Storage::View) {
        const int b = bufferOf[root(r->id())];
        bufferOf[r->id()] = b;
        if (b >= 0) buffers[b].lastUse = std::max(buffers[b].lastUse, lastUse[r->id()]);
        continue;
      }
      if (info.storage == Storage::Fixed) {
        // State computed at compile time (the Apply step's zeroed gradient accumulators):
        // copied into its weight by every run.
        if (auto st = stateOf.find(r->id()); st != stateOf.end()) copiesAtEnd.push_back({r, st->second, i});
        continue;
      }
      if (info.storage != Storage::Arena) continue;
      const int64_t bytes = static_cast<int64_t>(info.md.get_size());
      if (auto st = stateOf.find(r->id()); st != stateOf.end()) {
        // Written straight into the state when no later node reads the old value and the
        // node reads its state operands elementwise before writing (else copied at the end).
        const Value* w = st->second;
        const bool readsOld = std::find(n->operands().begin(), n->operands().end(), w) !=
                              n->operands().end();
        if (lastUse[w->id()] <= i && (!readsOld || ln.stateInPlace) &&
            values[w->id()].md == info.md) {
          ValueInfo& v = values[r->id()];
          v.storage = Storage::State;
          v.fixed = values[w->id()].fixed;
          continue;
        }
        copiesAtEnd.push_back({r, w, i});
      }
      if (ln.inPlace >= 0 && r == n->result(0)) {
        const Value* o = n->operand(ln.inPlace);
        const int b = bufferOf[root(o->id())];
        bool ok = b >= 0 && values[root(o->id())].storage == Storage::Arena &&
                  buffers[b].lastUse == i && buffers[b].bytes == bytes && values[o->id()].md == info.md;
        for (size_t k = 0; ok && k < n->numOperands(); ++k)
          if (static_cast<int>(k) != ln.inPlace && bufferOf[root(n->operand(k)->id())] == b) ok = false;
        if (ok) {
          bufferOf[r->id()] = b;
          buffers[b].lastUse = lastUse[r->id()];
          inPlace = true;
          continue;
        }
      }
      bufferOf[r->id()] = static_cast<int>(buffers.size());
      buffers.push_back(Buffer{arena.allocate(bytes), bytes, lastUse[r->id()]});
    }
    std::vector<int64_t> temps;
    for (int64_t bytes : ln.temps) temps.push_back(arena.allocate(bytes));
    if (ln.copyIfNotInPlace && !inPlace) emit(*ln.copyIfNotInPlace, i, temps);
    for (ProtoStep& p : ln.steps) emit(p, i, temps);
    for (size_t t = 0; t < temps.size(); ++t) arena.release(temps[t], ln.temps[t]);
    // Release buffers whose last reader was this node (each once).
    auto releaseIfDead = [&](const Value* v) {
      const int b = bufferOf[v->id()];
      if (b < 0 || buffers[b].lastUse != i) return;
      arena.release(buffers[b].offset, buffers[b].bytes);
      buffers[b].lastUse = kForever - 1;  // released
    };
    for (const Value* o : n->operands()) releaseIfDead(o);
    for (const Value* r : n->results()) releaseIfDead(r);
    ++i;
  }
  plan->arenaBytes = arena.size();
  for (const StateCopy& c : copiesAtEnd) {
    const ValueInfo& w = values[c.weight->id()];
    ProtoStep p;
    if (values[c.result->id()].md == w.md) {
      p.kernel = copyKernel(static_cast<int64_t>(w.md.get_size()));
      p.args = {StepArg{0, Slot::value(c.result), Md()}, StepArg{1, Slot::value(c.weight), Md()}};
    } else {
      dnnl::reorder::primitive_desc pd(engine, values[c.result->id()].md, engine, w.md,
                                       LowerContext::attr());
      p.prim = dnnl::primitive(pd.get());
      p.args = {StepArg{DNNL_ARG_FROM, Slot::value(c.result), values[c.result->id()].md},
                StepArg{DNNL_ARG_TO, Slot::value(c.weight), w.md}};
    }
    emit(p, c.node, {});
  }

  for (const Value* o : g.outputs()) {
    const ValueInfo& info = values[o->id()];
    const size_t bytes =
        static_cast<size_t>(info.type.shape.numElements() * elementBytes(info.type));
    if (info.md.get_size() != bytes)
      return error(o->loc(), "output {}: layout {{{}}} pads {} (onednn backend)", valueName(*o),
                   layoutName(info.type.layout), info.type.shape.str());
    plan->outputs.push_back(
        OutputSpec{refOf(Slot::value(o), {}), info.type, bytes, stateOf.count(o->id()) != 0});
  }
  return plan;
}

Expected<std::vector<Tensor>> Program::Impl::run(std::span<const Tensor> inputs,
                                                 RunObserver* observer) const {
  KILN_ASSIGN_OR_RETURN(const int64_t batch, bindBatch(module->graph, inputs));
  KILN_ASSIGN_OR_RETURN(const Plan* plan, planFor(batch));
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<ExecContext> c, plan->acquire(engine));
  struct Release {
    const Plan* plan;
    std::unique_ptr<ExecContext>& c;
    ~Release() { plan->release(std::move(c)); }
  } release{plan, c};

  for (const ExecContext::Patch& p : c->patches) {
    std::byte* data = const_cast<std::byte*>(inputs[p.input].raw()) + p.offset;
    if (plan->steps[p.step].prim)
      dnnl_memory_set_data_handle(const_cast<dnnl_memory_t>(c->args[p.step][p.arg].memory), data);
    else
      c->ptrs[p.step][p.arg] = data;
  }
  if (options.threads > 0) omp_set_num_threads(options.threads);
  for (size_t s = 0; s < plan->steps.size(); ++s) {
    const Step& step = plan->steps[s];
    if (observer) observer->stepBegin(step.node);
    if (step.prim) {
      const std::vector<dnnl_exec_arg_t>& args = c->args[s];
      const dnnl_status_t st = dnnl_primitive_execute(step.prim.get(), c->stream.get(),
                                                      static_cast<int>(args.size()), args.data());
      if (st != dnnl_success) {
        const Node& n = *nodes[step.node].node;
        return error(n.loc(), "{}: oneDNN failed to execute it (status {})", n.opName(),
                     static_cast<int>(st));
      }
    } else if (step.check) {
      KILN_TRY(step.check(c->ptrs[s]));
    } else {
      step.kernel(c->ptrs[s]);
    }
    if (observer) observer->stepEnd(step.node, static_cast<bool>(step.prim));
  }
  if (dnnl_stream_wait(c->stream.get()) != dnnl_success) return error("onednn: stream wait failed");

  std::vector<Tensor> outputs;
  outputs.reserve(plan->outputs.size());
  for (const OutputSpec& o : plan->outputs) {
    if (o.state) {
      outputs.emplace_back();
      continue;
    }
    Tensor t = Tensor::zeros(o.type);
    const std::byte* src = o.ref.space == Ref::Space::Arena   ? c->arena.get() + o.ref.offset
                           : o.ref.space == Ref::Space::Fixed ? o.ref.fixed
                                                              : inputs[o.ref.input].raw() + o.ref.offset;
    if (o.bytes) std::memcpy(t.raw(), src, o.bytes);
    outputs.push_back(std::move(t));
  }
  return outputs;
}

// ---- Program ----

Program::Program(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Program::~Program() = default;

Expected<std::unique_ptr<Program>> Program::compile(std::shared_ptr<const Module> module,
                                                    const CompileOptions& options) {
  if (!module) return error("onednn: no module to compile");
  if (options.batch < 1) return error("onednn: the batch size must be at least 1, got {}", options.batch);
  const Graph& g = module->graph;
  auto checkF32 = [](const Value& v) -> Status {
    if (v.type().dtype != DType::F32)
      return error(v.loc(), "{} is {}: the onednn backend runs f32 graphs (use the reference backend)",
                   valueName(v), v.type().str());
    return Status::ok();
  };
  // i64 only where kernels of ours read or write it: labels and seeds, accuracy counts.
  for (const Value* v : g.inputs())
    if (v->type().dtype != DType::I64) KILN_TRY(checkF32(*v));
  for (const Value* v : g.weights()) KILN_TRY(checkF32(*v));
  for (const auto& n : g.nodes())
    for (const Value* r : n->results())
      if (n->kind() != OpKind::CountCorrect) KILN_TRY(checkF32(*r));
  KILN_TRY(checkWeightBinding(g, module->weights, /*strict=*/false));
  for (const Value* v : g.inputs()) {
    const auto [blockDim, blockSize] = layoutBlock(v->type().layout);
    if (blockDim >= 0 && v->type().shape[blockDim] % blockSize != 0)
      return error(v->loc(), "input {}: {} is not a multiple of the {}-block of {{{}}}", valueName(*v),
                   v->type().shape.str(), blockSize, layoutName(v->type().layout));
  }

  auto impl = std::make_unique<Impl>();
  impl->module = std::move(module);
  impl->options = options;
  for (const auto& n : impl->module->graph.nodes()) {
    NodeInfo info;
    info.node = n.get();
    info.label = n->numResults() ? valueName(*n->result(0)) : std::string(n->opName());
    info.op = std::string(n->opName());
    if (n->kind() == OpKind::Conv2d) info.op = fusedOpName(n->opName(), n->attrs<Conv2dAttrs>().post_ops);
    std::vector<TensorType> in = ir::operandTypes(*n), out;
    for (const Value* r : n->results()) out.push_back(r->type());
    const OpInfo& op = opInfo(n->kind());
    info.flopsPerSample = static_cast<double>(op.cost(OpContext{*n, in, op.name, n->loc()}, out).flops);
    impl->nodes.push_back(std::move(info));
  }
  KILN_TRY(impl->planFor(options.batch).status());
  return std::unique_ptr<Program>(new Program(std::move(impl)));
}

Expected<std::vector<Tensor>> Program::run(std::span<const Tensor> inputs, RunObserver* observer) const {
  return impl_->run(inputs, observer);
}

std::span<const NodeInfo> Program::nodes() const { return impl_->nodes; }

ProgramStats Program::stats() const {
  std::lock_guard<std::mutex> lock(impl_->plansMutex);
  ProgramStats s = impl_->stats;
  // What the plans read: weights from the store as they are, and reordered or computed copies.
  std::set<const std::byte*> used;
  for (const auto& [batch, plan] : impl_->plans)
    for (const Step& step : plan->steps)
      for (const Ref& r : step.refs)
        if (r.space == Ref::Space::Fixed) used.insert(r.fixed);
  auto isUsed = [&](const std::byte* p) { return used.count(p) != 0; };
  s.weightBytes = impl_->weights.bytesUsed(isUsed);
  for (const Value* w : impl_->module->graph.weights()) {
    const Tensor* t = impl_->module->weights.find(w->name());
    if (t && isUsed(t->raw())) s.weightBytes += static_cast<int64_t>(t->nbytes());
  }
  return s;
}

const Module& Program::module() const { return *impl_->module; }

}  // namespace kiln::backends::onednn
