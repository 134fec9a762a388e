// PeleeNet (Wang, Li & Ling, "Pelee: A Real-Time Object Detection System on Mobile Devices",
// NeurIPS 2018), from the seed's PaddlePaddle port of Robert-JunWang/PeleeNet. Parameter names
// are the seed's module names (features.stemblock.stem1.conv.weight, …, classifier.weight)
// with torch's BN buffer names; tests/align/torch_seed_models.py holds the PyTorch reference.
//
// What the seed leaves out and how it is completed (the paper's structure, the reference
// repo's code): its `*` signs were lost (`int(growth_rate bottleneck_width / 4) 4` is
// int(g * w / 4) * 4) and PeleeNet has no forward(): features, global average pool, flatten,
// dropout(0.05), classifier.
#include <array>
#include <string>

#include "frontend/nn.h"
#include "models/blocks.h"
#include "models/families.h"

namespace kiln::models {

namespace {

using frontend::Builder;
using frontend::Var;

constexpr int64_t kGrowthRate = 32;  // channels a two-way dense layer adds (16 per branch)
constexpr int64_t kInitFeatures = 32;
constexpr std::array<int, 4> kBlockConfig{3, 4, 8, 6};
constexpr std::array<int64_t, 4> kBottleneckWidth{1, 2, 4, 4};
constexpr double kDropRate = 0.05;

/// The seed's BasicConv2d: conv (no bias) NAME.conv, BN NAME.norm, ReLU (post-activation,
/// so BN folds into the conv at inference).
Var basicConv2d(Builder& b, std::string_view name, Var x, const frontend::Conv2dOpts& opts,
                std::source_location loc = std::source_location::current()) {
  auto s = b.scope(name);
  Var y = frontend::conv2d(b, "conv", x, opts, loc);
  return frontend::relu(b, frontend::batchNorm2d(b, "norm", y, 1e-5, loc), loc);
}

/// Stem block: 3x3/s2 conv, then a 1x1 -> 3x3/s2 branch beside a 2x2/s2 max pool,
/// concatenated (pool first) and mixed by a 1x1 conv.
Var stemBlock(Builder& b, Var x, int64_t features) {
  auto s = b.scope("stemblock");
  Var out = basicConv2d(b, "stem1", x, {.out = features, .kernel = 3, .stride = 2, .padding = 1});
  Var branch2 = basicConv2d(b, "stem2a", out, {.out = features / 2, .kernel = 1});
  branch2 =
      basicConv2d(b, "stem2b", branch2, {.out = features, .kernel = 3, .stride = 2, .padding = 1});
  Var branch1 = frontend::maxPool2d(b, out, {.kernel = 2, .stride = 2});
  out = frontend::concat(b, {branch1, branch2});
  return basicConv2d(b, "stem3", out, {.out = features, .kernel = 1});
}

/// Two-way dense layer: 1x1 -> 3x3 and 1x1 -> 3x3 -> 3x3 (growth/2 channels each),
/// concatenated after the input. The bottleneck width is growth/2 * bottleneckWidth rounded
/// down to a multiple of 4, but at most half the input channels ("dynamic number of channels
/// in the bottleneck layer").
Var denseLayer(Builder& b, Var x, int64_t growthRate, int64_t bottleneckWidth) {
  const int64_t in = x.dim(1);
  const int64_t growth = growthRate / 2;
  int64_t inter = growth * bottleneckWidth / 4 * 4;
  // The seed compares with a float: `inter_channel > num_input_features / 2`.
  if (2 * inter > in) inter = in / 8 * 4;
  Var branch1 = basicConv2d(b, "branch1a", x, {.out = inter, .kernel = 1});
  branch1 = basicConv2d(b, "branch1b", branch1, {.out = growth, .kernel = 3, .padding = 1});
  Var branch2 = basicConv2d(b, "branch2a", x, {.out = inter, .kernel = 1});
  branch2 = basicConv2d(b, "branch2b", branch2, {.out = growth, .kernel = 3, .padding = 1});
  branch2 = basicConv2d(b, "branch2c", branch2, {.out = growth, .kernel = 3, .padding = 1});
  return frontend::concat(b, {x, branch1, branch2});
}

}  // namespace

Expected<ir::Module> buildPeleeNet(const ModelConfig& config) {
  using namespace frontend;
  KILN_TRY(checkConfig(config, "peleenet"));
  // The stem's two stride-2 branches (2x2 max pool, 3x3 conv with padding 1) only agree in
  // size when the first conv's output is even, i.e. resolution % 4 is 0 or 3.
  const int64_t stem1 = (config.resolution + 1) / 2;
  if (stem1 % 2 != 0)
    return error(
        "peleenet: resolution {} gives a {}x{} stem feature map, which the stem's "
        "2x2 max pool and 3x3/s2 conv branches reduce to different sizes; use a "
        "resolution that is 0 or 3 mod 4 (e.g. 224)",
        config.resolution, stem1, stem1);
  Builder b{"peleenet"};
  Var x = imageInput(b, config);
  {
    auto features = b.scope("features");
    x = stemBlock(b, x, kInitFeatures);
    for (size_t i = 0; i < kBlockConfig.size(); ++i) {
      {
        auto block = b.scope(fmt::format("denseblock{}", i + 1));
        for (int j = 0; j < kBlockConfig[i]; ++j) {
          auto layer = b.scope(fmt::format("denselayer{}", j + 1));
          x = denseLayer(b, x, kGrowthRate, kBottleneckWidth[i]);
        }
      }
      // Transition without compression: a 1x1 conv keeping the channels, then (except after
      // the last stage) a 2x2/s2 average pool.
      x = basicConv2d(b, fmt::format("transition{}", i + 1), x, {.out = x.dim(1), .kernel = 1});
      if (i + 1 != kBlockConfig.size()) x = avgPool2d(b, x, {.kernel = 2, .stride = 2});
    }
  }
  x = flatten(b, globalAvgPool(b, x));
  x = dropout(b, x, kDropRate);
  x = linear(b, "classifier", x, config.numClasses);
  b.output(b.setName(x, "logits"));
  return b.finish();
}

}  // namespace kiln::models
