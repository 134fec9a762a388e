// The data pipeline on image files: class folders against torchvision's ImageFolder and eval
// transforms, RandomResizedCrop's geometry and pixels, list files, corrupt images (skipped
// and counted, deterministically), and the training view's determinism.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>

#include "runtime/augment.h"
#include "runtime/data.h"
#include "runtime/image.h"
#include "runtime/npy.h"
#include "tests/image_util.h"
#include "tests/python_util.h"
#include "tests/runtime/data_util.h"
#include "tests/tolerance.h"

namespace kiln::runtime {
namespace {

using namespace kiln::testing;  // NOLINT: test helpers

constexpr int64_t kResize = 20, kCrop = 16;

Preprocess smallPreprocess() {
  Preprocess p;  // ImageNet statistics, bilinear
  p.resize = kResize;
  p.crop = kCrop;
  return p;
}

void writeJpeg(const fs::path& p, int w, int h, uint32_t seed) {
  fs::create_directories(p.parent_path());
  writeBytes(p, encodeJpeg(testPixels(w, h, 3, seed), w, h, 3));
}
void writePng(const fs::path& p, int w, int h, uint32_t seed) {
  fs::create_directories(p.parent_path());
  writeBytes(p, encodePng(testPixels(w, h, 3, seed), w, h, PngOptions::of(PNG_COLOR_TYPE_RGB)));
}

// root/train: cat {a.JPEG, b.png, sub/c.jpg}, dog {d.JPEG, e.JPEG (truncated), f.png},
// emu {G.JPG}, plus files that are not images; root/val: 2 per class, one nested.
struct Folder {
  TempDir dir;
  fs::path root() const { return dir.path(); }
  Folder() {
    const fs::path t = root() / "train", v = root() / "val";
    writeJpeg(t / "cat" / "a.JPEG", 40, 30, 1);
    writePng(t / "cat" / "b.png", 25, 35, 2);
    writeJpeg(t / "cat" / "sub" / "c.jpg", 31, 31, 3);
    writeJpeg(t / "dog" / "d.JPEG", 50, 20, 4);
    std::vector<std::byte> truncated = encodeJpeg(testPixels(30, 30, 3, 5), 30, 30, 3);
    truncated.resize(truncated.size() / 3);
    writeBytes(t / "dog" / "e.JPEG", truncated);
    writePng(t / "dog" / "f.png", 22, 40, 6);
    writeJpeg(t / "emu" / "G.JPG", 64, 48, 7);
    writeBytes(t / "cat" / "README.txt", std::vector<uint8_t>{'h', 'i'});
    writeBytes(t / "notes.txt", std::vector<uint8_t>{'x'});
    writeJpeg(v / "cat" / "v1.JPEG", 30, 40, 11);
    writePng(v / "cat" / "v2.png", 45, 21, 12);
    writeJpeg(v / "dog" / "v3.JPEG", 27, 27, 13);
    writeJpeg(v / "dog" / "deep" / "v4.JPEG", 60, 33, 14);
    writePng(v / "emu" / "v5.png", 19, 26, 15);
    writeJpeg(v / "emu" / "v6.jpeg", 33, 45, 16);
  }
};

DataOptions folderOptions(const Folder& f, std::string split, int64_t batch, int workers) {
  DataOptions o;
  o.source = f.root().string();
  o.split = std::move(split);
  o.batch = batch;
  o.workers = workers;
  o.preprocess = smallPreprocess();
  return o;
}

// Collects warnings instead of printing them.
struct Warnings {
  std::mutex mu;
  std::vector<std::string> messages;
  void attach(DataOptions& o) {
    o.onWarning = [this](const std::string& m) {
      std::lock_guard lock(mu);
      messages.push_back(m);
    };
  }
};

std::vector<int64_t> labels(const Batch& b) {
  return {b.labels.data<int64_t>(), b.labels.data<int64_t>() + b.size};
}

// ---- evaluation view vs torchvision ----

TEST(ImageFolder, ValMatchesTorchvisionImageFolder) {
  const std::string why = cannotImport({"torch", "torchvision", "PIL", "numpy"});
  if (!why.empty()) GTEST_SKIP() << why;
  Folder f;
  // Boxes for the RandomResizedCrop pixel check: what our sampler picks for a few images.
  std::ofstream crops(f.root() / "crops.txt");
  std::vector<std::pair<std::string, CropBox>> boxes;
  for (int i = 0; i < 6; ++i) {
    const std::string name = i % 2 ? "train/emu/G.JPG" : "train/cat/b.png";
    auto img = readImage((f.root() / name).string());
    ASSERT_TRUE(img.isOk()) << img.status().message();
    SampleRng rng(9, i, 0);
    const CropBox b = randomResizedCropBox(img->width, img->height, rng);
    crops << fmt::format("{} {} {} {} {} {} {}\n", name, b.top, b.left, b.height, b.width, kCrop,
                         i < 4 ? "bilinear" : "bicubic");
    boxes.emplace_back(name, b);
  }
  crops.close();
  TempDir out;
  const auto [rc, log] = runCommand(fmt::format("{} {}/tests/runtime/torch_folder.py {} {} {} {}",
                                                KILN_PYTHON, KILN_SOURCE_DIR, f.root().string(),
                                                kResize, kCrop, out.path().string()));
  ASSERT_EQ(rc, 0) << log;

  DataOptions o = folderOptions(f, "val", 4, 2);
  auto l = openOrDie(o);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->numSamples(), 6);
  EXPECT_EQ(l->numClasses(), 3);
  std::vector<Batch> batches = epochBatches(*l);
  ASSERT_EQ(batches.size(), 2u);
  auto ref = readNpy((out.path() / "val.npy").string());
  auto refLabels = readNpy((out.path() / "val_labels.npy").string());
  ASSERT_TRUE(ref.isOk() && refLabels.isOk());
  ASSERT_EQ(ref->shape(), ir::Shape({6, 3, kCrop, kCrop}));
  const int64_t stride = 3 * kCrop * kCrop;
  int64_t i = 0;
  double worst = 0;
  for (const Batch& b : batches) {
    EXPECT_EQ(b.images.shape(), ir::Shape({b.size, 3, kCrop, kCrop}));
    for (int64_t j = 0; j < b.size; ++j, ++i) {
      EXPECT_EQ(b.labels.data<int64_t>()[j], refLabels->data<int64_t>()[i]) << "sample " << i;
      for (int64_t k = 0; k < stride; ++k)
        worst = std::max(worst, double{std::abs(b.images.data<float>()[j * stride + k] -
                                                ref->data<float>()[i * stride + k])});
    }
  }
  EXPECT_EQ(i, 6);
  EXPECT_LE(worst, kPreprocessVsTorchvision.atol);

