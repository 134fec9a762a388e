// The C API (runtime/kiln_c.h) and the example programs: sessions from .kir/.kpb files, runs on
// float buffers, status codes with messages, and examples/classify.cpp and examples/c_api.c
// printing the same classes as an in-process Session.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "ir/proto_io.h"
#include "models/registry.h"
#include "runtime/kiln_c.h"
#include "runtime/npy.h"
#include "runtime/session.h"
#include "tests/tools/cli_util.h"

namespace {

namespace fs = std::filesystem;
using namespace kiln;

class CApi : public kiln::testing::CliTest {};

using kiln::testing::kTinyGraph;

void writeTinyWeights(const std::string& file) {
  ir::WeightStore store;
  ir::Tensor w(ir::DType::F32, {2, 4}), b(ir::DType::F32, {2});
  const float wv[] = {1, 0, 0, 0, 0, 1, 0, 0};
  std::copy(std::begin(wv), std::end(wv), w.data<float>());
  b.data<float>()[0] = 0.5f;
  b.data<float>()[1] = -10.0f;
  store.set("fc.weight", w);
  store.set("fc.bias", b);
  ASSERT_TRUE(runtime::writeNpz(file, store).isOk());
}

TEST_F(CApi, KirWithNpzRunsOnBothBackends) {
  write("tiny.kir", kTinyGraph);
  writeTinyWeights(path("w.npz"));
  for (const char* backend : {"onednn", "reference"}) {
    SCOPED_TRACE(backend);
    kiln_session* s = nullptr;
    ASSERT_EQ(kiln_session_create(path("tiny.kir").c_str(), path("w.npz").c_str(), backend, 1, &s), KILN_OK)
        << kiln_last_error();
    EXPECT_EQ(kiln_session_num_inputs(s), 1u);
    EXPECT_EQ(kiln_session_num_outputs(s), 1u);
    const float x[] = {1, 2, 3, 4, -1, 20, 0, 0, 0, 0, 0, 0};
    const int64_t shape[] = {3, 4};
    kiln_tensor in{x, 2, shape};
    kiln_outputs* out = nullptr;
    ASSERT_EQ(kiln_session_run(s, &in, 1, &out), KILN_OK) << kiln_last_error();
    ASSERT_EQ(kiln_outputs_count(out), 1u);
    ASSERT_EQ(kiln_outputs_rank(out, 0), 2);
    EXPECT_EQ(kiln_outputs_shape(out, 0)[0], 3);
    EXPECT_EQ(kiln_outputs_shape(out, 0)[1], 2);
    const float* y = kiln_outputs_data(out, 0);
    const float want[] = {1.5f, 0, 0, 10, 0.5f, 0};  // relu(x0 + 0.5, x1 - 10)
    for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(y[i], want[i]) << i;
    kiln_outputs_destroy(out);
    kiln_session_destroy(s);
  }
}

TEST_F(CApi, ErrorsHaveCodesAndMessages) {
  kiln_session* s = nullptr;
  EXPECT_EQ(kiln_session_create(nullptr, nullptr, nullptr, 0, &s), KILN_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_last_error()).find("model_path is NULL"), std::string::npos);
  EXPECT_EQ(kiln_session_create(path("nope.kir").c_str(), nullptr, nullptr, 0, &s), KILN_LOAD_ERROR);
  EXPECT_NE(std::string(kiln_last_error()).find("cannot open"), std::string::npos) << kiln_last_error();
  EXPECT_EQ(s, nullptr);
  write("tiny.kir", kTinyGraph);
  EXPECT_EQ(kiln_session_create(path("tiny.kir").c_str(), nullptr, "gpu", 0, &s), KILN_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_last_error()).find("unknown backend 'gpu'"), std::string::npos);
  EXPECT_EQ(kiln_session_create(path("tiny.kir").c_str(), nullptr, nullptr, 0, &s), KILN_COMPILE_ERROR);
  EXPECT_NE(std::string(kiln_last_error()).find("fc.weight"), std::string::npos) << kiln_last_error();
  write("bad.kir", "graph @bad {\n  input %x : f32[N,4]{nc}\n  %0 = frob(%x) : f32[N,4]{nc}\n}\n");
  EXPECT_EQ(kiln_session_create(path("bad.kir").c_str(), nullptr, nullptr, 0, &s), KILN_LOAD_ERROR);
  EXPECT_NE(std::string(kiln_last_error()).find("bad.kir:3:"), std::string::npos) << kiln_last_error();

  writeTinyWeights(path("w.npz"));
  ASSERT_EQ(kiln_session_create(path("tiny.kir").c_str(), path("w.npz").c_str(), nullptr, 0, &s), KILN_OK);
  EXPECT_STREQ(kiln_last_error(), "");
  const float x[5] = {};
  const int64_t wrong[] = {1, 5};
  kiln_tensor in{x, 2, wrong};
  kiln_outputs* out = nullptr;
  EXPECT_EQ(kiln_session_run(s, &in, 1, &out), KILN_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_last_error()).find("expected [N,4], got [1,5]"), std::string::npos) << kiln_last_error();
  EXPECT_EQ(out, nullptr);
  EXPECT_EQ(kiln_session_run(s, &in, 2, &out), KILN_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kiln_last_error()).find("has 1 inputs, 2 were given"), std::string::npos);
  kiln_tensor noData{nullptr, 2, wrong};
  const int64_t right[] = {1, 4};
  noData.shape = right;
  EXPECT_EQ(kiln_session_run(s, &noData, 1, &out), KILN_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_session_run(nullptr, &in, 1, &out), KILN_INVALID_ARGUMENT);
  kiln_session_destroy(s);
  kiln_session_destroy(nullptr);
  kiln_outputs_destroy(nullptr);
}

