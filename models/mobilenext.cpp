// MobileNeXt (Zhou et al., "Rethinking Bottleneck Structure for Efficient Mobile Network
// Design", ECCV 2020), from the seed's PaddleClas code: the sandglass block (SGBlock) puts the
// identity and the depthwise convs on the wide ends and the 1x1 bottleneck in the middle.
// Parameter names are the seed's (features.1.conv.0.weight, …, classifier.1.weight) with
// torch's BN buffer names; tests/align/torch_seed_models.py holds the PyTorch reference.
//
// The seed calls two helpers it does not define; they are MobileNetV2's: _make_divisible
// (makeDivisible in models/blocks.h) and conv_3x3_bn = Sequential(3x3 conv stride s pad 1,
// BN, ReLU6) (convBnAct there).
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "frontend/nn.h"
#include "models/blocks.h"
#include "models/families.h"

namespace kiln::models {

namespace {

using frontend::Builder;
using frontend::Var;

/// One child of an SGBlock's `conv` Sequential, in the seed's order (ReLU6 children count
/// in the numbering like torch's).
struct Step {
  enum Kind { Depthwise, Pointwise, Bn, Relu6 } kind;
  int64_t arg = 0;  // Depthwise: stride; Pointwise: out channels
};

/// The seed's SGBlock in scope NAME: children NAME.conv.<i>, plus the identity when the block
/// keeps its shape (and is not the `keep_3x3` block of a single-block stage).
Var sandglassBlock(Builder& b, std::string_view name, Var x, int64_t oup, int64_t stride,
                   int64_t expandRatio, bool keep3x3 = false) {
  const int64_t inp = x.dim(1);
  int64_t hidden = inp / expandRatio;
  if (static_cast<double>(hidden) < static_cast<double>(oup) / 6.0)
    hidden = makeDivisible(std::ceil(static_cast<double>(oup) / 6.0), 16);
  using enum Step::Kind;
  std::vector<Step> steps;
  bool identity = false;
  if (expandRatio == 2) {
    steps = {{Depthwise, 1},   {Bn}, {Relu6}, {Pointwise, hidden}, {Bn},
             {Pointwise, oup}, {Bn}, {Relu6}, {Depthwise, stride}, {Bn}};
  } else if (inp != oup && stride == 1 && !keep3x3) {
    steps = {{Pointwise, hidden}, {Bn}, {Pointwise, oup}, {Bn}, {Relu6}};
  } else if (inp != oup && stride == 2 && !keep3x3) {
    steps = {{Pointwise, hidden}, {Bn}, {Pointwise, oup}, {Bn}, {Relu6}, {Depthwise, stride}, {Bn}};
  } else {
    identity = !keep3x3;
    steps = {{Depthwise, 1},   {Bn}, {Relu6}, {Pointwise, hidden}, {Bn},
             {Pointwise, oup}, {Bn}, {Relu6}, {Depthwise, 1},      {Bn}};
  }
  auto block = b.scope(name);
  auto conv = b.scope("conv");
  Var y = x;
  for (size_t i = 0; i < steps.size(); ++i) {
    const std::string child = std::to_string(i);
    const int64_t channels = y.dim(1);
    switch (steps[i].kind) {
      case Depthwise:
        y = frontend::conv2d(b, child, y,
                             {.out = channels,
                              .kernel = 3,
                              .stride = steps[i].arg,
                              .padding = 1,
                              .groups = channels});
        break;
      case Pointwise:
        y = frontend::conv2d(b, child, y, {.out = steps[i].arg, .kernel = 1});
        break;
      case Bn:
        y = frontend::batchNorm2d(b, child, y);
        break;
      case Relu6:
        y = frontend::relu6(b, y);
        break;
    }
  }
  return identity ? frontend::add(b, y, x) : y;
}

struct StageCfg {
  int64_t t, c, n, s;  // expand (here: reduce) ratio, out channels, blocks, first stride
};

constexpr std::array<StageCfg, 8> kStages{{
    {2, 96, 1, 2},
    {6, 144, 1, 1},
    {6, 192, 3, 2},
    {6, 288, 3, 2},
    {6, 384, 4, 1},
    {6, 576, 4, 2},
    {6, 960, 3, 1},
    {6, 1280, 1, 1},
}};

Expected<ir::Module> buildMobileNeXt(std::string_view name, double widthMult,
                                     const ModelConfig& config) {
  using namespace frontend;
  KILN_TRY(checkConfig(config, name));
  Builder b{std::string(name)};
  Var x = imageInput(b, config);
  const int64_t divisor = widthMult == 0.1 ? 4 : 8;
  {
    auto features = b.scope("features");
    int index = 0;
    x = convBnAct(b, std::to_string(index++), x,
                  {.out = makeDivisible(32 * widthMult, divisor),
                   .kernel = 3,
                   .stride = 2,
                   .act = Activation::Relu6});
    for (const StageCfg& st : kStages) {
      int64_t out = makeDivisible(static_cast<double>(st.c) * widthMult, divisor);
      // The seed keeps the last stage at 1280 channels below width 1.
      if (st.c == 1280 && widthMult < 1) out = 1280;
      x = sandglassBlock(b, std::to_string(index++), x, out, st.s, st.t,
                         /*keep3x3=*/st.n == 1 && st.s == 1);
      for (int64_t i = 1; i < st.n; ++i)
        x = sandglassBlock(b, std::to_string(index++), x, out, 1, st.t);
    }
  }
  // The seed's classifier width is _make_divisible(last, 4), equal to the last stage's
  // channels for every width here (all are multiples of 8).
  x = flatten(b, globalAvgPool(b, x));
  {
    auto classifier = b.scope("classifier");
    x = dropout(b, x, 0.2);
    x = linear(b, "1", x, config.numClasses);
  }
  b.output(b.setName(x, "logits"));
  return b.finish();
}

}  // namespace

Expected<ir::Module> buildMobileNeXt035(const ModelConfig& c) {
  return buildMobileNeXt("mobilenext_035", 0.35, c);
}
Expected<ir::Module> buildMobileNeXt050(const ModelConfig& c) {
  return buildMobileNeXt("mobilenext_050", 0.5, c);
}
Expected<ir::Module> buildMobileNeXt075(const ModelConfig& c) {
  return buildMobileNeXt("mobilenext_075", 0.75, c);
}
Expected<ir::Module> buildMobileNeXt100(const ModelConfig& c) {
  return buildMobileNeXt("mobilenext_100", 1.0, c);
}
Expected<ir::Module> buildMobileNeXt140(const ModelConfig& c) {
  return buildMobileNeXt("mobilenext_140", 1.4, c);
}

}  // namespace kiln::models
