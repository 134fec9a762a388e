// Typed attribute structs. Each lists its fields once (`fields`); the text printer and
// parser, the protobuf form, CSE hashing and equality all walk that list.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>
#include <vector>

#include "ir/types.h"

namespace kiln::ir {

template <size_t N>
using Ints = std::array<int64_t, N>;
using IntList = std::vector<int64_t>;
using FloatList = std::vector<double>;

/// One attribute field: its text name and the member it names.
template <typename S, typename T>
struct Field {
  std::string_view name;
  T S::*member;
};
template <typename S, typename T>
constexpr Field<S, T> field(std::string_view name, T S::*member) {
  return Field<S, T>{name, member};
}

// The attribute field types a struct may use: int64_t, double, bool, Ints<N>, IntList,
// FloatList, DType, Layout, PostOpList. A PostOpList field is printed only when non-empty.

/// Post-ops a fused conv2d applies to its result, in order (ARCHITECTURE decision 5).
/// KILN_POST_OP(Enum, spelling, number of parameters (alpha, beta))
#define KILN_POST_OPS(X)     \
  X(Sum, "sum", 0)           \
  X(Relu, "relu", 0)         \
  X(Relu6, "relu6", 0)       \
  X(Sigmoid, "sigmoid", 0)   \
  X(Swish, "swish", 0)       \
  X(HardSwish, "hardswish", 0) \
  X(Tanh, "tanh", 0)         \
  X(HardSigmoid, "hardsigmoid", 2) \
  X(Clip, "clip", 2)

enum class PostOpKind : uint8_t {
#define KILN_POST_OP_ENUM(e, s, n) e,
  KILN_POST_OPS(KILN_POST_OP_ENUM)
#undef KILN_POST_OP_ENUM
};
std::string_view postOpName(PostOpKind k);
/// How many parameters the post-op takes: hardsigmoid(alpha, beta), clip(min, max).
int postOpArity(PostOpKind k);
std::optional<PostOpKind> parsePostOpKind(std::string_view s);

/// `sum` adds the conv's summand operand; the others are elementwise functions of the running
/// value: hardsigmoid y = clamp(alpha x + beta, 0, 1), clip y = clamp(x, alpha, beta).
struct PostOp {
  PostOpKind kind = PostOpKind::Relu;
  double alpha = 0;
  double beta = 0;
  bool operator==(const PostOp& o) const = default;
};
using PostOpList = std::vector<PostOp>;
/// "sum", "relu", "clip(0.0,6.0)".
std::string postOpText(const PostOp& p);
/// "conv2d+sum+relu": an op name with its post-ops (profiles, fusion reports).
std::string fusedOpName(std::string_view op, const PostOpList& postOps);

struct NoAttrs {
  static constexpr auto fields = std::tuple{};
};

struct Conv2dAttrs {
  Ints<2> stride{1, 1};
  Ints<4> pad{0, 0, 0, 0};  // top, left, bottom, right
  Ints<2> dilation{1, 1};
  int64_t groups = 1;
  /// Fused post-ops (empty: a plain convolution). With `sum`, the last operand is the summand.
  PostOpList post_ops;
  static constexpr auto fields =
      std::tuple{field("stride", &Conv2dAttrs::stride), field("pad", &Conv2dAttrs::pad),
                 field("dilation", &Conv2dAttrs::dilation), field("groups", &Conv2dAttrs::groups),
                 field("post_ops", &Conv2dAttrs::post_ops)};
};

struct BatchNormAttrs {
  double epsilon = 1e-5;
  static constexpr auto fields = std::tuple{field("epsilon", &BatchNormAttrs::epsilon)};
};

/// y = clamp(alpha * x + beta, 0, 1); PyTorch's defaults (ONNX uses alpha = 0.2).
struct HardSigmoidAttrs {
  double alpha = 1.0 / 6.0;
  double beta = 0.5;
  static constexpr auto fields = std::tuple{field("alpha", &HardSigmoidAttrs::alpha),
                                            field("beta", &HardSigmoidAttrs::beta)};
};

struct ClipAttrs {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  static constexpr auto fields =
      std::tuple{field("min", &ClipAttrs::min), field("max", &ClipAttrs::max)};
};

struct MaxPool2dAttrs {
  Ints<2> kernel{1, 1};
  Ints<2> stride{1, 1};
  Ints<4> pad{0, 0, 0, 0};  // top, left, bottom, right
  Ints<2> dilation{1, 1};
  bool ceil_mode = false;
  static constexpr auto fields =
      std::tuple{field("kernel", &MaxPool2dAttrs::kernel), field("stride", &MaxPool2dAttrs::stride),
                 field("pad", &MaxPool2dAttrs::pad), field("dilation", &MaxPool2dAttrs::dilation),
                 field("ceil_mode", &MaxPool2dAttrs::ceil_mode)};
};

struct AvgPool2dAttrs {
  Ints<2> kernel{1, 1};
  Ints<2> stride{1, 1};
  Ints<4> pad{0, 0, 0, 0};
  bool ceil_mode = false;
  bool count_include_pad = true;  // PyTorch's default
  static constexpr auto fields =
      std::tuple{field("kernel", &AvgPool2dAttrs::kernel), field("stride", &AvgPool2dAttrs::stride),
                 field("pad", &AvgPool2dAttrs::pad), field("ceil_mode", &AvgPool2dAttrs::ceil_mode),
                 field("count_include_pad", &AvgPool2dAttrs::count_include_pad)};
};

struct AdaptiveAvgPool2dAttrs {
  Ints<2> output_size{1, 1};
  static constexpr auto fields =
      std::tuple{field("output_size", &AdaptiveAvgPool2dAttrs::output_size)};
};

/// One axis (concat, softmax, log_softmax, flatten). Negative axes count from the end.
struct AxisAttrs {
  int64_t axis = 1;
  static constexpr auto fields = std::tuple{field("axis", &AxisAttrs::axis)};
};

struct SplitAttrs {
  int64_t axis = 1;
  IntList sizes;
  static constexpr auto fields =
      std::tuple{field("axis", &SplitAttrs::axis), field("sizes", &SplitAttrs::sizes)};
};

/// ONNX Slice semantics: ends are clamped, negative values count from the end.
struct SliceAttrs {
  IntList axes;
  IntList starts;
  IntList ends;
  IntList steps;
  static constexpr auto fields =
      std::tuple{field("axes", &SliceAttrs::axes), field("starts", &SliceAttrs::starts),
                 field("ends", &SliceAttrs::ends), field("steps", &SliceAttrs::steps)};
};

/// ONNX Reshape semantics: 0 copies the input dim, -1 is inferred (at most one).
struct ReshapeAttrs {
  IntList shape;
  static constexpr auto fields = std::tuple{field("shape", &ReshapeAttrs::shape)};
};

struct TransposeAttrs {
  IntList perm;
  static constexpr auto fields = std::tuple{field("perm", &TransposeAttrs::perm)};
};

struct DropoutAttrs {
  double p = 0.5;
  bool training = false;
  int64_t seed = 0;
  static constexpr auto fields =
      std::tuple{field("p", &DropoutAttrs::p), field("training", &DropoutAttrs::training),
                 field("seed", &DropoutAttrs::seed)};
};

/// Constant padding; `pads` is ONNX-style: all begins, then all ends (2 × rank values).
struct PadAttrs {
  IntList pads;
  double value = 0.0;
  static constexpr auto fields =
      std::tuple{field("pads", &PadAttrs::pads), field("value", &PadAttrs::value)};
};

/// Layout conversion; the target layout is also the result type's layout.
struct ReorderAttrs {
  Layout layout = Layout::NCHW;
  static constexpr auto fields = std::tuple{field("layout", &ReorderAttrs::layout)};
};

/// A small literal. `value` holds one element (broadcast to the result shape) or exactly
/// as many as the result has. Large tensors are `const` declarations in the weight store.
struct ConstantAttrs {
  FloatList value;
  IntList shape;  // static; [] is a scalar
  DType dtype = DType::F32;
  static constexpr auto fields =
      std::tuple{field("value", &ConstantAttrs::value), field("shape", &ConstantAttrs::shape),
                 field("dtype", &ConstantAttrs::dtype)};
};

// ---- training ----------------------------------------------------------------

/// batch_norm_train: batch statistics, and running statistics updated like PyTorch's
/// `running = (1 - momentum) * running + momentum * batch` (the variance unbiased).
struct BatchNormTrainAttrs {
  double epsilon = 1e-5;
  double momentum = 0.1;
  static constexpr auto fields = std::tuple{field("epsilon", &BatchNormTrainAttrs::epsilon),
                                            field("momentum", &BatchNormTrainAttrs::momentum)};
};

/// conv2d_backward_data: the forward conv's attributes and its input's spatial size (which
/// the stride leaves ambiguous).
struct Conv2dBackwardDataAttrs {
  Ints<2> stride{1, 1};
  Ints<4> pad{0, 0, 0, 0};
  Ints<2> dilation{1, 1};
  int64_t groups = 1;
  Ints<2> input_size{1, 1};
  static constexpr auto fields =
      std::tuple{field("stride", &Conv2dBackwardDataAttrs::stride),
                 field("pad", &Conv2dBackwardDataAttrs::pad),
                 field("dilation", &Conv2dBackwardDataAttrs::dilation),
                 field("groups", &Conv2dBackwardDataAttrs::groups),
                 field("input_size", &Conv2dBackwardDataAttrs::input_size)};
};

/// conv2d_backward_weight: the forward conv's attributes and its kernel size.
struct Conv2dBackwardWeightAttrs {
  Ints<2> stride{1, 1};
  Ints<4> pad{0, 0, 0, 0};
  Ints<2> dilation{1, 1};
  int64_t groups = 1;
  Ints<2> kernel{1, 1};
  static constexpr auto fields = std::tuple{field("stride", &Conv2dBackwardWeightAttrs::stride),
                                            field("pad", &Conv2dBackwardWeightAttrs::pad),
                                            field("dilation", &Conv2dBackwardWeightAttrs::dilation),
                                            field("groups", &Conv2dBackwardWeightAttrs::groups),
                                            field("kernel", &Conv2dBackwardWeightAttrs::kernel)};
};

/// avg_pool2d_backward: the forward pool's attributes and its input's spatial size.
struct AvgPool2dBackwardAttrs {
  Ints<2> kernel{1, 1};
  Ints<2> stride{1, 1};
  Ints<4> pad{0, 0, 0, 0};
  bool ceil_mode = false;
  bool count_include_pad = true;
  Ints<2> input_size{1, 1};
  static constexpr auto fields =
      std::tuple{field("kernel", &AvgPool2dBackwardAttrs::kernel),
                 field("stride", &AvgPool2dBackwardAttrs::stride),
                 field("pad", &AvgPool2dBackwardAttrs::pad),
                 field("ceil_mode", &AvgPool2dBackwardAttrs::ceil_mode),
                 field("count_include_pad", &AvgPool2dBackwardAttrs::count_include_pad),
                 field("input_size", &AvgPool2dBackwardAttrs::input_size)};
};

/// A reduction over `axes` (negative count from the end; empty = all axes).
struct ReduceAttrs {
  IntList axes;
  bool keepdims = false;
  static constexpr auto fields =
      std::tuple{field("axes", &ReduceAttrs::axes), field("keepdims", &ReduceAttrs::keepdims)};
};

/// softmax_cross_entropy: PyTorch's cross_entropy with `label_smoothing`, mean reduction.
struct CrossEntropyAttrs {
  double label_smoothing = 0.0;
  static constexpr auto fields =
      std::tuple{field("label_smoothing", &CrossEntropyAttrs::label_smoothing)};
};

/// sgd_update: torch.optim.SGD with dampening 0 (the learning rate is an operand).
struct SgdAttrs {
  double momentum = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  static constexpr auto fields = std::tuple{field("momentum", &SgdAttrs::momentum),
                                            field("weight_decay", &SgdAttrs::weight_decay),
                                            field("nesterov", &SgdAttrs::nesterov)};
};

/// rmsprop_update: timm's RMSpropTF (`tf`: eps inside the square root, square_avg starting at
/// ones, the learning rate inside the momentum buffer) or torch.optim.RMSprop (not centered).
struct RmsPropAttrs {
  double alpha = 0.9;
  double eps = 1e-3;
  double momentum = 0.0;
  double weight_decay = 0.0;
  bool tf = true;
  static constexpr auto fields = std::tuple{
      field("alpha", &RmsPropAttrs::alpha), field("eps", &RmsPropAttrs::eps),
      field("momentum", &RmsPropAttrs::momentum),
      field("weight_decay", &RmsPropAttrs::weight_decay), field("tf", &RmsPropAttrs::tf)};
};

/// adamw_update: torch.optim.AdamW (decoupled weight decay, bias correction, not amsgrad).
struct AdamWAttrs {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  static constexpr auto fields = std::tuple{
      field("beta1", &AdamWAttrs::beta1), field("beta2", &AdamWAttrs::beta2),
      field("eps", &AdamWAttrs::eps), field("weight_decay", &AdamWAttrs::weight_decay)};
};

/// ema_update: timm's ModelEmaV2, ema = decay * ema + (1 - decay) * value.
struct EmaAttrs {
  double decay = 0.9999;
  static constexpr auto fields = std::tuple{field("decay", &EmaAttrs::decay)};
};

// Every attribute struct but NoAttrs, once; `Attrs` is the variant a node holds.
#define KILN_ATTR_STRUCTS(X)   \
  X(Conv2dAttrs)               \
  X(BatchNormAttrs)            \
  X(HardSigmoidAttrs)          \
  X(ClipAttrs)                 \
  X(MaxPool2dAttrs)            \
  X(AvgPool2dAttrs)            \
  X(AdaptiveAvgPool2dAttrs)    \
  X(AxisAttrs)                 \
  X(SplitAttrs)                \
  X(SliceAttrs)                \
  X(ReshapeAttrs)              \
  X(TransposeAttrs)            \
  X(DropoutAttrs)              \
  X(PadAttrs)                  \
  X(ReorderAttrs)              \
  X(ConstantAttrs)             \
  X(BatchNormTrainAttrs)       \
  X(Conv2dBackwardDataAttrs)   \
  X(Conv2dBackwardWeightAttrs) \
  X(AvgPool2dBackwardAttrs)    \
  X(ReduceAttrs)               \
  X(CrossEntropyAttrs)         \
  X(SgdAttrs)                  \
  X(RmsPropAttrs)              \
  X(AdamWAttrs)                \
  X(EmaAttrs)

#define KILN_ATTR_VARIANT_MEMBER(S) , S
using Attrs = std::variant<NoAttrs KILN_ATTR_STRUCTS(KILN_ATTR_VARIANT_MEMBER)>;
#undef KILN_ATTR_VARIANT_MEMBER

/// Calls `f(name, value)` for each field of an attribute struct, in declaration order.
template <typename A, typename F>
void forEachField(A& attrs, F&& f) {
  std::apply([&](const auto&... fl) { (f(fl.name, attrs.*(fl.member)), ...); }, A::fields);
}

/// Field-wise equality (doubles compare bitwise-equal values, so CSE never merges NaN attrs).
bool attrsEqual(const Attrs& a, const Attrs& b);
size_t attrsHash(const Attrs& a);

}  // namespace kiln::ir
