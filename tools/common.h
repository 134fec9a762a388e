// Shared plumbing of the kiln subcommands: loading graphs/models/weights and tensors.
#pragma once

#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ir/module.h"
#include "ir/status.h"

namespace CLI {
class App;
}

namespace kiln::tools {

/// A subcommand registers its options on `app` and returns the action to run when chosen.
using Action = std::function<Status()>;
using Register = Action (*)(CLI::App& app);

/// What a graph argument may name and how to lower it.
struct SourceOptions {
  std::string source;          // model name, .kir, .kpb, or "-" (stdin .kir)
  int64_t batch = -1;          // -1 keeps the symbolic N
  int64_t resolution = 0;      // 0: the model's default
  int64_t numClasses = 0;      // 0: the model's default
  int64_t inChannels = 0;      // 0: the model's default
  std::string weights;         // .npz bound by name
  bool randomWeights = false;  // fill weights the store lacks with seeded random values
  uint64_t seed = 0;
};

/// Adds --batch, --resolution, --num-classes, --in-channels, --weights, --random-weights, --seed.
void addSourceOptions(CLI::App& app, SourceOptions& o, bool withWeights);

/// Whether `source` names a file ("-", *.kir, *.kpb, or a path with '/') rather than a
/// registry model.
bool isFileSource(const std::string& source);

/// Adds --backend (onednn | reference) and --threads for commands that run a runtime::Session.
void addSessionOptions(CLI::App& app, std::string& backend, int& threads);

/// Loads a model from the registry, a .kir/.kpb file or stdin; binds --weights (strict for
/// registry models: every missing/unexpected/mis-shaped key is reported at once).
Expected<ir::Module> loadSource(const SourceOptions& o);

/// Whole file (or stdin for "-") as a string, with "cannot open 'x': reason" errors.
Expected<std::string> readText(const std::string& path);
/// Writes text atomically (temp file + rename); "-" writes stdout.
Status writeText(const std::string& path, std::string_view text);
/// Writes a graph as .kir (text) or .kpb (protobuf with weights) by extension.
Status writeModule(const std::string& path, const ir::Module& m, bool debugLocations);

bool endsWith(std::string_view s, std::string_view suffix);

}  // namespace kiln::tools
