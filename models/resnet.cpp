// ResNet family, exactly as torchvision.models.resnet builds it (v1.5: the stride of a
// bottleneck sits on its 3x3 conv), so parameter names equal torchvision's state_dict keys.
#include <array>
#include <string>

#include "frontend/nn.h"
#include "models/blocks.h"
#include "models/families.h"

namespace kiln::models {

namespace {

using frontend::Builder;
using frontend::Var;

enum class Block { Basic, Bottleneck };

struct ResNetSpec {
  std::string_view name;
  Block block;
  std::array<int, 4> layers;
  int64_t groups = 1;      // ResNeXt cardinality
  int64_t baseWidth = 64;  // width_per_group (wide_resnet: 128)
};

int64_t expansion(Block b) {
  return b == Block::Basic ? 1 : 4;
}

/// conv1x1 + bn on the identity path when the block changes shape (torchvision's
/// `downsample`: Sequential(conv1x1, BatchNorm2d)).
Var downsample(Builder& b, Var x, int64_t out, int64_t stride) {
  auto s = b.scope("downsample");
  Var y = frontend::conv2d(b, "0", x, {.out = out, .kernel = 1, .stride = stride});
  return frontend::batchNorm2d(b, "1", y);
}

Var basicBlock(Builder& b, Var x, int64_t planes, int64_t stride) {
  using namespace frontend;
  Var identity = x;
  Var y = conv2d(b, "conv1", x, {.out = planes, .kernel = 3, .stride = stride, .padding = 1});
  y = relu(b, batchNorm2d(b, "bn1", y));
  y = conv2d(b, "conv2", y, {.out = planes, .kernel = 3, .padding = 1});
  y = batchNorm2d(b, "bn2", y);
  if (stride != 1 || x.dim(1) != planes) identity = downsample(b, x, planes, stride);
  return relu(b, add(b, y, identity));
}

Var bottleneck(Builder& b, Var x, int64_t planes, int64_t stride, const ResNetSpec& spec) {
  using namespace frontend;
  const int64_t width = planes * spec.baseWidth / 64 * spec.groups;
  const int64_t out = planes * expansion(Block::Bottleneck);
  Var identity = x;
  Var y = relu(b, batchNorm2d(b, "bn1", conv2d(b, "conv1", x, {.out = width, .kernel = 1})));
  y = conv2d(b, "conv2", y,
             {.out = width, .kernel = 3, .stride = stride, .padding = 1, .groups = spec.groups});
  y = relu(b, batchNorm2d(b, "bn2", y));
  y = batchNorm2d(b, "bn3", conv2d(b, "conv3", y, {.out = out, .kernel = 1}));
  if (stride != 1 || x.dim(1) != out) identity = downsample(b, x, out, stride);
  return relu(b, add(b, y, identity));
}

Expected<ir::Module> buildResNet(const ResNetSpec& spec, const ModelConfig& config) {
  using namespace frontend;
  KILN_TRY(checkConfig(config, spec.name));
  Builder b{std::string(spec.name)};
  Var x = imageInput(b, config);
  x = conv2d(b, "conv1", x, {.out = 64, .kernel = 7, .stride = 2, .padding = 3});
  x = relu(b, batchNorm2d(b, "bn1", x));
  x = maxPool2d(b, x, {.kernel = 3, .stride = 2, .padding = 1});
  constexpr std::array<int64_t, 4> kPlanes{64, 128, 256, 512};
  for (size_t stage = 0; stage < 4; ++stage) {
    auto layer = b.scope(fmt::format("layer{}", stage + 1));
    for (int i = 0; i < spec.layers[stage]; ++i) {
      auto block = b.scope(std::to_string(i));
      const int64_t stride = (stage > 0 && i == 0) ? 2 : 1;
      x = spec.block == Block::Basic ? basicBlock(b, x, kPlanes[stage], stride)
                                     : bottleneck(b, x, kPlanes[stage], stride, spec);
    }
  }
  x = flatten(b, globalAvgPool(b, x));
  x = linear(b, "fc", x, config.numClasses);
  b.output(b.setName(x, "logits"));
  return b.finish();
}

}  // namespace

Expected<ir::Module> buildResNet18(const ModelConfig& c) {
  return buildResNet({"resnet18", Block::Basic, {2, 2, 2, 2}}, c);
}
Expected<ir::Module> buildResNet34(const ModelConfig& c) {
  return buildResNet({"resnet34", Block::Basic, {3, 4, 6, 3}}, c);
}
Expected<ir::Module> buildResNet50(const ModelConfig& c) {
  return buildResNet({"resnet50", Block::Bottleneck, {3, 4, 6, 3}}, c);
}
Expected<ir::Module> buildResNet101(const ModelConfig& c) {
  return buildResNet({"resnet101", Block::Bottleneck, {3, 4, 23, 3}}, c);
}
Expected<ir::Module> buildResNet152(const ModelConfig& c) {
  return buildResNet({"resnet152", Block::Bottleneck, {3, 8, 36, 3}}, c);
}

}  // namespace kiln::models
