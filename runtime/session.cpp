// Session: optimize once, compile once for the chosen backend, run from any thread.
#include "runtime/session.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "backends/onednn/onednn.h"
#include "backends/reference/reference.h"
#include "passes/autodiff.h"
#include "passes/pass_manager.h"

namespace kiln::runtime {

namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string valueLabel(const ir::Value& v) {
  return v.name().empty() ? fmt::format("%{}", v.id()) : "%" + v.name();
}

/// The batch size N is bound to by (already checked) inputs; 1 when nothing is symbolic.
int64_t batchOf(const ir::Graph& g, std::span<const ir::Tensor> inputs) {
  for (size_t i = 0; i < g.inputs().size() && i < inputs.size(); ++i) {
    const ir::Shape& s = g.inputs()[i]->type().shape;
    for (size_t d = 0; d < s.rank(); ++d)
      if (s[d] == ir::kBatch && d < inputs[i].shape().rank()) return inputs[i].shape()[d];
  }
  return 1;
}

/// Sums step times per node of an onednn program.
class StepTimer final : public backends::onednn::RunObserver {
 public:
  explicit StepTimer(size_t nodes) : ms_(nodes, 0.0) {}
  void stepBegin(size_t) override { start_ = Clock::now(); }
  void stepEnd(size_t node, bool) override { ms_[node] += msSince(start_); }
  const std::vector<double>& ms() const { return ms_; }

 private:
  std::vector<double> ms_;
  Clock::time_point start_;
};

}  // namespace

int resolveThreads(int requested) {
  if (requested > 0) return requested;
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n > 0 && n < 4096) return static_cast<int>(n);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? static_cast<int>(hw) : 1;
}

namespace {

/// Output indices of a train step's `new:<weight>` outputs.
std::vector<size_t> stateOutputs(const ir::Graph& g) {
  std::vector<size_t> out;
  for (size_t i = 0; i < g.outputs().size(); ++i) {
    const std::string& name = g.outputs()[i]->name();
    if (!name.starts_with(passes::kNewPrefix)) continue;
    const ir::Value* w = g.findValue(name.substr(passes::kNewPrefix.size()));
    if (w && w->isWeight()) out.push_back(i);
  }
  return out;
}

}  // namespace

class Session::Impl {
 public:
  std::shared_ptr<ir::Module> module;
  SessionOptions options;
  SessionStats stats;
  std::unique_ptr<backends::onednn::Program> program;  // backend "onednn"
  std::vector<size_t> state;                           // a train step's `new:` outputs
  mutable std::mutex stateMutex;                       // serializes train steps

  /// A train step: runs, writes the state back, and (copyState) returns it as outputs.
  Expected<std::vector<ir::Tensor>> trainStep(std::span<const ir::Tensor> inputs,
                                              std::vector<NodeProfile>* profile,
                                              bool copyState) const {
    std::lock_guard<std::mutex> lock(stateMutex);
    KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> outputs, run(inputs, profile));
    const auto& outs = module->graph.outputs();
    if (!program) {
      KILN_TRY(passes::applyStateUpdates(module->graph, outputs, module->weights));
      if (!copyState)
        for (size_t i : state) outputs[i] = ir::Tensor();
      return outputs;
    }
    // onednn wrote the state into the store's tensors.
    if (copyState)
      for (size_t i : state)
        outputs[i] = module->weights.find(outs[i]->name().substr(passes::kNewPrefix.size()))->clone();
    return outputs;
  }

  Expected<std::vector<ir::Tensor>> run(std::span<const ir::Tensor> inputs,
                                        std::vector<NodeProfile>* profile) const {
    if (program) return runOneDnn(inputs, profile);
    if (!profile) return backends::reference::run(*module, inputs);
    profile->clear();
    const int64_t batch = batchOf(module->graph, inputs);
    return backends::reference::run(*module, inputs, [&](const ir::Node& n, double ms) {
      const ir::Value& r = *n.result(0);
      profile->push_back(NodeProfile{valueLabel(r), std::string(n.opName()),
                                     std::string(ir::layoutName(r.type().layout)),
                                     r.type().shape.bind(batch).str(), ms, 0.0});
    });
  }

  Expected<std::vector<ir::Tensor>> runOneDnn(std::span<const ir::Tensor> inputs,
                                              std::vector<NodeProfile>* profile) const {
    if (!profile) return program->run(inputs);
    const auto nodes = program->nodes();
    StepTimer timer(nodes.size());
    KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> outputs, program->run(inputs, &timer));
    const int64_t batch = batchOf(module->graph, inputs);
    profile->clear();
    for (size_t i = 0; i < nodes.size(); ++i) {
      const ir::Value& r = *nodes[i].node->result(0);
      profile->push_back(NodeProfile{nodes[i].label, nodes[i].op,
                                     std::string(ir::layoutName(r.type().layout)),
                                     r.type().shape.bind(batch).str(), timer.ms()[i],
                                     nodes[i].flopsPerSample * static_cast<double>(batch)});
    }
    return outputs;
  }
};

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

