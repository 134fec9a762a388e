// ResNet-vc / ResNet-vd and SE-ResNet-vd (He et al. 2019, "Bag of Tricks", sec. 4.1; seed 002:
// PaddleClas ResNet.md), with timm's module names (timm.models.resnet: resnet50c / resnet50d /
// seresnet*), so parameter names equal a timm state_dict's:
//   conv1.0, conv1.1 (bn), conv1.3, conv1.4 (bn), conv1.6, bn1   the deep stem, 3x3 convs 32-32-64
//   layerS.I.conv1/bn1, conv2/bn2[, conv3/bn3][, se.fc1, se.fc2]
//   vc: layerS.0.downsample.0 (1x1 conv, stride s), downsample.1 (bn)      (timm downsample_conv)
//   vd: layerS.0.downsample.0 = 2x2 avg pool, stride s (none when s = 1),
//       downsample.1 (1x1 conv, stride 1), downsample.2 (bn)               (timm downsample_avg)
//   fc
// The stride of a bottleneck sits on its 3x3 conv (v1.5/"vb"). The PyTorch reference is
// tests/align/torch_resnet_vd.py.
//
// Two places where PaddleClas' own code (ppcls/arch/backbone/legendary_models/resnet.py,
// model_zoo/se_resnet_vd.py) differs from timm, and kiln follows timm:
//  - PaddleClas gives layer1.0 of the BasicBlock nets (18/34) a 1x1 conv + BN shortcut
//    although the block keeps its shape (`use_first_short_conv=True`): +4,224 params and
//    +12,845,056 MACs at 224 there.
//  - timm's SEModule rounds C/16 up to a multiple of 8 (64 -> 8); PaddleClas' SELayer and kiln
//    use C/16 (64 -> 4).
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
enum class Shortcut {
  StridedConv,  // vc (torchvision): 1x1 conv with the stage's stride
  AvgPoolConv,  // vd: 2x2 avg pool with the stride, then 1x1 conv with stride 1
};

struct ResNetVdSpec {
  std::string_view name;
  Block block;
  std::array<int, 4> layers;
  Shortcut shortcut;
  bool se = false;  // squeeze-excitation on each residual branch
};

constexpr int64_t kStemWidth = 32;  // timm stem_width for the c/d variants
constexpr int64_t kSeReduction = 16;

/// The projection shortcut of a block that changes shape, in scope "downsample".
Var downsample(Builder& b, Var x, int64_t out, int64_t stride, Shortcut kind) {
  using namespace frontend;
  auto s = b.scope("downsample");
  if (kind == Shortcut::StridedConv) {
    Var y = conv2d(b, "0", x, {.out = out, .kernel = 1, .stride = stride});
    return batchNorm2d(b, "1", y);
  }
  // Child 0 is the pool (nn.Identity when the stride is 1). ceil_mode keeps the shortcut's
  // size equal to the 3x3/s2 conv's, ceil(n / 2), on odd sizes; the last window then holds
  // one row or column and averages only it (with zero padding, count_include_pad=False
  // changes nothing: PyTorch clips that window to the input either way).
  if (stride != 1)
    x = avgPool2d(b, x,
                  {.kernel = 2, .stride = stride, .ceilMode = true, .countIncludePad = false});
  Var y = conv2d(b, "1", x, {.out = out, .kernel = 1});
  return batchNorm2d(b, "2", y);
}

/// The residual add and final relu, with SE on the branch and the shortcut as needed.
Var merge(Builder& b, Var x, Var branch, int64_t stride, const ResNetVdSpec& spec) {
  using namespace frontend;
  const int64_t out = branch.dim(1);
  if (spec.se) branch = squeezeExcitation(b, "se", branch, {.squeeze = out / kSeReduction});
  Var identity = x;
  if (stride != 1 || x.dim(1) != out) identity = downsample(b, x, out, stride, spec.shortcut);
  return relu(b, add(b, branch, identity));
}

Var basicBlock(Builder& b, Var x, int64_t planes, int64_t stride, const ResNetVdSpec& spec) {
  using namespace frontend;
  Var y = conv2d(b, "conv1", x, {.out = planes, .kernel = 3, .stride = stride, .padding = 1});
  y = relu(b, batchNorm2d(b, "bn1", y));
  y = batchNorm2d(b, "bn2", conv2d(b, "conv2", y, {.out = planes, .kernel = 3, .padding = 1}));
  return merge(b, x, y, stride, spec);
}

