// `kiln train` / `kiln eval` end to end on a tiny conv net and generated IDX data: it learns,
// the summary ends with the evaluation line, eval of the checkpoint agrees, --resume is
// bit-exact (6 + 6 steps == 12 steps, across an epoch end), a NaN loss stops training and
// keeps the last good checkpoint, SIGINT checkpoints and exits, and every bad input is one
// error line.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "runtime/checkpoint.h"
#include "runtime/npy.h"
#include "tests/runtime/data_util.h"
#include "tests/tolerance.h"
#include "tests/tools/cli_util.h"

namespace kiln::testing {
namespace {

// conv - BN - relu - global pool - linear on 1x28x28, 4 classes.
constexpr const char* kTinyCnn =
    "graph @tinycnn {\n"
    "  input %x : f32[N,1,28,28]{nchw}\n"
    "  param %conv.weight : f32[4,1,3,3]{oihw}\n"
    "  param %bn.weight : f32[4]{x}\n"
    "  param %bn.bias : f32[4]{x}\n"
    "  buffer %bn.running_mean : f32[4]{x}\n"
    "  buffer %bn.running_var : f32[4]{x}\n"
    "  param %fc.weight : f32[4,4]{oi}\n"
    "  param %fc.bias : f32[4]{x}\n"
    "  %0 = conv2d(%x, %conv.weight) {stride=[2,2], pad=[1,1,1,1], dilation=[1,1], groups=1} : "
    "f32[N,4,14,14]{nchw}\n"
    "  %1 = batch_norm(%0, %bn.weight, %bn.bias, %bn.running_mean, %bn.running_var) "
    "{epsilon=1e-05} : f32[N,4,14,14]{nchw}\n"
    "  %2 = relu(%1) : f32[N,4,14,14]{nchw}\n"
    "  %3 = global_avg_pool(%2) : f32[N,4,1,1]{nchw}\n"
    "  %4 = flatten(%3) {axis=1} : f32[N,4]{nc}\n"
    "  %logits = linear(%4, %fc.weight, %fc.bias) : f32[N,4]{nc}\n"
    "  output %logits\n"
    "}\n";

class Train : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    write("tiny.kir", kTinyCnn);
    writeIdxClasses(dir_ / "data", "train", 64, 4);  // 8 batches of 8 per epoch
    writeIdxClasses(dir_ / "data", "t10k", 32, 4, 20, 2);
  }
  /// `kiln train tiny.kir` on the generated data, batch 8, one thread, then `args`.
  CliResult train(const std::string& args) {
    return kiln(fmt::format("train {} --data {} --batch 8 --threads 1 --workers 0 {}",
                            path("tiny.kir"), path("data"), args));
  }
  std::vector<nlohmann::json> metrics(const std::string& file) {
    std::vector<nlohmann::json> out;
    std::ifstream in(path(file));
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }
  static int count(const std::vector<nlohmann::json>& m, const std::string& event) {
    return static_cast<int>(std::count_if(
        m.begin(), m.end(), [&](const nlohmann::json& j) { return j["event"] == event; }));
  }
};

std::string lastLine(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t.substr(t.rfind('\n') == std::string::npos ? 0 : t.rfind('\n') + 1);
}