Expected<std::unique_ptr<Session>> Session::create(ir::Module module, const SessionOptions& options) {
  const auto start = Clock::now();
  if (options.backend != "reference" && options.backend != "onednn")
    return error("backend '{}' is not available (known: onednn, reference)", options.backend);
  if (options.batch < 1) return error("the batch size must be at least 1, got {}", options.batch);
  if (options.threads < 0) return error("the thread count must not be negative, got {}", options.threads);
  KILN_TRY(ir::checkWeightBinding(module.graph, module.weights, /*strict=*/false));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (options.optimize) {
    backends::reference::ReferenceEvaluator evaluator;
    passes::PassManagerOptions pmo;
    pmo.passes = passes::defaultPipeline();
    // select-layout asks the backend that will run the graph; the reference backend runs
    // any layout (through row-major copies), so it gets the rule-based choice.
    const backends::onednn::LayoutPolicy onednnLayouts(options.batch);
    passes::PassEnv env{&evaluator};
    if (options.backend == "onednn") env.layoutPolicy = &onednnLayouts;
    passes::PassManager pm(pmo, env, [](std::string_view) {});
    KILN_TRY(pm.run(module));
  }
  impl->state = stateOutputs(module.graph);
  // A train step writes its state into the store, and setWeights writes any param or buffer:
  // its own copies, not the caller's tensors (with every param updated, that is all of them).
  if (!impl->state.empty())
    for (const ir::Value* w : module.graph.weights())
      if (w->kind() != ir::ValueKind::Const)
        if (const ir::Tensor* t = module.weights.find(w->name()))
          module.weights.set(w->name(), t->clone());
  impl->module = std::make_shared<ir::Module>(std::move(module));
  if (options.backend == "onednn") {
    backends::onednn::CompileOptions co;
    co.batch = options.batch;
    co.threads = resolveThreads(options.threads);
    co.stateInPlace = !impl->state.empty();
    KILN_ASSIGN_OR_RETURN(impl->program, backends::onednn::Program::compile(impl->module, co));
    const backends::onednn::ProgramStats ps = impl->program->stats();
    impl->stats.weightBytes = ps.weightBytes;
    impl->stats.arenaBytes = ps.arenaBytes;
  } else {
    for (const auto& [name, t] : impl->module->weights.entries())
      impl->stats.weightBytes += static_cast<int64_t>(t.nbytes());
  }
  impl->stats.compileMs = msSince(start);
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

Expected<std::vector<ir::Tensor>> Session::run(std::span<const ir::Tensor> inputs) const {
  if (!impl_->state.empty()) return impl_->trainStep(inputs, nullptr, /*copyState=*/true);
  return impl_->run(inputs, nullptr);
}

Expected<std::vector<ir::Tensor>> Session::step(std::span<const ir::Tensor> inputs) const {
  if (!impl_->state.empty()) return impl_->trainStep(inputs, nullptr, /*copyState=*/false);
  return impl_->run(inputs, nullptr);
}

Expected<std::vector<ir::Tensor>> Session::profile(std::span<const ir::Tensor> inputs,
                                                   std::vector<NodeProfile>& nodes) const {
  if (!impl_->state.empty()) return impl_->trainStep(inputs, &nodes, /*copyState=*/true);
  return impl_->run(inputs, &nodes);
}

bool Session::isTrainStep() const { return !impl_->state.empty(); }

Status Session::setWeights(const ir::WeightStore& values) const {
  std::lock_guard<std::mutex> lock(impl_->stateMutex);
  for (const auto& [name, t] : values.entries()) {
    // The backends read (onednn: and write) the store's tensors in place: copy into them.
    const ir::Tensor* live = impl_->module->weights.find(name);
    const ir::Value* w = impl_->module->graph.findValue(name);
    if (!live || !w || !w->isWeight() || w->kind() == ir::ValueKind::Const)
      return error("setWeights: the module has no param or buffer '{}'", name);
    if (live->dtype() != t.dtype() || live->shape() != t.shape())
      return error("setWeights: '{}' is {}{}, the value is {}{}", name,
                   ir::dtypeName(live->dtype()), live->shape().str(), ir::dtypeName(t.dtype()),
                   t.shape().str());
    ir::Tensor dst = *live;  // a handle on the same buffer
    std::memcpy(dst.raw(), t.raw(), t.nbytes());
  }
  return Status::ok();
}

const ir::Module& Session::module() const { return *impl_->module; }
const SessionOptions& Session::options() const { return impl_->options; }

SessionStats Session::stats() const {
  SessionStats s = impl_->stats;
  if (impl_->program) s.arenaBytes = impl_->program->stats().arenaBytes;
  return s;
}

}  // namespace kiln::runtime
