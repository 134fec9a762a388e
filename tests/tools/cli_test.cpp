// The kiln CLI end to end: subcommands work, and bad input gives one clear error line,
// a non-zero exit and no partial output file.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "models/registry.h"
#include "runtime/npy.h"
#include "tests/tolerance.h"

namespace {

namespace fs = std::filesystem;

struct Result {
  int exitCode;
  std::string out;  // stdout
  std::string err;  // stderr
};

/// Runs `kiln ARGS` through the shell, capturing stdout and stderr separately.
Result kiln(const std::string& args, const std::string& stdinText = "") {
  static int counter = 0;
  const fs::path dir = fs::temp_directory_path() / ("kiln_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string id = std::to_string(counter++);
  const fs::path outFile = dir / (id + ".out"), errFile = dir / (id + ".err"), inFile = dir / (id + ".in");
  std::ofstream(inFile) << stdinText;
  const std::string cmd = std::string(KILN_BINARY) + " " + args + " <" + inFile.string() + " >" +
                          outFile.string() + " 2>" + errFile.string();
  const int status = std::system(cmd.c_str());
  auto slurp = [](const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  return Result{WIFEXITED(status) ? WEXITSTATUS(status) : 128, slurp(outFile), slurp(errFile)};
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kiln_cli_case_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name, std::ios::binary) << text;
  }
  fs::path dir_;
};

// One error line, starting with "error: ", containing `needle`.
void expectOneError(const Result& r, int code, const std::string& needle) {
  EXPECT_EQ(r.exitCode, code) << r.err;
  ASSERT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(r.err.find("AddressSanitizer"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("runtime error"), std::string::npos) << r.err;
}

const char* kTinyGraph =
    "graph @tiny {\n"
    "  input %x : f32[N,4]{nc}\n"
    "  param %fc.weight : f32[2,4]{oi}\n"
    "  param %fc.bias : f32[2]{x}\n"
    "  %0 = linear(%x, %fc.weight, %fc.bias) : f32[N,2]{nc}\n"
    "  %1 = relu(%0) : f32[N,2]{nc}\n"
    "  output %1\n"
    "}\n";

TEST_F(Cli, HelpOnEverySubcommand) {
  for (const char* sub : {"models", "ops", "show", "opt", "run"}) {
    Result r = kiln(std::string(sub) + " --help");
    EXPECT_EQ(r.exitCode, 0) << sub;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << sub << ": " << r.out;
  }
}

TEST_F(Cli, ModelsListsResnet18WithExactParams) {
  Result r = kiln("models --json resnet18");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("\"params\": 11689512"), std::string::npos) << r.out;
}

TEST_F(Cli, ShowOptRoundTripsResnet18) {
  Result shown = kiln("show resnet18");
  ASSERT_EQ(shown.exitCode, 0) << shown.err;
  Result opt = kiln("opt - --passes=canonicalize,cse,dce --verify-each", shown.out);
  ASSERT_EQ(opt.exitCode, 0) << opt.err;
  EXPECT_EQ(opt.out, shown.out);  // nothing to simplify in a clean lowering: exact round-trip
  Result again = kiln("opt -", opt.out);
  EXPECT_EQ(again.out, shown.out);
}

TEST_F(Cli, OptDumpsOneFilePerPass) {
  Result r = kiln("opt resnet18 -O2 --dump-dir " + path("dumps") + " -o " + path("out.kir"));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_TRUE(fs::exists(path("dumps/00-input.kir")));
  EXPECT_TRUE(fs::exists(path("dumps/01-infer-shapes.kir")));
  EXPECT_TRUE(fs::exists(path("out.kir")));
}

TEST_F(Cli, RunTinyGraphWithRandomWeights) {
  write("tiny.kir", kTinyGraph);
  Result r = kiln("run " + path("tiny.kir") + " --random --batch 3 --random-weights -o " + path("y.npy"));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("f32[3,2]{nc}"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(path("y.npy")));
}

TEST_F(Cli, MissingFile) {
  expectOneError(kiln("show " + path("nope.kir")), 1, "cannot open '" + path("nope.kir") + "'");
}

TEST_F(Cli, UnknownFlagIsUsageError) {
  Result r = kiln("show resnet18 --frobnicate");
  EXPECT_EQ(r.exitCode, 2);
  EXPECT_NE(r.err.find("--frobnicate"), std::string::npos) << r.err;
}

TEST_F(Cli, UnknownModel) {
  expectOneError(kiln("show resnet19"), 1, "'resnet19' is neither a known model");
}

TEST_F(Cli, TruncatedKir) {
  std::string text = kTinyGraph;
  write("trunc.kir", text.substr(0, text.find("output")));
  expectOneError(kiln("opt " + path("trunc.kir")), 1, path("trunc.kir") + ":");
}

TEST_F(Cli, UnknownOpNamesFileAndLine) {
  std::string text = kTinyGraph;
  text.replace(text.find("relu("), 4, "gelu");
  write("op.kir", text);
  expectOneError(kiln("opt " + path("op.kir")), 1, path("op.kir") + ":6:");
}

TEST_F(Cli, BadNpz) {
  write("tiny.kir", kTinyGraph);
  write("w.npz", "PK\x03\x04 this is not really a zip file");
  expectOneError(kiln("run " + path("tiny.kir") + " --random --weights " + path("w.npz")), 1,
                 path("w.npz"));
}

TEST_F(Cli, WrongInputShape) {
  write("tiny.kir", kTinyGraph);
  // write a [2,5] f32 input with the CLI itself: run a graph whose output has that shape
  write("five.kir",
        "graph @five {\n  input %x : f32[N,5]{nc}\n  %0 = relu(%x) : f32[N,5]{nc}\n  output %0\n}\n");
  ASSERT_EQ(kiln("run " + path("five.kir") + " --random --batch 2 -o " + path("x5.npy")).exitCode, 0);
  Result r = kiln("run " + path("tiny.kir") + " --random-weights --input " + path("x5.npy") + " -o " +
                  path("y.npy"));
  expectOneError(r, 1, "input %x");
  EXPECT_FALSE(fs::exists(path("y.npy")));  // no partial output
}

TEST_F(Cli, MissingWeightsListedAtOnce) {
  write("tiny.kir", kTinyGraph);
  Result r = kiln("run " + path("tiny.kir") + " --random");
  expectOneError(r, 1, "2 missing: fc.weight, fc.bias");
}

TEST_F(Cli, StrictWeightLoadingReportsEverything) {
  write("other.kir",
        "graph @other {\n  input %x : f32[N,4]{nc}\n  param %fc.weight : f32[2,4]{oi}\n"
        "  param %extra.bias : f32[2]{x}\n"
        "  %0 = linear(%x, %fc.weight, %extra.bias) : f32[N,2]{nc}\n  output %0\n}\n");
  ASSERT_EQ(kiln("opt " + path("other.kir") + " --random-weights --save-weights " + path("w.npz")).exitCode, 0);
  Result r = kiln("run resnet18 --random --weights " + path("w.npz"));
  expectOneError(r, 1, "missing: ");
  EXPECT_NE(r.err.find("fc.weight: expected f32[1000,512], got f32[2,4]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1 unexpected: extra.bias"), std::string::npos) << r.err;
}

}  // namespace

