// torch.nn-style modules for the graph DSL.
#include "frontend/nn.h"

namespace kiln::frontend {

using ir::Layout;
using ir::OpKind;

namespace {

/// Reports a non-positive size argument; returns false after recording the error.
bool checkPositive(Builder& b, const std::source_location& loc, std::string_view what,
                   std::string_view arg, Size2 s) {
  if (s.h >= 1 && s.w >= 1) return true;
  b.fail(loc, fmt::format("{}: {} must be >= 1, got ({}, {})", what, arg, s.h, s.w));
  return false;
}

bool checkNonNegative(Builder& b, const std::source_location& loc, std::string_view what,
                      std::string_view arg, Size2 s) {
  if (s.h >= 0 && s.w >= 0) return true;
  b.fail(loc, fmt::format("{}: {} must be >= 0, got ({}, {})", what, arg, s.h, s.w));
  return false;
}

/// `%name` of a value for messages, or "input" for an anonymous one.
std::string describe(Var x) {
  if (x.valid() && !x.value->name().empty()) return "%" + x.value->name();
  return "input";
}

}  // namespace

Var conv2d(Builder& b, std::string_view name, Var x, const Conv2dOpts& o,
           std::source_location loc) {
  if (!b.ok()) return Var();
  const std::string what = fmt::format("conv2d {}", b.qualify(name));
  if (x.rank() != 4)
    return b.fail(
        loc, fmt::format("{}: {} must be [N,C,H,W], got {}", what, describe(x), x.type().str()));
  if (o.out < 1) return b.fail(loc, fmt::format("{}: out channels must be >= 1", what));
  if (!checkPositive(b, loc, what, "kernel", o.kernel) ||
      !checkPositive(b, loc, what, "stride", o.stride) ||
      !checkPositive(b, loc, what, "dilation", o.dilation) ||
      !checkNonNegative(b, loc, what, "padding", o.padding))
    return Var();
  const int64_t in = x.dim(1);
  if (o.groups < 1 || in % o.groups != 0 || o.out % o.groups != 0)
    return b.fail(loc, fmt::format("{}: groups={} must divide in channels {} and out channels {}",
                                   what, o.groups, in, o.out));
  auto s = b.scope(name);
  Var w = b.param("weight", {o.out, in / o.groups, o.kernel.h, o.kernel.w}, Layout::OIHW, loc);
  std::vector<Var> operands{x, w};
  if (o.bias) operands.push_back(b.param("bias", {o.out}, Layout::X, loc));
  ir::Conv2dAttrs a;
  a.stride = {o.stride.h, o.stride.w};
  a.pad = {o.padding.h, o.padding.w, o.padding.h, o.padding.w};
  a.dilation = {o.dilation.h, o.dilation.w};
  a.groups = o.groups;
  return b.op(OpKind::Conv2d, std::move(operands), a, loc);
}

Var batchNorm2d(Builder& b, std::string_view name, Var x, double eps, std::source_location loc) {
  if (!b.ok()) return Var();
  if (x.rank() < 2)
    return b.fail(loc, fmt::format("batch_norm {}: {} must have a channel dimension, got {}",
                                   b.qualify(name), describe(x), x.type().str()));
  const int64_t c = x.dim(1);
  auto s = b.scope(name);
  Var weight = b.param("weight", {c}, Layout::X, loc);
  Var bias = b.param("bias", {c}, Layout::X, loc);
  Var mean = b.buffer("running_mean", {c}, Layout::X, loc);
  Var var = b.buffer("running_var", {c}, Layout::X, loc);
  return b.op(OpKind::BatchNorm, {x, weight, bias, mean, var}, ir::BatchNormAttrs{eps}, loc);
}

Var linear(Builder& b, std::string_view name, Var x, int64_t out, bool bias,
           std::source_location loc) {
  if (!b.ok()) return Var();
  if (x.rank() < 1 || out < 1)
    return b.fail(loc, fmt::format("linear {}: needs an input with features and out >= 1 "
                                   "(got {}, out={})",
                                   b.qualify(name), x.type().str(), out));
  auto s = b.scope(name);
  std::vector<Var> operands{x, b.param("weight", {out, x.dim(-1)}, Layout::OI, loc)};
  if (bias) operands.push_back(b.param("bias", {out}, Layout::X, loc));
  return b.op(OpKind::Linear, std::move(operands), {}, loc);
}

Var relu(Builder& b, Var x, std::source_location loc) {
  return b.op(OpKind::Relu, {x}, {}, loc);
}
Var relu6(Builder& b, Var x, std::source_location loc) {
  return b.op(OpKind::Relu6, {x}, {}, loc);
}
Var sigmoid(Builder& b, Var x, std::source_location loc) {
  return b.op(OpKind::Sigmoid, {x}, {}, loc);
}
Var swish(Builder& b, Var x, std::source_location loc) {
  return b.op(OpKind::Swish, {x}, {}, loc);
}
Var hardswish(Builder& b, Var x, std::source_location loc) {
  return b.op(OpKind::HardSwish, {x}, {}, loc);
}
Var hardsigmoid(Builder& b, Var x, std::source_location loc) {
  return b.op(OpKind::HardSigmoid, {x}, {}, loc);
}
Var tanh(Builder& b, Var x, std::source_location loc) {
  return b.op(OpKind::Tanh, {x}, {}, loc);
}
Var add(Builder& b, Var x, Var y, std::source_location loc) {
  return b.op(OpKind::Add, {x, y}, {}, loc);
}
Var mul(Builder& b, Var x, Var y, std::source_location loc) {
  return b.op(OpKind::Mul, {x, y}, {}, loc);
}
Var channelScale(Builder& b, Var x, Var s, std::source_location loc) {
  return b.op(OpKind::ChannelScale, {x, s}, {}, loc);
}
Var softmax(Builder& b, Var x, int64_t axis, std::source_location loc) {
  return b.op(OpKind::Softmax, {x}, ir::AxisAttrs{axis}, loc);
}
Var dropout(Builder& b, Var x, double p, std::source_location loc) {
  ir::DropoutAttrs a;
  a.p = p;
  return b.op(OpKind::Dropout, {x}, a, loc);
}

Var dropPath(Builder& b, Var x, double p, std::source_location loc) {
  ir::DropoutAttrs a;
  a.p = p;
  return b.op(OpKind::DropPath, {x}, a, loc);
}

Var maxPool2d(Builder& b, Var x, const Pool2dOpts& o, std::source_location loc) {
  if (!b.ok()) return Var();
  if (!checkNonNegative(b, loc, "max_pool2d", "stride", o.stride)) return Var();
  ir::MaxPool2dAttrs a;
  a.kernel = {o.kernel.h, o.kernel.w};
  a.stride = {o.stride.h ? o.stride.h : o.kernel.h, o.stride.w ? o.stride.w : o.kernel.w};
  a.pad = {o.padding.h, o.padding.w, o.padding.h, o.padding.w};
  a.dilation = {o.dilation.h, o.dilation.w};
  a.ceil_mode = o.ceilMode;
  return b.op(OpKind::MaxPool2d, {x}, a, loc);
}

Var avgPool2d(Builder& b, Var x, const Pool2dOpts& o, std::source_location loc) {
  if (!b.ok()) return Var();
  if (!checkNonNegative(b, loc, "avg_pool2d", "stride", o.stride)) return Var();
  ir::AvgPool2dAttrs a;
  a.kernel = {o.kernel.h, o.kernel.w};
  a.stride = {o.stride.h ? o.stride.h : o.kernel.h, o.stride.w ? o.stride.w : o.kernel.w};
  a.pad = {o.padding.h, o.padding.w, o.padding.h, o.padding.w};
  a.ceil_mode = o.ceilMode;
  a.count_include_pad = o.countIncludePad;
  return b.op(OpKind::AvgPool2d, {x}, a, loc);
}

Var adaptiveAvgPool2d(Builder& b, Var x, Size2 outputSize, std::source_location loc) {
  ir::AdaptiveAvgPool2dAttrs a;
  a.output_size = {outputSize.h, outputSize.w};
  return b.op(OpKind::AdaptiveAvgPool2d, {x}, a, loc);
}

Var globalAvgPool(Builder& b, Var x, std::source_location loc) {
  return b.op(OpKind::GlobalAvgPool, {x}, {}, loc);
}

Var flatten(Builder& b, Var x, int64_t axis, std::source_location loc) {
  return b.op(OpKind::Flatten, {x}, ir::AxisAttrs{axis}, loc);
}

Var concat(Builder& b, std::vector<Var> xs, int64_t axis, std::source_location loc) {
  return b.op(OpKind::Concat, std::move(xs), ir::AxisAttrs{axis}, loc);
}

Var sequential(Builder& b, std::string_view name, Var x, const std::vector<Layer>& layers) {
  auto s = b.scope(name);
  for (size_t i = 0; i < layers.size(); ++i) {
    auto child = b.scope(std::to_string(i));
    x = layers[i](b, x);
  }
  return x;
}

Var sequential(Builder& b, std::string_view name, Var x, std::initializer_list<Layer> layers) {
  return sequential(b, name, x, std::vector<Layer>(layers));
}

}  // namespace kiln::frontend
