// The C++ API in one file: load a model (.kpb, or .kir with an .npz of weights), compile it once
// with kiln::runtime::Session, run it on an input and print the top-5 classes.
//   classify MODEL.kpb|MODEL.kir [WEIGHTS.npz] [--input X.npy] [--backend onednn|reference]
// Without --input the image is a fixed pattern, x[i] = sin(0.01 i), with batch 1 (the same as
// examples/c_api.c uses, so the two print the same classes).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <string>

#include "ir/parser.h"
#include "ir/proto_io.h"
#include "ir/verifier.h"
#include "runtime/npy.h"
#include "runtime/session.h"

namespace {

using namespace kiln;

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Expected<ir::Module> load(const std::string& model, const std::string& weights) {
  ir::Module m;
  if (endsWith(model, ".kpb")) {
    KILN_ASSIGN_OR_RETURN(m, ir::readKpb(model));
  } else {
    KILN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, ir::readFileBytes(model));
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    KILN_ASSIGN_OR_RETURN(ir::Graph g, ir::parseGraph(text, model));
    KILN_TRY(ir::verify(g));
    m = ir::Module(std::move(g));
  }
  if (!weights.empty()) {
    KILN_ASSIGN_OR_RETURN(ir::WeightStore store, runtime::readNpz(weights));
    for (const auto& [name, t] : store.entries()) m.weights.set(name, t);
  }
  return m;
}

Status classify(int argc, char** argv) {
  std::string model, weights, input, backend = "onednn";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--input" && i + 1 < argc) input = argv[++i];
    else if (a == "--backend" && i + 1 < argc) backend = argv[++i];
    else if (model.empty()) model = a;
    else if (weights.empty()) weights = a;
    else return error("unexpected argument '{}'", a);
  }
  if (model.empty()) return error("usage: classify MODEL.kpb|MODEL.kir [WEIGHTS.npz] [--input X.npy] [--backend B]");
  KILN_ASSIGN_OR_RETURN(ir::Module m, load(model, weights));
  if (m.graph.inputs().size() != 1) return error("{}: expected one input, the graph has {}", model, m.graph.inputs().size());

  ir::Tensor x;
  if (!input.empty()) {
    KILN_ASSIGN_OR_RETURN(x, runtime::readNpy(input));
  } else {
    ir::TensorType t = m.graph.inputs()[0]->type();
    t.shape = t.shape.bind(1);
    t.layout = *ir::defaultLayout(t.shape.rank());
    x = ir::Tensor::zeros(t);
    float* p = x.data<float>();
    for (int64_t i = 0; i < x.numElements(); ++i) p[i] = std::sin(0.01f * static_cast<float>(i));
  }

  runtime::SessionOptions options;
  options.backend = backend;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<runtime::Session> session, runtime::Session::create(std::move(m), options));
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> y, session->run(std::vector<ir::Tensor>{x}));
  const ir::Tensor& logits = y[0];
  const int64_t classes = logits.shape()[logits.shape().rank() - 1];
  const float* p = logits.data<float>();
  std::vector<int64_t> order(static_cast<size_t>(classes));
  std::iota(order.begin(), order.end(), 0);
  const size_t k = std::min<size_t>(5, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<ptrdiff_t>(k), order.end(),
                    [&](int64_t a, int64_t b) { return p[a] > p[b]; });
  for (size_t i = 0; i < k; ++i) std::printf("%zu class %lld score %.4f\n", i + 1, static_cast<long long>(order[i]), p[order[i]]);
  return Status::ok();
}

}  // namespace

int main(int argc, char** argv) {
  const kiln::Status st = classify(argc, argv);
  if (!st.isOk()) {
    std::fprintf(stderr, "error: %s\n", st.message().c_str());
    return 1;
  }
  return 0;
}
