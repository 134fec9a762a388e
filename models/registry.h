// The model registry: one table of every model kiln can build from its C++ definition,
// with published reference figures. `kiln models`, `kiln show NAME` and the tests read it.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "ir/module.h"
#include "ir/status.h"

namespace kiln::models {

/// How to instantiate a model.
struct ModelConfig {
  int64_t batch = -1;  // -1 = symbolic N
  int64_t resolution = 224;
  int64_t numClasses = 1000;
  int64_t inChannels = 3;
};

/// Figures from the model's reference implementation, to compare ours against.
struct PublishedFigures {
  int64_t params = 0;  // trainable parameters in the default config (defaultNumClasses, …)
  double gmacs = 0;    // multiply-accumulates (conv + linear) per image at the default resolution
  double top1 = 0;     // ImageNet-1k top-1 accuracy in %, 0 when unknown
  std::string_view source;
};

/// The class names a model's outputs index (models/labels.h holds them).
enum class LabelSet { None, ImageNet, FashionMnist };

enum class Resample { Bilinear, Bicubic };

/// How an image becomes the model's input, as torchvision's transforms on a PIL image:
/// Resize(resize, interpolation) → CenterCrop(crop) → ToTensor → Normalize(mean, std).
/// `kiln predict` builds the model at resolution `crop`.
struct Preprocess {
  int64_t resize = 256;  // shorter side before cropping; 0: no resize
  int64_t crop = 224;    // square center crop
  Resample interpolation = Resample::Bilinear;
  int64_t channels = 3;  // 3: RGB; 1: grayscale (PIL convert("L")), only mean[0]/std[0] used
  std::array<double, 3> mean{0.485, 0.456, 0.406};
  std::array<double, 3> std{0.229, 0.224, 0.225};
  LabelSet labels = LabelSet::ImageNet;
};

struct ModelInfo {
  std::string_view name;
  std::string_view summary;
  Expected<ir::Module> (*build)(const ModelConfig&);
  int64_t defaultResolution;
  PublishedFigures published;
  // Defaults for the other ModelConfig fields; a model whose natural input is not an RGB
  // ImageNet image (resnet20: 1x28x28 Fashion-MNIST, 10 classes) sets them.
  int64_t defaultInChannels = 3;
  int64_t defaultNumClasses = 1000;
  // The evaluation transforms of the model's reference weights (torchvision's weights
  // enums give resize/crop/interpolation per model); ImageNet's 256 → 224 bilinear default.
  Preprocess preprocess{};
};

/// Every model, in the table's order (families grouped, smallest first).
std::span<const ModelInfo> allModels();
/// The model called `name`, or null.
const ModelInfo* findModel(std::string_view name);
/// Builds `name`; an unknown name is an error listing the known ones.
Expected<ir::Module> buildModel(std::string_view name, const ModelConfig& config);
/// The config with the model's default resolution, input channels and classes (batch N).
ModelConfig defaultConfig(const ModelInfo& info);

/// Rejects configs no model can build (batch 0, resolution < 1, …); `model` names it in the
/// message. Model builders call this first.
Status checkConfig(const ModelConfig& config, std::string_view model);

}  // namespace kiln::models
