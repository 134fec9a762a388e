// The C API over runtime::Session: opaque handles, status codes and a per-thread last error.
// No exception leaves these functions.
#include "runtime/kiln_c.h"

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/parser.h"
#include "ir/proto_io.h"
#include "ir/verifier.h"
#include "runtime/npy.h"
#include "runtime/session.h"

struct kiln_session {
  std::unique_ptr<kiln::runtime::Session> session;
};

struct kiln_outputs {
  std::vector<kiln::ir::Tensor> tensors;
  std::vector<std::vector<int64_t>> shapes;
};

namespace {

using namespace kiln;

thread_local std::string tLastError;

kiln_status fail(kiln_status code, std::string message) {
  tLastError = std::move(message);
  return code;
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

Expected<ir::Module> loadModel(const std::string& path) {
  if (endsWith(path, ".kpb")) return ir::readKpb(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) return error("cannot open '{}': {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  KILN_ASSIGN_OR_RETURN(ir::Graph g, ir::parseGraph(ss.str(), path));
  KILN_TRY(ir::verify(g));
  return ir::Module(std::move(g));
}

/// `t` in `layout` (C callers hand over and get back row-major data; graphs may declare
/// blocked or permuted layouts for their inputs and outputs).
Expected<ir::Tensor> relayout(const ir::Tensor& t, ir::Layout layout) {
  if (ir::sameMemoryOrder(t.layout(), layout)) return t;
  ir::Graph g;
  ir::Value* x = g.addInput("y", t.type());
  KILN_ASSIGN_OR_RETURN(ir::Node * n, g.createNode(ir::OpKind::Reorder, {x}, ir::ReorderAttrs{layout}));
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> r,
                        backends::reference::evaluateNode(*n, std::vector<ir::Tensor>{t}));
  return r[0];
}

kiln_status create(const char* modelPath, const char* weightsPath, const char* backend, int threads,
                   kiln_session** out) {
  if (!out) return fail(KILN_INVALID_ARGUMENT, "kiln_session_create: session is NULL");
  *out = nullptr;
  if (!modelPath) return fail(KILN_INVALID_ARGUMENT, "kiln_session_create: model_path is NULL");
  if (threads < 0) return fail(KILN_INVALID_ARGUMENT, fmt::format("kiln_session_create: threads is {}", threads));
  runtime::SessionOptions options;
  options.backend = backend ? backend : "onednn";
  options.threads = threads;
  if (options.backend != "onednn" && options.backend != "reference")
    return fail(KILN_INVALID_ARGUMENT,
                fmt::format("kiln_session_create: unknown backend '{}' (known: onednn, reference)", options.backend));
  Expected<ir::Module> m = loadModel(modelPath);
  if (!m) return fail(KILN_LOAD_ERROR, m.message());
  if (weightsPath) {
    Expected<ir::WeightStore> store = runtime::readNpz(weightsPath);
    if (!store) return fail(KILN_LOAD_ERROR, store.message());
    for (const auto& [name, t] : store->entries()) m->weights.set(name, t);
  }
  Expected<std::unique_ptr<runtime::Session>> s = runtime::Session::create(std::move(*m), options);
  if (!s) return fail(KILN_COMPILE_ERROR, s.message());
  *out = new kiln_session{std::move(*s)};
  return KILN_OK;
}

kiln_status run(const kiln_session* session, const kiln_tensor* inputs, size_t numInputs,
                kiln_outputs** out) {
  if (!out) return fail(KILN_INVALID_ARGUMENT, "kiln_session_run: outputs is NULL");
  *out = nullptr;
  if (!session) return fail(KILN_INVALID_ARGUMENT, "kiln_session_run: session is NULL");
  const ir::Graph& g = session->session->module().graph;
  if (numInputs != g.inputs().size())
    return fail(KILN_INVALID_ARGUMENT, fmt::format("kiln_session_run: graph @{} has {} inputs, {} were given",
                                                   g.name(), g.inputs().size(), numInputs));
  if (numInputs && !inputs) return fail(KILN_INVALID_ARGUMENT, "kiln_session_run: inputs is NULL");
  std::vector<ir::Tensor> tensors;
  for (size_t i = 0; i < numInputs; ++i) {
    const kiln_tensor& in = inputs[i];
    const ir::Value& v = *g.inputs()[i];
    const std::string what = fmt::format("kiln_session_run: input {} (%{})", i, v.name());
    if (in.rank < 0 || static_cast<size_t>(in.rank) != v.type().shape.rank() || (in.rank && !in.shape))
      return fail(KILN_INVALID_ARGUMENT, fmt::format("{}: expected rank {}, got {}", what, v.type().shape.rank(), in.rank));
    ir::Shape shape(std::vector<ir::Dim>(in.shape, in.shape + in.rank));
    for (int d = 0; d < in.rank; ++d) {
      const ir::Dim want = v.type().shape[d];
      if (shape[d] < 1 || shape[d] > ir::kMaxDim || (want != ir::kBatch && shape[d] != want))
        return fail(KILN_INVALID_ARGUMENT, fmt::format("{}: expected {}, got {}", what,
                                                       v.type().shape.str(), shape.str()));
    }
    if (Status st = ir::checkShapeLimits(shape); !st.isOk())
      return fail(KILN_INVALID_ARGUMENT, fmt::format("{}: {}", what, st.message()));
    if (!in.data) return fail(KILN_INVALID_ARGUMENT, fmt::format("{}: data is NULL", what));
    ir::Tensor t(ir::DType::F32, shape);
    std::memcpy(t.raw(), in.data, t.nbytes());
    Expected<ir::Tensor> laid = relayout(t, v.type().layout);
    if (!laid) return fail(KILN_INVALID_ARGUMENT, fmt::format("{}: {}", what, laid.message()));
    tensors.push_back(std::move(*laid));
  }
  Expected<std::vector<ir::Tensor>> y = session->session->run(tensors);
  if (!y) return fail(KILN_RUN_ERROR, y.message());
  auto result = std::make_unique<kiln_outputs>();
  for (const ir::Tensor& t : *y) {
    Expected<ir::Tensor> plain =
        relayout(t, ir::defaultLayout(t.shape().rank()).value_or(ir::Layout::Scalar));
    if (!plain) return fail(KILN_RUN_ERROR, plain.message());
    if (plain->dtype() != ir::DType::F32)
      return fail(KILN_RUN_ERROR, fmt::format("kiln_session_run: an output is {}, not f32", plain->type().str()));
    result->shapes.push_back(plain->shape().dims());
    result->tensors.push_back(std::move(*plain));
  }
  *out = result.release();
  return KILN_OK;
}

template <typename F>
kiln_status guarded(F&& f) {
  try {
    tLastError.clear();
    return f();
  } catch (const std::exception& e) {
    return fail(KILN_RUN_ERROR, fmt::format("internal error: {}", e.what()));
  } catch (...) {
    return fail(KILN_RUN_ERROR, "internal error");
  }
}

}  // namespace

extern "C" {

kiln_status kiln_session_create(const char* model_path, const char* weights_path, const char* backend,
                                int threads, kiln_session** session) {
  return guarded([&] { return create(model_path, weights_path, backend, threads, session); });
}

void kiln_session_destroy(kiln_session* session) { delete session; }

size_t kiln_session_num_inputs(const kiln_session* session) {
  return session ? session->session->module().graph.inputs().size() : 0;
}

size_t kiln_session_num_outputs(const kiln_session* session) {
  return session ? session->session->module().graph.outputs().size() : 0;
}

kiln_status kiln_session_run(const kiln_session* session, const kiln_tensor* inputs, size_t num_inputs,
                             kiln_outputs** outputs) {
  return guarded([&] { return run(session, inputs, num_inputs, outputs); });
}

size_t kiln_outputs_count(const kiln_outputs* outputs) { return outputs ? outputs->tensors.size() : 0; }

const float* kiln_outputs_data(const kiln_outputs* outputs, size_t i) {
  return outputs && i < outputs->tensors.size() ? outputs->tensors[i].data<float>() : nullptr;
}

int kiln_outputs_rank(const kiln_outputs* outputs, size_t i) {
  return outputs && i < outputs->shapes.size() ? static_cast<int>(outputs->shapes[i].size()) : -1;
}

const int64_t* kiln_outputs_shape(const kiln_outputs* outputs, size_t i) {
  return outputs && i < outputs->shapes.size() ? outputs->shapes[i].data() : nullptr;
}

void kiln_outputs_destroy(kiln_outputs* outputs) { delete outputs; }

const char* kiln_last_error(void) { return tLastError.c_str(); }

}  // extern "C"
