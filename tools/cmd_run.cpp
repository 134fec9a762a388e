// `kiln run`: run a graph on .npy inputs (or seeded random ones) through a runtime::Session
// and write the outputs.
#include <random>

#include <CLI/CLI.hpp>

#include "runtime/npy.h"
#include "runtime/session.h"
#include "tools/commands.h"

namespace kiln::tools {

namespace {

struct Options {
  SourceOptions source;
  std::vector<std::string> inputs;
  bool random = false;
  std::string output;
  std::string backend = "onednn";
  int threads = 0;
  bool noOptimize = false;
};

std::string outputName(const ir::Value* v, size_t i) {
  return v->name().empty() ? fmt::format("output_{}", i) : v->name();
}

Expected<std::vector<ir::Tensor>> makeInputs(const Options& o, const ir::Graph& g) {
  std::vector<ir::Tensor> tensors;
  if (o.random) {
    if (!o.inputs.empty()) return error("use either --input or --random, not both");
    std::mt19937_64 rng(o.source.seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    const int64_t batch = o.source.batch > 0 ? o.source.batch : 1;
    for (const ir::Value* in : g.inputs()) {
      ir::TensorType t = in->type();
      t.shape = t.shape.bind(batch);
      if (t.dtype != ir::DType::F32)
        return error("--random makes f32 inputs; input %{} is {}", in->name(), t.str());
      ir::Tensor x = ir::Tensor::zeros(t);
      for (float& v : x.span<float>()) v = dist(rng);
      tensors.push_back(std::move(x));
    }
    return tensors;
  }
  if (o.inputs.empty()) return error("give the inputs with --input x.npy (or --random)");
  if (o.inputs.size() == 1 && endsWith(o.inputs[0], ".npz")) {
    KILN_ASSIGN_OR_RETURN(ir::WeightStore store, runtime::readNpz(o.inputs[0]));
    for (const ir::Value* in : g.inputs()) {
      const ir::Tensor* t = store.find(in->name());
      if (!t)
        return error("{}: has no array named '{}' for input %{}", o.inputs[0], in->name(),
                     in->name());
      tensors.push_back(*t);
    }
    return tensors;
  }
  if (o.inputs.size() != g.inputs().size())
    return error("graph @{} has {} inputs, got {} --input files", g.name(), g.inputs().size(),
                 o.inputs.size());
  for (const std::string& path : o.inputs) {
    KILN_ASSIGN_OR_RETURN(ir::Tensor t, runtime::readNpy(path));
    tensors.push_back(std::move(t));
  }
  return tensors;
}

/// The batch size the inputs bind N to (1 when no input dim is symbolic).
int64_t inputBatch(const ir::Graph& g, const std::vector<ir::Tensor>& inputs) {
  for (size_t i = 0; i < g.inputs().size() && i < inputs.size(); ++i) {
    const ir::Shape& s = g.inputs()[i]->type().shape;
    for (size_t d = 0; d < s.rank() && d < inputs[i].shape().rank(); ++d)
      if (s[d] == ir::kBatch && inputs[i].shape()[d] > 0) return inputs[i].shape()[d];
  }
  return 1;
}

void printSummary(const std::string& name, const ir::Tensor& t) {
  fmt::print("%{}: {}", name, t.type().str());
  if (t.dtype() == ir::DType::F32 && t.numElements() > 0) {
    double lo = t.at(0), hi = t.at(0);
    for (int64_t i = 0; i < t.numElements(); ++i) {
      lo = std::min(lo, t.at(i));
      hi = std::max(hi, t.at(i));
    }
    fmt::print("  min {:.6g}  max {:.6g}", lo, hi);
  }
  fmt::print("\n");
}

Status runRun(const Options& o) {
  KILN_ASSIGN_OR_RETURN(ir::Module m, loadSource(o.source));
  if (Status st = ir::checkWeightBinding(m.graph, m.weights, /*strict=*/false); !st.isOk())
    return error("{} (give them with --weights w.npz, or use --random-weights)", st.message());
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> inputs, makeInputs(o, m.graph));
  runtime::SessionOptions so;
  so.backend = o.backend;
  so.threads = o.threads;
  so.optimize = !o.noOptimize;
  so.batch = inputBatch(m.graph, inputs);
  // Outputs keep the names of the graph as given (passes may rename or renumber values).
  std::vector<const ir::Value*> outs(m.graph.outputs().begin(), m.graph.outputs().end());
  std::vector<std::string> names;
  for (size_t i = 0; i < outs.size(); ++i) names.push_back(outputName(outs[i], i));
  const std::string graphName = m.graph.name();
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<runtime::Session> session,
                        runtime::Session::create(std::move(m), so));
  KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> outputs, session->run(inputs));
  for (size_t i = 0; i < outputs.size(); ++i) printSummary(names[i], outputs[i]);
  if (o.output.empty()) return Status::ok();
  if (endsWith(o.output, ".npz")) {
    ir::WeightStore store;
    for (size_t i = 0; i < outputs.size(); ++i) store.set(names[i], outputs[i]);
    return runtime::writeNpz(o.output, store);
  }
  if (outputs.size() != 1)
    return error("graph @{} has {} outputs: write them with -o out.npz", graphName, outputs.size());
  return runtime::writeNpy(o.output, outputs[0]);
}

}  // namespace

Action registerRun(CLI::App& app) {
  auto o = std::make_shared<Options>();
  addSourceOptions(app, o->source, /*withWeights=*/true);
  app.add_option("--input,-i", o->inputs,
                 "input .npy per graph input (in order), or one .npz by name");
  app.add_flag("--random", o->random, "seeded N(0,1) inputs (batch from --batch, default 1)");
  app.add_option("-o,--output", o->output, "output .npy (one output) or .npz (all outputs by name)");
  addSessionOptions(app, o->backend, o->threads);
  app.add_flag("--no-optimize", o->noOptimize, "run the graph as given (skip the -O2 pipeline)");
  return [o] { return runRun(*o); };
}

}  // namespace kiln::tools
