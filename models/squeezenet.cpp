// SqueezeNet 1.0 and 1.1 (Iandola et al. 2016), exactly as torchvision.models.squeezenet
// builds them, so parameter names equal torchvision's state_dict keys (features.3.squeeze,
// features.3.expand1x1, …, classifier.1). Its max pools use ceil_mode=True.
#include <string>
#include <vector>

#include "frontend/nn.h"
#include "models/blocks.h"
#include "models/families.h"

namespace kiln::models {

namespace {

using frontend::Builder;
using frontend::Var;

/// One child of torchvision's `features` Sequential.
struct Layer {
  enum Kind { Conv, Relu, MaxPool, Fire } kind;
  int64_t squeeze = 0;  // Fire: squeeze planes; Conv: out channels
  int64_t expand = 0;   // Fire: expand1x1 planes = expand3x3 planes; Conv: kernel
};

/// Fire module: squeeze 1x1 + ReLU, then concat(ReLU(expand1x1), ReLU(expand3x3)).
Var fire(Builder& b, Var x, int64_t squeeze, int64_t expand) {
  using namespace frontend;
  Var s = relu(b, conv2d(b, "squeeze", x, {.out = squeeze, .kernel = 1, .bias = true}));
  Var e1 = relu(b, conv2d(b, "expand1x1", s, {.out = expand, .kernel = 1, .bias = true}));
  Var e3 =
      relu(b, conv2d(b, "expand3x3", s, {.out = expand, .kernel = 3, .padding = 1, .bias = true}));
  return concat(b, {e1, e3}, 1);
}

Expected<ir::Module> buildSqueezeNet(std::string_view name, const std::vector<Layer>& features,
                                     const ModelConfig& config) {
  using namespace frontend;
  KILN_TRY(checkConfig(config, name));
  Builder b{std::string(name)};
  Var x = imageInput(b, config);
  {
    auto f = b.scope("features");
    for (size_t i = 0; i < features.size(); ++i) {
      auto child = b.scope(std::to_string(i));
      const Layer& l = features[i];
      switch (l.kind) {
        case Layer::Conv:
          x = conv2d(b, "", x, {.out = l.squeeze, .kernel = l.expand, .stride = 2, .bias = true});
          break;
        case Layer::Relu:
          x = relu(b, x);
          break;
        case Layer::MaxPool:
          x = maxPool2d(b, x, {.kernel = 3, .stride = 2, .ceilMode = true});
          break;
        case Layer::Fire:
          x = fire(b, x, l.squeeze, l.expand);
          break;
      }
    }
  }
  {
    // Sequential(Dropout(0.5), final 1x1 conv, ReLU, AdaptiveAvgPool2d((1, 1))).
    auto c = b.scope("classifier");
    x = dropout(b, x, 0.5);
    x = relu(b, conv2d(b, "1", x, {.out = config.numClasses, .kernel = 1, .bias = true}));
    x = adaptiveAvgPool2d(b, x, 1);
  }
  x = flatten(b, x);
  b.output(b.setName(x, "logits"));
  return b.finish();
}

}  // namespace

// clang-format off
Expected<ir::Module> buildSqueezeNet10(const ModelConfig& c) {
  using L = Layer;
  return buildSqueezeNet("squeezenet1_0",
                         {{L::Conv, 96, 7}, {L::Relu}, {L::MaxPool},
                          {L::Fire, 16, 64}, {L::Fire, 16, 64}, {L::Fire, 32, 128}, {L::MaxPool},
                          {L::Fire, 32, 128}, {L::Fire, 48, 192}, {L::Fire, 48, 192},
                          {L::Fire, 64, 256}, {L::MaxPool}, {L::Fire, 64, 256}},
                         c);
}

Expected<ir::Module> buildSqueezeNet11(const ModelConfig& c) {
  using L = Layer;
  return buildSqueezeNet("squeezenet1_1",
                         {{L::Conv, 64, 3}, {L::Relu}, {L::MaxPool},
                          {L::Fire, 16, 64}, {L::Fire, 16, 64}, {L::MaxPool},
                          {L::Fire, 32, 128}, {L::Fire, 32, 128}, {L::MaxPool},
                          {L::Fire, 48, 192}, {L::Fire, 48, 192}, {L::Fire, 64, 256},
                          {L::Fire, 64, 256}},
                         c);
}
// clang-format on

}  // namespace kiln::models
