// The data pipeline on IDX data: Fashion-MNIST against torchvision's reader and transforms,
// malformed IDX files, and the loader's determinism (worker counts, seek/resume, shuffling).
#include "runtime/data.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "ir/proto_io.h"
#include "runtime/idx.h"
#include "runtime/npy.h"
#include "tests/python_util.h"
#include "tests/runtime/data_util.h"
#include "tests/tolerance.h"

namespace kiln::runtime {
namespace {

namespace fs = std::filesystem;
using namespace kiln::testing;  // NOLINT: test helpers

Preprocess fashionPreprocess() {  // models/registry.cpp's resnet20 entry
  Preprocess p;
  p.resize = 0;
  p.crop = 28;
  p.channels = 1;
  p.mean = {0.2860, 0, 0};
  p.std = {0.3530, 1, 1};
  return p;
}

bool fashionInstalled() {
  return fs::exists(fs::path(kFashionMnistDir) / "train-images-idx3-ubyte.gz");
}

std::vector<uint8_t> idxBytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data,
                              uint8_t dtype = 0x08) {
  std::vector<uint8_t> b{0, 0, dtype, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

std::vector<uint8_t> gzipBytes(const std::vector<uint8_t>& in) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::vector<uint8_t> out(deflateBound(&zs, static_cast<uLong>(in.size())) + 64);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// A small IDX data set: `n` random 28x28 images with labels i % 10, gzip'd or plain.
void writeIdxSet(const fs::path& dir, std::string_view prefix, uint32_t n, bool gz,
                 uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> pixels(size_t{n} * 28 * 28), labels(n);
  for (uint8_t& p : pixels) p = static_cast<uint8_t>(rng());
  for (uint32_t i = 0; i < n; ++i) labels[i] = static_cast<uint8_t>(i % 10);
  auto img = idxBytes({n, 28, 28}, pixels), lab = idxBytes({n}, labels);
  const std::string ext = gz ? ".gz" : "";
  writeBytes(dir / fmt::format("{}-images-idx3-ubyte{}", prefix, ext), gz ? gzipBytes(img) : img);
  writeBytes(dir / fmt::format("{}-labels-idx1-ubyte{}", prefix, ext), gz ? gzipBytes(lab) : lab);
}

DataOptions idxOptions(const fs::path& dir, int64_t batch, int workers) {
  DataOptions o;
  o.source = dir.string();
  o.batch = batch;
  o.workers = workers;
  o.preprocess = fashionPreprocess();
  return o;
}

// ---- Fashion-MNIST vs torchvision ----

TEST(FashionMnist, MatchesTorchvision) {
  if (!fashionInstalled())
    GTEST_SKIP() << kFashionMnistDir << " is missing (dataset-fashion-mnist)";
  const std::string why = testing::cannotImport({"torch", "torchvision", "PIL", "numpy"});
  if (!why.empty()) GTEST_SKIP() << why;
  TempDir tmp;
  constexpr int64_t kFirst = 64, kLast = 16;
  const auto [rc, out] = testing::runCommand(
      fmt::format("{} {}/tests/runtime/torch_fashion.py {} {} {} {}", KILN_PYTHON, KILN_SOURCE_DIR,
                  kFashionMnistDir, tmp.path().string(), kFirst, kLast));
  ASSERT_EQ(rc, 0) << out;
  for (auto [split, prefix, count] :
       {std::tuple{"train", "train", 60000}, std::tuple{"test", "t10k", 10000}}) {
    SCOPED_TRACE(split);
    DataOptions o = idxOptions("", kFirst, 1);
    o.source = "fashion-mnist";
    o.split = split;
    o.shuffle = false;
    auto l = openOrDie(o);
    ASSERT_TRUE(l);
    EXPECT_EQ(l->numSamples(), count);
    EXPECT_EQ(l->numClasses(), 10);
    EXPECT_EQ(l->batchesPerEpoch(), (count + kFirst - 1) / kFirst);
    auto first = l->next();
    ASSERT_TRUE(first.isOk() && first->has_value()) << first.status().message();
    // The last batch holds the final count % kFirst samples; their tail is what python wrote.
    ASSERT_TRUE(l->seek({0, l->batchesPerEpoch() - 1}));
    auto last = l->next();
    ASSERT_TRUE(last.isOk() && last->has_value()) << last.status().message();
    for (auto [part, batch] : {std::pair{"first", &**first}, std::pair{"last", &**last}}) {
      SCOPED_TRACE(part);
      auto ref = readNpy((tmp.path() / fmt::format("{}_{}.npy", prefix, part)).string());
      auto refLabels =
          readNpy((tmp.path() / fmt::format("{}_{}_labels.npy", prefix, part)).string());
      ASSERT_TRUE(ref.isOk() && refLabels.isOk());
      const int64_t k = ref->shape()[0];
      ASSERT_GE(batch->size, k);
      const int64_t skip = batch->size - k;  // the python tail is the batch's tail
      EXPECT_EQ(batch->images.shape(), ir::Shape({batch->size, 1, 28, 28}));
      EXPECT_EQ(batch->images.layout(), ir::Layout::NCHW);
      EXPECT_EQ(batch->labels.dtype(), ir::DType::I64);
      for (int64_t i = 0; i < k; ++i)
        EXPECT_EQ(batch->labels.data<int64_t>()[skip + i], refLabels->data<int64_t>()[i]) << i;
      const float* a = batch->images.data<float>() + skip * 784;
      const float* b = ref->data<float>();
      double worst = 0;
      for (int64_t i = 0; i < k * 784; ++i) worst = std::max(worst, double{std::abs(a[i] - b[i])});
      EXPECT_LE(worst, testing::kPreprocessVsTorchvision.atol);
    }
  }
}

TEST(FashionMnist, HasTrainAndTestSplits) {
  if (!fashionInstalled())
    GTEST_SKIP() << kFashionMnistDir << " is missing (dataset-fashion-mnist)";
  DataOptions o;
  o.source = "fashion-mnist";
  EXPECT_TRUE(hasSplit(o, "train"));
  EXPECT_TRUE(hasSplit(o, "test"));
  EXPECT_TRUE(hasSplit(o, "val"));
  EXPECT_FALSE(hasSplit(o, "holdout"));
}

// ---- IDX files ----

TEST(Idx, ReadsPlainAndGzipAlike) {
  TempDir a, b;
  writeIdxSet(a.path(), "train", 30, false);
  writeIdxSet(b.path(), "train", 30, true);
  auto la = openOrDie(idxOptions(a.path(), 7, 0));
  auto lb = openOrDie(idxOptions(b.path(), 7, 0));
  ASSERT_TRUE(la && lb);
  EXPECT_EQ(la->numSamples(), 30);
  EXPECT_EQ(la->batchesPerEpoch(), 5);
  expectSameBatches(epochBatches(*la), epochBatches(*lb), "plain vs gzip");
  auto plain = readIdx((a.path() / "train-images-idx3-ubyte").string());
  ASSERT_TRUE(plain.isOk()) << plain.status().message();
  EXPECT_EQ(plain->dims, (std::vector<int64_t>{30, 28, 28}));
}

TEST(Idx, PixelsAreNormalizedFromTheFile) {
  TempDir d;
  std::vector<uint8_t> px(2 * 28 * 28);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 7);
  writeBytes(d.path() / "train-images-idx3-ubyte", idxBytes({2, 28, 28}, px));
  writeBytes(d.path() / "train-labels-idx1-ubyte", idxBytes({2}, {3, 9}));
  DataOptions o = idxOptions(d.path(), 2, 0);
  o.shuffle = false;
  auto l = openOrDie(o);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->numClasses(), 10);
  auto b = l->next();
  ASSERT_TRUE(b.isOk() && b->has_value());
  const Batch& batch = **b;
  EXPECT_EQ(batch.labels.data<int64_t>()[0], 3);
  EXPECT_EQ(batch.labels.data<int64_t>()[1], 9);
  for (size_t i = 0; i < px.size(); ++i) {
    const float want = (static_cast<float>(px[i]) / 255.0f - 0.2860f) / 0.3530f;
    ASSERT_EQ(batch.images.data<float>()[i], want) << i;
  }
  auto end = l->next();
  ASSERT_TRUE(end.isOk());
  EXPECT_FALSE(end->has_value());
}

// Each malformed file gives an error that names it and says what is wrong.
TEST(Idx, MalformedFilesAreClearErrors) {
  const std::vector<uint8_t> px(4 * 28 * 28, 1), lab{0, 1, 2, 3};
  struct Case {
    std::string name;
    std::vector<uint8_t> images, labels;
    std::string file, message;
  };
  auto truncatedGz = gzipBytes(idxBytes({4, 28, 28}, px));
  truncatedGz.resize(truncatedGz.size() / 2);
  std::vector<uint8_t> shortData = idxBytes({4, 28, 28}, px);
  shortData.resize(shortData.size() - 10);
  auto trailing = idxBytes({4}, lab);
  trailing.push_back(0);
  auto corruptGz = gzipBytes(idxBytes({4}, lab));
  corruptGz[12] ^= 0xff;
  corruptGz[13] ^= 0xff;
  const std::vector<Case> cases = {
      {"bad magic",
       {0x50, 0x4b, 3, 4, 0, 0},
       idxBytes({4}, lab),
       "train-images-idx3-ubyte",
       "not an IDX file"},
      {"float dtype", idxBytes({4, 28, 28}, px, 0x0d), idxBytes({4}, lab),
       "train-images-idx3-ubyte", "data type 0x0d"},
      {"truncated data", shortData, idxBytes({4}, lab), "train-images-idx3-ubyte",
       "truncated IDX data: dimensions 4x28x28 need 3136 bytes, the file has 3126"},
      {"truncated header",
       {0, 0, 8, 3, 0, 0},
       idxBytes({4}, lab),
       "train-images-idx3-ubyte",
       "truncated IDX header"},
      {"empty", {}, idxBytes({4}, lab), "train-images-idx3-ubyte", "not an IDX file (0 bytes"},
      {"trailing bytes", idxBytes({4, 28, 28}, px), trailing, "train-labels-idx1-ubyte",
       "1 trailing bytes"},
      {"count mismatch", idxBytes({4, 28, 28}, px), idxBytes({3}, {0, 1, 2}),
       "train-labels-idx1-ubyte", "holds 4 images but"},
      {"images rank 1", idxBytes({4}, lab), idxBytes({4}, lab), "train-images-idx3-ubyte",
       "rank-3"},
      {"truncated gzip", truncatedGz, idxBytes({4}, lab), "train-images-idx3-ubyte",
       "truncated gzip data"},
      {"corrupt gzip", idxBytes({4, 28, 28}, px), corruptGz, "train-labels-idx1-ubyte", "gzip"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir d;
    const bool gzImages = c.images.size() > 1 && c.images[0] == 0x1f;
    const bool gzLabels = c.labels.size() > 1 && c.labels[0] == 0x1f;
    writeBytes(d.path() / (std::string("train-images-idx3-ubyte") + (gzImages ? ".gz" : "")),
               c.images);
    writeBytes(d.path() / (std::string("train-labels-idx1-ubyte") + (gzLabels ? ".gz" : "")),
               c.labels);
    auto l = DataLoader::open(idxOptions(d.path(), 2, 0));
    ASSERT_FALSE(l.isOk());
    EXPECT_NE(l.message().find(c.file), std::string::npos) << l.message();
    EXPECT_NE(l.message().find(c.message), std::string::npos) << l.message();
  }
}

TEST(Idx, MissingSplitAndSourceErrors) {
  TempDir d;
  writeIdxSet(d.path(), "train", 10, true);
  DataOptions o = idxOptions(d.path(), 4, 0);
  EXPECT_TRUE(hasSplit(o, "train"));
  EXPECT_FALSE(hasSplit(o, "test"));
  o.split = "test";
  auto l = DataLoader::open(o);
  ASSERT_FALSE(l.isOk());
  EXPECT_NE(l.message().find("t10k-images-idx3-ubyte"), std::string::npos) << l.message();
  o.split = "dev";
  l = DataLoader::open(o);
  ASSERT_FALSE(l.isOk());
  EXPECT_NE(l.message().find("unknown data split 'dev'"), std::string::npos) << l.message();
  o.split = "train";
  o.source = (d.path() / "nope").string();
  l = DataLoader::open(o);
  ASSERT_FALSE(l.isOk());
  EXPECT_NE(l.message().find("no such file or folder"), std::string::npos) << l.message();
  o.source = d.path().string();
  o.batch = 0;
  l = DataLoader::open(o);
  ASSERT_FALSE(l.isOk());
  EXPECT_NE(l.message().find("batch size 0"), std::string::npos) << l.message();
}

// ---- the loader ----

TEST(DataLoader, SameBatchesForAnyWorkerCount) {
  TempDir d;
  writeIdxSet(d.path(), "train", 203, true);
  std::vector<std::vector<Batch>> runs;
  for (int workers : {0, 1, 3}) {
    DataOptions o = idxOptions(d.path(), 16, workers);
    o.seed = 42;
    o.prefetch = workers == 3 ? 2 : 4;
    auto l = openOrDie(o);
    ASSERT_TRUE(l);
    std::vector<Batch> all;
    for (int64_t e : {0, 1, 2}) {
      l->startEpoch(e);
      for (Batch& b : epochBatches(*l)) all.push_back(std::move(b));
    }
    ASSERT_EQ(all.size(), 3u * 13u);
    EXPECT_EQ(all.back().size, 203 - 12 * 16);
    runs.push_back(std::move(all));
  }
  expectSameBatches(runs[0], runs[1], "workers 0 vs 1");
  expectSameBatches(runs[0], runs[2], "workers 0 vs 3");
}

TEST(DataLoader, SeekResumesBitExactly) {
  TempDir d;
  writeIdxSet(d.path(), "train", 100, false);
  DataOptions o = idxOptions(d.path(), 8, 2);
  o.seed = 7;
  auto full = openOrDie(o);
  ASSERT_TRUE(full);
  full->startEpoch(3);
  std::vector<Batch> uninterrupted = epochBatches(*full);
  ASSERT_EQ(uninterrupted.size(), 13u);
  // Interrupted after 5 batches of epoch 3: a new loader (another worker count) resumes.
  auto first = openOrDie(o);
  ASSERT_TRUE(first);
  first->startEpoch(3);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(first->next().isOk());
  const DataLoader::Position p = first->position();
  EXPECT_EQ(p.epoch, 3);
  EXPECT_EQ(p.batch, 5);
  o.workers = 1;
  auto resumed = openOrDie(o);
  ASSERT_TRUE(resumed);
  ASSERT_TRUE(resumed->seek(p));
  std::vector<Batch> rest = epochBatches(*resumed);
  expectSameBatches(std::vector<Batch>(uninterrupted.begin() + 5, uninterrupted.end()), rest,
                    "resumed");
  EXPECT_EQ(resumed->position().batch, 13);
  EXPECT_FALSE(resumed->seek({0, 14}));
  EXPECT_FALSE(resumed->seek({-1, 0}));
}

TEST(DataLoader, ShufflesAPermutationPerEpoch) {
  TempDir d;
  writeIdxSet(d.path(), "train", 60, false);
  DataOptions o = idxOptions(d.path(), 60, 0);
  auto labelsOf = [](const Batch& b) {
    return std::vector<int64_t>(b.labels.data<int64_t>(), b.labels.data<int64_t>() + b.size);
  };
  o.shuffle = false;
  auto ordered = openOrDie(o);
  ASSERT_TRUE(ordered);
  std::vector<int64_t> inOrder = labelsOf(ordered->next()->value());
  for (int64_t i = 0; i < 60; ++i) EXPECT_EQ(inOrder[static_cast<size_t>(i)], i % 10);
  o.shuffle = true;
  auto l = openOrDie(o);
  ASSERT_TRUE(l);
  std::vector<int64_t> e0 = labelsOf(l->next()->value());
  l->startEpoch(1);
  std::vector<int64_t> e1 = labelsOf(l->next()->value());
  EXPECT_NE(e0, inOrder);
  EXPECT_NE(e0, e1);
  for (auto e : {e0, e1}) {
    std::sort(e.begin(), e.end());
    std::vector<int64_t> sorted = inOrder;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(e, sorted);
  }
  // Another seed, another order; the eval split is never shuffled.
  o.seed = 1;
  auto other = openOrDie(o);
  ASSERT_TRUE(other);
  EXPECT_NE(labelsOf(other->next()->value()), e0);
}

TEST(DataLoader, DropLastAndEndOfEpoch) {
  TempDir d;
  writeIdxSet(d.path(), "train", 50, false);
  DataOptions o = idxOptions(d.path(), 16, 2);
  o.dropLast = true;
  auto l = openOrDie(o);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->batchesPerEpoch(), 3);
  std::vector<Batch> b = epochBatches(*l);
  ASSERT_EQ(b.size(), 3u);
  for (const Batch& x : b) EXPECT_EQ(x.size, 16);
  auto again = l->next();  // stays at the end until the next epoch starts
  ASSERT_TRUE(again.isOk());
  EXPECT_FALSE(again->has_value());
  l->startEpoch(1);
  EXPECT_EQ(epochBatches(*l).size(), 3u);
  o.batch = 64;
  auto none = DataLoader::open(o);
  ASSERT_FALSE(none.isOk());
  EXPECT_NE(none.message().find("no full batch"), std::string::npos) << none.message();
}

// Destroying a loader while its workers are busy prefetching returns promptly and cleanly.
TEST(DataLoader, DestroysWhileWorkersRun) {
  TempDir d;
  writeIdxSet(d.path(), "train", 500, false);
  for (int i = 0; i < 5; ++i) {
    DataOptions o = idxOptions(d.path(), 4, 3);
    o.prefetch = 8;
    auto l = openOrDie(o);
    ASSERT_TRUE(l);
    if (i % 2) {
      ASSERT_TRUE(l->next().isOk());
    }
    l->startEpoch(5);
  }
}

}  // namespace
}  // namespace kiln::runtime
