// `kiln bench` end to end: argument errors, the --json object, and the same-run comparison
// with the PyTorch (and, where bench/peers/node_modules is installed, ONNX Runtime) peers,
// including that a peer computing something else is reported as a disagreement.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/npy.h"
#include "tests/python_util.h"
#include "tests/tools/cli_util.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::expectOneError;
using testing::kiln;

const std::string kPeersDir = std::string(KILN_SOURCE_DIR) + "/bench/peers";

/// A small, quick benchmark of resnet20 (1×16×16) for the CLI tests.
const std::string kQuick = "bench resnet20 --resolution 16 --warmup 1 --threads 1 ";

class Bench : public testing::CliTest {
 protected:
  /// Parses r.out as one JSON object (failing the test otherwise).
  static json parse(const testing::CliResult& r) {
    json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << "stdout: " << r.out << "\nstderr: " << r.err;
    return j.is_object() ? j : json::object();
  }
  /// The figures every participant reports.
  static void expectTimings(const json& j, int rounds, int batch = 1) {
    ASSERT_TRUE(j.contains("median_ms") && j["median_ms"].is_number()) << j.dump();
    const double med = j["median_ms"].get<double>(), lo = j["min_ms"].get<double>();
    EXPECT_GT(med, 0);
    EXPECT_GT(lo, 0);
    EXPECT_LE(lo, med);
    EXPECT_NEAR(j["images_per_s"].get<double>(), batch * 1000.0 / med,
                1e-6 * (batch * 1000.0 / med));
    EXPECT_GT(j["peak_bytes"].get<int64_t>(), 1 << 20);  // any process holds over 1 MiB
    EXPECT_EQ(j["round_medians_ms"].size(), static_cast<size_t>(rounds));
  }
  std::string cacheArg() const { return " --cache-dir " + path("cache"); }
};

TEST_F(Bench, ArgumentErrors) {
  EXPECT_EQ(kiln("bench").exitCode, 2);
  EXPECT_EQ(kiln("bench resnet20 --iters 0").exitCode, 2);
  EXPECT_EQ(kiln("bench resnet20 --rounds -1").exitCode, 2);
  EXPECT_EQ(kiln("bench resnet20 --warmup -1").exitCode, 2);
  EXPECT_EQ(kiln("bench resnet20 --threads -1").exitCode, 2);
  expectOneError(kiln("bench resnet19"), 1, "'resnet19' is neither a known model");
  expectOneError(kiln("bench resnet20 --compare onnx"), 1,
                 "--compare: unknown peer 'onnx' (known: ort, torch)");
  expectOneError(kiln("bench resnet20 --compare torch,torch"), 1, "'torch' is listed twice");
  expectOneError(kiln("bench resnet20 --compare ort,"), 1, "unknown peer ''");
  expectOneError(kiln("bench resnet20 --train --compare ort"), 1,
                 "--train compares with torch only");
  expectOneError(kiln(kQuick + "--iters 1 --rounds 1 --backend nonsense"), 2,
                 "--backend: nonsense not in {onednn,reference}");
  write("tiny.kir", testing::kTinyGraph);
  expectOneError(kiln("bench " + path("tiny.kir") + " --compare torch"), 1,
                 "--compare needs a registry model");
}

TEST_F(Bench, MissingPeersAreCleanErrors) {
  fs::create_directories(path("empty"));
  expectOneError(kiln(kQuick + "--compare ort --peers-dir " + path("empty")), 1,
                 "ORT peer unavailable: " + path("empty") +
                     "/ort_peer.js does not exist: run "
                     "scripts/setup-bench.sh");
  expectOneError(kiln(kQuick + "--compare torch", "", "KILN_PYTHON=/nonexistent/python3"), 1,
                 "torch peer unavailable: cannot run '/nonexistent/python3' (No such file or "
                 "directory): run scripts/setup-bench.sh");
  // A python without torch: the peer says so in its greeting.
  fs::create_directories(path("fake"));
  write("fake/torch.py", "raise ImportError('no torch in this test')\n");
  expectOneError(kiln(kQuick + "--compare torch", "", "PYTHONPATH=" + path("fake")), 1,
                 "cannot import torch and numpy (no torch in this test): run "
                 "scripts/setup-bench.sh");
  if (fs::exists(kPeersDir + "/node_modules/onnxruntime-node")) {
    expectOneError(kiln(kQuick + "--compare ort", "", "KILN_NODE=/nonexistent/node"), 1,
                   "ORT peer unavailable: cannot run '/nonexistent/node'");
  } else {
    expectOneError(kiln(kQuick + "--compare ort"), 1,
                   "node_modules/onnxruntime-node is missing (npm ci not run): run "
                   "scripts/setup-bench.sh");
  }
}