  // The crop + resize of RandomResizedCrop: the same 8-bit pixels as torchvision's.
  Preprocess p = smallPreprocess();
  for (size_t c = 0; c < boxes.size(); ++c) {
    SCOPED_TRACE(fmt::format("crop {} of {}", c, boxes[c].first));
    auto img = readImage((f.root() / boxes[c].first).string());
    ASSERT_TRUE(img.isOk());
    p.interpolation = c < 4 ? Interpolation::Bilinear : Interpolation::Bicubic;
    const Image mine = resize(crop(*img, boxes[c].second), kCrop, kCrop, p.interpolation);
    auto theirs = readNpy((out.path() / fmt::format("crop_{}.npy", c)).string());
    ASSERT_TRUE(theirs.isOk()) << theirs.status().message();
    ASSERT_EQ(theirs->shape(), ir::Shape({kCrop, kCrop, 3}));
    EXPECT_TRUE(std::equal(mine.pixels.begin(), mine.pixels.end(), theirs->data<uint8_t>()));
  }
}

// ---- listing, labels, corrupt files ----

TEST(ImageFolder, ClassesFilesAndCorruptImages) {
  Folder f;
  Warnings w;
  DataOptions o = folderOptions(f, "train", 3, 0);
  o.shuffle = false;
  o.augment = false;
  w.attach(o);
  auto l = openOrDie(o);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->numSamples(), 7);  // e.JPEG is listed: only decoding finds it corrupt
  EXPECT_EQ(l->numClasses(), 3);
  EXPECT_EQ(l->batchesPerEpoch(), 3);
  std::vector<Batch> b = epochBatches(*l);
  ASSERT_EQ(b.size(), 3u);
  // Order: cat a, b, sub/c | dog d, e (corrupt), f | emu G. e's slot takes the next sample
  // after its batch (G, label 2); batches keep their sizes.
  EXPECT_EQ(labels(b[0]), (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(labels(b[1]), (std::vector<int64_t>{1, 2, 1}));
  EXPECT_EQ(labels(b[2]), (std::vector<int64_t>{2}));
  EXPECT_EQ(l->skipped(), 1);
  ASSERT_EQ(w.messages.size(), 1u);
  EXPECT_NE(w.messages[0].find("e.JPEG"), std::string::npos) << w.messages[0];
  // The replacement is G's eval view; the slot holds exactly what G's own batch holds.
  const int64_t stride = 3 * kCrop * kCrop;
  EXPECT_EQ(0, std::memcmp(b[1].images.data<float>() + stride, b[2].images.data<float>(),
                           stride * sizeof(float)));
  // A later epoch meets the same file: counted and warned about once.
  l->startEpoch(1);
  EXPECT_EQ(epochBatches(*l).size(), 3u);
  EXPECT_EQ(l->skipped(), 1);
  EXPECT_EQ(w.messages.size(), 1u);
}

TEST(ImageFolder, ListFileMatchesFolder) {
  Folder f;
  // The same train samples as a PaddleClas list, relative to the list's folder.
  std::ofstream list(f.root() / "train_list.txt");
  list << "train/cat/a.JPEG 0\ntrain/cat/b.png 0\n\n  train/cat/sub/c.jpg\t0\r\n"
       << "train/dog/d.JPEG 1\ntrain/dog/e.JPEG 1\ntrain/dog/f.png 1\ntrain/emu/G.JPG 2\n";
  list.close();
  DataOptions o = folderOptions(f, "train", 3, 1);
  o.seed = 5;
  o.onWarning = [](const std::string&) {};
  auto fromFolder = openOrDie(o);
  o.source = (f.root() / "train_list.txt").string();
  auto fromList = openOrDie(o);
  ASSERT_TRUE(fromFolder && fromList);
  EXPECT_EQ(fromList->numSamples(), 7);
  EXPECT_EQ(fromList->numClasses(), 3);
  expectSameBatches(epochBatches(*fromFolder), epochBatches(*fromList), "list vs folder");
  EXPECT_EQ(fromList->skipped(), 1);
  // A folder with train_list.txt / val_list.txt: bad lines are errors with line numbers.
  TempDir d;
  std::ofstream(d.path() / "train_list.txt") << "x.jpg 0\ny.jpg one\n";
  DataOptions bad = o;
  bad.source = d.path().string();
  EXPECT_TRUE(hasSplit(bad, "train"));
  EXPECT_FALSE(hasSplit(bad, "val"));
  auto e = DataLoader::open(bad);
  ASSERT_FALSE(e.isOk());
  EXPECT_NE(e.message().find("train_list.txt:2: expected 'path label'"), std::string::npos)
      << e.message();
}

TEST(ImageFolder, SplitsAndErrors) {
  Folder f;
  DataOptions o = folderOptions(f, "train", 2, 0);
  EXPECT_TRUE(hasSplit(o, "train"));
  EXPECT_TRUE(hasSplit(o, "val"));
  EXPECT_TRUE(hasSplit(o, "test"));  // val/ serves "test" too
  fs::remove_all(f.root() / "val");
  EXPECT_FALSE(hasSplit(o, "val"));
  // A folder of class folders serves every split.
  o.source = (f.root() / "train").string();
  EXPECT_TRUE(hasSplit(o, "val"));
  auto l = openOrDie(o);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->numSamples(), 7);
  o.preprocess.crop = 0;
  auto noCrop = DataLoader::open(o);
  ASSERT_FALSE(noCrop.isOk());
  EXPECT_NE(noCrop.message().find("need a crop size"), std::string::npos) << noCrop.message();
  TempDir empty;
  o.source = empty.path().string();
  o.preprocess = smallPreprocess();
  auto none = DataLoader::open(o);
  ASSERT_FALSE(none.isOk());
  EXPECT_NE(none.message().find("no class folders"), std::string::npos) << none.message();
}

// Every image unreadable: an error, not a hang or a crash.
TEST(ImageFolder, NothingReadableIsAnError) {
  TempDir d;
  fs::create_directories(d.path() / "a");
  writeBytes(d.path() / "a" / "x.jpg", std::vector<uint8_t>{0xff, 0xd8, 0xff});
  writeBytes(d.path() / "a" / "y.png", std::vector<uint8_t>{0x89, 'P', 'N', 'G'});
  for (int workers : {0, 2}) {
    DataOptions o;
    o.source = d.path().string();
    o.batch = 1;
    o.workers = workers;
    o.preprocess = smallPreprocess();
    o.onWarning = [](const std::string&) {};
    auto l = openOrDie(o);
    ASSERT_TRUE(l);
    auto b = l->next();
    ASSERT_FALSE(b.isOk());
    EXPECT_NE(b.message().find("not enough readable images"), std::string::npos) << b.message();
    EXPECT_EQ(l->skipped(), 2);
  }
}

// ---- the training view ----

TEST(ImageFolder, TrainingBatchesAreDeterministic) {
  Folder f;
  std::vector<std::vector<Batch>> runs;
  for (int workers : {0, 1, 3}) {
    DataOptions o = folderOptions(f, "train", 2, workers);
    o.seed = 3;
    o.onWarning = [](const std::string&) {};
    auto l = openOrDie(o);
    ASSERT_TRUE(l);
    std::vector<Batch> all;
    for (int64_t e : {0, 1}) {
      l->startEpoch(e);
      for (Batch& b : epochBatches(*l)) all.push_back(std::move(b));
    }
    EXPECT_EQ(l->skipped(), 1);
    ASSERT_EQ(all.size(), 8u);
    runs.push_back(std::move(all));
  }
  expectSameBatches(runs[0], runs[1], "workers 0 vs 1");
  expectSameBatches(runs[0], runs[2], "workers 0 vs 3");
  // Resume inside epoch 1 with a fresh loader.
  DataOptions o = folderOptions(f, "train", 2, 2);
  o.seed = 3;
  o.onWarning = [](const std::string&) {};
  auto l = openOrDie(o);
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->seek({1, 2}));
  expectSameBatches(std::vector<Batch>(runs[0].begin() + 6, runs[0].end()), epochBatches(*l),
                    "resumed");
  // Augmentation changes from epoch to epoch; the view is (seed, epoch, sample)'s crop + flip.
  o.shuffle = false;
  o.workers = 0;
  auto ordered = openOrDie(o);
  ASSERT_TRUE(ordered);
  std::vector<Batch> e0 = epochBatches(*ordered);
  ordered->startEpoch(1);
  std::vector<Batch> e1 = epochBatches(*ordered);
  EXPECT_FALSE(sameBytes(e0[0].images, e1[0].images));
  auto img = readImage((f.root() / "train/cat/b.png").string());
  ASSERT_TRUE(img.isOk());
  SampleRng rng(3, 1, 1);  // sample 1 = cat/b.png, epoch 1
  const Image view = randomResizedCropAndFlip(*img, o.preprocess, rng);
  std::vector<float> want(3 * kCrop * kCrop);
  normalizeInto(view, o.preprocess, want.data());
  EXPECT_EQ(0, std::memcmp(e1[0].images.data<float>() + want.size(), want.data(),
                           want.size() * sizeof(float)));
}

