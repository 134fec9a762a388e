// Building blocks shared by model families (torchvision's Conv2dNormActivation,
// _make_divisible, MobileNetV2's InvertedResidual, ResNet's BasicBlock, …). Each block names
// its parameters the way its torchvision module does, relative to the current scope, and
// records the caller's source location on every node it creates, so errors and dumps point
// at the model file that used the block.
#pragma once

#include <cstdint>
#include <source_location>
#include <string_view>

#include "frontend/builder.h"
#include "frontend/nn.h"
#include "models/registry.h"

namespace kiln::models {

/// The image input `%x : f32[batch, inChannels, resolution, resolution]{nchw}` of a config.
frontend::Var imageInput(frontend::Builder& b, const ModelConfig& config,
                         std::source_location loc = std::source_location::current());

/// torchvision's `_make_divisible` (from the TF MobileNet code): `v` rounded to the nearest
/// multiple of `divisor`, at least `minValue` (default: `divisor`), and never more than 10%
/// below `v`.
int64_t makeDivisible(double v, int64_t divisor, int64_t minValue = 0);

/// The activation a block applies; None is the identity ("linear bottleneck").
enum class Activation { None, Relu, Relu6, Swish, HardSwish, HardSigmoid, Sigmoid };

frontend::Var activate(frontend::Builder& b, frontend::Var x, Activation act,
                       std::source_location loc = std::source_location::current());

struct ConvBnActOpts {
  int64_t out = 0;
  frontend::Size2 kernel = 3;
  frontend::Size2 stride = 1;
  int64_t groups = 1;
  frontend::Size2 dilation = 1;
  Activation act = Activation::Relu;
  double eps = 1e-5;
};

/// torchvision.ops.Conv2dNormActivation with BatchNorm2d: Sequential(conv NAME.0 (no bias,
/// padding (k-1)/2*dilation), bn NAME.1, activation). An empty NAME opens no scope.
frontend::Var convBnAct(frontend::Builder& b, std::string_view name, frontend::Var x,
                        const ConvBnActOpts& opts,
                        std::source_location loc = std::source_location::current());

struct InvertedResidualOpts {
  int64_t out = 0;
  int64_t stride = 1;
  double expandRatio = 6;
  Activation act = Activation::Relu6;
};

/// torchvision.models.mobilenetv2.InvertedResidual (Sandler et al. 2018), inside scope NAME:
/// NAME.conv = Sequential([pw expand Conv2dNormActivation when expandRatio != 1],
/// dw Conv2dNormActivation, pw-linear conv, bn); hidden = round(in * expandRatio); the
/// input is added back when stride is 1 and in == out.
frontend::Var invertedResidual(frontend::Builder& b, std::string_view name, frontend::Var x,
                               const InvertedResidualOpts& opts,
                               std::source_location loc = std::source_location::current());

struct SqueezeExcitationOpts {
  int64_t squeeze = 0;  // channels of the bottleneck between fc1 and fc2
  Activation act = Activation::Relu;
  Activation scaleAct = Activation::Sigmoid;
};

/// torchvision.ops.SqueezeExcitation (Hu et al. 2018) inside scope NAME: global average pool,
/// NAME.fc1 (1x1 conv with bias, C -> squeeze), act, NAME.fc2 (1x1 conv with bias,
/// squeeze -> C), scaleAct, then x scaled per channel (channel_scale).
frontend::Var squeezeExcitation(frontend::Builder& b, std::string_view name, frontend::Var x,
                                const SqueezeExcitationOpts& opts,
                                std::source_location loc = std::source_location::current());

/// torchvision.models.resnet.BasicBlock in the current scope: conv1/bn1/relu, conv2/bn2, plus
/// the identity, or downsample.0 (1x1 conv, stride) + downsample.1 (bn) when the block changes
/// the shape (He et al.'s projection shortcut, "option B"); then relu.
frontend::Var basicBlock(frontend::Builder& b, frontend::Var x, int64_t planes, int64_t stride,
                         std::source_location loc = std::source_location::current());

}  // namespace kiln::models