Var bottleneck(Builder& b, Var x, int64_t planes, int64_t stride, const ResNetVdSpec& spec) {
  using namespace frontend;
  Var y = relu(b, batchNorm2d(b, "bn1", conv2d(b, "conv1", x, {.out = planes, .kernel = 1})));
  y = conv2d(b, "conv2", y, {.out = planes, .kernel = 3, .stride = stride, .padding = 1});
  y = relu(b, batchNorm2d(b, "bn2", y));
  y = batchNorm2d(b, "bn3", conv2d(b, "conv3", y, {.out = 4 * planes, .kernel = 1}));
  return merge(b, x, y, stride, spec);
}

/// timm's stem_type='deep': conv1 = Sequential(conv3x3/s2, bn, relu, conv3x3, bn, relu,
/// conv3x3), then bn1 and relu outside it.
Var deepStem(Builder& b, Var x) {
  using namespace frontend;
  {
    auto s = b.scope("conv1");
    x = conv2d(b, "0", x, {.out = kStemWidth, .kernel = 3, .stride = 2, .padding = 1});
    x = relu(b, batchNorm2d(b, "1", x));
    x = conv2d(b, "3", x, {.out = kStemWidth, .kernel = 3, .padding = 1});
    x = relu(b, batchNorm2d(b, "4", x));
    x = conv2d(b, "6", x, {.out = 2 * kStemWidth, .kernel = 3, .padding = 1});
  }
  return relu(b, batchNorm2d(b, "bn1", x));
}

Expected<ir::Module> buildResNetVd(const ResNetVdSpec& spec, const ModelConfig& config) {
  using namespace frontend;
  KILN_TRY(checkConfig(config, spec.name));
  Builder b{std::string(spec.name)};
  Var x = imageInput(b, config);
  x = deepStem(b, x);
  x = maxPool2d(b, x, {.kernel = 3, .stride = 2, .padding = 1});
  constexpr std::array<int64_t, 4> kPlanes{64, 128, 256, 512};
  for (size_t stage = 0; stage < 4; ++stage) {
    auto layer = b.scope(fmt::format("layer{}", stage + 1));
    for (int i = 0; i < spec.layers[stage]; ++i) {
      auto block = b.scope(std::to_string(i));
      const int64_t stride = (stage > 0 && i == 0) ? 2 : 1;
      x = spec.block == Block::Basic ? basicBlock(b, x, kPlanes[stage], stride, spec)
                                     : bottleneck(b, x, kPlanes[stage], stride, spec);
    }
  }
  x = flatten(b, globalAvgPool(b, x));
  x = linear(b, "fc", x, config.numClasses);
  b.output(b.setName(x, "logits"));
  return b.finish();
}

constexpr auto kVc = Shortcut::StridedConv;
constexpr auto kVd = Shortcut::AvgPoolConv;

}  // namespace

Expected<ir::Module> buildResNet50Vc(const ModelConfig& c) {
  return buildResNetVd({"resnet50_vc", Block::Bottleneck, {3, 4, 6, 3}, kVc}, c);
}
Expected<ir::Module> buildResNet18Vd(const ModelConfig& c) {
  return buildResNetVd({"resnet18_vd", Block::Basic, {2, 2, 2, 2}, kVd}, c);
}
Expected<ir::Module> buildResNet34Vd(const ModelConfig& c) {
  return buildResNetVd({"resnet34_vd", Block::Basic, {3, 4, 6, 3}, kVd}, c);
}
Expected<ir::Module> buildResNet50Vd(const ModelConfig& c) {
  return buildResNetVd({"resnet50_vd", Block::Bottleneck, {3, 4, 6, 3}, kVd}, c);
}
Expected<ir::Module> buildResNet101Vd(const ModelConfig& c) {
  return buildResNetVd({"resnet101_vd", Block::Bottleneck, {3, 4, 23, 3}, kVd}, c);
}
Expected<ir::Module> buildResNet152Vd(const ModelConfig& c) {
  return buildResNetVd({"resnet152_vd", Block::Bottleneck, {3, 8, 36, 3}, kVd}, c);
}
// PaddleClas' depths for 200 (timm's resnet200d uses [3, 24, 36, 3]).
Expected<ir::Module> buildResNet200Vd(const ModelConfig& c) {
  return buildResNetVd({"resnet200_vd", Block::Bottleneck, {3, 12, 48, 3}, kVd}, c);
}
Expected<ir::Module> buildSeResNet18Vd(const ModelConfig& c) {
  return buildResNetVd({"se_resnet18_vd", Block::Basic, {2, 2, 2, 2}, kVd, true}, c);
}
Expected<ir::Module> buildSeResNet34Vd(const ModelConfig& c) {
  return buildResNetVd({"se_resnet34_vd", Block::Basic, {3, 4, 6, 3}, kVd, true}, c);
}
Expected<ir::Module> buildSeResNet50Vd(const ModelConfig& c) {
  return buildResNetVd({"se_resnet50_vd", Block::Bottleneck, {3, 4, 6, 3}, kVd, true}, c);
}

}  // namespace kiln::models
