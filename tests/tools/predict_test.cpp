// `kiln predict` end to end: PIL-written images through kiln (decode, the model's registry
// preprocessing, a Session, softmax, top K) against the same pipeline in torchvision
// (tests/tools/torch_predict.py) with the same random weights; the JSON shape; errors.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>

#include "ir/proto_io.h"
#include "models/labels.h"
#include "runtime/npy.h"
#include "tests/python_util.h"
#include "tests/tolerance.h"
#include "tests/tools/cli_util.h"

namespace kiln::testing {
namespace {

class Predict : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    if (auto why = cannotImport({"torch", "torchvision", "PIL", "numpy"}); !why.empty())
      GTEST_SKIP() << why;
    const auto [rc, out] =
        runCommand(fmt::format("{} {} images {}", KILN_PYTHON, script(), dir_.string()));
    ASSERT_EQ(rc, 0) << out;
  }
  static std::string script() {
    return fmt::format("{}/tests/tools/torch_predict.py", KILN_SOURCE_DIR);
  }
};

struct PredictCase {
  std::string model;
  std::string flags;  // extra kiln predict flags
  int64_t resize, crop;
  std::string interpolation;
  std::vector<std::string> images;
  models::LabelSet labels;
};

TEST_F(Predict, MatchesTorchvisionPipelineWithRandomWeights) {
  const PredictCase cases[] = {
      // --resolution 64 scales ImageNet's 256/224: resize int(64 * 256 / 224) = 73, crop 64.
      {"resnet18",
       "--resolution 64",
       73,
       64,
       "bilinear",
       {"photo.jpg", "tall.png"},
       models::LabelSet::ImageNet},
      // Fashion-MNIST: gray (PIL convert("L")), no resize, crop 28.
      {"resnet20",
       "",
       0,
       28,
       "bilinear",
       {"shirt.png", "photo.jpg"},
       models::LabelSet::FashionMnist},
  };
  for (const PredictCase& c : cases) {
    SCOPED_TRACE(c.model);
    std::string files;
    for (const std::string& f : c.images) files += fmt::format(" {}", path(f));
    // kiln's --random-weights, exported for torch.
    CliResult opt = kiln(fmt::format("opt {} --random-weights --seed 5 --save-weights {} -o {}",
                                  c.model, path("w.npz"), path("m.kir")));
    ASSERT_EQ(opt.exitCode, 0) << opt.err;
    const auto [rc, out] = runCommand(
        fmt::format("{} {} run {} {} {} {} {} {}{}", KILN_PYTHON, script(), c.model, path("w.npz"),
                    c.resize, c.crop, c.interpolation, path("logits.npy"), files));
    ASSERT_EQ(rc, 0) << out;
    auto logits = runtime::readNpy(path("logits.npy"));
    ASSERT_TRUE(logits.isOk()) << logits.status().message();
    const int64_t n = logits->shape()[0], classes = logits->shape()[1];
    ASSERT_EQ(n, static_cast<int64_t>(c.images.size()));

    CliResult r = kiln(
        fmt::format("predict {} --random-weights --seed 5 {} --json{}", c.model, c.flags, files));
    ASSERT_EQ(r.exitCode, 0) << r.err;
    const auto j = nlohmann::ordered_json::parse(r.out);  // keeps the key order
    ASSERT_TRUE(j.is_array());
    ASSERT_EQ(j.size(), c.images.size());

    double maxAbs = 0;
    for (int64_t i = 0; i < logits->numElements(); ++i)
      maxAbs = std::max(maxAbs, std::abs(logits->at(i)));
    const double tol = logProbTolerance(maxAbs);
    std::vector<std::vector<double>> logProbs;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> lp(static_cast<size_t>(classes));
      for (int64_t k = 0; k < classes; ++k)
        lp[static_cast<size_t>(k)] = logits->at(i * classes + k);
      const double m = *std::max_element(lp.begin(), lp.end());
      double sum = 0;
      for (double v : lp) sum += std::exp(v - m);
      for (double& v : lp) v -= m + std::log(sum);
      logProbs.push_back(lp);
    }
    // The comparison means something only if the images' outputs differ by far more than tol.
    double between = 0;
    for (size_t k = 0; k < logProbs[0].size(); ++k)
      between = std::max(between, std::abs(logProbs[0][k] - logProbs[1][k]));
    ASSERT_GT(between, 20 * tol) << "the model barely depends on its input";

    for (size_t i = 0; i < c.images.size(); ++i) {
      SCOPED_TRACE(c.images[i]);
      const nlohmann::ordered_json& o = j[i];
      std::vector<std::string> keys;
      for (auto it = o.begin(); it != o.end(); ++it) keys.push_back(it.key());
      EXPECT_EQ(keys,
                (std::vector<std::string>{"class_ids", "scores", "file_name", "label_names"}));
      EXPECT_EQ(o["file_name"], path(c.images[i]));
      const auto ids = o["class_ids"].get<std::vector<int64_t>>();
      const auto scores = o["scores"].get<std::vector<double>>();
      const auto names = o["label_names"].get<std::vector<std::string>>();
      ASSERT_EQ(ids.size(), 5u);
      ASSERT_EQ(scores.size(), 5u);
      ASSERT_EQ(names.size(), 5u);
      std::vector<double> sorted = logProbs[i];
      std::sort(sorted.begin(), sorted.end(), std::greater<>());
      for (size_t k = 0; k < 5; ++k) {
        // The k-th best score is torch's k-th best, and torch gives kiln's class that score
        // too (so the ids agree up to classes tied within tol).
        EXPECT_NEAR(std::log(scores[k]), sorted[k], tol) << "rank " << k;
        ASSERT_GE(ids[k], 0);
        ASSERT_LT(ids[k], classes);
        EXPECT_NEAR(std::log(scores[k]), logProbs[i][static_cast<size_t>(ids[k])], tol)
            << "class " << ids[k];
        EXPECT_EQ(names[k], models::labelNames(c.labels)[static_cast<size_t>(ids[k])]);
      }
    }
  }
}

