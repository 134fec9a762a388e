// Build functions of every model family, one file each (models/<family>.cpp); the registry
// table (models/registry.cpp) lists them. Not for use outside models/: call the registry.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ir/module.h"
#include "ir/status.h"
#include "models/registry.h"

namespace kiln::models {

// models/resnet.cpp — torchvision ResNet v1.5 (stride on the 3x3 of the bottleneck).
Expected<ir::Module> buildResNet18(const ModelConfig& config);
Expected<ir::Module> buildResNet34(const ModelConfig& config);
Expected<ir::Module> buildResNet50(const ModelConfig& config);
Expected<ir::Module> buildResNet101(const ModelConfig& config);
Expected<ir::Module> buildResNet152(const ModelConfig& config);

// models/resnet_vd.cpp — ResNet-vc/vd and SE-ResNet-vd (seed 002, PaddleClas), deep 3x3 stem;
// vd: avg-pool shortcut. timm's parameter names (resnet50c / resnet50d / seresnet).
Expected<ir::Module> buildResNet50Vc(const ModelConfig& config);
Expected<ir::Module> buildResNet18Vd(const ModelConfig& config);
Expected<ir::Module> buildResNet34Vd(const ModelConfig& config);
Expected<ir::Module> buildResNet50Vd(const ModelConfig& config);
Expected<ir::Module> buildResNet101Vd(const ModelConfig& config);
Expected<ir::Module> buildResNet152Vd(const ModelConfig& config);
Expected<ir::Module> buildResNet200Vd(const ModelConfig& config);
Expected<ir::Module> buildSeResNet18Vd(const ModelConfig& config);
Expected<ir::Module> buildSeResNet34Vd(const ModelConfig& config);
Expected<ir::Module> buildSeResNet50Vd(const ModelConfig& config);

// models/resnet_cifar.cpp — CIFAR-style ResNet (6n+2 layers, 16/32/64 channels, option-B
// projection shortcuts); resnet20 defaults to 1x28x28 Fashion-MNIST, 10 classes.
Expected<ir::Module> buildResNet20(const ModelConfig& config);

// models/squeezenet.cpp — torchvision SqueezeNet 1.0 / 1.1.
Expected<ir::Module> buildSqueezeNet10(const ModelConfig& config);
Expected<ir::Module> buildSqueezeNet11(const ModelConfig& config);

// models/mobilenet_v2.cpp — torchvision MobileNetV2 (width 1.0).
Expected<ir::Module> buildMobileNetV2(const ModelConfig& config);

// models/densenet.cpp — torchvision DenseNet-BC.
Expected<ir::Module> buildDenseNet121(const ModelConfig& config);

// models/peleenet.cpp — PeleeNet (seed: a Paddle port of Robert-JunWang/PeleeNet).
Expected<ir::Module> buildPeleeNet(const ModelConfig& config);

// models/mobilenext.cpp — MobileNeXt sandglass-block nets (seed: PaddleClas MobileNeXt).
Expected<ir::Module> buildMobileNeXt035(const ModelConfig& config);
Expected<ir::Module> buildMobileNeXt050(const ModelConfig& config);
Expected<ir::Module> buildMobileNeXt075(const ModelConfig& config);
Expected<ir::Module> buildMobileNeXt100(const ModelConfig& config);
Expected<ir::Module> buildMobileNeXt140(const ModelConfig& config);

// models/efficientnet.cpp — torchvision EfficientNet B0-B7 (Tan & Le 2019). The compound
// scaling of every variant, in one table (the registry takes its default resolution from it).
struct EfficientNetScaling {
  std::string_view name;
  double width;        // channels c -> makeDivisible(c * width, 8)
  double depth;        // stage repeats r -> ceil(r * depth)
  int64_t resolution;  // the paper's input size
  double dropout;      // before the classifier
  double bnEps;        // torchvision: 1e-5 for B0-B4, 1e-3 (the TF ports) for B5-B7
};
inline constexpr std::array<EfficientNetScaling, 8> kEfficientNetScaling{{
    {"efficientnet_b0", 1.0, 1.0, 224, 0.2, 1e-5},
    {"efficientnet_b1", 1.0, 1.1, 240, 0.2, 1e-5},
    {"efficientnet_b2", 1.1, 1.2, 260, 0.3, 1e-5},
    {"efficientnet_b3", 1.2, 1.4, 300, 0.3, 1e-5},
    {"efficientnet_b4", 1.4, 1.8, 380, 0.4, 1e-5},
    {"efficientnet_b5", 1.6, 2.2, 456, 0.4, 1e-3},
    {"efficientnet_b6", 1.8, 2.6, 528, 0.5, 1e-3},
    {"efficientnet_b7", 2.0, 3.1, 600, 0.5, 1e-3},
}};
Expected<ir::Module> buildEfficientNet(const EfficientNetScaling& scaling,
                                       const ModelConfig& config);
/// efficientnet_b<V>, for the registry's table of function pointers.
template <size_t V>
Expected<ir::Module> buildEfficientNetB(const ModelConfig& config) {
  return buildEfficientNet(kEfficientNetScaling[V], config);
}

}  // namespace kiln::models
