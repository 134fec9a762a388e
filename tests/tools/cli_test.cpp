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
#include "tests/tools/cli_util.h"

namespace {

namespace fs = std::filesystem;
using kiln::testing::expectOneError;
using kiln::testing::kiln;
using kiln::testing::kTinyGraph;
using Result = kiln::testing::CliResult;
using Cli = kiln::testing::CliTest;

TEST_F(Cli, HelpOnEverySubcommand) {
  for (const char* sub : {"models", "ops", "show", "opt", "run", "predict", "bench"}) {
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

TEST_F(Cli, ShowTrainPrintsTheTrainStep) {
  Result r = kiln("show resnet20 --train --label-smoothing 0.1 --weight-decay 1e-4 --nesterov");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out.rfind("graph @resnet20.train {\n", 0), 0u) << r.out.substr(0, 200);
  EXPECT_NE(r.out.find("input %labels : i64[N]{x}"), std::string::npos);
  EXPECT_NE(r.out.find("softmax_cross_entropy(%logits, %labels) {label_smoothing=0.1}"),
            std::string::npos);
  EXPECT_NE(r.out.find("{momentum=0.9, weight_decay=0.0001, nesterov=true}"), std::string::npos);
  EXPECT_EQ(r.out.find("= batch_norm("), std::string::npos);
  // The printed train step reads back and passes the verifier.
  Result back = kiln("opt - --verify-each", r.out);
  EXPECT_EQ(back.exitCode, 0) << back.err;
  EXPECT_TRUE(back.out == r.out) << "the train step does not read back as printed";

  write("two.kir",
        "graph @two {\n  input %x : f32[N,4]{nc}\n  %0 = relu(%x) : f32[N,4]{nc}\n"
        "  output %0, %x\n}\n");
  expectOneError(kiln("show " + path("two.kir") + " --train -o " + path("t.kir")), 1,
                 "has 2 outputs; the loss needs exactly one");
  EXPECT_FALSE(fs::exists(path("t.kir")));
  Result range = kiln("show resnet20 --train --label-smoothing 1.5");
  EXPECT_NE(range.exitCode, 0);
}

TEST_F(Cli, OptDumpsOneFilePerPass) {
  Result r = kiln("opt resnet18 -O2 --dump-dir " + path("dumps") + " -o " + path("out.kir"));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_TRUE(fs::exists(path("dumps/00-input.kir")));
  EXPECT_TRUE(fs::exists(path("dumps/01-infer-shapes.kir")));
  EXPECT_TRUE(fs::exists(path("out.kir")));
}

// --memory plans the final graph: the table goes to stderr beside the IR on stdout, or to
// stdout when -o takes the IR; --batch binds N; a plan that cannot be made leaves no file.
TEST_F(Cli, OptMemoryPrintsThePlan) {
  write("tiny.kir", kTinyGraph);
  Result r = kiln("opt " + path("tiny.kir") + " -O2 --memory");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, kTinyGraph);
  EXPECT_NE(r.err.find("\n%1     relu    f32[1,2]{nc}      8       0  1..end       0  in place of %0\n"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("\npeak 64 bytes (64 B), naive 128 bytes (128 B), peak/naive 0.500\n"),
            std::string::npos)
      << r.err;

  r = kiln("opt " + path("tiny.kir") + " --memory --batch 100 -o " + path("out.kir"));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("f32[100,2]{nc}    800"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\npeak 832 bytes (832 B), "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("; batch 100, alignment 64\n"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(path("out.kir")));

  expectOneError(kiln("opt " + path("tiny.kir") + " --memory --batch 4611686018427387904 -o " +
                      path("huge.kir")),
                 1, "needs more than 2^62 bytes at batch 4611686018427387904");
  EXPECT_FALSE(fs::exists(path("huge.kir")));
}

// --layout-of overrides select-layout for one value; a bad NODE or LAYOUT is one error line,
// exit 1, and no output file.
TEST_F(Cli, OptLayoutOf) {
  write("two.kir", R"(graph @two {
  input %x : f32[N,16,4,4]{nchw}
  param %a.weight : f32[16,16,3,3]{oihw}
  param %b.weight : f32[16,16,3,3]{oihw}
  %0 = conv2d(%x, %a.weight) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,16,4,4]{nchw}
  %y = conv2d(%0, %b.weight) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,16,4,4]{nchw}
  output %y
}
)");
  Result plain = kiln("opt " + path("two.kir") + " --passes=select-layout");
  ASSERT_EQ(plain.exitCode, 0) << plain.err;
  EXPECT_NE(plain.out.find("groups=1} : f32[N,16,4,4]{nChw16c}"), std::string::npos) << plain.out;
  EXPECT_EQ(plain.out.find("{nhwc}"), std::string::npos) << plain.out;