TEST_F(Bench, JsonHasTheFigures) {
  testing::CliResult r = kiln("bench resnet20 --iters 2 --rounds 1 --json");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const json j = parse(r);
  ASSERT_NO_FATAL_FAILURE(expectTimings(j, 1));
  EXPECT_EQ(j["model"], "resnet20");
  EXPECT_EQ(j["batch"], 1);
  EXPECT_EQ(j["input_shape"], json::parse("[1, 1, 28, 28]"));
  EXPECT_TRUE(j["backend"].is_string());
  EXPECT_GE(j["compile_ms"].get<double>(), 0);
  // 272,186 parameters; fold-bn turns each BN's 4 vectors into one conv bias, and the backend
  // holds what its plans read: the conv and fc weights (~0.27 M floats) dominate either way.
  EXPECT_GE(j["weight_bytes"].get<int64_t>(), 4 * 260000);
  EXPECT_LE(j["weight_bytes"].get<int64_t>(), 4 * 2 * 272186);
  // resnet20 at 28×28 is 31.0 M MACs (docs/models.md), 2 FLOPs each.
  EXPECT_NEAR(j["model_flops"].get<double>(), 62.0e6, 0.1e6);
  EXPECT_TRUE(j["peers"].is_object());
  EXPECT_TRUE(j["peers"].empty());
}

TEST_F(Bench, BatchScalesFlopsAndThroughput) {
  testing::CliResult r = kiln(kQuick + "--batch 3 --iters 1 --rounds 2 --json");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const json j = parse(r);
  EXPECT_EQ(j["input_shape"], json::parse("[3, 1, 16, 16]"));
  const double med = j["median_ms"].get<double>();
  EXPECT_NEAR(j["images_per_s"].get<double>(), 3000.0 / med, 1e-6 * 3000.0 / med);
  // 31.0 M MACs at 28×28 scale with the pixels: ×(16/28)² per image, ×3 images.
  EXPECT_NEAR(j["model_flops"].get<double>(), 3 * 62.0e6 * 256 / 784, 0.05e6 * 3);
}