// ---- RandomResizedCrop geometry ----

// Every box lies inside the image, and its sides are sqrt(area * ratio), sqrt(area / ratio)
// rounded (each within 0.5) for an area fraction in [0.08, 1] and a ratio in [3/4, 4/3] —
// the fallback's boxes (the whole image, or clamped to the ratio range) satisfy that too.
TEST(RandomResizedCrop, BoxesLieInsideWithinScaleAndRatio) {
  for (auto [w, h] : {std::pair{224, 224},
                      {500, 375},
                      {37, 91},
                      {1, 1},
                      {3, 1000},
                      {1000, 3},
                      {64, 48},
                      {2, 2},
                      {7, 5}}) {
    const double full = double(w) * double(h);
    for (int64_t i = 0; i < 400; ++i) {
      SampleRng rng(11, w, i);
      const CropBox b = randomResizedCropBox(w, h, rng);
      SCOPED_TRACE(fmt::format("{}x{} draw {}: top {} left {} height {} width {}", w, h, i, b.top,
                               b.left, b.height, b.width));
      ASSERT_GE(b.top, 0);
      ASSERT_GE(b.left, 0);
      ASSERT_GE(b.height, 1);
      ASSERT_GE(b.width, 1);
      ASSERT_LE(b.top + b.height, h);
      ASSERT_LE(b.left + b.width, w);
      const double bw = double(b.width), bh = double(b.height);
      // A thin image's fallback (clamped to the ratio range) may be smaller than 8%.
      const bool thin = double(w) / h < 0.75 || double(w) / h > 4.0 / 3;
      const bool centered = b.top == (h - b.height) / 2 && b.left == (w - b.width) / 2;
      if (!thin || !centered) {
        EXPECT_GE((bw + 0.5) * (bh + 0.5), 0.08 * full);
      }
      EXPECT_LE((bw - 0.5) * (bh - 0.5), full);
      EXPECT_GE((bw + 0.5) / (bh - 0.5 > 0 ? bh - 0.5 : 1e-9), 3.0 / 4.0);
      EXPECT_LE((bw - 0.5) / (bh + 0.5), 4.0 / 3.0);
    }
  }
}

