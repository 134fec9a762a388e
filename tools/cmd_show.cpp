// `kiln show`: lower a registry model (or read a file) and print its IR.
#include <CLI/CLI.hpp>

#include "ir/printer.h"
#include "tools/commands.h"

namespace kiln::tools {

namespace {
struct Options {
  SourceOptions source;
  std::string output = "-";
  bool debugLocations = false;
};
}  // namespace

Action registerShow(CLI::App& app) {
  auto o = std::make_shared<Options>();
  addSourceOptions(app, o->source, /*withWeights=*/true);
  app.add_option("-o,--output", o->output, "write .kir (or .kpb with weights) here instead of stdout");
  app.add_flag("--debug-locations", o->debugLocations, "append loc(\"file\":line:col) to every line");
  return [o]() -> Status {
    KILN_ASSIGN_OR_RETURN(ir::Module m, loadSource(o->source));
    return writeModule(o->output, m, o->debugLocations);
  };
}

}  // namespace kiln::tools
