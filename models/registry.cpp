// The model registry table. To add a model: write its family file, declare the build
// function in models/families.h and add one row here.
#include "models/registry.h"

#include <array>

#include "models/families.h"

namespace kiln::models {

namespace {

constexpr std::string_view kTorchvisionV1 = "torchvision IMAGENET1K_V1 weights table";
// Seed 002's table gives params to 0.01M and "FLOPs" = 2 x MACs; GMACs here are its GFLOPs / 2.
// Its ResNet34_vd figure (7.39 GFLOPs) lacks the deep stem's 0.48 (ours: 7.81); see
// tests/frontend/resnet_vd_test.cpp.
constexpr std::string_view kPaddleClasResNet =
    "PaddleClas ResNet.md (seed 002): params 0.01M, GMACs = GFLOPs / 2";
constexpr std::string_view kPaddleClasSe = "PaddleClas ResNet.md (seed 002) gives latencies only";
// The paper's resnet20 (3x32x32, zero-padding shortcuts) has 269,722 params (0.27M); ours
// takes 1x28x28 and projects: +2,752 (two 1x1 conv + BN), -288 (1-channel stem).
constexpr std::string_view kResNet20Source =
    "PyTorch module in tests/align/torch_models.py (paper: 0.27M at 3x32x32, option A)";
// Params of these two are the seed code's exact counts (tests/align/torch_seed_models.py);
// MACs and top-1 are the published ones.
constexpr std::string_view kPeleePaper =
    "PeleeNet paper v3 (2.8M params, 508M MACs, 72.6%); params: seed code";
constexpr std::string_view kMobileNeXtRepo =
    "MobileNeXt repo README table (paper: 3.4M at width 1.0); params: seed code";

// torchvision's EfficientNet_Bn_Weights.IMAGENET1K_V1 transforms: bicubic, resize/crop per
// variant (B2 and B5-B7 resize to the crop; B2's 288 is not the paper's 260).
constexpr ModelInfo withEfficientNetTransforms(ModelInfo m, int64_t resize, int64_t crop) {
  m.preprocess.resize = resize;
  m.preprocess.crop = crop;
  m.preprocess.interpolation = Resample::Bicubic;
  return m;
}

// Fashion-MNIST's mean and std (of x / 255 over the training set), 1x28x28, no resize.
constexpr Preprocess kFashionMnistPreprocess{.resize = 0,
                                             .crop = 28,
                                             .interpolation = Resample::Bilinear,
                                             .channels = 1,
                                             .mean = {0.2860, 0, 0},
                                             .std = {0.3530, 1, 1},
                                             .labels = LabelSet::FashionMnist};

// name, summary, build, default resolution, {params, GMACs, top-1 %, source}
constexpr std::array kModels{
    ModelInfo{"resnet18",
              "ResNet-18 (He et al. 2015), BasicBlock [2,2,2,2]",
              buildResNet18,
              224,
              {11'689'512, 1.81, 69.758, kTorchvisionV1}},
    ModelInfo{"resnet34",
              "ResNet-34, BasicBlock [3,4,6,3]",
              buildResNet34,
              224,
              {21'797'672, 3.66, 73.314, kTorchvisionV1}},
    ModelInfo{"resnet50",
              "ResNet-50 v1.5, Bottleneck [3,4,6,3]",
              buildResNet50,
              224,
              {25'557'032, 4.09, 76.130, kTorchvisionV1}},
    ModelInfo{"resnet101",
              "ResNet-101 v1.5, Bottleneck [3,4,23,3]",
              buildResNet101,
              224,
              {44'549'160, 7.80, 77.374, kTorchvisionV1}},
    ModelInfo{"resnet152",
              "ResNet-152 v1.5, Bottleneck [3,8,36,3]",
              buildResNet152,
              224,
              {60'192'808, 11.51, 78.312, kTorchvisionV1}},
    ModelInfo{"resnet50_vc",
              "ResNet50-vc (He et al. 2019): 3x3 deep stem 32-32-64",
              buildResNet50Vc,
              224,
              {25'580'000, 4.335, 78.4, kPaddleClasResNet}},
    ModelInfo{"resnet18_vd",
              "ResNet18-vd: deep stem, 2x2 avg-pool shortcut",
              buildResNet18Vd,
              224,
              {11'710'000, 2.07, 72.3, kPaddleClasResNet}},
    ModelInfo{"resnet34_vd",
              "ResNet34-vd: deep stem, 2x2 avg-pool shortcut",
              buildResNet34Vd,
              224,
              {21'820'000, 3.695, 76.0, kPaddleClasResNet}},
    ModelInfo{"resnet50_vd",
              "ResNet50-vd (He et al. 2019): deep stem, avg-pool shortcut",
              buildResNet50Vd,
              224,
              {25'580'000, 4.335, 79.1, kPaddleClasResNet}},
    ModelInfo{"resnet101_vd",
              "ResNet101-vd, Bottleneck [3,4,23,3]",
              buildResNet101Vd,
              224,
              {44'570'000, 8.05, 80.2, kPaddleClasResNet}},
    ModelInfo{"resnet152_vd",
              "ResNet152-vd, Bottleneck [3,8,36,3]",
              buildResNet152Vd,
              224,
              {60'210'000, 11.765, 80.6, kPaddleClasResNet}},
    ModelInfo{"resnet200_vd",
              "ResNet200-vd, Bottleneck [3,12,48,3] (PaddleClas depths)",
              buildResNet200Vd,
              224,
              {74'740'000, 15.265, 80.9, kPaddleClasResNet}},
    ModelInfo{"se_resnet18_vd",
              "SE-ResNet18-vd: ResNet18-vd + squeeze-excitation (C/16)",
              buildSeResNet18Vd,
              224,
              {0, 0, 0, kPaddleClasSe}},
    ModelInfo{"se_resnet34_vd",
              "SE-ResNet34-vd: ResNet34-vd + squeeze-excitation (C/16)",
              buildSeResNet34Vd,
              224,
              {0, 0, 0, kPaddleClasSe}},
    ModelInfo{"se_resnet50_vd",
              "SE-ResNet50-vd: ResNet50-vd + squeeze-excitation (C/16)",
              buildSeResNet50Vd,
              224,
              {0, 0, 0, kPaddleClasSe}},
    ModelInfo{.name = "resnet20",
              .summary = "CIFAR ResNet-20 (He et al. 2015), 3x3 BasicBlocks, 1x1 projections",
              .build = buildResNet20,
              .defaultResolution = 28,
              .published = {272'186, 0.031, 0, kResNet20Source},
              .defaultInChannels = 1,
              .defaultNumClasses = 10,
              .preprocess = kFashionMnistPreprocess},
    ModelInfo{"squeezenet1_0",
              "SqueezeNet 1.0 (Iandola et al. 2016), Fire modules",
              buildSqueezeNet10,
              224,
              {1'248'424, 0.82, 58.092, kTorchvisionV1}},
    ModelInfo{"squeezenet1_1",
              "SqueezeNet 1.1, 3x3 stem, earlier pooling",
              buildSqueezeNet11,
              224,
              {1'235'496, 0.35, 58.178, kTorchvisionV1}},
    ModelInfo{"mobilenet_v2",
              "MobileNetV2 (Sandler et al. 2018), inverted residuals, width 1.0",
              buildMobileNetV2,
              224,
              {3'504'872, 0.30, 71.878, kTorchvisionV1}},
    ModelInfo{"densenet121",
              "DenseNet-121 (Huang et al. 2017), growth 32, blocks [6,12,24,16]",
              buildDenseNet121,
              224,
              {7'978'856, 2.83, 74.434, kTorchvisionV1}},
    withEfficientNetTransforms(
        ModelInfo{"efficientnet_b0",
                  "EfficientNet-B0 (Tan & Le 2019), MBConv + squeeze-excitation",
                  buildEfficientNetB<0>,
                  kEfficientNetScaling[0].resolution,
                  {5'288'548, 0.39, 77.692, kTorchvisionV1}},
        256, 224),
    withEfficientNetTransforms(ModelInfo{"efficientnet_b1",
                                         "EfficientNet-B1, width 1.0 depth 1.1",
                                         buildEfficientNetB<1>,
                                         kEfficientNetScaling[1].resolution,
                                         {7'794'184, 0.69, 78.642, kTorchvisionV1}},
                               256, 240),
    withEfficientNetTransforms(
        ModelInfo{"efficientnet_b2",
                  "EfficientNet-B2, width 1.1 depth 1.2",
                  buildEfficientNetB<2>,
                  kEfficientNetScaling[2].resolution,
                  {9'109'994, 1.0, 80.608,
                   "params, top-1 (at 288): torchvision; MACs at 260: Tan & Le 2019 Table 2"}},
        288, 288),
    withEfficientNetTransforms(ModelInfo{"efficientnet_b3",
                                         "EfficientNet-B3, width 1.2 depth 1.4",
                                         buildEfficientNetB<3>,
                                         kEfficientNetScaling[3].resolution,
                                         {12'233'232, 1.83, 82.008, kTorchvisionV1}},
                               320, 300),
    withEfficientNetTransforms(ModelInfo{"efficientnet_b4",
                                         "EfficientNet-B4, width 1.4 depth 1.8",
                                         buildEfficientNetB<4>,
                                         kEfficientNetScaling[4].resolution,
                                         {19'341'616, 4.39, 83.384, kTorchvisionV1}},
                               384, 380),
    withEfficientNetTransforms(ModelInfo{"efficientnet_b5",
                                         "EfficientNet-B5, width 1.6 depth 2.2",
                                         buildEfficientNetB<5>,
                                         kEfficientNetScaling[5].resolution,
                                         {30'389'784, 10.27, 83.444, kTorchvisionV1}},
                               456, 456),
    withEfficientNetTransforms(ModelInfo{"efficientnet_b6",
                                         "EfficientNet-B6, width 1.8 depth 2.6",
                                         buildEfficientNetB<6>,
                                         kEfficientNetScaling[6].resolution,
                                         {43'040'704, 19.07, 84.008, kTorchvisionV1}},
                               528, 528),
    withEfficientNetTransforms(ModelInfo{"efficientnet_b7",
                                         "EfficientNet-B7, width 2.0 depth 3.1",
                                         buildEfficientNetB<7>,
                                         kEfficientNetScaling[7].resolution,
                                         {66'347'960, 37.75, 84.122, kTorchvisionV1}},
                               600, 600),
    ModelInfo{"peleenet",
              "PeleeNet (Wang et al. 2018), stem block, 2-way dense layers [3,4,8,6]",
              buildPeleeNet,
              224,
              {2'802'248, 0.508, 72.6, kPeleePaper}},
    ModelInfo{"mobilenext_035",
              "MobileNeXt (Zhou et al. 2020), sandglass blocks, width 0.35",
              buildMobileNeXt035,
              224,
              {1'913'976, 0.08, 64.7, kMobileNeXtRepo}},
    ModelInfo{"mobilenext_050",
              "MobileNeXt, width 0.5",
              buildMobileNeXt050,
              224,
              {2'152'304, 0.11, 67.7, kMobileNeXtRepo}},
    ModelInfo{"mobilenext_075",
              "MobileNeXt, width 0.75",
              buildMobileNeXt075,
              224,
              {2'766'168, 0.21, 72.0, kMobileNeXtRepo}},
    ModelInfo{"mobilenext_100",
              "MobileNeXt, width 1.0",
              buildMobileNeXt100,
              224,
              {3'535'416, 0.30, 74.02, kMobileNeXtRepo}},
    ModelInfo{"mobilenext_140",
              "MobileNeXt, width 1.4",
              buildMobileNeXt140,
              224,
              {6'126'168, 0.59, 76.1, kMobileNeXtRepo}},
};

}  // namespace

std::span<const ModelInfo> allModels() {
  return kModels;
}

const ModelInfo* findModel(std::string_view name) {
  for (const ModelInfo& m : kModels)
    if (m.name == name) return &m;
  return nullptr;
}

ModelConfig defaultConfig(const ModelInfo& info) {
  ModelConfig c;
  c.resolution = info.defaultResolution;
  c.inChannels = info.defaultInChannels;
  c.numClasses = info.defaultNumClasses;
  return c;
}

Expected<ir::Module> buildModel(std::string_view name, const ModelConfig& config) {
  if (const ModelInfo* m = findModel(name)) return m->build(config);
  std::string known;
  for (const ModelInfo& m : kModels)
    known += fmt::format("{}{}", known.empty() ? "" : ", ", m.name);
  return error("unknown model '{}' (known: {})", name, known);
}

Status checkConfig(const ModelConfig& c, std::string_view model) {
  if (c.batch == 0 || c.batch < -1)
    return error("{}: batch must be >= 1 or -1 (symbolic N), got {}", model, c.batch);
  if (c.resolution < 1) return error("{}: resolution must be >= 1, got {}", model, c.resolution);
  if (c.numClasses < 1) return error("{}: numClasses must be >= 1, got {}", model, c.numClasses);
  if (c.inChannels < 1) return error("{}: inChannels must be >= 1, got {}", model, c.inChannels);
  return Status::ok();
}

}  // namespace kiln::models
