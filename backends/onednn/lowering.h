// Internal to the oneDNN backend: what lowering one node produces (steps over slots, temporaries,
// in-place wishes) and the context a lowering rule sees. One rule per op in ir/ops.def.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "ir/graph.h"
#include "ir/module.h"
#include "ir/ops.h"
#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln::backends::onednn {

using Md = dnnl::memory::desc;
using Dims = dnnl::memory::dims;

/// Where a step argument's bytes are, before memory planning assigns offsets.
struct Slot {
  enum class Kind : uint8_t { Value, Temp, Fixed };
  Kind kind = Kind::Value;
  int id = -1;                   // value id (Value) or the node's temporary index (Temp)
  std::byte* fixed = nullptr;    // Fixed: data made at compile time (reordered weights, constants)

  static Slot value(const ir::Value* v) { return Slot{Kind::Value, v->id(), nullptr}; }
  static Slot temp(int index) { return Slot{Kind::Temp, index, nullptr}; }
  static Slot fixedData(std::byte* p) { return Slot{Kind::Fixed, -1, p}; }
};

/// A kernel of ours gets one pointer per argument of its step, in order. It must not throw,
/// allocate or fail: everything that can go wrong is checked when it is built.
using Kernel = std::function<void(std::span<std::byte* const> args)>;

/// A check of run-time data (class ids of labels): runs like a kernel, before the kernels that
/// rely on it, and stops the run with its error. It allocates only to fail.
using Check = std::function<Status(std::span<std::byte* const> args)>;

struct StepArg {
  int arg = 0;  // DNNL_ARG_* for primitives; position only for kernels
  Slot slot;
  Md md;        // primitives: the memory descriptor the argument is bound with
};

/// One thing to execute: a oneDNN primitive, or (when `prim` is empty) a kernel or a check
/// of ours.
struct ProtoStep {
  dnnl::primitive prim;
  Kernel kernel;
  Check check;
  std::vector<StepArg> args;
};

struct LoweredNode {
  std::vector<ProtoStep> steps;
  /// Bytes of each temporary (scratchpads, layout round trips); live during this node only.
  std::vector<int64_t> temps;
  /// The result may take operand `inPlace`'s buffer when that operand dies here (same bytes).
  int inPlace = -1;
  /// When set and the in-place wish is not granted, this step runs first and copies the
  /// operand into the result (oneDNN's sum post-op reads the summand from dst).
  std::optional<ProtoStep> copyIfNotInPlace;
  /// The steps read each element of a state operand (a param, buffer or running statistic)
  /// before they write the same element of the result that replaces it, so a train step's
  /// `new:<state>` result may be written straight into the state's storage.
  bool stateInPlace = false;
};

/// How a value is stored in a plan. State: a weight a train step updates (read from and
/// written to its store tensor every run; never treated as a compile-time constant).
enum class Storage : uint8_t { Arena, Input, Fixed, View, State };

struct ValueInfo {
  Storage storage = Storage::Arena;
  int input = -1;                // Input: graph input index
  std::byte* fixed = nullptr;    // Fixed, State: weight store or compile-time constant data
  int viewOf = -1;               // View: the value id whose bytes this value reinterprets
  ir::TensorType type;           // with N bound
  Md md;
};

/// Weights reordered for primitives, shared by every plan of a program (the preferred format
/// rarely depends on the batch size; when it does, each format is kept once).
class WeightCache {
 public:
  /// `w`'s data in format `to` (reordered from `from` on first request).
  Expected<std::byte*> get(const ir::Value& w, const std::byte* data, const Md& from, const Md& to,
                           const dnnl::engine& engine);
  /// Keeps compile-time data (folded constants) alive with the program.
  std::byte* keep(ir::Tensor t);
  /// Bytes of the tensors this cache holds whose data `used` says a plan reads.
  template <typename Used>
  int64_t bytesUsed(Used&& used) const {
    int64_t n = 0;
    for (const Entry& e : entries_)
      if (used(e.data.raw())) n += static_cast<int64_t>(e.data.nbytes());
    for (const ir::Tensor& t : kept_)
      if (used(t.raw())) n += static_cast<int64_t>(t.nbytes());
    return n;
  }

 private:
  struct Entry {
    int valueId;
    Md md;
    ir::Tensor data;
  };
  std::vector<Entry> entries_;
  std::vector<ir::Tensor> kept_;
};

/// What a lowering rule sees: the node, the plan's values, and ways to add steps.
class LowerContext {
 public:
  LowerContext(const dnnl::engine& engine, int64_t batch, std::vector<ValueInfo>& values,
               WeightCache& weights)
      : engine_(engine), batch_(batch), values_(values), weights_(weights) {}

  void begin(const ir::Node& node) {
    node_ = &node;
    out_ = LoweredNode{};
  }
  LoweredNode finish() { return std::move(out_); }

