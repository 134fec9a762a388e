// DenseNet-BC (Huang et al. 2017), exactly as torchvision.models.densenet builds it, so
// parameter names equal torchvision's state_dict keys (features.conv0, features.denseblock1.
// denselayer1.norm1, features.transition1.conv, features.norm5, classifier).
#include <array>
#include <string>

#include "frontend/nn.h"
#include "models/blocks.h"
#include "models/families.h"

namespace kiln::models {

namespace {

using frontend::Builder;
using frontend::Var;

struct DenseNetSpec {
  std::string_view name;
  int64_t growthRate;
  std::array<int64_t, 4> blockConfig;
  int64_t initFeatures;
  int64_t bnSize = 4;
};

/// _DenseLayer: BN-ReLU-conv1x1 (bn_size * growth) then BN-ReLU-conv3x3 (growth). Returns the
/// new features only.
Var denseLayer(Builder& b, Var x, const DenseNetSpec& spec) {
  using namespace frontend;
  Var y = relu(b, batchNorm2d(b, "norm1", x));
  y = conv2d(b, "conv1", y, {.out = spec.bnSize * spec.growthRate, .kernel = 1});
  y = relu(b, batchNorm2d(b, "norm2", y));
  return conv2d(b, "conv2", y, {.out = spec.growthRate, .kernel = 3, .padding = 1});
}

/// _Transition: BN-ReLU-conv1x1 (halves the channels), 2x2 average pool.
Var transition(Builder& b, Var x, int64_t out) {
  using namespace frontend;
  Var y = relu(b, batchNorm2d(b, "norm", x));
  y = conv2d(b, "conv", y, {.out = out, .kernel = 1});
  return avgPool2d(b, y, {.kernel = 2, .stride = 2});
}

Expected<ir::Module> buildDenseNet(const DenseNetSpec& spec, const ModelConfig& config) {
  using namespace frontend;
  KILN_TRY(checkConfig(config, spec.name));
  Builder b{std::string(spec.name)};
  Var x = imageInput(b, config);
  {
    auto f = b.scope("features");
    x = conv2d(b, "conv0", x, {.out = spec.initFeatures, .kernel = 7, .stride = 2, .padding = 3});
    x = relu(b, batchNorm2d(b, "norm0", x));
    x = maxPool2d(b, x, {.kernel = 3, .stride = 2, .padding = 1});
    int64_t features = spec.initFeatures;
    for (size_t i = 0; i < spec.blockConfig.size(); ++i) {
      {
        auto block = b.scope(fmt::format("denseblock{}", i + 1));
        for (int64_t j = 0; j < spec.blockConfig[i]; ++j) {
          auto layer = b.scope(fmt::format("denselayer{}", j + 1));
          // torch concatenates every earlier output before each layer; appending the new
          // features to the running concatenation gives the same tensor.
          x = concat(b, {x, denseLayer(b, x, spec)}, 1);
        }
      }
      features += spec.blockConfig[i] * spec.growthRate;
      if (i + 1 != spec.blockConfig.size()) {
        auto t = b.scope(fmt::format("transition{}", i + 1));
        features /= 2;
        x = transition(b, x, features);
      }
    }
    x = batchNorm2d(b, "norm5", x);
  }
  x = flatten(b, globalAvgPool(b, relu(b, x)));
  x = linear(b, "classifier", x, config.numClasses);
  b.output(b.setName(x, "logits"));
  return b.finish();
}

}  // namespace

Expected<ir::Module> buildDenseNet121(const ModelConfig& c) {
  return buildDenseNet({"densenet121", 32, {6, 12, 24, 16}, 64}, c);
}

}  // namespace kiln::models
