// Checkpoint folders: round trip, what is kept on disk, a failed or crashed save leaves the
// last good checkpoint, and one test per bad or missing input.
#include "runtime/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ir/proto_io.h"
#include "tests/runtime/data_util.h"

namespace kiln::runtime {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

ir::Tensor ramp(ir::Shape s, float start) {
  ir::Tensor t(ir::DType::F32, s);
  float v = start;
  for (float& x : t.span<float>()) x = (v += 0.25f);
  return t;
}

ir::WeightStore weights(float start) {
  ir::WeightStore w;
  w.set("conv.weight", ramp(ir::Shape{2, 1, 3, 3}, start));
  w.set("bn.running_mean", ramp(ir::Shape{2}, -start));
  return w;
}

ir::WeightStore optimizer(float start) {
  ir::WeightStore w;
  w.set("conv.weight.momentum_buffer", ramp(ir::Shape{2, 1, 3, 3}, start * 2));
  return w;
}

CheckpointState stateAt(int64_t step) {
  CheckpointState s;
  s.model = "tiny";
  s.step = step;
  s.epoch = step / 10;
  s.dataEpoch = step / 10;
  s.dataBatch = step % 10;
  s.scheduleStep = step;
  s.seed = 0xfedcba9876543210ull;  // beyond int64: must survive JSON
  s.optionsJson = R"({"lr":0.1,"batch":8})";
  s.metricsJson = R"({"test":{"top1":12.5}})";
  return s;
}

void expectSame(const ir::WeightStore& a, const ir::WeightStore& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a.entries()) {
    const ir::Tensor* u = b.find(name);
    ASSERT_NE(u, nullptr) << name;
    EXPECT_TRUE(testing::sameBytes(t, *u)) << name;
  }
}

void writeFile(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

TEST(Checkpoint, RoundTrip) {
  TempDir d;
  const std::string root = (d.path() / "ckpt").string();
  EXPECT_FALSE(hasCheckpoint(root));
  auto dir = saveCheckpoint(root, weights(1), optimizer(1), stateAt(17));
  ASSERT_TRUE(dir.isOk()) << dir.message();
  EXPECT_EQ(fs::path(*dir).filename(), "step-00000017");
  EXPECT_TRUE(hasCheckpoint(root));
  for (const std::string& path : {root, *dir}) {  // the root (via latest) or the folder
    auto c = loadCheckpoint(path);
    ASSERT_TRUE(c.isOk()) << c.message();
    EXPECT_EQ(c->dir, *dir);
    EXPECT_EQ(c->state.model, "tiny");
    EXPECT_EQ(c->state.step, 17);
    EXPECT_EQ(c->state.epoch, 1);
    EXPECT_EQ(c->state.dataEpoch, 1);
    EXPECT_EQ(c->state.dataBatch, 7);
    EXPECT_EQ(c->state.scheduleStep, 17);
    EXPECT_EQ(c->state.seed, 0xfedcba9876543210ull);
    EXPECT_EQ(c->state.optionsJson, R"({"batch":8,"lr":0.1})");
    EXPECT_EQ(c->state.metricsJson, R"({"test":{"top1":12.5}})");
    expectSame(c->weights, weights(1));
    expectSame(c->optimizer, optimizer(1));
  }
}

TEST(Checkpoint, KeepsTheLatestAndThePreviousOne) {
  TempDir d;
  const std::string root = (d.path() / "ckpt").string();
  for (int64_t step : {5, 10, 15}) {
    ASSERT_TRUE(saveCheckpoint(root, weights(static_cast<float>(step)), optimizer(1), stateAt(step))
                    .isOk());
  }
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"latest", "step-00000010", "step-00000015"}));
  auto c = loadCheckpoint(root);
  ASSERT_TRUE(c.isOk()) << c.message();
  EXPECT_EQ(c->state.step, 15);
  expectSame(c->weights, weights(15));
  // Saving the same step again replaces it.
  ASSERT_TRUE(saveCheckpoint(root, weights(99), optimizer(1), stateAt(15)).isOk());
  c = loadCheckpoint(root);
  ASSERT_TRUE(c.isOk()) << c.message();
  expectSame(c->weights, weights(99));
}

TEST(Checkpoint, AFailedSaveKeepsTheLastGoodOne) {
  TempDir d;
  const std::string root = (d.path() / "ckpt").string();
  ASSERT_TRUE(saveCheckpoint(root, weights(1), optimizer(1), stateAt(3)).isOk());
  // A tensor without data cannot be serialized: the save fails half way.
  ir::WeightStore bad = weights(2);
  bad.set("broken", ir::Tensor());
  auto r = saveCheckpoint(root, bad, optimizer(2), stateAt(4));
  ASSERT_FALSE(r.isOk());
  // Nothing of it is left, and latest still names the good one.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"latest", "step-00000003"}));
  auto c = loadCheckpoint(root);
  ASSERT_TRUE(c.isOk()) << c.message();
  EXPECT_EQ(c->state.step, 3);
  expectSame(c->weights, weights(1));
}

