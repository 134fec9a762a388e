// tools/peers.h: the JSON-lines child processes of `kiln bench --compare`. The process layer
// against small shell scripts (exit, garbage, silence, a child that will not quit), and the
// protocol against the real peers (bench/peers/torch_peer.py and ort_peer.js) on resnet20 at
// 16×16 exported by bench/peers/export.py with kiln's random weights: their output must match
// the reference backend's on the same input, and must change with the input.
//
// The torch peer runs wherever /usr/bin/python3 has torch (CI does). The ORT peer needs
// bench/peers/node_modules (scripts/setup-bench.sh, not run by CI): without it its tests
// GTEST_SKIP saying so; with it they must pass.
#include "tools/peers.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "backends/reference/reference.h"
#include "ir/module.h"
#include "models/registry.h"
#include "runtime/npy.h"
#include "tests/python_util.h"
#include "tests/tolerance.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using tools::JsonLineProcess;
using tools::Peer;
using tools::PeerKind;

const std::string kPeersDir = std::string(KILN_SOURCE_DIR) + "/bench/peers";

std::unique_ptr<JsonLineProcess> shell(const std::string& script) {
  auto p = JsonLineProcess::spawn({"/bin/sh", "-c", script}, {});
  EXPECT_TRUE(p.isOk()) << p.message();
  return p.isOk() ? std::move(p).value() : nullptr;
}

bool contains(const std::string& s, std::string_view needle) {
  return s.find(needle) != std::string::npos;
}

TEST(JsonLineProcess, ReadsRepliesThenReportsTheExitAndStderr) {
  auto p = shell("read line; echo '{\"ok\":true,\"got\":1}'; echo 'it broke' >&2; exit 3");
  ASSERT_TRUE(p);
  Expected<json> reply = p->request({{"cmd", "x"}}, 30);
  ASSERT_TRUE(reply.isOk()) << reply.message();
  EXPECT_EQ((*reply)["got"], 1);
  Expected<json> next = p->readLine(30);
  ASSERT_FALSE(next.isOk());
  EXPECT_TRUE(contains(next.message(), "exited with status 3:\nit broke")) << next.message();
}

TEST(JsonLineProcess, EnvironmentOverridesReachTheChild) {
  auto p = shell("echo \"{\\\"v\\\":\\\"$KILN_TEST_VALUE\\\"}\"");
  ASSERT_TRUE(p);
  auto q = JsonLineProcess::spawn(
      {"/bin/sh", "-c", "echo \"{\\\"v\\\":\\\"$KILN_TEST_VALUE\\\"}\""}, {"KILN_TEST_VALUE=seen"});
  ASSERT_TRUE(q.isOk()) << q.message();
  Expected<json> a = p->readLine(30), b = (*q)->readLine(30);
  ASSERT_TRUE(a.isOk() && b.isOk());
  EXPECT_EQ((*a)["v"], "");
  EXPECT_EQ((*b)["v"], "seen");
}

TEST(JsonLineProcess, NonJsonLineIsAnError) {
  auto p = shell("echo 'hello world'; echo '[1,2]'; cat >/dev/null");
  ASSERT_TRUE(p);
  Expected<json> a = p->readLine(30);
  ASSERT_FALSE(a.isOk());
  EXPECT_TRUE(contains(a.message(), "not a JSON object: hello world")) << a.message();
  Expected<json> b = p->readLine(30);
  ASSERT_FALSE(b.isOk());
  EXPECT_TRUE(contains(b.message(), "not a JSON object: [1,2]")) << b.message();
}

TEST(JsonLineProcess, SilentChildTimesOutAndIsKilled) {
  auto p = shell("sleep 60");
  ASSERT_TRUE(p);
  const pid_t pid = p->pid();
  Expected<json> r = p->readLine(0.2);
  ASSERT_FALSE(r.isOk());
  EXPECT_TRUE(contains(r.message(), "did not answer within 0 s (killed)")) << r.message();
  EXPECT_EQ(::kill(pid, 0), -1);  // reaped: no such process any more
  EXPECT_EQ(errno, ESRCH);
}