/// Training failed after it started: progress lines, then one error line, the last.
void expectLastLineError(const CliResult& r, int code, const std::string& needle) {
  EXPECT_EQ(r.exitCode, code) << r.err;
  const std::string last = lastLine(r.err);
  EXPECT_EQ(last.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(last.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("error: "), r.err.rfind("error: ")) << "more than one error line\n" << r.err;
}

void expectSameStores(const std::string& a, const std::string& b) {
  auto x = runtime::readNpz(a);
  auto y = runtime::readNpz(b);
  ASSERT_TRUE(x.isOk()) << x.message();
  ASSERT_TRUE(y.isOk()) << y.message();
  ASSERT_EQ(x->size(), y->size());
  ASSERT_GT(x->size(), 0u);
  for (const auto& [name, t] : x->entries()) {
    const ir::Tensor* u = y->find(name);
    ASSERT_NE(u, nullptr) << name;
    EXPECT_TRUE(sameBytes(t, *u)) << name << " differs between " << a << " and " << b;
  }
}

TEST_F(Train, LearnsAndEvaluates) {
  const CliResult r = train(fmt::format("--epochs 4 --checkpoint-dir {} --metrics-file {}",
                                        path("ckpt"), path("m.jsonl")));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  // The summary ends with the evaluation of the final weights.
  const std::string last = lastLine(r.out);
  // (no std::regex: gcc 12 warns inside it under -fsanitize, and CI has -Werror)
  double top1 = -1, top5 = -1;
  char rest = 0;
  ASSERT_EQ(std::sscanf(last.c_str(), "test top-1: %lf%% top-5: %lf%%%c", &top1, &top5, &rest), 2)
      << r.out;
  EXPECT_EQ(last, fmt::format("test top-1: {:.2f}% top-5: {:.2f}%", top1, top5));
  EXPECT_GE(top1, 50.0) << "chance is 25%: the model did not learn\n" << r.err;
  EXPECT_EQ(top5, 100.0);  // 4 classes: top-5 holds every class
  EXPECT_NE(r.err.find("epoch 4/4 step 32/32"), std::string::npos) << r.err;
  const auto log = metrics("m.jsonl");
  EXPECT_EQ(count(log, "step"), 32);
  EXPECT_EQ(count(log, "eval"), 4);  // one per epoch
  EXPECT_EQ(count(log, "epoch"), 4);
  EXPECT_EQ(log.front()["event"], "start");
  EXPECT_EQ(log.back()["event"], "end");
  // The cosine schedule, per iteration: lr(0) = 0.1, lr(16) = 0.05.
  for (const auto& j : log) {
    if (j["event"] == "step" && j["step"] == 17) {
      EXPECT_NEAR(j["lr"].get<double>(), 0.05, 1e-15);
    }
  }
  // kiln eval on the checkpoint and on its weights.npz reproduces the line.
  auto c = runtime::loadCheckpoint(path("ckpt"));
  ASSERT_TRUE(c.isOk()) << c.message();
  EXPECT_EQ(c->state.step, 32);
  EXPECT_EQ(c->state.epoch, 4);
  for (const std::string& w : {path("ckpt"), c->dir + "/weights.npz"}) {
    const CliResult e = kiln(fmt::format("eval {} --weights {} --data {} --batch 8 --threads 1",
                                         path("tiny.kir"), w, path("data")));
    ASSERT_EQ(e.exitCode, 0) << e.err;
    EXPECT_EQ(lastLine(e.out), last) << w;
  }
}

TEST_F(Train, ResumeIsBitExact) {
  // 12 steps straight vs 6 + 6 with a restart in between (epoch end and evaluation at 8).
  const std::string common = "--epochs 3 --lr 0.2";
  ASSERT_EQ(train(fmt::format("{} --max-steps 12 --checkpoint-dir {}", common, path("a"))).exitCode,
            0);
  const CliResult first =
      train(fmt::format("{} --max-steps 6 --checkpoint-dir {}", common, path("b")));
  ASSERT_EQ(first.exitCode, 0) << first.err;
  const CliResult second =
      train(fmt::format("{} --max-steps 12 --checkpoint-dir {} --resume", common, path("b")));
  ASSERT_EQ(second.exitCode, 0) << second.err;
  EXPECT_NE(second.out.find("for 12 step(s) (6 this run"), std::string::npos) << second.out;
  auto a = runtime::loadCheckpoint(path("a"));
  auto b = runtime::loadCheckpoint(path("b"));
  ASSERT_TRUE(a.isOk() && b.isOk());
  EXPECT_EQ(a->state.step, 12);
  EXPECT_EQ(b->state.step, 12);
  EXPECT_EQ(b->state.dataEpoch, 1);
  EXPECT_EQ(b->state.dataBatch, 4);
  expectSameStores(a->dir + "/weights.npz", b->dir + "/weights.npz");
  expectSameStores(a->dir + "/optimizer.npz", b->dir + "/optimizer.npz");
  // A different batch size cannot continue the same data order.
  const CliResult bad = kiln(fmt::format(
      "train {} --data {} --batch 4 --threads 1 --workers 0 --checkpoint-dir {} --resume",
      path("tiny.kir"), path("data"), path("b")));
  expectOneError(bad, 1, "was trained with batch 8, not 4");
}

// Without batch norm, K accumulated batches of B are one step on a batch of K*B: the data
// order does not depend on the batch size, so batches 2k and 2k+1 of 4 are batch k of 8.
constexpr const char* kTinyNoBn =
    "graph @tinynobn {\n"
    "  input %x : f32[N,1,28,28]{nchw}\n"
    "  param %conv.weight : f32[4,1,3,3]{oihw}\n"
    "  param %conv.bias : f32[4]{x}\n"
    "  param %fc.weight : f32[4,4]{oi}\n"
    "  param %fc.bias : f32[4]{x}\n"
    "  %0 = conv2d(%x, %conv.weight, %conv.bias) {stride=[2,2], pad=[1,1,1,1], "
    "dilation=[1,1], groups=1} : f32[N,4,14,14]{nchw}\n"
    "  %1 = relu(%0) : f32[N,4,14,14]{nchw}\n"
    "  %2 = global_avg_pool(%1) : f32[N,4,1,1]{nchw}\n"
    "  %3 = flatten(%2) {axis=1} : f32[N,4]{nc}\n"
    "  %logits = linear(%3, %fc.weight, %fc.bias) : f32[N,4]{nc}\n"
    "  output %logits\n"
    "}\n";

TEST_F(Train, AccumulationEqualsTheLargerBatch) {
  write("nobn.kir", kTinyNoBn);
  for (const std::string opt : {"sgd --nesterov", "adamw --wd 0.01", "rmsprop-tf --ema 0.9"}) {
    SCOPED_TRACE(opt);
    const std::string common = fmt::format(
        "train {} --data {} --threads 1 --workers 0 --max-steps 5 --lr 0.05 --optimizer {} "
        "--clip-grad-norm 1",
        path("nobn.kir"), path("data"), opt);
    const std::string a = path("big_" + opt.substr(0, 3)), b = path("acc_" + opt.substr(0, 3));
    const CliResult big = kiln(fmt::format("{} --batch 8 --checkpoint-dir {}", common, a));
    ASSERT_EQ(big.exitCode, 0) << big.err;
    const CliResult acc =
        kiln(fmt::format("{} --batch 4 --accum 2 --checkpoint-dir {}", common, b));
    ASSERT_EQ(acc.exitCode, 0) << acc.err;
    auto x = runtime::loadCheckpoint(a);
    auto y = runtime::loadCheckpoint(b);
    ASSERT_TRUE(x.isOk() && y.isOk());
    EXPECT_EQ(y->state.step, 5);
    EXPECT_EQ(y->state.dataBatch, 10);  // batches of 4: 2 per step
    for (const ir::WeightStore* st : {&x->weights, &x->optimizer}) {
      const ir::WeightStore& other = st == &x->weights ? y->weights : y->optimizer;
      for (const auto& [name, t] : st->entries()) {
        const ir::Tensor* u = other.find(name);
        ASSERT_NE(u, nullptr) << name;
        double diff = 0, ref = 0;
        for (int64_t i = 0; i < t.numElements(); ++i) {
          diff = std::max(diff, std::abs(t.at(i) - u->at(i)));
          ref = std::max(ref, std::abs(t.at(i)));
        }
        EXPECT_LE(diff, kF32.atol + kF32.rtol * ref) << name;
      }
    }
  }
  // Fewer batches per epoch than K is an error; --accum 0 is a usage error.
  expectOneError(train("--accum 9"), 1, "--accum 9 needs at least 9 batches per epoch");
  EXPECT_EQ(train("--accum 0").exitCode, 2);
}

TEST_F(Train, NanLossStopsAndKeepsTheLastGoodCheckpoint) {
  ASSERT_EQ(train(fmt::format("--max-steps 2 --checkpoint-dir {}", path("c"))).exitCode, 0);
  // The resumed run's first step has finite loss; its update with lr 1e38 overflows.
  const CliResult r = train(fmt::format(
      "--max-steps 8 --lr 1e38 --schedule constant --checkpoint-dir {} --resume", path("c")));
  expectLastLineError(r, 1, "at step 4 (epoch 1, batch 4");
  EXPECT_NE(r.err.find("training diverged"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the last good checkpoint " + path("c") + "/step-00000002 is kept"),
            std::string::npos)
      << r.err;
  auto c = runtime::loadCheckpoint(path("c"));
  ASSERT_TRUE(c.isOk()) << c.message();
  EXPECT_EQ(c->state.step, 2);
}

TEST_F(Train, SigintWritesACheckpointAndExits) {
  const std::string errFile = path("err.txt");
  const std::vector<std::string> args = {KILN_BINARY,
                                         "train",
                                         path("tiny.kir"),
                                         "--data",
                                         path("data"),
                                         "--batch",
                                         "8",
                                         "--threads",
                                         "1",
                                         "--workers",
                                         "0",
                                         "--epochs",
                                         "100000",
                                         "--checkpoint-dir",
                                         path("s"),
                                         "--metrics-file",
                                         path("m.jsonl")};
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int fd = ::open(errFile.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    ::dup2(fd, 1);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  // Wait until it trains (a few step lines in the metrics), then interrupt.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool training = false;
  while (!training && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream in(path("m.jsonl"));
    int steps = 0;
    for (std::string line; std::getline(in, line);)
      steps += line.find("\"step\",") != std::string::npos;
    training = steps >= 3;
  }
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(training) << "the child never trained";
  ASSERT_TRUE(WIFEXITED(status)) << "killed by the signal instead of exiting";
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::ifstream in(errFile);
  const std::string err(std::istreambuf_iterator<char>(in), {});
  EXPECT_NE(err.find("error: interrupted at step "), std::string::npos) << err;
  EXPECT_NE(err.find("checkpoint written to " + path("s")), std::string::npos) << err;
  auto c = runtime::loadCheckpoint(path("s"));
  ASSERT_TRUE(c.isOk()) << c.message();
  EXPECT_GE(c->state.step, 3);
  // It continues from there.
  const CliResult r = train(fmt::format(
      "--epochs 100000 --max-steps {} --checkpoint-dir {} --resume", c->state.step + 1, path("s")));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.out.find(fmt::format("for {} step(s) (1 this run", c->state.step + 1)),
            std::string::npos)
      << r.out;
}

TEST_F(Train, BadInputsAreOneErrorLine) {
  const std::string data = "--data " + path("data");
  expectOneError(kiln("train nosuchmodel " + data), 1, "'nosuchmodel' is neither a known model");
  expectOneError(train("--optimizer adam"), 1, "--optimizer adam: expected sgd, rmsprop-tf");
  expectOneError(train("--schedule linear"), 1, "--schedule linear: expected constant, step");
  expectOneError(train("--schedule multistep"), 1, "needs --milestones");
  expectOneError(kiln("train resnet20 --data /nonexistent/fmnist"), 1,
                 "--data /nonexistent/fmnist: no such file or directory");
  expectOneError(kiln("train resnet20"), 1, "give exactly one of --data DIR and --dataset");
  expectOneError(kiln("train resnet20 --dataset cifar10"), 1, "--dataset cifar10: unknown");
  expectOneError(kiln("train resnet20 --dataset fashion-mnist --data " + path("data")), 1,
                 "give exactly one of");
  expectOneError(train("--bogus 3"), 2, "--bogus");
  expectOneError(train("--lr -1"), 2, "--lr");
  expectOneError(train("--optimizer adamw --betas 0.9"), 1, "--betas: expected two values");
  expectOneError(train("--resume"), 1, "--resume needs --checkpoint-dir");
  std::filesystem::create_directories(dir_ / "empty");
  expectOneError(train("--resume --checkpoint-dir " + path("empty")), 1, "not a checkpoint");
  write("empty.txt", "");
  expectOneError(kiln("train resnet20 --data " + path("empty.txt")), 1, "empty.txt");
  // The resumed checkpoint must be of this model.
  ASSERT_EQ(train(fmt::format("--max-steps 1 --checkpoint-dir {}", path("c"))).exitCode, 0);
  expectOneError(kiln(fmt::format("train resnet20 {} --batch 8 --checkpoint-dir {} --resume", data,
                                  path("c"))),
                 1, "is of model '" + path("tiny.kir") + "', not 'resnet20'");
  // kiln eval
  expectOneError(kiln(fmt::format("eval {} {}", path("tiny.kir"), data)), 2, "--weights");
  expectOneError(
      kiln(fmt::format("eval {} {} --weights {}", path("tiny.kir"), data, path("none.npz"))), 1,
      "none.npz");
  expectOneError(kiln(fmt::format("eval resnet20 {} --weights {}", data, path("c"))), 1,
                 "the checkpoint is of model");
  expectOneError(
      kiln(fmt::format("eval resnet20 {} --weights {}/step-00000001/weights.npz", data, path("c"))),
      1, "weights.npz");
}

}  // namespace
}  // namespace kiln::testing