struct Program {
  int exitCode;
  std::string out;
};

Program runProgram(const std::string& cmd, const std::string& outFile) {
  const int status = std::system((cmd + " >" + outFile + " 2>&1").c_str());
  std::ifstream in(outFile);
  return Program{WIFEXITED(status) ? WEXITSTATUS(status) : 128, std::string(std::istreambuf_iterator<char>(in), {})};
}

TEST_F(CApi, ExamplesPrintTheSessionsTopClasses) {
  models::ModelConfig cfg = models::defaultConfig(*models::findModel("resnet18"));
  cfg.resolution = 32;
  cfg.numClasses = 20;
  auto m = models::buildModel("resnet18", cfg);
  ASSERT_TRUE(m.isOk()) << m.message();
  ir::initMissingWeights(m->graph, m->weights, 9);
  ASSERT_TRUE(ir::writeKpb(path("r18.kpb"), *m).isOk());

  // The examples' input: x[i] = sin(0.01 i), batch 1.
  ir::Tensor x(ir::DType::F32, {1, 3, 32, 32});
  for (int64_t i = 0; i < x.numElements(); ++i) x.data<float>()[i] = std::sin(0.01f * static_cast<float>(i));
  runtime::SessionOptions o;
  o.backend = "reference";
  auto session = runtime::Session::create(m->clone(), o);
  ASSERT_TRUE(session.isOk()) << session.message();
  auto y = (*session)->run(std::vector<ir::Tensor>{x});
  ASSERT_TRUE(y.isOk()) << y.message();
  std::vector<int64_t> order(20);
  for (int64_t c = 0; c < 20; ++c) order[c] = c;
  const float* p = (*y)[0].data<float>();
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });

  const Program cpp = runProgram(std::string(KILN_CLASSIFY_BINARY) + " " + path("r18.kpb"), path("cpp.txt"));
  const Program c = runProgram(std::string(KILN_C_API_BINARY) + " " + path("r18.kpb"), path("c.txt"));
  ASSERT_EQ(cpp.exitCode, 0) << cpp.out;
  ASSERT_EQ(c.exitCode, 0) << c.out;
  EXPECT_EQ(cpp.out, c.out);
  for (int k = 0; k < 5; ++k)
    EXPECT_NE(cpp.out.find(fmt::format("{} class {} score", k + 1, order[k])), std::string::npos)
        << "rank " << k + 1 << " should be class " << order[k] << ":\n" << cpp.out;

  const Program usage = runProgram(std::string(KILN_C_API_BINARY), path("usage.txt"));
  EXPECT_EQ(usage.exitCode, 2);
  const Program missing = runProgram(std::string(KILN_CLASSIFY_BINARY) + " " + path("nope.kpb"), path("m.txt"));
  EXPECT_EQ(missing.exitCode, 1);
  EXPECT_NE(missing.out.find("error: cannot open"), std::string::npos) << missing.out;
}

}  // namespace