TEST(RandomResizedCrop, FallbackIsTorchvisionsCentralCrop) {
  // So thin that no try fits: torchvision clamps to the ratio range and centers.
  for (int64_t i = 0; i < 20; ++i) {
    SampleRng rng(0, 0, i);
    EXPECT_EQ(randomResizedCropBox(1000, 3, rng), (CropBox{0, 498, 3, 4}));  // w=round(3*4/3)
    SampleRng rng2(0, 1, i);
    EXPECT_EQ(randomResizedCropBox(3, 1000, rng2), (CropBox{498, 0, 4, 3}));  // h=round(3/0.75)
    SampleRng rng3(0, 2, i);
    EXPECT_EQ(randomResizedCropBox(1, 1, rng3), (CropBox{0, 0, 1, 1}));
  }
}

TEST(RandomResizedCrop, AreaAndFlipDistributions) {
  // On a large square the tries use the whole scale range (large areas with a skewed ratio
  // do not fit and are drawn again, as in torchvision); the flip is a fair coin.
  double minScale = 1, maxScale = 0;
  int flips = 0;
  constexpr int kN = 4000;
  for (int64_t i = 0; i < kN; ++i) {
    SampleRng rng(5, 0, i);
    const CropBox b = randomResizedCropBox(400, 400, rng);
    const double scale = double(b.width) * double(b.height) / (400.0 * 400.0);
    minScale = std::min(minScale, scale);
    maxScale = std::max(maxScale, scale);
    flips += rng.uniform(0.0, 1.0) < 0.5;
  }
  EXPECT_LT(minScale, 0.085);
  EXPECT_GT(maxScale, 0.97);
  EXPECT_NEAR(double(flips) / kN, 0.5, 0.04);
  // The flip mirrors rows.
  Image small(3, 1, 3);
  for (size_t k = 0; k < small.pixels.size(); ++k) small.pixels[k] = static_cast<uint8_t>(k);
  flipHorizontal(small);
  EXPECT_EQ(small.pixels, (std::vector<uint8_t>{6, 7, 8, 3, 4, 5, 0, 1, 2}));
}

TEST(SampleRng, IsAFunctionOfItsKey) {
  SampleRng a(1, 2, 3), b(1, 2, 3), c(1, 2, 4), d(1, 3, 3), e(2, 2, 3);
  const uint64_t x = a.nextU64();
  EXPECT_EQ(x, b.nextU64());
  EXPECT_NE(x, c.nextU64());
  EXPECT_NE(x, d.nextU64());
  EXPECT_NE(x, e.nextU64());
  std::map<int64_t, int> counts;
  for (int i = 0; i < 7000; ++i) ++counts[a.uniformInt(-3, 3)];
  EXPECT_EQ(counts.size(), 7u);
  for (auto [v, n] : counts) EXPECT_NEAR(n, 1000, 150) << v;
}

}  // namespace
}  // namespace kiln::runtime
