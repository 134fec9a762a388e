// `kiln models`: the zoo with parameters and MACs computed from the IR, beside published figures.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "ir/graph.h"
#include "models/labels.h"
#include "models/registry.h"
#include "tools/commands.h"

namespace kiln::tools {

namespace {

std::string thousands(int64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string giga(int64_t v) {
  if (v <= 0) return "-";
  return v >= 1'000'000'000 ? fmt::format("{:.2f} G", v / 1e9) : fmt::format("{:.1f} M", v / 1e6);
}

nlohmann::json preprocessJson(const models::Preprocess& p) {
  return {{"resize", p.resize},
          {"crop", p.crop},
          {"interpolation", p.interpolation == models::Resample::Bicubic ? "bicubic" : "bilinear"},
          {"channels", p.channels},
          {"mean", std::vector<double>(p.mean.begin(), p.mean.begin() + p.channels)},
          {"std", std::vector<double>(p.std.begin(), p.std.begin() + p.channels)},
          {"labels", models::labelSetName(p.labels)}};
}

struct Options {
  bool json = false;
  std::string filter;
};

Status runModels(const Options& o) {
  nlohmann::json out = nlohmann::json::array();
  if (!o.json)
    fmt::print("{:<22} {:>5} {:>12} {:>10}   {:>12} {:>10}  {}\n", "model", "res", "params", "MACs",
               "published", "pub. MACs", "source");
  for (const models::ModelInfo& info : models::allModels()) {
    if (!o.filter.empty() && std::string_view(info.name).find(o.filter) == std::string_view::npos)
      continue;
    models::ModelConfig cfg = models::defaultConfig(info);
    cfg.batch = 1;
    KILN_ASSIGN_OR_RETURN(ir::Module m, info.build(cfg));
    const int64_t params = ir::countParams(m.graph);
    const ir::Cost cost = ir::graphCost(m.graph);
    if (o.json) {
      out.push_back({{"name", info.name},
                     {"resolution", cfg.resolution},
                     {"in_channels", cfg.inChannels},
                     {"num_classes", cfg.numClasses},
                     {"params", params},
                     {"macs", cost.macs},
                     {"flops", cost.flops},
                     {"published",
                      {{"params", info.published.params},
                       {"gmacs", info.published.gmacs},
                       {"source", info.published.source}}},
                     {"preprocess", preprocessJson(info.preprocess)}});
    } else {
      fmt::print("{:<22} {:>5} {:>12} {:>10}   {:>12} {:>10}  {}\n", info.name,
                 info.defaultResolution, thousands(params), giga(cost.macs),
                 info.published.params ? thousands(info.published.params) : "-",
                 giga(static_cast<int64_t>(info.published.gmacs * 1e9)), info.published.source);
    }
  }
  if (o.json) fmt::print("{}\n", out.dump(2));
  return Status::ok();
}

}  // namespace

Action registerModels(CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_flag("--json", o->json, "print one JSON array");
  app.add_option("filter", o->filter, "only models whose name contains this");
  return [o] { return runModels(*o); };
}

}  // namespace kiln::tools
