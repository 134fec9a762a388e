// torch.nn-style modules for the graph DSL. Parameter names and defaults follow PyTorch, so
// a model written with them has torchvision's state_dict keys:
//   conv2d(b, "conv1", x, {.out = 64, .kernel = 7, .stride = 2, .padding = 3})
// declares param %conv1.weight : f32[64,3,7,7]{oihw}. Every function takes the caller's
// std::source_location last, so errors point into the model file.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <source_location>
#include <string_view>
#include <vector>

#include "frontend/builder.h"

namespace kiln::frontend {

/// A 2-D size: `3` means 3x3, `{1, 7}` means 1 high, 7 wide (torch's int-or-tuple).
struct Size2 {
  int64_t h = 0;
  int64_t w = 0;
  constexpr Size2(int64_t v) : h(v), w(v) {}  // NOLINT: implicit like torch's int argument
  constexpr Size2(int64_t height, int64_t width) : h(height), w(width) {}
};

/// torch.nn.Conv2d's arguments (but bias defaults to false: CNNs put BN after convs).
struct Conv2dOpts {
  int64_t out = 0;  // out_channels
  Size2 kernel = 1;
  Size2 stride = 1;
  Size2 padding = 0;  // symmetric, per side
  Size2 dilation = 1;
  int64_t groups = 1;
  bool bias = false;
};

/// NAME.weight [out, in/groups, kh, kw]{oihw} (+ NAME.bias [out]{x}).
Var conv2d(Builder& b, std::string_view name, Var x, const Conv2dOpts& opts,
           std::source_location loc = std::source_location::current());

/// torch.nn.BatchNorm2d in eval mode: params NAME.weight, NAME.bias, buffers
/// NAME.running_mean, NAME.running_var (all [C]{x}).
Var batchNorm2d(Builder& b, std::string_view name, Var x, double eps = 1e-5,
                std::source_location loc = std::source_location::current());

/// torch.nn.Linear: NAME.weight [out, in]{oi} (+ NAME.bias [out]{x}).
Var linear(Builder& b, std::string_view name, Var x, int64_t out, bool bias = true,
           std::source_location loc = std::source_location::current());

// ---- activations and elementwise --------------------------------------------
Var relu(Builder& b, Var x, std::source_location loc = std::source_location::current());
Var relu6(Builder& b, Var x, std::source_location loc = std::source_location::current());
Var sigmoid(Builder& b, Var x, std::source_location loc = std::source_location::current());
/// x * sigmoid(x), torch.nn.SiLU.
Var swish(Builder& b, Var x, std::source_location loc = std::source_location::current());
Var hardswish(Builder& b, Var x, std::source_location loc = std::source_location::current());
Var hardsigmoid(Builder& b, Var x, std::source_location loc = std::source_location::current());
Var tanh(Builder& b, Var x, std::source_location loc = std::source_location::current());
Var add(Builder& b, Var x, Var y, std::source_location loc = std::source_location::current());
Var mul(Builder& b, Var x, Var y, std::source_location loc = std::source_location::current());
/// x[N,C,H,W] * s[N,C,1,1] (squeeze-and-excitation).
Var channelScale(Builder& b, Var x, Var s,
                 std::source_location loc = std::source_location::current());
Var softmax(Builder& b, Var x, int64_t axis = 1,
            std::source_location loc = std::source_location::current());
/// torch.nn.Dropout in eval mode (identity until a training graph sets `training`).
Var dropout(Builder& b, Var x, double p = 0.5,
            std::source_location loc = std::source_location::current());
/// torchvision's StochasticDepth(p, "row") in eval mode: drops whole samples of a residual
/// branch in training (drop_path), the identity until a training graph sets `training`.
Var dropPath(Builder& b, Var x, double p,
             std::source_location loc = std::source_location::current());

// ---- pooling and shape ---------------------------------------------------------
/// torch.nn.MaxPool2d / AvgPool2d arguments; stride 0 means "= kernel" (torch's None).
struct Pool2dOpts {
  Size2 kernel = 1;
  Size2 stride = 0;
  Size2 padding = 0;
  Size2 dilation = 1;  // max pooling only
  bool ceilMode = false;
  bool countIncludePad = true;  // average pooling only
};
Var maxPool2d(Builder& b, Var x, const Pool2dOpts& opts,
              std::source_location loc = std::source_location::current());
Var avgPool2d(Builder& b, Var x, const Pool2dOpts& opts,
              std::source_location loc = std::source_location::current());
Var adaptiveAvgPool2d(Builder& b, Var x, Size2 outputSize,
                      std::source_location loc = std::source_location::current());
/// [N,C,H,W] -> [N,C,1,1].
Var globalAvgPool(Builder& b, Var x, std::source_location loc = std::source_location::current());
/// torch.flatten(x, axis): [N,C,H,W] -> [N, C*H*W] for axis 1.
Var flatten(Builder& b, Var x, int64_t axis = 1,
            std::source_location loc = std::source_location::current());
Var concat(Builder& b, std::vector<Var> xs, int64_t axis = 1,
           std::source_location loc = std::source_location::current());

// ---- containers --------------------------------------------------------------
/// One child of a sequential: called inside the child's scope ("features.3"), so modules in
/// it name themselves with "" (`conv2d(b, "", x, …)` declares "features.3.weight").
using Layer = std::function<Var(Builder&, Var)>;

/// torch.nn.Sequential: children are numbered 0, 1, 2, … in order, parameterless ones
/// (ReLU, pooling) included, exactly as torch numbers them.
Var sequential(Builder& b, std::string_view name, Var x, std::initializer_list<Layer> layers);
Var sequential(Builder& b, std::string_view name, Var x, const std::vector<Layer>& layers);

}  // namespace kiln::frontend