TEST_F(Bench, TextTable) {
  testing::CliResult r = kiln(kQuick + "--iters 1 --rounds 1");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find("kiln bench resnet20: input 1×1×16×16"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("median ms"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nkiln "), std::string::npos) << r.out;
}

/// --compare with each available peer: the figures, a positive ratio inside its per-round
/// range, and agreement on the check input.
TEST_F(Bench, ComparesWithPeers) {
  std::string peers;
  if (testing::cannotImport({"torch", "torchvision", "numpy"}).empty()) peers = "torch";
  if (fs::exists(kPeersDir + "/node_modules/onnxruntime-node"))
    peers += peers.empty() ? "ort" : ",ort";
  if (peers.empty())
    GTEST_SKIP() << "neither torch (" << KILN_PYTHON << ") nor bench/peers/node_modules";
  testing::CliResult r =
      kiln(kQuick + "--iters 2 --rounds 2 --json --compare " + peers + cacheArg());
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const json j = parse(r);
  ASSERT_NO_FATAL_FAILURE(expectTimings(j, 2));
  EXPECT_TRUE(j["warnings"].empty()) << j["warnings"].dump();
  for (std::string_view name : {"torch", "ort"}) {
    if (peers.find(name) == std::string::npos) continue;
    SCOPED_TRACE(std::string(name));
    ASSERT_TRUE(j["peers"].contains(name)) << j.dump();
    const json& p = j["peers"][std::string(name)];
    ASSERT_NO_FATAL_FAILURE(expectTimings(p, 2));
    EXPECT_GT(p["load_ms"].get<double>(), 0);
    const double ratio = p["ratio"].get<double>();
    EXPECT_NEAR(ratio, j["median_ms"].get<double>() / p["median_ms"].get<double>(), 1e-9 * ratio);
    EXPECT_GT(p["ratio_min"].get<double>(), 0);
    EXPECT_LE(p["ratio_min"].get<double>(), p["ratio_max"].get<double>());
    EXPECT_TRUE(p["agrees"].get<bool>()) << p.dump();
    EXPECT_LE(p["max_abs_diff"].get<double>(), j["tolerance"].get<double>());
    EXPECT_GT(j["max_abs_ref"].get<double>(), 0);
  }
  // The benchmark weights keep the logits sensitive to the input, so the check means something.
  EXPECT_GT(j["input_sensitivity"].get<double>(), 10 * j["tolerance"].get<double>());
}

/// --train times the train step: its FLOPs are the forward's plus the backward's (about 3x),
/// and --compare torch runs PyTorch eager training in NCHW and channels_last, which must agree
/// on the first step's loss.
TEST_F(Bench, TrainStep) {
  testing::CliResult r = kiln(kQuick + "--train --batch 4 --iters 1 --rounds 1 --json");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const json j = parse(r);
  ASSERT_NO_FATAL_FAILURE(expectTimings(j, 1, 4));
  EXPECT_EQ(j["model"], "resnet20 (train step)");
  const double forward = 4 * 62.0e6 * 256 / 784;
  EXPECT_GT(j["model_flops"].get<double>(), 2.5 * forward);
  EXPECT_LT(j["model_flops"].get<double>(), 4 * forward);
  if (std::string why = testing::cannotImport({"torch", "torchvision", "numpy"}); !why.empty())
    GTEST_SKIP() << why;
  r = kiln(kQuick + "--train --batch 4 --iters 1 --rounds 2 --json --compare torch");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const json t = parse(r);
  for (const char* name : {"torch", "torch_cl"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(t["peers"].contains(name)) << t.dump();
    const json& p = t["peers"][name];
    ASSERT_NO_FATAL_FAILURE(expectTimings(p, 2, 4));
    EXPECT_TRUE(p["agrees"].get<bool>()) << p.dump();
    EXPECT_LE(p["max_abs_diff"].get<double>(), t["tolerance"].get<double>());
  }
  EXPECT_TRUE(t["warnings"].empty()) << t["warnings"].dump();
}

/// A model whose output ignores its input (the stem conv's weights zeroed) passes any
/// agreement check: that is reported as a weak check.
TEST_F(Bench, WeakCheckIsReported) {
  if (std::string why = testing::cannotImport({"torch", "torchvision", "numpy"}); !why.empty())
    GTEST_SKIP() << why;
  ASSERT_EQ(kiln("opt resnet20 --random-weights --save-weights " + path("w.npz")).exitCode, 0);
  auto store = runtime::readNpz(path("w.npz"));
  ASSERT_TRUE(store.isOk()) << store.message();
  ir::Tensor zero = ir::Tensor::zeros(store->find("conv1.weight")->type());
  store->set("conv1.weight", zero);
  ASSERT_TRUE(runtime::writeNpz(path("w.npz"), *store).isOk());
  testing::CliResult r = kiln(kQuick + "--iters 1 --rounds 1 --compare torch --json --weights " +
                              path("w.npz") + cacheArg());
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const json j = parse(r);
  EXPECT_LE(j["input_sensitivity"].get<double>(), 10 * j["tolerance"].get<double>()) << j.dump();
  ASSERT_EQ(j["warnings"].size(), 1u) << j.dump();
  EXPECT_NE(j["warnings"][0].get<std::string>().find("the agreement check is weak"),
            std::string::npos);
  EXPECT_NE(r.err.find("WARNING: the output barely depends on the input"), std::string::npos)
      << r.err;
}

/// The agreement check must be able to fail: swap the cached TorchScript model for one with
/// other weights (another --seed) and the run must report a void comparison.
TEST_F(Bench, DisagreeingPeerIsReported) {
  if (std::string why = testing::cannotImport({"torch", "torchvision", "numpy"}); !why.empty())
    GTEST_SKIP() << why;
  const std::string run = kQuick + "--iters 1 --rounds 1 --compare torch" + cacheArg();
  ASSERT_EQ(kiln(run + " --seed 1").exitCode, 0);
  ASSERT_EQ(kiln(run + " --seed 2").exitCode, 0);
  std::vector<fs::path> exported;
  for (const auto& e : fs::directory_iterator(path("cache"))) exported.push_back(e.path());
  ASSERT_EQ(exported.size(), 2u);  // one per weight set
  fs::copy_file(exported[0] / "model.pt", path("swap.pt"));
  fs::copy_file(exported[1] / "model.pt", exported[0] / "model.pt",
                fs::copy_options::overwrite_existing);
  fs::copy_file(path("swap.pt"), exported[1] / "model.pt", fs::copy_options::overwrite_existing);

  testing::CliResult text = kiln(run + " --seed 1");
  ASSERT_EQ(text.exitCode, 0) << text.err;
  EXPECT_NE(text.out.find("WARNING: kiln and torch DISAGREE"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("VOID"), std::string::npos) << text.out;
  EXPECT_NE(text.err.find("WARNING"), std::string::npos) << text.err;
  testing::CliResult r = kiln(run + " --seed 2 --json");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const json j = parse(r);
  EXPECT_FALSE(j["peers"]["torch"]["agrees"].get<bool>()) << j.dump();
  EXPECT_GT(j["peers"]["torch"]["max_abs_diff"].get<double>(), j["tolerance"].get<double>());
  EXPECT_EQ(j["warnings"].size(), 1u);
}

}  // namespace
}  // namespace kiln