TEST_F(Predict, FixedBatchesAndTextOutputAgree) {
  const std::string files =
      fmt::format(" {} {} {}", path("photo.jpg"), path("tall.png"), path("photo.jpg"));
  const std::string base =
      "predict resnet18 --random-weights --seed 2 --resolution 48 --json --top 3";
  CliResult symbolic = kiln(base + files);
  ASSERT_EQ(symbolic.exitCode, 0) << symbolic.err;
  // Batch 2 for 3 images: the second run is padded with a blank image.
  CliResult fixed = kiln(base + " --batch 2" + files);
  ASSERT_EQ(fixed.exitCode, 0) << fixed.err;
  const nlohmann::json a = nlohmann::json::parse(symbolic.out),
                       b = nlohmann::json::parse(fixed.out);
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(a[i]["class_ids"], b[i]["class_ids"]);
    for (size_t k = 0; k < 3; ++k)
      EXPECT_NEAR(a[i]["scores"][k].get<double>(), b[i]["scores"][k].get<double>(), kF32.atol);
  }
  EXPECT_EQ(a[0]["class_ids"], a[2]["class_ids"]);  // the same file twice
  CliResult text = kiln("predict resnet18 --random-weights --seed 2 --resolution 48 --top 2 " +
                     path("photo.jpg"));
  ASSERT_EQ(text.exitCode, 0) << text.err;
  const int64_t top = a[0]["class_ids"][0];
  EXPECT_EQ(text.out.rfind(path("photo.jpg") + "\n", 0), 0u) << text.out;
  EXPECT_NE(text.out.find(fmt::format("   1. {:>5}  ", top)), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(a[0]["label_names"][0].get<std::string>()), std::string::npos)
      << text.out;
}

TEST_F(Predict, LabelsFileOverridesTheModels) {
  std::string names;
  for (int i = 0; i < 10; ++i) names += fmt::format("name{}\n", i);
  write("labels.txt", names);
  CliResult r = kiln("predict resnet20 --random-weights --json --top 10 --labels " +
                  path("labels.txt") + " " + path("shirt.png"));
  ASSERT_EQ(r.exitCode, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  for (size_t k = 0; k < 10; ++k)
    EXPECT_EQ(j[0]["label_names"][k], fmt::format("name{}", j[0]["class_ids"][k].get<int64_t>()));
  write("short.txt", "a\nb\n");
  expectOneError(
      kiln("predict resnet20 --random-weights --labels " + path("short.txt") + " " +
           path("shirt.png")),
      1, path("short.txt") + ": has 2 class names (one per line), the model has 10 classes");
}

TEST_F(Predict, KirGraphsNeedStatisticsForNonRgbInputs) {
  CliResult shown = kiln("show resnet20 -o " + path("r20.kir"));
  ASSERT_EQ(shown.exitCode, 0) << shown.err;
  const std::string base = "predict " + path("r20.kir") + " --random-weights " + path("shirt.png");
  expectOneError(kiln(base), 1, "takes 1-channel images, the model's normalization is for 3");
  expectOneError(kiln(base + " --mean 0.286,0.1 --std 0.353"), 1,
                 "--mean 0.286,0.1: 2 values, the model takes 1 channels");
  // The registry model's graph, weights and preprocessing (a file gets ImageNet's resize,
  // scaled to its input: 28 * 256 / 224 = 32, unless told): the same prediction.
  CliResult file = kiln(base + " --resize 0 --mean 0.2860 --std 0.3530 --json");
  CliResult registry = kiln("predict resnet20 --random-weights --json " + path("shirt.png"));
  ASSERT_EQ(file.exitCode, 0) << file.err;
  ASSERT_EQ(registry.exitCode, 0) << registry.err;
  const nlohmann::json a = nlohmann::json::parse(file.out), b = nlohmann::json::parse(registry.out);
  EXPECT_EQ(a[0]["class_ids"], b[0]["class_ids"]);
  EXPECT_EQ(a[0]["scores"], b[0]["scores"]);
  EXPECT_EQ(a[0]["label_names"][0], "");  // a file has no label set of 10 classes
}

TEST_F(Predict, BadImagesAreErrorsNamingThem) {
  write("notes.jpg", "not an image at all");
  expectOneError(
      kiln("predict resnet20 --random-weights " + path("shirt.png") + " " + path("notes.jpg")), 1,
      path("notes.jpg") + ": not a JPEG or PNG image");
  // A JPEG cut in half.
  auto bytes = ir::readFileBytes(path("photo.jpg"));
  ASSERT_TRUE(bytes.isOk());
  write("cut.jpg", std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size() / 2));
  CliResult cut = kiln("predict resnet20 --random-weights --json " + path("cut.jpg"));
  expectOneError(cut, 1, path("cut.jpg") + ": truncated JPEG");
  EXPECT_EQ(cut.out, "");  // nothing printed before the error
  expectOneError(kiln("predict resnet20 --random-weights " + path("missing.png")), 1,
                 "cannot open '" + path("missing.png") + "'");
  expectOneError(kiln("predict resnet20 " + path("shirt.png")), 1, "--random-weights");
  expectOneError(kiln("predict resnet18 --random-weights --backend tpu " + path("shirt.png")), 2,
                 "--backend: tpu not in {onednn,reference}");
}

}  // namespace
}  // namespace kiln::testing
