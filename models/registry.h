// The model registry: one table of every model kiln can build from its C++ definition,
// with published reference figures. `kiln models`, `kiln show NAME` and the tests read it.
#pragma once

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