TEST(JsonLineProcess, DestructorEndsAChildThatIgnoresQuit) {
  // Ignores its input and SIGTERM; only SIGKILL ends it.
  auto p = shell("trap '' TERM; exec sleep 60");
  ASSERT_TRUE(p);
  const pid_t pid = p->pid();
  p.reset();
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST(JsonLineProcess, WritingToADeadChildIsAnError) {
  auto p = shell("echo 'gone' >&2; exit 0");
  ASSERT_TRUE(p);
  ASSERT_FALSE(p->readLine(30).isOk());  // EOF: it exited
  Status s = p->writeLine({{"cmd", "run"}});
  ASSERT_FALSE(s.isOk());  // EPIPE, and kiln is still alive to say so
  EXPECT_TRUE(contains(s.message(), "gone")) << s.message();
}

TEST(JsonLineProcess, MissingProgram) {
  auto p = JsonLineProcess::spawn({"/nonexistent/peer"}, {});
  ASSERT_FALSE(p.isOk());
  EXPECT_EQ(p.message(), "cannot run '/nonexistent/peer' (No such file or directory)");
}

TEST(RunToCompletion, OutputAndFailures) {
  Expected<std::string> ok =
      tools::runToCompletion({"/bin/sh", "-c", "echo out; echo err >&2"}, {});
  ASSERT_TRUE(ok.isOk()) << ok.message();
  EXPECT_TRUE(contains(*ok, "out") && contains(*ok, "err")) << *ok;
  Expected<std::string> bad = tools::runToCompletion({"/bin/sh", "-c", "echo why; exit 4"}, {});
  ASSERT_FALSE(bad.isOk());
  EXPECT_TRUE(contains(bad.message(), "exited with status 4:\nwhy")) << bad.message();
}

TEST(PeerList, Parses) {
  auto both = tools::parsePeerList("torch,ort");
  ASSERT_TRUE(both.isOk()) << both.message();
  EXPECT_EQ(*both, (std::vector<PeerKind>{PeerKind::Torch, PeerKind::Ort}));
  EXPECT_TRUE(tools::parsePeerList("")->empty());
  EXPECT_EQ(tools::parsePeerList("ort,tf").message(),
            "--compare: unknown peer 'tf' (known: ort, torch)");
  EXPECT_EQ(tools::parsePeerList("ort,ort").message(), "--compare: 'ort' is listed twice");
}

TEST(PeerStart, UnavailableRuntimesSaySo) {
  const fs::path empty = fs::temp_directory_path() / fmt::format("kiln_peers_empty_{}", ::getpid());
  fs::create_directories(empty);
  tools::PeerEnv env{empty.string(), "/nonexistent/python3", "node"};
  auto ort = Peer::start(PeerKind::Ort, env, 1);
  ASSERT_FALSE(ort.isOk());
  EXPECT_EQ(ort.message(), fmt::format("ORT peer unavailable: {}/ort_peer.js does not exist: run "
                                       "scripts/setup-bench.sh",
                                       empty.string()));
  env.peersDir = kPeersDir;
  auto torch = Peer::start(PeerKind::Torch, env, 1);
  ASSERT_FALSE(torch.isOk());
  EXPECT_EQ(torch.message(),
            "torch peer unavailable: cannot run '/nonexistent/python3' (No such "
            "file or directory): run scripts/setup-bench.sh");
  fs::remove_all(empty);
}

// ---- the real peers -----------------------------------------------------------------------

constexpr int64_t kBatch = 2, kRes = 16;

/// resnet20 (1×16×16, batch 2) with kiln's random weights, exported for both peers; two
/// inputs and the reference backend's outputs for them.
class PeerProtocol : public ::testing::TestWithParam<PeerKind> {
 protected:
  static void SetUpTestSuite() {
    skip_ = testing::cannotImport({"torch", "torchvision", "numpy"});
    if (!skip_.empty()) return;
    dir_ = fs::temp_directory_path() / fmt::format("kiln_peers_{}", ::getpid());
    fs::create_directories(dir_);
    models::ModelConfig config = models::defaultConfig(*models::findModel("resnet20"));
    config.batch = kBatch;
    config.resolution = kRes;
    Expected<ir::Module> m = models::buildModel("resnet20", config);
    ASSERT_TRUE(m.isOk()) << m.message();
    ir::initMissingWeights(m->graph, m->weights, 7);
    const std::string weights = (dir_ / "w.npz").string();
    ASSERT_TRUE(runtime::writeNpz(weights, m->weights).isOk());
    Expected<std::string> out = tools::runToCompletion(
        {KILN_PYTHON, kPeersDir + "/export.py", "--model", "resnet20", "--weights", weights,
         "--batch", "2", "--resolution", "16", "--in-channels", "1", "--num-classes", "10", "--out",
         dir_.string()},
        {});
    ASSERT_TRUE(out.isOk()) << out.message();
    std::mt19937 rng(3);
    std::normal_distribution<float> dist;
    for (int i = 0; i < 2; ++i) {
      ir::Tensor x(ir::DType::F32, {kBatch, 1, kRes, kRes});
      for (float& v : x.span<float>()) v = dist(rng);
      ASSERT_TRUE(runtime::writeNpy(input(i), x).isOk());
      auto y = backends::reference::run(*m, std::span<const ir::Tensor>(&x, 1));
      ASSERT_TRUE(y.isOk()) << y.message();
      y_[i] = (*y)[0];
    }
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_ << ": no peer models";
    if (GetParam() == PeerKind::Ort && !fs::exists(kPeersDir + "/node_modules/onnxruntime-node"))
      GTEST_SKIP() << "bench/peers/node_modules is absent (run scripts/setup-bench.sh): the ORT "
                      "peer is not installed";
    ASSERT_FALSE(y_[1].empty()) << "the peer models were not exported";
  }

  static std::string input(int i) { return (dir_ / fmt::format("x{}.npy", i)).string(); }
  std::string model() const {
    return (dir_ / (GetParam() == PeerKind::Ort ? "model.onnx" : "model.pt")).string();
  }
  std::unique_ptr<Peer> start() {
    auto p = Peer::start(GetParam(), tools::defaultPeerEnv(), 1);
    EXPECT_TRUE(p.isOk()) << p.message();
    return p.isOk() ? std::move(p).value() : nullptr;
  }

  static inline std::string skip_;
  static inline fs::path dir_;
  static inline ir::Tensor y_[2];
};

double maxAbsDiff(const ir::Tensor& a, const ir::Tensor& b) {
  double d = 0;
  for (int64_t i = 0; i < a.numElements(); ++i) d = std::max(d, std::abs(a.at(i) - b.at(i)));
  return d;
}

double maxAbs(const ir::Tensor& a) {
  double m = 0;
  for (int64_t i = 0; i < a.numElements(); ++i) m = std::max(m, std::abs(a.at(i)));
  return m;
}

TEST_P(PeerProtocol, LoadRunRssOutput) {
  std::unique_ptr<Peer> peer = start();
  ASSERT_TRUE(peer);
  EXPECT_FALSE(peer->version().empty());
  auto loaded = peer->load(model(), input(0));
  ASSERT_TRUE(loaded.isOk()) << loaded.message();
  EXPECT_GT(loaded->ms, 0);
  if (GetParam() == PeerKind::Torch && fs::exists("/usr/lib/x86_64-linux-gnu/openblas-openmp")) {
    // setup-bench.sh's OpenBLAS, through the LD_LIBRARY_PATH kiln gives the peer.
    EXPECT_TRUE(contains(loaded->blas, "openblas")) << loaded->blas;
  }

  auto times = peer->run(3);
  ASSERT_TRUE(times.isOk()) << times.message();
  ASSERT_EQ(times->size(), 3u);
  for (double t : *times) EXPECT_GT(t, 0);
  auto peak = peer->peakBytes();
  ASSERT_TRUE(peak.isOk()) << peak.message();
  EXPECT_GT(*peak, 10 << 20);  // a runtime with a model loaded holds well over 10 MiB

  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(input(i));
    auto y = peer->output(input(i));
    ASSERT_TRUE(y.isOk()) << y.message();
    ASSERT_EQ(y->shape(), (ir::Shape{kBatch, 10}));
    const double tol = testing::modelTolerance(maxAbs(y_[i]));
    EXPECT_LE(maxAbsDiff(*y, y_[i]), tol);
    // The check can fail: the other input's logits are far from these.
    EXPECT_GT(maxAbsDiff(*y, y_[1 - i]), 10 * tol);
  }
}

