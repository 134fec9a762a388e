// The pass table, pipeline parsing and the pass manager's dumps, timings and verification.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "backends/reference/reference.h"
#include "ir/printer.h"
#include "passes/pass_manager.h"
#include "tests/passes/pass_test_util.h"

namespace kiln::passes {
namespace {

namespace fs = std::filesystem;

// relu(x) twice (cse merges them), and a dead tanh (dce removes it); nothing for
// infer-shapes or canonicalize to do.
constexpr std::string_view kGraph = R"(graph @g {
  input %x : f32[N,4]{nc}
  %0 = relu(%x) : f32[N,4]{nc}
  %1 = relu(%x) : f32[N,4]{nc}
  %2 = tanh(%x) : f32[N,4]{nc}
  %3 = add(%0, %1) : f32[N,4]{nc}
  output %3
}
)";

/// Runs `options` on kGraph, collecting what the manager prints.
struct Outcome {
  Status status;
  std::string out;
  ir::Module module;
};

Outcome runPasses(PassManagerOptions options, std::vector<std::unique_ptr<Pass>> extra = {},
              std::string_view text = kGraph) {
  Outcome r{Status::ok(), "", testing::parseModule(text)};
  backends::reference::ReferenceEvaluator evaluator;
  PassManager pm(std::move(options), PassEnv{&evaluator},
                 [&](std::string_view s) { r.out += s; });
  for (auto& p : extra) pm.addPass(std::move(p));
  r.status = pm.run(r.module);
  return r;
}

size_t count(const std::string& haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1))
    ++n;
  return n;
}

/// A deliberately broken pass: gives the first node's result a wrong shape.
class BreakTypes final : public Pass {
 public:
  std::string_view name() const override { return "break-types"; }
  std::string_view summary() const override { return "test: corrupts a result type"; }
  Status run(ir::Module& m) override {
    m.graph.nodes().front()->result()->setType(ir::makeType(ir::DType::F32, {7, 7}));
    return Status::ok();
  }
};

class Fails final : public Pass {
 public:
  std::string_view name() const override { return "always-fails"; }
  std::string_view summary() const override { return "test: returns an error"; }
  Status run(ir::Module&) override { return error("something went wrong"); }
};

// ---- the table and pipeline parsing ----

TEST(PassTable, NamesAreUniqueAndCreatePassMatchesTheTable) {
  for (const PassInfo& p : allPasses()) {
    EXPECT_EQ(findPass(p.name), &p);
    Expected<std::unique_ptr<Pass>> pass = createPass(p.name, PassEnv{});
    ASSERT_TRUE(pass.isOk()) << pass.message();
    EXPECT_EQ((*pass)->name(), p.name);
    EXPECT_EQ((*pass)->summary(), p.summary);
  }
  EXPECT_EQ(findPass("nope"), nullptr);
}

TEST(ParsePipeline, DefaultAndLists) {
  Expected<std::vector<std::string>> d = parsePipeline("default");
  ASSERT_TRUE(d.isOk());
  EXPECT_EQ(*d, defaultPipeline());
  EXPECT_EQ(*d, (std::vector<std::string>{"infer-shapes", "canonicalize", "constant-fold",
                                          "fold-bn", "cse", "dce", "fuse-conv-act",
                                          "fuse-residual", "select-layout", "plan-memory"}));
  Expected<std::vector<std::string>> l = parsePipeline(" cse , dce,cse");
  ASSERT_TRUE(l.isOk()) << l.message();
  EXPECT_EQ(*l, (std::vector<std::string>{"cse", "dce", "cse"}));
  Expected<std::vector<std::string>> mixed = parsePipeline("default,dce");
  ASSERT_TRUE(mixed.isOk());
  EXPECT_EQ(mixed->size(), defaultPipeline().size() + 1);
  EXPECT_EQ(mixed->back(), "dce");
  Expected<std::vector<std::string>> empty = parsePipeline("");
  ASSERT_TRUE(empty.isOk());
  EXPECT_TRUE(empty->empty());
}

TEST(ParsePipeline, UnknownNameListsTheKnownPasses) {
  Expected<std::vector<std::string>> r = parsePipeline("cse,fold-everything");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.message(),
            "unknown pass 'fold-everything' (known passes: default, infer-shapes, canonicalize, "
            "constant-fold, fold-bn, cse, dce, fuse-conv-act, fuse-residual, select-layout, plan-memory)");
  Expected<std::vector<std::string>> gap = parsePipeline("cse,,dce");
  ASSERT_FALSE(gap.isOk());
  EXPECT_EQ(gap.message(), "empty pass name in pipeline 'cse,,dce'");
  Expected<std::unique_ptr<Pass>> p = createPass("fold-everything", PassEnv{});
  ASSERT_FALSE(p.isOk());
  EXPECT_NE(p.message().find("unknown pass 'fold-everything'"), std::string::npos);
}

