// Loading sources (registry models, .kir, .kpb) and atomic text output for the CLI.
#include "tools/common.h"

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "ir/parser.h"
#include "ir/printer.h"
#include "ir/proto_io.h"
#include "ir/verifier.h"
#include "models/registry.h"
#include "runtime/npy.h"

namespace kiln::tools {

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void addSourceOptions(CLI::App& app, SourceOptions& o, bool withWeights) {
  app.add_option("source", o.source,
                 "model name (see `kiln models`), .kir or .kpb file, or - for stdin")
      ->required();
  app.add_option("--batch", o.batch, "fix the batch size (default: symbolic N)")
      ->check(CLI::PositiveNumber);
  app.add_option("--resolution", o.resolution,
                 "input height/width for registry models (default: the model's)")
      ->check(CLI::PositiveNumber);
  app.add_option("--num-classes", o.numClasses,
                 "classifier outputs for registry models (default: the model's)")
      ->check(CLI::PositiveNumber);
  app.add_option("--in-channels", o.inChannels,
                 "input channels for registry models (default: the model's)")
      ->check(CLI::PositiveNumber);
  if (withWeights) {
    app.add_option("--weights", o.weights, "weights .npz, bound to parameters by name");
    app.add_flag("--random-weights", o.randomWeights,
                 "fill weights that --weights does not provide with seeded random values");
    app.add_option("--seed", o.seed, "seed for --random-weights and --random");
  }
}

void addSessionOptions(CLI::App& app, std::string& backend, int& threads) {
  app.add_option("--backend", backend, "execution backend: onednn (compiled, default) or reference (the oracle)")
      ->check(CLI::IsMember({"onednn", "reference"}));
  app.add_option("--threads", threads, "intra-op threads (default: OMP_NUM_THREADS, else every core)")
      ->check(CLI::NonNegativeNumber);
}

Expected<std::string> readText(const std::string& path) {
  std::ostringstream ss;
  if (path == "-") {
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return error("cannot open '{}': {}", path, std::strerror(errno));
  ss << in.rdbuf();
  if (in.bad()) return error("cannot read '{}': {}", path, std::strerror(errno));
  return ss.str();
}

Status writeText(const std::string& path, std::string_view text) {
  if (path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return Status::ok();
  }
  return ir::writeFileAtomic(path, std::as_bytes(std::span(text.data(), text.size())));
}

Status writeModule(const std::string& path, const ir::Module& m, bool debugLocations) {
  if (endsWith(path, ".kpb")) return ir::writeKpb(path, m);
  return writeText(path, ir::printGraph(m.graph, ir::PrintOptions{debugLocations}));
}

namespace {

Expected<ir::Module> loadRegistryModel(const models::ModelInfo& info, const SourceOptions& o) {
  models::ModelConfig cfg = models::defaultConfig(info);
  cfg.batch = o.batch;
  if (o.resolution) cfg.resolution = o.resolution;
  if (o.numClasses) cfg.numClasses = o.numClasses;
  if (o.inChannels) cfg.inChannels = o.inChannels;
  return info.build(cfg);
}

Expected<ir::Module> loadFile(const SourceOptions& o) {
  if (endsWith(o.source, ".kpb")) return ir::readKpb(o.source);
  KILN_ASSIGN_OR_RETURN(std::string text, readText(o.source));
  KILN_ASSIGN_OR_RETURN(ir::Graph g, ir::parseGraph(text, o.source == "-" ? "<stdin>" : o.source));
  KILN_TRY(ir::verify(g));
  return ir::Module(std::move(g));
}

}  // namespace

bool isFileSource(const std::string& source) {
  return source == "-" || endsWith(source, ".kir") || endsWith(source, ".kpb") ||
         source.find('/') != std::string::npos;
}

Expected<ir::Module> loadSource(const SourceOptions& o) {
  const models::ModelInfo* info = models::findModel(o.source);
  const bool isFile = isFileSource(o.source);
  if (!info && !isFile)
    return error("'{}' is neither a known model (see `kiln models`) nor a .kir/.kpb file",
                 o.source);
  ir::Module m;
  if (info && !isFile) {
    KILN_ASSIGN_OR_RETURN(m, loadRegistryModel(*info, o));
  } else {
    KILN_ASSIGN_OR_RETURN(m, loadFile(o));
  }
  if (!o.weights.empty()) {
    KILN_ASSIGN_OR_RETURN(ir::WeightStore store, runtime::readNpz(o.weights));
    for (const auto& [name, t] : store.entries()) m.weights.set(name, t);
    // Registry models must match the file exactly (like torch's strict load_state_dict);
    // optimized files legitimately reference only some of a store's tensors.
    const bool strict = info && !isFile && !o.randomWeights;
    KILN_TRY(ir::checkWeightBinding(m.graph, m.weights, strict).withContext(o.weights));
  }
  if (o.randomWeights) ir::initMissingWeights(m.graph, m.weights, o.seed);
  return m;
}

}  // namespace kiln::tools