TEST_P(PeerProtocol, ErrorsKeepThePeerServing) {
  std::unique_ptr<Peer> peer = start();
  ASSERT_TRUE(peer);
  auto early = peer->run(1);
  ASSERT_FALSE(early.isOk());
  EXPECT_TRUE(contains(early.message(), "no model: send load first")) << early.message();
  auto bad = peer->load((dir_ / "nope.bin").string(), input(0));
  ASSERT_FALSE(bad.isOk());
  EXPECT_TRUE(contains(bad.message(), "nope.bin")) << bad.message();
  auto unknown = peer->request({{"cmd", "frobnicate"}});
  ASSERT_FALSE(unknown.isOk());
  EXPECT_TRUE(contains(unknown.message(), "unknown cmd")) << unknown.message();
  auto zero = peer->request({{"cmd", "run"}, {"iters", 0}});
  ASSERT_FALSE(zero.isOk());
  EXPECT_TRUE(contains(zero.message(), "iters must be >= 1")) << zero.message();
  EXPECT_TRUE(contains(unknown.message(), std::string(tools::peerName(GetParam())) + " peer"))
      << unknown.message();
  // Still serving.
  ASSERT_TRUE(peer->load(model(), input(1)).isOk());
  auto times = peer->run(1);
  ASSERT_TRUE(times.isOk()) << times.message();
  auto missing = peer->output((dir_ / "missing.npy").string());
  ASSERT_FALSE(missing.isOk());
  EXPECT_TRUE(contains(missing.message(), "missing.npy")) << missing.message();
}

INSTANTIATE_TEST_SUITE_P(Peers, PeerProtocol, ::testing::Values(PeerKind::Torch, PeerKind::Ort),
                         [](const auto& info) { return std::string(tools::peerName(info.param)); });

}  // namespace
}  // namespace kiln
