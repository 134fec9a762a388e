// Each model's preprocessing and class names against torchvision's own (weights transforms
// and meta["categories"], read by tests/frontend/torchvision_meta.py), and the registry's
// choices where torchvision has no weights (resnet20, the PaddleClas models).
#include "models/labels.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sstream>

#include "models/registry.h"
#include "tests/python_util.h"

namespace kiln::models {
namespace {

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream ss(text);
  for (std::string line; std::getline(ss, line);) out.push_back(line);
  return out;
}

std::string meta(const std::string& args) {
  const auto [rc, out] = testing::runCommand(fmt::format(
      "{} {}/tests/frontend/torchvision_meta.py {}", KILN_PYTHON, KILN_SOURCE_DIR, args));
  EXPECT_EQ(rc, 0) << out;
  return out;
}

// Registry models that are torchvision's models with IMAGENET1K_V1 weights.
constexpr std::string_view kTorchvisionModels[] = {
    "resnet18",        "resnet34",        "resnet50",        "resnet101",       "resnet152",
    "squeezenet1_0",   "squeezenet1_1",   "mobilenet_v2",    "densenet121",     "efficientnet_b0",
    "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4", "efficientnet_b5",
    "efficientnet_b6", "efficientnet_b7"};

TEST(Labels, PreprocessingIsTorchvisionsEvalTransform) {
  if (auto why = testing::cannotImport({"torchvision"}); !why.empty()) GTEST_SKIP() << why;
  std::string names;
  for (std::string_view n : kTorchvisionModels) names += fmt::format(" {}", n);
  const std::vector<std::string> rows = lines(meta("transforms" + names));
  ASSERT_EQ(rows.size(), std::size(kTorchvisionModels));
  for (const std::string& row : rows) {
    std::istringstream ss(row);
    std::string name, interp;
    int64_t resize = 0, crop = 0;
    std::array<double, 3> mean{}, stdev{};
    ss >> name >> resize >> crop >> interp >> mean[0] >> mean[1] >> mean[2] >> stdev[0] >>
        stdev[1] >> stdev[2];
    ASSERT_FALSE(ss.fail()) << row;
    SCOPED_TRACE(name);
    const ModelInfo* info = findModel(name);
    ASSERT_NE(info, nullptr);
    const Preprocess& p = info->preprocess;
    EXPECT_EQ(p.resize, resize);
    EXPECT_EQ(p.crop, crop);
    EXPECT_EQ(p.interpolation == Resample::Bicubic ? "bicubic" : "bilinear", interp);
    EXPECT_EQ(p.channels, 3);
    EXPECT_EQ(p.mean, mean);
    EXPECT_EQ(p.std, stdev);
    EXPECT_EQ(p.labels, LabelSet::ImageNet);
  }
}

TEST(Labels, EveryModelHasAUsablePreprocessing) {
  for (const ModelInfo& m : allModels()) {
    SCOPED_TRACE(std::string(m.name));
    const Preprocess& p = m.preprocess;
    EXPECT_GT(p.crop, 0);
    EXPECT_TRUE(p.resize == 0 || p.resize >= p.crop);
    EXPECT_EQ(p.channels, m.defaultInChannels);
    EXPECT_EQ(static_cast<int64_t>(labelNames(p.labels).size()), m.defaultNumClasses);
    for (int64_t c = 0; c < p.channels; ++c) EXPECT_GT(p.std[static_cast<size_t>(c)], 0);
  }
  // Fashion-MNIST's statistics, no resize (the images are 28x28 already).
  const Preprocess& r20 = findModel("resnet20")->preprocess;
  EXPECT_EQ(r20.resize, 0);
  EXPECT_EQ(r20.crop, 28);
  EXPECT_EQ(r20.mean[0], 0.2860);
  EXPECT_EQ(r20.std[0], 0.3530);
  EXPECT_EQ(r20.labels, LabelSet::FashionMnist);
}

TEST(Labels, EmbeddedNamesAreTorchvisions) {
  if (auto why = testing::cannotImport({"torchvision"}); !why.empty()) GTEST_SKIP() << why;
  const std::vector<std::string> expected = lines(meta("labels"));
  ASSERT_EQ(expected.size(), 1010u);
  size_t offset = 0;
  for (auto [set, count] : {std::pair{LabelSet::ImageNet, size_t{1000}},
                            std::pair{LabelSet::FashionMnist, size_t{10}}}) {
    SCOPED_TRACE(labelSetName(set));
    std::span<const std::string_view> names = labelNames(set);
    ASSERT_EQ(names.size(), count);
    for (size_t i = 0; i < count; ++i) EXPECT_EQ(names[i], expected[offset + i]) << "class " << i;
    offset += count;
  }
  EXPECT_EQ(labelNames(LabelSet::ImageNet)[178], "Weimaraner");
  EXPECT_TRUE(labelNames(LabelSet::None).empty());
}

}  // namespace
}  // namespace kiln::models