  Result r = kiln("opt " + path("two.kir") + " -O2 --layout-of %0:nhwc --layout-of=y:nChw8c -o " +
                  path("out.kir"));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  std::ifstream file(path("out.kir"));
  const std::string out(std::istreambuf_iterator<char>(file), {});
  EXPECT_NE(out.find("%1 = conv2d(%0, %a.weight) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], "
                     "groups=1} : f32[N,16,4,4]{nhwc}"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("groups=1} : f32[N,16,4,4]{nChw8c}"), std::string::npos) << out;
  EXPECT_NE(out.find("%y = reorder(%3) {layout=nchw} : f32[N,16,4,4]{nchw}"), std::string::npos)
      << out;

  auto fails = [&](const std::string& flag, const std::string& needle) {
    expectOneError(kiln("opt " + path("two.kir") + " -O2 " + flag + " -o " + path("bad.kir")), 1,
                   needle);
    EXPECT_FALSE(fs::exists(path("bad.kir"))) << flag;
  };
  fails("--layout-of %7:nhwc", "--layout-of: no node result is printed as %7");
  fails("--layout-of x:nhwc", "--layout-of: %x is a graph input");
  fails("--layout-of %0:nChw4c", "--layout-of: unknown activation layout 'nChw4c'");
  fails("--layout-of %0:oihw", "unknown activation layout 'oihw'");
  fails("--layout-of nhwc", "--layout-of: expected NODE:LAYOUT");
  expectOneError(kiln("opt " + path("two.kir") + " --passes=cse --layout-of %0:nhwc"), 1,
                 "--layout-of needs select-layout in the pipeline");
}

// --report-fusions: what fold-bn and the fuse-* passes fused and what they left, with the
// reason; stderr beside the IR on stdout, stdout when -o takes the IR.
TEST_F(Cli, OptReportFusions) {
  write("block.kir", R"(graph @block {
  input %x : f32[N,4,6,6]{nchw}
  param %c1.weight : f32[4,4,3,3]{oihw}
  param %c2.weight : f32[4,8,1,1]{oihw}
  param %bn.weight : f32[4]{x}
  param %bn.bias : f32[4]{x}
  buffer %bn.running_mean : f32[4]{x}
  buffer %bn.running_var : f32[4]{x}
  param %bn2.weight : f32[8]{x}
  param %bn2.bias : f32[8]{x}
  buffer %bn2.running_mean : f32[8]{x}
  buffer %bn2.running_var : f32[8]{x}
  %0 = conv2d(%x, %c1.weight) {stride=[1,1], pad=[1,1,1,1], dilation=[1,1], groups=1} : f32[N,4,6,6]{nchw}
  %1 = batch_norm(%0, %bn.weight, %bn.bias, %bn.running_mean, %bn.running_var) {epsilon=1e-05} : f32[N,4,6,6]{nchw}
  %2 = add(%1, %x) : f32[N,4,6,6]{nchw}
  %a = relu(%2) : f32[N,4,6,6]{nchw}
  %3 = concat(%a, %x) {axis=1} : f32[N,8,6,6]{nchw}
  %4 = batch_norm(%3, %bn2.weight, %bn2.bias, %bn2.running_mean, %bn2.running_var) {epsilon=1e-05} : f32[N,8,6,6]{nchw}
  %5 = relu(%4) : f32[N,8,6,6]{nchw}
  %6 = conv2d(%5, %c2.weight) {stride=[1,1], pad=[0,0,0,0], dilation=[1,1], groups=1} : f32[N,4,6,6]{nchw}
  %y = sigmoid(%6) : f32[N,4,6,6]{nchw}
  output %y
}
)");
  Result r = kiln("opt " + path("block.kir") + " --random-weights -O2 --report-fusions");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("post_ops=[sum, relu]"), std::string::npos) << r.out;
  for (const char* line :
       {"fused (2): value, op, folded in, weight, passes\n",
        "  %a  conv2d+sum+relu  batch_norm, add, relu  c1.weight.folded  fold-bn,fuse-residual\n",
        "  %y  conv2d+sigmoid   sigmoid                c2.weight         fuse-conv-act\n",
        "not fused (2): value, op, reason [pass]\n",
        "  %1  batch_norm       its input is produced by concat, not conv2d or linear [fold-bn]\n",
        "  %2  relu             relu after batch_norm: no conv2d to fold into [fuse-conv-act]\n",
        "2 fused (1 with sum, 2 with an activation), 2 not fused\n"})
    EXPECT_NE(r.err.find(line), std::string::npos) << "missing: " << line << "in:\n" << r.err;

  r = kiln("opt " + path("block.kir") + " --random-weights -O2 --report-fusions -o " +
           path("out.kir"));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("2 fused (1 with sum, 2 with an activation), 2 not fused\n"),
            std::string::npos)
      << r.out;

  // Without weights fold-bn folds nothing, and says why.
  r = kiln("opt " + path("block.kir") + " -O2 --report-fusions -o " + path("out.kir"));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("%c1.weight has no data in the weight store [fold-bn]"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("add of batch_norm and a graph input: no conv2d operand [fuse-residual]"),
            std::string::npos)
      << r.out;

  r = kiln("opt " + path("block.kir") + " --passes=cse --report-fusions -o " + path("out.kir"));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_EQ(r.out, "fusions: nothing fused and nothing left unfused\n");
}

