// Building blocks shared by model families; see models/blocks.h.
#include "models/blocks.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace kiln::models {

frontend::Var imageInput(frontend::Builder& b, const ModelConfig& config, std::source_location loc) {
  return b.input("x",
                 ir::TensorType{ir::DType::F32,
                                {config.batch, config.inChannels, config.resolution, config.resolution},
                                ir::Layout::NCHW},
                 loc);
}

using frontend::Builder;
using frontend::Var;

int64_t makeDivisible(double v, int64_t divisor, int64_t minValue) {
  if (minValue <= 0) minValue = divisor;
  // Python's int(v + divisor / 2) // divisor * divisor; int() truncates toward zero.
  const auto rounded =
      static_cast<int64_t>(v + static_cast<double>(divisor) / 2) / divisor * divisor;
  int64_t newV = std::max(minValue, rounded);
  if (static_cast<double>(newV) < 0.9 * v) newV += divisor;
  return newV;
}

Var activate(Builder& b, Var x, Activation act, std::source_location loc) {
  switch (act) {
    case Activation::None:
      return x;
    case Activation::Relu:
      return frontend::relu(b, x, loc);
    case Activation::Relu6:
      return frontend::relu6(b, x, loc);
    case Activation::Swish:
      return frontend::swish(b, x, loc);
    case Activation::HardSwish:
      return frontend::hardswish(b, x, loc);
    case Activation::HardSigmoid:
      return frontend::hardsigmoid(b, x, loc);
    case Activation::Sigmoid:
      return frontend::sigmoid(b, x, loc);
  }
  return b.fail(loc, "unknown activation");
}

Var convBnAct(Builder& b, std::string_view name, Var x, const ConvBnActOpts& o,
              std::source_location loc) {
  auto s = b.scope(name);
  const frontend::Size2 padding{(o.kernel.h - 1) / 2 * o.dilation.h,
                                (o.kernel.w - 1) / 2 * o.dilation.w};
  Var y = frontend::conv2d(b, "0", x,
                           {.out = o.out,
                            .kernel = o.kernel,
                            .stride = o.stride,
                            .padding = padding,
                            .dilation = o.dilation,
                            .groups = o.groups},
                           loc);
  y = frontend::batchNorm2d(b, "1", y, o.eps, loc);
  return activate(b, y, o.act, loc);
}

Var invertedResidual(Builder& b, std::string_view name, Var x, const InvertedResidualOpts& o,
                     std::source_location loc) {
  if (!b.ok()) return Var();
  if (o.stride != 1 && o.stride != 2)
    return b.fail(loc, fmt::format("inverted residual {}: stride must be 1 or 2, got {}",
                                   b.qualify(name), o.stride));
  if (!(o.expandRatio > 0))
    return b.fail(loc, fmt::format("inverted residual {}: expand ratio must be > 0, got {}",
                                   b.qualify(name), o.expandRatio));
  auto block = b.scope(name);
  auto conv = b.scope("conv");
  const int64_t in = x.dim(1);
  // Python's round(): half to even, which nearbyint does in the default rounding mode.
  const auto hidden = static_cast<int64_t>(std::nearbyint(static_cast<double>(in) * o.expandRatio));
  int child = 0;
  Var y = x;
  if (o.expandRatio != 1)
    y = convBnAct(b, std::to_string(child++), y, {.out = hidden, .kernel = 1, .act = o.act}, loc);
  y = convBnAct(b, std::to_string(child++), y,
                {.out = hidden, .kernel = 3, .stride = o.stride, .groups = hidden, .act = o.act},
                loc);
  y = frontend::conv2d(b, std::to_string(child++), y, {.out = o.out, .kernel = 1}, loc);
  y = frontend::batchNorm2d(b, std::to_string(child++), y, 1e-5, loc);
  if (o.stride == 1 && in == o.out) y = frontend::add(b, x, y, loc);
  return y;
}

Var squeezeExcitation(Builder& b, std::string_view name, Var x, const SqueezeExcitationOpts& o,
                      std::source_location loc) {
  if (!b.ok()) return Var();
  if (o.squeeze < 1)
    return b.fail(loc, fmt::format("squeeze-excitation {}: squeeze channels must be >= 1, got {}",
                                   b.qualify(name), o.squeeze));
  auto s = b.scope(name);
  Var scale = frontend::globalAvgPool(b, x, loc);
  scale = frontend::conv2d(b, "fc1", scale, {.out = o.squeeze, .bias = true}, loc);
  scale = activate(b, scale, o.act, loc);
  scale = frontend::conv2d(b, "fc2", scale, {.out = x.dim(1), .bias = true}, loc);
  scale = activate(b, scale, o.scaleAct, loc);
  return frontend::channelScale(b, x, scale, loc);
}

Var basicBlock(Builder& b, Var x, int64_t planes, int64_t stride, std::source_location loc) {
  using namespace frontend;
  Var y = conv2d(b, "conv1", x, {.out = planes, .kernel = 3, .stride = stride, .padding = 1}, loc);
  y = relu(b, batchNorm2d(b, "bn1", y, 1e-5, loc), loc);
  y = conv2d(b, "conv2", y, {.out = planes, .kernel = 3, .padding = 1}, loc);
  y = batchNorm2d(b, "bn2", y, 1e-5, loc);
  Var identity = x;
  if (stride != 1 || x.dim(1) != planes) {
    auto s = b.scope("downsample");
    identity = conv2d(b, "0", x, {.out = planes, .kernel = 1, .stride = stride}, loc);
    identity = batchNorm2d(b, "1", identity, 1e-5, loc);
  }
  return relu(b, add(b, y, identity, loc), loc);
}

}  // namespace kiln::models
