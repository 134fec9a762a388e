// CIFAR-style ResNets (He et al. 2015, section 4.2): a 3x3 stem conv with 16 channels, three
// stages of n BasicBlocks with 16/32/64 channels (stride 2 entering stages 2 and 3), global
// average pooling and fc; 6n+2 layers. Shortcuts that change shape are projections (1x1 conv +
// BN, the paper's option B), not option A's zero padding. Names follow torchvision's ResNet
// (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, fc).
//
// resnet20 is kiln's Fashion-MNIST quickstart model: its registry row defaults to 1 input
// channel, 28x28 and 10 classes (272,186 parameters, 31.0 M MACs).
#include <array>
#include <string>

#include "frontend/nn.h"
#include "models/blocks.h"
#include "models/families.h"

namespace kiln::models {

namespace {

using frontend::Builder;
using frontend::Var;

Expected<ir::Module> buildCifarResNet(std::string_view name, int blocksPerStage,
                                      const ModelConfig& config) {
  using namespace frontend;
  KILN_TRY(checkConfig(config, name));
  Builder b{std::string(name)};
  Var x = imageInput(b, config);
  x = conv2d(b, "conv1", x, {.out = 16, .kernel = 3, .padding = 1});
  x = relu(b, batchNorm2d(b, "bn1", x));
  constexpr std::array<int64_t, 3> kPlanes{16, 32, 64};
  for (size_t stage = 0; stage < kPlanes.size(); ++stage) {
    auto layer = b.scope(fmt::format("layer{}", stage + 1));
    for (int i = 0; i < blocksPerStage; ++i) {
      auto block = b.scope(std::to_string(i));
      x = basicBlock(b, x, kPlanes[stage], (stage > 0 && i == 0) ? 2 : 1);
    }
  }
  x = flatten(b, globalAvgPool(b, x));
  x = linear(b, "fc", x, config.numClasses);
  b.output(b.setName(x, "logits"));
  return b.finish();
}

}  // namespace

Expected<ir::Module> buildResNet20(const ModelConfig& c) {
  return buildCifarResNet("resnet20", 3, c);
}

}  // namespace kiln::models