  const ir::Node& node() const { return *node_; }
  template <typename A>
  const A& attrs() const {
    return node_->attrs<A>();
  }
  const ir::Value* in(size_t i) const { return node_->operand(i); }
  const ir::Value* result(size_t i = 0) const { return node_->result(i); }
  const dnnl::engine& engine() const { return engine_; }
  int64_t batch() const { return batch_; }

  const Md& md(const ir::Value* v) const { return values_[v->id()].md; }
  const ir::TensorType& type(const ir::Value* v) const { return values_[v->id()].type; }
  Dims dims(const ir::Value* v) const;
  /// Data known at compile time (weights, constants), or null.
  std::byte* constantData(const ir::Value* v) const;

  /// A new temporary of `bytes`, live while this node runs.
  Slot temp(int64_t bytes);
  /// `result` reinterprets `of`'s bytes (reshape of a row-major value, inference dropout).
  void view(const ir::Value* result, const ir::Value* of);
  /// `result` is data computed at compile time (a constant node); the program keeps `t`.
  void setConstant(const ir::Value* result, ir::Tensor t);
  void setInPlace(int operand) { out_.inPlace = operand; }
  void setCopyIfNotInPlace(ProtoStep step) { out_.copyIfNotInPlace = std::move(step); }
  void setStateInPlace() { out_.stateInPlace = true; }

  /// Primitive attributes every primitive starts from (user-managed scratchpad).
  static dnnl::primitive_attr attr();
  /// Adds `pd`'s primitive with `args`, plus its scratchpad as a temporary when it needs one.
  void add(const dnnl::primitive_desc_base& pd, std::vector<StepArg> args);
  /// Builds a primitive step without adding it (for copyIfNotInPlace).
  ProtoStep make(const dnnl::primitive_desc_base& pd, std::vector<StepArg> args);
  void addKernel(Kernel k, std::vector<Slot> args);
  void addCheck(Check c, std::vector<Slot> args);
  /// Adds a reorder from `src` (described by `from`) to `dst` (described by `to`).
  void addReorder(Slot src, const Md& from, Slot dst, const Md& to);

  /// The weight operand `w` in format `want` (a format_tag::any resolved by a primitive):
  /// reordered at compile time when `w` is constant, else used as is (then `want` must equal
  /// `given`, the format its bytes are in; otherwise a reorder step runs each time).
  Expected<Slot> weight(const ir::Value* w, const Md& given, const Md& want);

  /// `v` as a row-major tensor: its own slot when its layout is row-major, else a temporary
  /// filled by a reorder step. `plain` receives the row-major descriptor.
  Slot plainOperand(const ir::Value* v, Md& plain);
  /// Where to write `v` as row-major: its slot, or a temporary that `finishPlainResult`
  /// reorders into `v` afterwards.
  Slot plainResult(const ir::Value* v, Md& plain);
  void finishPlainResult(const ir::Value* v, Slot written, const Md& plain);

  /// "conv2d: ..." located at the node.
  template <typename... Args>
  Status fail(fmt::format_string<Args...> f, Args&&... args) const {
    return error(node_->loc(), "{}: {} (onednn backend)", node_->opName(),
                 fmt::format(f, std::forward<Args>(args)...));
  }

 private:
  const dnnl::engine& engine_;
  int64_t batch_;
  std::vector<ValueInfo>& values_;
  WeightCache& weights_;
  const ir::Node* node_ = nullptr;
  LoweredNode out_;
};

// ---- shared helpers ----

/// The descriptor of `type` in its own layout (blocked layouts as oneDNN blocked tags).
Md mdFor(const ir::TensorType& type);
/// Bytes of one element of `type` (f32 or i64 in this backend).
int64_t elementBytes(const ir::TensorType& type);
/// Row-major descriptor of `dims`.
Md plainMd(const Dims& dims);
/// The right/bottom padding oneDNN needs to produce `out` from `in` (ceil_mode windows run
/// past the IR's padding; floor_mode may leave some of it unused).
int64_t rightPad(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t dilation,
                 int64_t padLeft);

/// A 2-D pooling window in oneDNN's terms (dilation counted from 0).
struct PoolGeometry {
  Dims kernel, stride, dilation, padL, padR;
};
/// The geometry producing y [N,C,OH,OW] from x [N,C,H,W] (IR pads: top, left, bottom, right).
PoolGeometry poolGeometry(const Dims& x, const Dims& y, const ir::Ints<2>& kernel,
                          const ir::Ints<2>& stride, const ir::Ints<4>& pad,
                          const ir::Ints<2>& dilation);

/// A value's text name for messages: %name or %id.
std::string valueName(const ir::Value& v);

/// One lowering rule per op (lower_*.cpp); the table in program.cpp takes each one's address.
template <ir::OpKind K>
Status lower(LowerContext& ctx);

#define KILN_OP(e, ...) \
  template <>           \
  Status lower<ir::OpKind::e>(LowerContext & ctx);
#include "ir/ops.def"
#undef KILN_OP

}  // namespace kiln::backends::onednn
