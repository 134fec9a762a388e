// EfficientNet B0-B7 (Tan & Le 2019), exactly as torchvision.models.efficientnet builds them
// (torchvision 0.14), so parameter names equal torchvision's state_dict keys:
// features.0 (stem Conv2dNormActivation), features.S.I.block.K (MBConv I of stage S),
// features.8 (head 1x1 conv), classifier.1 (Linear). The variants differ only by their row of
// kEfficientNetScaling (models/families.h).
#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "frontend/nn.h"
#include "models/blocks.h"
#include "models/families.h"

namespace kiln::models {

namespace {

using frontend::Builder;
using frontend::Var;

constexpr int64_t kDivisor = 8;

/// One stage of the B0 baseline (the paper's Table 1; torchvision's
/// bneck_conf(expand_ratio, kernel, stride, input_channels, out_channels, num_layers)).
struct StageSpec {
  int64_t expand, kernel, stride, in, out, repeats;
};

constexpr std::array<StageSpec, 7> kB0Stages{{
    {1, 3, 1, 32, 16, 1},
    {6, 3, 2, 16, 24, 2},
    {6, 5, 2, 24, 40, 2},
    {6, 3, 2, 40, 80, 3},
    {6, 5, 1, 80, 112, 3},
    {6, 5, 2, 112, 192, 4},
    {6, 3, 1, 192, 320, 1},
}};

struct MBConvOpts {
  int64_t out = 0;
  int64_t kernel = 3;
  int64_t stride = 1;
  int64_t expand = 6;
  double eps = 1e-5;
  double stochasticDepth = 0;  // drop_path probability of the residual branch
};

/// torchvision's stochastic_depth_prob: block k of K drops its branch with 0.2 * k / K.
constexpr double kStochasticDepth = 0.2;

/// torchvision's MBConv inside scope NAME: NAME.block = Sequential([1x1 expand conv-BN-SiLU
/// when the expansion changes the width], k x k depthwise conv-BN-SiLU, squeeze-excitation
/// (squeeze = in / 4, SiLU, sigmoid), 1x1 project conv-BN); the input is added back when
/// stride is 1 and in == out, after StochasticDepth on the branch: a drop_path node, the
/// identity until a train step turns it on (canonicalize removes it at -O2).
Var mbConv(Builder& b, std::string_view name, Var x, const MBConvOpts& o,
           std::source_location loc = std::source_location::current()) {
  if (!b.ok()) return Var();
  if (o.stride != 1 && o.stride != 2)
    return b.fail(
        loc, fmt::format("MBConv {}: stride must be 1 or 2, got {}", b.qualify(name), o.stride));
  auto s = b.scope(name);
  const int64_t in = x.dim(1);
  const int64_t expanded = makeDivisible(static_cast<double>(in * o.expand), kDivisor);
  Var y = x;
  {
    auto block = b.scope("block");
    int child = 0;
    if (expanded != in)
      y = convBnAct(b, std::to_string(child++), y,
                    {.out = expanded, .kernel = 1, .act = Activation::Swish, .eps = o.eps}, loc);
    y = convBnAct(b, std::to_string(child++), y,
                  {.out = expanded,
                   .kernel = o.kernel,
                   .stride = o.stride,
                   .groups = expanded,
                   .act = Activation::Swish,
                   .eps = o.eps},
                  loc);
    y = squeezeExcitation(b, std::to_string(child++), y,
                          {.squeeze = std::max<int64_t>(1, in / 4), .act = Activation::Swish}, loc);
    y = convBnAct(b, std::to_string(child++), y,
                  {.out = o.out, .kernel = 1, .act = Activation::None, .eps = o.eps}, loc);
  }
  if (o.stride == 1 && in == o.out)
    y = frontend::add(b, frontend::dropPath(b, y, o.stochasticDepth, loc), x, loc);
  return y;
}

}  // namespace

Expected<ir::Module> buildEfficientNet(const EfficientNetScaling& sc, const ModelConfig& config) {
  using namespace frontend;
  KILN_TRY(checkConfig(config, sc.name));
  const auto channels = [&](int64_t c) {
    return makeDivisible(static_cast<double>(c) * sc.width, kDivisor);
  };
  const auto repeats = [&](int64_t r) {
    return static_cast<int64_t>(std::ceil(static_cast<double>(r) * sc.depth));
  };
  Builder b{std::string(sc.name)};
  Var x = imageInput(b, config);
  {
    auto f = b.scope("features");
    x = convBnAct(
        b, "0", x,
        {.out = channels(kB0Stages[0].in), .stride = 2, .act = Activation::Swish, .eps = sc.bnEps});
    int64_t child = 1, block = 0, blocks = 0;
    for (const StageSpec& st : kB0Stages) blocks += repeats(st.repeats);
    for (const StageSpec& st : kB0Stages) {
      auto stage = b.scope(std::to_string(child++));
      for (int64_t i = 0; i < repeats(st.repeats); ++i)
        x = mbConv(b, std::to_string(i), x,
                   {.out = channels(st.out),
                    .kernel = st.kernel,
                    .stride = i == 0 ? st.stride : 1,
                    .expand = st.expand,
                    .eps = sc.bnEps,
                    .stochasticDepth = kStochasticDepth * static_cast<double>(block++) /
                                       static_cast<double>(blocks)});
    }
    // torchvision: last_channel None -> 4 * the last stage's width (= makeDivisible(1280 w)).
    x = convBnAct(b, std::to_string(child), x,
                  {.out = 4 * channels(kB0Stages.back().out),
                   .kernel = 1,
                   .act = Activation::Swish,
                   .eps = sc.bnEps});
  }
  x = flatten(b, globalAvgPool(b, x));
  {
    auto c = b.scope("classifier");  // Sequential(Dropout(p), Linear)
    x = dropout(b, x, sc.dropout);
    x = linear(b, "1", x, config.numClasses);
  }
  b.output(b.setName(x, "logits"));
  return b.finish();
}

}  // namespace kiln::models
