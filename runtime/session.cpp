// Session: optimize once, compile once for the chosen backend, run from any thread.
#include "runtime/session.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#include "backends/reference/reference.h"
#include "passes/pass_manager.h"

namespace kiln::runtime {

namespace {

double msSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

std::string valueLabel(const ir::Value& v) {
  return v.name().empty() ? fmt::format("%{}", v.id()) : "%" + v.name();
}

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

class Session::Impl {
 public:
  ir::Module module;
  SessionOptions options;
  SessionStats stats;

  Expected<std::vector<ir::Tensor>> run(std::span<const ir::Tensor> inputs,
                                        std::vector<NodeProfile>* profile) const {
    if (!profile) return backends::reference::run(module, inputs);
    profile->clear();
    return backends::reference::run(module, inputs, [&](const ir::Node& n, double ms) {
      const ir::Value& r = *n.result(0);
      profile->push_back(NodeProfile{valueLabel(r), std::string(n.opName()),
                                     std::string(ir::layoutName(r.type().layout)),
                                     r.type().shape.str(), ms, 0.0});
    });
  }
};

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

Expected<std::unique_ptr<Session>> Session::create(ir::Module module, const SessionOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (options.backend != "reference")
    return error("backend '{}' is not available (known: reference)", options.backend);
  KILN_TRY(ir::checkWeightBinding(module.graph, module.weights, /*strict=*/false));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (options.optimize) {
    backends::reference::ReferenceEvaluator evaluator;
    passes::PassManagerOptions pmo;
    pmo.passes = passes::defaultPipeline();
    passes::PassManager pm(pmo, passes::PassEnv{&evaluator}, [](std::string_view) {});
    KILN_TRY(pm.run(module));
  }
  impl->module = std::move(module);
  for (const auto& [name, t] : impl->module.weights.entries())
    impl->stats.weightBytes += static_cast<int64_t>(t.nbytes());
  impl->stats.compileMs = msSince(start);
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

Expected<std::vector<ir::Tensor>> Session::run(std::span<const ir::Tensor> inputs) const {
  return impl_->run(inputs, nullptr);
}

Expected<std::vector<ir::Tensor>> Session::profile(std::span<const ir::Tensor> inputs,
                                                   std::vector<NodeProfile>& nodes) const {
  return impl_->run(inputs, &nodes);
}

const ir::Module& Session::module() const { return impl_->module; }
const SessionOptions& Session::options() const { return impl_->options; }
SessionStats Session::stats() const { return impl_->stats; }

}  // namespace kiln::runtime
