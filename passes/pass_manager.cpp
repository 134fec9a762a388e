// The pass table lookups, the factory, pipeline parsing and the pass manager.
#include "passes/pass_manager.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "ir/printer.h"
#include "ir/verifier.h"

namespace kiln::passes {

Pass::~Pass() = default;

// ---- the pass table --------------------------------------------------------

namespace {

using CreateFn = std::unique_ptr<Pass> (*)(const PassEnv&);

constexpr CreateFn kCreate[] = {
#define KILN_PASS(cls, ...) &create##cls##Pass,
#include "passes/passes.def"
#undef KILN_PASS
};
static_assert(std::size(kCreate) == std::size(kPasses));

std::string knownPassList() {
  std::string list;
  for (const PassInfo& p : kPasses) {
    if (!list.empty()) list += ", ";
    list += p.name;
  }
  return list;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

const PassInfo* findPass(std::string_view name) {
  for (const PassInfo& p : kPasses)
    if (p.name == name) return &p;
  return nullptr;
}

std::vector<std::string> defaultPipeline() {
  std::vector<std::string> names;
  for (const PassInfo& p : kPasses)
    if (p.inDefault) names.emplace_back(p.name);
  return names;
}

Expected<std::unique_ptr<Pass>> createPass(std::string_view name, const PassEnv& env) {
  const PassInfo* info = findPass(name);
  if (!info) return error("unknown pass '{}' (known passes: {})", name, knownPassList());
  return kCreate[static_cast<size_t>(info->id)](env);
}

Expected<std::vector<std::string>> parsePipeline(std::string_view spec) {
  std::vector<std::string> names;
  if (trim(spec).empty()) return names;
  size_t start = 0;
  while (true) {
    const size_t comma = spec.find(',', start);
    const std::string_view item =
        trim(spec.substr(start, comma == std::string_view::npos ? std::string_view::npos
                                                                 : comma - start));
    if (item.empty()) return error("empty pass name in pipeline '{}'", spec);
    if (item == "default") {
      for (std::string& n : defaultPipeline()) names.push_back(std::move(n));
    } else if (findPass(item)) {
      names.emplace_back(item);
    } else {
      return error("unknown pass '{}' (known passes: default, {})", item, knownPassList());
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return names;
}

std::string dumpHeader(std::string_view when, std::string_view passName) {
  return fmt::format("// -----// IR Dump {} {} //----- //\n", when, passName);
}

std::string reportComment(std::string_view passName, std::string_view report) {
  std::string out = fmt::format("// {} report:\n", passName);
  while (!report.empty()) {
    const size_t nl = report.find('\n');
    const std::string_view line = report.substr(0, nl);
    out += line.empty() ? "//\n" : fmt::format("// {}\n", line);
    report = nl == std::string_view::npos ? std::string_view() : report.substr(nl + 1);
  }
  return out;
}

// ---- the pass manager ------------------------------------------------------

namespace {

/// Writes `text` to `path` through a temporary file and a rename, so a reader never sees a
/// half-written dump.
Status writeFileAtomically(const std::filesystem::path& path, std::string_view text) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return error("cannot write {}", tmp.string());
  const bool wrote = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const bool closed = std::fclose(f) == 0;
  if (!wrote || !closed) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    return error("cannot write {}", tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return error("cannot rename {} to {}: {}", tmp.string(), path.string(), ec.message());
  return Status::ok();
}

bool contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

/// --print-after/--print-before name passes of passes.def (or ones added with addPass).
Status checkPassNames(const std::vector<std::string>& names, std::string_view flag,
                      const std::vector<std::unique_ptr<Pass>>& extra) {
  for (const std::string& n : names) {
    const bool added = std::any_of(extra.begin(), extra.end(),
                                   [&](const std::unique_ptr<Pass>& p) { return p->name() == n; });
    if (!findPass(n) && !added)
      return error("{}: unknown pass '{}' (known passes: {})", flag, n, knownPassList());
  }
  return Status::ok();
}

}  // namespace

PassManager::PassManager(PassManagerOptions options, PassEnv env,
                         std::function<void(std::string_view)> out)
    : options_(std::move(options)), env_(env), out_(std::move(out)) {
  if (!out_) out_ = [](std::string_view) {};
}

Status PassManager::run(ir::Module& module) {
  const PassManagerOptions& o = options_;
  KILN_TRY(checkPassNames(o.printAfter, "--print-after", extra_));
  KILN_TRY(checkPassNames(o.printBefore, "--print-before", extra_));

  reports_.clear();
  fusions_.clear();
  std::vector<std::unique_ptr<Pass>> owned;
  for (const std::string& spec : o.passes) {
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, parsePipeline(spec));
    for (const std::string& n : names) {
      KILN_ASSIGN_OR_RETURN(std::unique_ptr<Pass> pass, createPass(n, env_));
      owned.push_back(std::move(pass));
    }
  }
  std::vector<Pass*> pipeline;
  for (auto& p : owned) pipeline.push_back(p.get());
  for (auto& p : extra_) pipeline.push_back(p.get());

  ir::PrintOptions printOptions;
  printOptions.debugLocations = o.debugLocations;
  auto print = [&] { return ir::printGraph(module.graph, printOptions); };

  std::filesystem::path dumpDir;
  if (!o.dumpDir.empty()) {
    dumpDir = o.dumpDir;
    std::error_code ec;
    std::filesystem::create_directories(dumpDir, ec);
    if (ec) return error("--dump-dir: cannot create {}: {}", o.dumpDir, ec.message());
    KILN_TRY(writeFileAtomically(dumpDir / "00-input.kir", print()));
  }
  if (o.verifyEach)
    KILN_TRY(ir::verify(module.graph).withContext("--verify-each: the input graph is invalid"));

  // Without an explicit selection, --print-changed applies to every pass.
  const bool afterSelected = o.printAfterAll || !o.printAfter.empty();
  std::vector<double> millis(pipeline.size(), 0.0);
  const int width = pipeline.size() < 100 ? 2 : 3;

  for (size_t i = 0; i < pipeline.size(); ++i) {
    Pass& pass = *pipeline[i];
    const std::string_view name = pass.name();
    const bool printAfter =
        o.printAfterAll || contains(o.printAfter, name) || (o.printChanged && !afterSelected);
    std::string before;
    if (o.printChanged && printAfter) before = print();
    if (contains(o.printBefore, name)) out_(dumpHeader("Before", name) + print());

    const auto t0 = std::chrono::steady_clock::now();
    Status st = pass.run(module);
    const auto t1 = std::chrono::steady_clock::now();
    millis[i] = std::chrono::duration<double, std::milli>(t1 - t0).count();
    if (!st.isOk()) return st.withContext(fmt::format("pass '{}' failed", name));

    const std::string report = pass.report();
    if (!report.empty()) reports_.push_back({std::string(name), report});
    for (const FusionRecord& r : pass.fusions()) {
      fusions_.push_back(r);
      fusions_.back().pass = std::string(name);
    }
    // Dumps come before verification so that a graph the verifier rejects can be looked at.
    if (printAfter || !dumpDir.empty()) {
      const std::string text = print();
      const std::string comment = report.empty() ? "" : reportComment(name, report);
      if (printAfter && (!o.printChanged || text != before))
        out_(dumpHeader("After", name) + text + comment);
      if (!dumpDir.empty()) {
        const std::string file = fmt::format("{:0{}}-{}.kir", i + 1, width, name);
        KILN_TRY(writeFileAtomically(dumpDir / file, text + comment));
      }
    }
    if (o.verifyEach)
      KILN_TRY(ir::verify(module.graph)
                   .withContext(fmt::format("--verify-each: pass '{}' left an invalid graph", name)));
  }

  if (o.timePasses) {
    double total = 0;
    for (double ms : millis) total += ms;
    std::string table = fmt::format("{:<24} {:>10} {:>7}\n", "pass", "ms", "%");
    for (size_t i = 0; i < pipeline.size(); ++i)
      table += fmt::format("{:<24} {:>10.3f} {:>6.1f}%\n", pipeline[i]->name(), millis[i],
                           total > 0 ? 100.0 * millis[i] / total : 0.0);
    table += fmt::format("{:<24} {:>10.3f} {:>6.1f}%\n", "total", total, total > 0 ? 100.0 : 0.0);
    out_(table);
  }
  return Status::ok();
}

}  // namespace kiln::passes
