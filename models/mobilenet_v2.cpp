// MobileNetV2 (Sandler et al. 2018), exactly as torchvision.models.mobilenet_v2 builds it
// (width 1.0, round_nearest 8), so parameter names equal torchvision's state_dict keys:
// features.0.0 (stem conv), features.N.conv.K (inverted residuals), features.18.0,
// classifier.1 (Linear).
#include <algorithm>
#include <array>
#include <string>

#include "frontend/nn.h"
#include "models/blocks.h"
#include "models/families.h"

namespace kiln::models {

namespace {

using frontend::Builder;
using frontend::Var;

struct StageSpec {
  int64_t expand, channels, repeats, stride;  // torchvision's t, c, n, s
};

constexpr std::array<StageSpec, 7> kStages{{
    {1, 16, 1, 1},
    {6, 24, 2, 2},
    {6, 32, 3, 2},
    {6, 64, 4, 2},
    {6, 96, 3, 1},
    {6, 160, 3, 2},
    {6, 320, 1, 1},
}};

Expected<ir::Module> buildMobileNetV2Width(std::string_view name, double widthMult,
                                           const ModelConfig& config) {
  using namespace frontend;
  KILN_TRY(checkConfig(config, name));
  constexpr int64_t kRound = 8;
  Builder b{std::string(name)};
  Var x = imageInput(b, config);
  int64_t child = 0;
  {
    auto f = b.scope("features");
    x = convBnAct(
        b, std::to_string(child++), x,
        {.out = makeDivisible(32 * widthMult, kRound), .stride = 2, .act = Activation::Relu6});
    for (const StageSpec& s : kStages) {
      const int64_t out = makeDivisible(static_cast<double>(s.channels) * widthMult, kRound);
      for (int64_t i = 0; i < s.repeats; ++i)
        x = invertedResidual(b, std::to_string(child++), x,
                             {.out = out,
                              .stride = i == 0 ? s.stride : 1,
                              .expandRatio = static_cast<double>(s.expand)});
    }
    const int64_t last = makeDivisible(1280 * std::max(1.0, widthMult), kRound);
    x = convBnAct(b, std::to_string(child++), x,
                  {.out = last, .kernel = 1, .act = Activation::Relu6});
  }
  x = flatten(b, globalAvgPool(b, x));
  {
    auto c = b.scope("classifier");  // Sequential(Dropout(0.2), Linear)
    x = dropout(b, x, 0.2);
    x = linear(b, "1", x, config.numClasses);
  }
  b.output(b.setName(x, "logits"));
  return b.finish();
}

}  // namespace

Expected<ir::Module> buildMobileNetV2(const ModelConfig& c) {
  return buildMobileNetV2Width("mobilenet_v2", 1.0, c);
}

}  // namespace kiln::models