TEST(Checkpoint, ACrashedSaveIsIgnored) {
  TempDir d;
  const fs::path root = d.path() / "ckpt";
  ASSERT_TRUE(saveCheckpoint(root.string(), weights(1), optimizer(1), stateAt(3)).isOk());
  // What a process killed while writing step 4 leaves: a temporary folder, half written.
  fs::create_directories(root / ".step-00000004.tmp.12345");
  writeFile(root / ".step-00000004.tmp.12345" / "weights.npz", "PK\x03\x04 trunc");
  auto c = loadCheckpoint(root.string());
  ASSERT_TRUE(c.isOk()) << c.message();
  EXPECT_EQ(c->state.step, 3);
  // The next save goes on normally and does not count the debris as a checkpoint.
  ASSERT_TRUE(saveCheckpoint(root.string(), weights(2), optimizer(2), stateAt(5)).isOk());
  EXPECT_TRUE(fs::exists(root / "step-00000003"));
  EXPECT_TRUE(fs::exists(root / "step-00000005"));
}

// ---- bad inputs: each error names the file and what was expected ----

class CheckpointErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (dir_.path() / "ckpt").string();
    auto r = saveCheckpoint(root_, weights(1), optimizer(1), stateAt(2));
    ASSERT_TRUE(r.isOk()) << r.message();
    folder_ = *r;
  }
  std::string loadError(const std::string& path) {
    auto c = loadCheckpoint(path);
    EXPECT_FALSE(c.isOk());
    return c.isOk() ? "" : c.message();
  }
  /// state.json with `key` set to `value` (raw JSON) or removed (empty value).
  void editState(const std::string& key, const std::string& value) {
    std::ifstream in(fs::path(folder_) / "state.json");
    nlohmann::json j = nlohmann::json::parse(in);
    if (value.empty()) {
      j.erase(key);
    } else {
      j[key] = nlohmann::json::parse(value);
    }
    writeFile(fs::path(folder_) / "state.json", j.dump());
  }
  TempDir dir_;
  std::string root_, folder_;
};

TEST_F(CheckpointErrors, Missing) {
  const std::string m = loadError((dir_.path() / "nope").string());
  EXPECT_NE(m.find("nope"), std::string::npos) << m;
  EXPECT_NE(m.find("no such file or directory"), std::string::npos) << m;
}

TEST_F(CheckpointErrors, NotACheckpoint) {
  fs::create_directories(dir_.path() / "empty");
  const std::string m = loadError((dir_.path() / "empty").string());
  EXPECT_NE(m.find("not a checkpoint"), std::string::npos) << m;
}

TEST_F(CheckpointErrors, LatestNamesNothing) {
  writeFile(fs::path(root_) / "latest", "step-00000099\n");
  const std::string m = loadError(root_);
  EXPECT_NE(m.find("step-00000099"), std::string::npos) << m;
  writeFile(fs::path(root_) / "latest", "../../etc\n");
  EXPECT_NE(loadError(root_).find("expected the name of a checkpoint folder"), std::string::npos);
}

TEST_F(CheckpointErrors, InvalidJson) {
  writeFile(fs::path(folder_) / "state.json", "{\"format_version\": 1,");
  const std::string m = loadError(root_);
  EXPECT_NE(m.find("state.json: not valid JSON"), std::string::npos) << m;
}

TEST_F(CheckpointErrors, NewerVersion) {
  editState("format_version", "2");
  const std::string m = loadError(root_);
  EXPECT_NE(m.find("format version 2 is newer than this kiln reads (1)"), std::string::npos) << m;
}

TEST_F(CheckpointErrors, MissingOrMistypedFields) {
  editState("step", "");
  EXPECT_NE(loadError(root_).find("state.json: missing \"step\""), std::string::npos);
  editState("step", "\"ten\"");
  EXPECT_NE(loadError(root_).find("\"step\" has the wrong type (string)"), std::string::npos);
  editState("step", "3");
  editState("data_position", "");
  EXPECT_NE(loadError(root_).find("missing \"data_position\""), std::string::npos);
  editState("data_position", R"({"epoch": 0, "batch": -1})");
  EXPECT_NE(loadError(root_).find("negative"), std::string::npos);
}

TEST_F(CheckpointErrors, TruncatedWeights) {
  const fs::path w = fs::path(folder_) / "weights.npz";
  fs::resize_file(w, fs::file_size(w) / 2);
  const std::string m = loadError(root_);
  EXPECT_NE(m.find("weights.npz"), std::string::npos) << m;
  fs::remove(w);
  EXPECT_NE(loadError(root_).find("weights.npz"), std::string::npos);
}

}  // namespace
}  // namespace kiln::runtime