namespace {

// docs/ir.md's op table is generated by `kiln ops --markdown`; it must not drift.
TEST(Docs, IrMdOpTableIsCurrent) {
  std::ifstream in(std::string(KILN_SOURCE_DIR) + "/docs/ir.md");
  const std::string doc(std::istreambuf_iterator<char>(in), {});
  const std::string begin = "<!-- ops-table -->\n", end = "<!-- /ops-table -->";
  const size_t a = doc.find(begin), b = doc.find(end);
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  Result r = kiln("ops --markdown");
  ASSERT_EQ(r.exitCode, 0);
  EXPECT_EQ(doc.substr(a + begin.size(), b - a - begin.size()), r.out)
      << "regenerate the table between the markers with `kiln ops --markdown`";
}

}  // namespace

namespace {

// `kiln show` works for every model, and its text reads back unchanged.
TEST(CliZoo, ShowEveryModelAndReadItBack) {
  for (const kiln::models::ModelInfo& info : kiln::models::allModels()) {
    SCOPED_TRACE(std::string(info.name));
    Result shown = kiln("show " + std::string(info.name));
    ASSERT_EQ(shown.exitCode, 0) << shown.err;
    EXPECT_NE(shown.out.find("graph @"), std::string::npos);
    Result back = kiln("opt - --verify-each", shown.out);
    ASSERT_EQ(back.exitCode, 0) << back.err;
    EXPECT_EQ(back.out, shown.out);
  }
}

}  // namespace