// ---- the pass manager ----

TEST(PassManager, UnknownPassFailsBeforeTouchingTheModule) {
  Outcome r = runPasses({.passes = {"cse", "no-such-pass"}});
  ASSERT_FALSE(r.status.isOk());
  EXPECT_NE(r.status.message().find("unknown pass 'no-such-pass'"), std::string::npos);
  EXPECT_EQ(ir::printGraph(r.module.graph), kGraph);  // cse did not run
  Outcome bad = runPasses({.passes = {"cse"}, .printAfter = {"csee"}});
  ASSERT_FALSE(bad.status.isOk());
  EXPECT_EQ(bad.status.message(),
            "--print-after: unknown pass 'csee' (known passes: infer-shapes, canonicalize, "
            "constant-fold, fold-bn, cse, dce, fuse-conv-act, fuse-residual, select-layout, plan-memory)");
}

TEST(PassManager, PrintAfterAndBefore) {
  Outcome r = runPasses({.passes = {"infer-shapes", "cse", "dce"},
                     .printAfter = {"cse"},
                     .printBefore = {"dce"}});
  ASSERT_TRUE(r.status.isOk()) << r.status.message();
  EXPECT_EQ(count(r.out, "// -----// IR Dump"), 2u) << r.out;
  const size_t after = r.out.find("// -----// IR Dump After cse //----- //\n");
  const size_t before = r.out.find("// -----// IR Dump Before dce //----- //\n");
  ASSERT_NE(after, std::string::npos) << r.out;
  ASSERT_NE(before, std::string::npos) << r.out;
  EXPECT_LT(after, before);
  // After cse the two relus are one; the dump before dce is the same text.
  const std::string afterCse = R"(graph @g {
  input %x : f32[N,4]{nc}
  %0 = relu(%x) : f32[N,4]{nc}
  %1 = tanh(%x) : f32[N,4]{nc}
  %2 = add(%0, %0) : f32[N,4]{nc}
  output %2
}
)";
  EXPECT_EQ(r.out, dumpHeader("After", "cse") + afterCse + dumpHeader("Before", "dce") + afterCse);
}

TEST(PassManager, PrintAfterAllPrintsEveryPassInOrder) {
  Outcome r = runPasses({.passes = {"default"}, .printAfterAll = true});
  ASSERT_TRUE(r.status.isOk()) << r.status.message();
  size_t at = 0;
  for (const std::string& name : defaultPipeline()) {
    at = r.out.find(dumpHeader("After", name), at);
    ASSERT_NE(at, std::string::npos) << name << " missing or out of order:\n" << r.out;
  }
  EXPECT_EQ(count(r.out, "// -----// IR Dump After"), defaultPipeline().size());
}

TEST(PassManager, PrintChangedPrintsOnlyPassesThatChangedTheText) {
  Outcome r = runPasses({.passes = {"infer-shapes", "canonicalize", "cse", "dce"},
                     .printChanged = true});
  ASSERT_TRUE(r.status.isOk()) << r.status.message();
  EXPECT_EQ(count(r.out, "// -----// IR Dump"), 2u) << r.out;
  EXPECT_NE(r.out.find(dumpHeader("After", "cse")), std::string::npos);
  EXPECT_NE(r.out.find(dumpHeader("After", "dce")), std::string::npos);

  // With a selection, --print-changed filters it: the first dce removes the tanh, the
  // second finds nothing (cse erased the duplicate itself), and cse is not selected.
  Outcome sel = runPasses({.passes = {"dce", "cse", "dce"}, .printAfter = {"dce"}, .printChanged = true});
  ASSERT_TRUE(sel.status.isOk());
  EXPECT_EQ(count(sel.out, "// -----// IR Dump"), 1u) << sel.out;
  EXPECT_EQ(count(sel.out, dumpHeader("After", "dce")), 1u) << sel.out;
  Outcome none = runPasses({.passes = {"dce", "dce"}, .printAfter = {"dce"}, .printChanged = true,
                        .dumpDir = ""},
                       {}, R"(graph @g {
  input %x : f32[N,4]{nc}
  %0 = relu(%x) : f32[N,4]{nc}
  output %0
}
)");
  ASSERT_TRUE(none.status.isOk());
  EXPECT_EQ(none.out, "");
}

