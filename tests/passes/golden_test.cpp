// Golden IR tests: tests/passes/golden/<pass>/<case>.kir starts with `// RUN: <pass list>`;
// `// SET-TYPE: %name <type>` lines retype an input or weight after parsing (the parser
// rejects stale result types, so this is how infer-shapes cases edit a graph). The test
// parses the case, gives weights without data the pattern values of pass_test_util.h,
// runs the passes (reference evaluator, --verify-each) and compares the printed graph plus
// the store summary and the passes' reports (`// <pass> report:` lines, plan-memory's buffer
// table) with <case>.expected.kir. `// LAYOUT-OF: NODE:LAYOUT` lines are select-layout's
// overrides (kiln opt --layout-of) — or, when <case>.expected.err exists, the
// error message with it. KILN_UPDATE_GOLDEN=1 rewrites the expected files for review.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/printer.h"
#include "ir/verifier.h"
#include "passes/pass_manager.h"
#include "passes/select_layout.h"
#include "tests/passes/pass_test_util.h"

namespace kiln::passes {
namespace {

namespace fs = std::filesystem;
using testing::readFile;
using testing::writeFile;

struct GoldenCase {
  std::string name;  // <pass>_<case>, a valid gtest name
  fs::path input;
};

fs::path goldenDir() { return fs::path(KILN_SOURCE_DIR) / "tests" / "passes" / "golden"; }

bool endsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<GoldenCase> findCases() {
  std::vector<GoldenCase> cases;
  if (!fs::exists(goldenDir())) return cases;
  for (const auto& e : fs::recursive_directory_iterator(goldenDir())) {
    const std::string file = e.path().filename().string();
    if (!e.is_regular_file() || !endsWith(file, ".kir") || endsWith(file, ".expected.kir")) continue;
    std::string name = fs::relative(e.path(), goldenDir()).replace_extension().string();
    for (char& c : name)
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    cases.push_back({name, e.path()});
  }
  std::sort(cases.begin(), cases.end(),
            [](const GoldenCase& a, const GoldenCase& b) { return a.name < b.name; });
  return cases;
}

/// The pass list of the first `// RUN:` line.
std::string runLine(const std::string& text) {
  const std::string tag = "// RUN:";
  const size_t at = text.find(tag);
  if (at == std::string::npos) return "";
  const size_t end = text.find('\n', at);
  return text.substr(at + tag.size(), end == std::string::npos ? std::string::npos
                                                              : end - at - tag.size());
}

/// Applies the `// SET-TYPE: %name <type>` lines to declarations.
void applySetTypes(const std::string& text, ir::Graph& g) {
  const std::string tag = "// SET-TYPE:";
  for (size_t at = text.find(tag); at != std::string::npos; at = text.find(tag, at + 1)) {
    const size_t end = text.find('\n', at);
    std::string line = text.substr(at + tag.size(), end == std::string::npos ? std::string::npos
                                                                            : end - at - tag.size());
    const size_t pct = line.find('%');
    ASSERT_NE(pct, std::string::npos) << "SET-TYPE needs a %name: " << line;
    const size_t space = line.find(' ', pct);
    ASSERT_NE(space, std::string::npos) << "SET-TYPE needs a type: " << line;
    ir::Value* v = g.findValue(line.substr(pct + 1, space - pct - 1));
    ASSERT_TRUE(v && !v->producer()) << "SET-TYPE names no input or weight: " << line;
    Expected<ir::TensorType> type = ir::parseType(line.substr(space + 1));
    ASSERT_TRUE(type.isOk()) << type.message();
    v->setType(*type);
  }
}

/// The `// LAYOUT-OF: NODE:LAYOUT` lines, parsed.
std::vector<LayoutOverride> layoutOverrides(const std::string& text) {
  std::vector<LayoutOverride> out;
  const std::string tag = "// LAYOUT-OF:";
  for (size_t at = text.find(tag); at != std::string::npos; at = text.find(tag, at + 1)) {
    const size_t end = text.find('\n', at);
    std::string spec = text.substr(
        at + tag.size(), end == std::string::npos ? std::string::npos : end - at - tag.size());
    spec.erase(0, spec.find_first_not_of(' '));
    Expected<LayoutOverride> o = parseLayoutOverride(spec);
    EXPECT_TRUE(o.isOk()) << o.message();
    if (o.isOk()) out.push_back(*o);
  }
  return out;
}

fs::path withSuffix(const fs::path& input, std::string_view suffix) {
  fs::path p = input;
  p.replace_extension();
  p += suffix;
  return p;
}

// Names the case instead of dumping its bytes in failure messages.
void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.input.string(); }

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, MatchesExpected) {
  const GoldenCase& c = GetParam();
  const std::string text = readFile(c.input);
  const std::string spec = runLine(text);
  ASSERT_FALSE(spec.empty()) << c.input << " has no `// RUN: <passes>` line";
  Expected<std::vector<std::string>> names = parsePipeline(spec);
  ASSERT_TRUE(names.isOk()) << names.message();

  const fs::path errFile = withSuffix(c.input, ".expected.err");
  const fs::path kirFile = withSuffix(c.input, ".expected.kir");
  const bool update = std::getenv("KILN_UPDATE_GOLDEN") != nullptr;
  const std::string relName = fs::relative(c.input, KILN_SOURCE_DIR).string();

  ir::Module m = testing::parseModule(text, relName);
  ASSERT_FALSE(::testing::Test::HasFailure());
  applySetTypes(text, m.graph);
  ASSERT_FALSE(::testing::Test::HasFailure());
  // Weights retyped by SET-TYPE get pattern data of their new type.
  for (const ir::Value* w : m.graph.weights())
    if (m.weights.find(w->name())->type() != w->type())
      m.weights.set(w->name(), testing::patternTensor(w->type()));
  backends::reference::ReferenceEvaluator evaluator;
  PassManagerOptions options;
  options.passes = *names;
  // A SET-TYPE case starts from a graph the verifier rejects (stale result types): it is
  // verified after the passes instead.
  const bool retyped = text.find("// SET-TYPE:") != std::string::npos;
  options.verifyEach = !retyped;
  const std::vector<LayoutOverride> overrides = layoutOverrides(text);
  PassEnv env{&evaluator};
  env.layoutOverrides = &overrides;
  PassManager pm(options, env, nullptr);
  Status st = pm.run(m);

  if (fs::exists(errFile)) {
    ASSERT_FALSE(st.isOk()) << c.input << ": expected an error, the passes succeeded";
    if (update) return writeFile(errFile, st.message() + "\n");
    EXPECT_EQ(st.message() + "\n", readFile(errFile)) << "for " << c.input;
    return;
  }
  ASSERT_TRUE(st.isOk()) << st.message();
  Status valid = ir::verify(m.graph);
  EXPECT_TRUE(valid.isOk()) << valid.message();
  const std::string graphText = ir::printGraph(m.graph) + testing::storeSummary(m);
  std::string actual = graphText;
  for (const PassManager::Report& r : pm.reports()) actual += reportComment(r.pass, r.text);
  if (update) return writeFile(kirFile, actual);
  ASSERT_TRUE(fs::exists(kirFile)) << kirFile << " is missing; run with KILN_UPDATE_GOLDEN=1 "
                                   << "and review the file it writes";
  EXPECT_EQ(actual, readFile(kirFile)) << "for " << c.input << " (RUN:" << spec << ")";

  // The passes reached a fixed point: running them again changes nothing. (Not with
  // layout overrides: they name values as printed before the first run, and a second run
  // would follow the policy again.)
  if (!overrides.empty()) return;
  PassManager again(options, env, nullptr);
  Status st2 = again.run(m);
  ASSERT_TRUE(st2.isOk()) << st2.message();
  EXPECT_EQ(ir::printGraph(m.graph) + testing::storeSummary(m), graphText)
      << "running " << spec << " a second time changed " << c.input;

  // The expected text is itself valid .kir.
  Expected<ir::Graph> reparsed = ir::parseGraph(actual, kirFile.string());
  EXPECT_TRUE(reparsed.isOk()) << reparsed.message();
}

INSTANTIATE_TEST_SUITE_P(Passes, GoldenTest, ::testing::ValuesIn(findCases()),
                         [](const ::testing::TestParamInfo<GoldenCase>& info) {
                           return info.param.name;
                         });

// Every pass has goldens, including a must-not-fire case (named `no_*` by convention).
TEST(GoldenCoverage, EveryPassHasCasesAndANoFireCase) {
  for (const PassInfo& p : allPasses()) {
    const fs::path dir = goldenDir() / std::string(p.name);
    ASSERT_TRUE(fs::is_directory(dir)) << "no goldens for pass " << p.name << " in " << dir;
    int cases = 0, noFire = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string file = e.path().filename().string();
      if (!endsWith(file, ".kir") || endsWith(file, ".expected.kir")) continue;
      ++cases;
      if (file.rfind("no_", 0) == 0) ++noFire;
    }
    EXPECT_GE(cases, 3) << p.name;
    EXPECT_GE(noFire, 1) << p.name << " needs a must-not-fire case (no_*.kir)";
  }
}

}  // namespace
}  // namespace kiln::passes