namespace {

class CliWeights : public Cli {};

// constant-fold adds a tensor to the store; --save-weights carries it, and the optimized graph
// run on the saved weights gives the original graph's output.
TEST_F(CliWeights, SaveWeightsCarriesFoldedTensors) {
  write("fold.kir",
        "graph @fold {\n"
        "  input %x : f32[N,32]{nc}\n"
        "  const %a : f32[32]{x}\n"
        "  const %b : f32[32]{x}\n"
        "  %0 = add(%a, %b) : f32[32]{x}\n"
        "  %1 = mul(%x, %0) : f32[N,32]{nc}\n"
        "  output %1\n"
        "}\n");
  const std::string common = " --random-weights --seed 7";
  Result opt = kiln("opt " + path("fold.kir") + " -O2" + common + " --save-weights " + path("w.npz") +
                    " -o " + path("opt.kir"));
  ASSERT_EQ(opt.exitCode, 0) << opt.err;
  std::ifstream in(path("opt.kir"));
  const std::string optimized(std::istreambuf_iterator<char>(in), {});
  EXPECT_EQ(optimized.find("add("), std::string::npos) << optimized;
  EXPECT_NE(optimized.find("const %a.folded : f32[32]{x}"), std::string::npos) << optimized;

  ASSERT_EQ(kiln("run " + path("fold.kir") + common + " --random --batch 2 -o " + path("y0.npy")).exitCode, 0);
  Result r = kiln("run " + path("opt.kir") + " --weights " + path("w.npz") + " --random --seed 7 --batch 2 -o " +
                  path("y1.npy"));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  EXPECT_EQ(slurp(path("y0.npy")), slurp(path("y1.npy")));  // same math, bit for bit
}

}  // namespace

namespace {

// The user's path: torchvision-named weights in an .npz (row-major, default layouts), -O2 folds
// every BN, and the optimized graph on the saved weights gives the same logits.
TEST_F(CliWeights, O2FoldsBatchNormWithWeightsFromNpz) {
  const std::string model = "resnet18 --resolution 32";
  ASSERT_EQ(kiln("opt " + model + " --random-weights --seed 5 --save-weights " + path("w.npz") +
                 " -o " + path("plain.kir")).exitCode, 0);
  Result opt = kiln("opt " + model + " -O2 --weights " + path("w.npz") + " --save-weights " +
                    path("w2.npz") + " -o " + path("opt.kir"));
  ASSERT_EQ(opt.exitCode, 0) << opt.err;
  std::ifstream in(path("opt.kir"));
  const std::string optimized(std::istreambuf_iterator<char>(in), {});
  EXPECT_EQ(optimized.find("batch_norm("), std::string::npos) << optimized;

  ASSERT_EQ(kiln("run " + model + " --weights " + path("w.npz") + " --random --seed 3 -o " +
                 path("y0.npy")).exitCode, 0);
  Result r = kiln("run " + path("opt.kir") + " --weights " + path("w2.npz") +
                  " --random --seed 3 -o " + path("y1.npy"));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  auto y0 = kiln::runtime::readNpy(path("y0.npy"));
  auto y1 = kiln::runtime::readNpy(path("y1.npy"));
  ASSERT_TRUE(y0.isOk() && y1.isOk());
  ASSERT_EQ(y0->shape(), y1->shape());
  double maxRef = 0, maxDiff = 0;
  for (int64_t i = 0; i < y0->numElements(); ++i) {
    maxRef = std::max(maxRef, std::abs(y0->at(i)));
    maxDiff = std::max(maxDiff, std::abs(y0->at(i) - y1->at(i)));
  }
  EXPECT_LE(maxDiff, kiln::testing::modelTolerance(maxRef)) << "max|y| " << maxRef;
}

}  // namespace