TEST(PassManager, DumpDirWritesOneNumberedFilePerPass) {
  const fs::path dir = fs::path(::testing::TempDir()) / "kiln_dump_test" / "nested";
  fs::remove_all(dir.parent_path());
  Outcome r = runPasses({.passes = {"cse", "dce"}, .dumpDir = dir.string()});
  ASSERT_TRUE(r.status.isOk()) << r.status.message();
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"00-input.kir", "01-cse.kir", "02-dce.kir"}));
  EXPECT_EQ(testing::readFile(dir / "00-input.kir"), kGraph);
  EXPECT_EQ(testing::readFile(dir / "02-dce.kir"), ir::printGraph(r.module.graph));
  EXPECT_NE(testing::readFile(dir / "01-cse.kir"), testing::readFile(dir / "02-dce.kir"));
  EXPECT_EQ(r.out, "");  // dumps go to files only
  fs::remove_all(dir.parent_path());
}

TEST(PassManager, DumpDirThatCannotBeCreatedIsAnError) {
  const fs::path file = fs::path(::testing::TempDir()) / "kiln_dump_blocker";
  testing::writeFile(file, "not a directory");
  Outcome r = runPasses({.passes = {"cse"}, .dumpDir = (file / "sub").string()});
  ASSERT_FALSE(r.status.isOk());
  EXPECT_NE(r.status.message().find("--dump-dir: cannot create"), std::string::npos)
      << r.status.message();
  fs::remove(file);
}

TEST(PassManager, TimePassesPrintsATable) {
  Outcome r = runPasses({.passes = {"cse", "dce"}, .timePasses = true});
  ASSERT_TRUE(r.status.isOk());
  EXPECT_EQ(r.out.rfind("pass ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\ncse "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\ndce "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\ntotal "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("100.0%"), std::string::npos) << r.out;
  EXPECT_EQ(count(r.out, "\n"), 4u) << r.out;  // header, two passes, total
}

TEST(PassManager, VerifyEachNamesThePassThatBrokeTheGraph) {
  std::vector<std::unique_ptr<Pass>> extra;
  extra.push_back(std::make_unique<BreakTypes>());
  Outcome r = runPasses({.passes = {"cse"}, .printAfter = {"break-types"}, .verifyEach = true},
                        std::move(extra));
  ASSERT_FALSE(r.status.isOk());
  EXPECT_EQ(r.status.message().rfind("--verify-each: pass 'break-types' left an invalid graph: ", 0),
            0u)
      << r.status.message();
  EXPECT_NE(r.status.message().find("relu: result"), std::string::npos) << r.status.message();
  // The broken graph was printed before the verifier stopped the pipeline.
  EXPECT_NE(r.out.find(dumpHeader("After", "break-types") + "graph @g {"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("f32[7,7]{nc}"), std::string::npos) << r.out;

  // Without --verify-each the broken graph goes through unnoticed.
  std::vector<std::unique_ptr<Pass>> again;
  again.push_back(std::make_unique<BreakTypes>());
  EXPECT_TRUE(runPasses({.passes = {"cse"}}, std::move(again)).status.isOk());
}

TEST(PassManager, AFailingPassIsNamed) {
  std::vector<std::unique_ptr<Pass>> extra;
  extra.push_back(std::make_unique<Fails>());
  Outcome r = runPasses({.passes = {"dce"}, .printAfter = {"always-fails"}}, std::move(extra));
  ASSERT_FALSE(r.status.isOk());
  EXPECT_EQ(r.status.message(), "pass 'always-fails' failed: something went wrong");
}

TEST(PassManager, ConstantFoldWithoutAnEvaluatorIsAClearError) {
  ir::Module m = testing::parseModule(kGraph);
  PassManager pm({.passes = {"constant-fold"}}, PassEnv{}, nullptr);
  Status st = pm.run(m);
  ASSERT_FALSE(st.isOk());
  EXPECT_EQ(st.message(),
            "pass 'constant-fold' failed: constant-fold needs an evaluator to run nodes "
            "(PassEnv::evaluator is null; the kiln CLI passes the reference backend's)");
}

TEST(PassManager, DebugLocationsReachTheDumps) {
  Outcome r = runPasses({.passes = {"cse"}, .printAfter = {"cse"}, .debugLocations = true});
  ASSERT_TRUE(r.status.isOk());
  EXPECT_NE(r.out.find("loc(\"test.kir\":3:3)"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace kiln::passes