TEST_F(Cli, RunTinyGraphWithRandomWeights) {
  write("tiny.kir", kTinyGraph);
  Result r =
      kiln("run " + path("tiny.kir") + " --random --batch 3 --random-weights -o " + path("y.npy"));
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
  write(
      "five.kir",
      "graph @five {\n  input %x : f32[N,5]{nc}\n  %0 = relu(%x) : f32[N,5]{nc}\n  output %0\n}\n");
  ASSERT_EQ(kiln("run " + path("five.kir") + " --random --batch 2 -o " + path("x5.npy")).exitCode,
            0);
  Result r = kiln("run " + path("tiny.kir") + " --random-weights --input " + path("x5.npy") +
                  " -o " + path("y.npy"));
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
  ASSERT_EQ(kiln("opt " + path("other.kir") + " --random-weights --save-weights " + path("w.npz"))
                .exitCode,
            0);
  Result r = kiln("run resnet18 --random --weights " + path("w.npz"));
  expectOneError(r, 1, "missing: ");
  EXPECT_NE(r.err.find("fc.weight: expected f32[1000,512], got f32[2,4]"), std::string::npos)
      << r.err;
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
  Result opt = kiln("opt " + path("fold.kir") + " -O2" + common + " --save-weights " +
                    path("w.npz") + " -o " + path("opt.kir"));
  ASSERT_EQ(opt.exitCode, 0) << opt.err;
  std::ifstream in(path("opt.kir"));
  const std::string optimized(std::istreambuf_iterator<char>(in), {});
  EXPECT_EQ(optimized.find("add("), std::string::npos) << optimized;
  EXPECT_NE(optimized.find("const %a.folded : f32[32]{x}"), std::string::npos) << optimized;

  ASSERT_EQ(kiln("run " + path("fold.kir") + common + " --random --batch 2 -o " + path("y0.npy"))
                .exitCode,
            0);
  Result r = kiln("run " + path("opt.kir") + " --weights " + path("w.npz") +
                  " --random --seed 7 --batch 2 -o " + path("y1.npy"));
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
                 " -o " + path("plain.kir"))
                .exitCode,
            0);
  Result opt = kiln("opt " + model + " -O2 --weights " + path("w.npz") + " --save-weights " +
                    path("w2.npz") + " -o " + path("opt.kir"));
  ASSERT_EQ(opt.exitCode, 0) << opt.err;
  std::ifstream in(path("opt.kir"));
  const std::string optimized(std::istreambuf_iterator<char>(in), {});
  EXPECT_EQ(optimized.find("batch_norm("), std::string::npos) << optimized;

  ASSERT_EQ(kiln("run " + model + " --weights " + path("w.npz") + " --random --seed 3 -o " +
                 path("y0.npy"))
                .exitCode,
            0);
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
