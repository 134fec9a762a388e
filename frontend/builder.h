// The graph DSL's core: Builder (name scopes, inputs, params, buffers, ops) and Var.
//
// Models are written as plain C++ against a Builder; every declaration and node records
// the caller's std::source_location, so a shape error reads
//   models/resnet.cpp:57:14: conv2d: input %x has 3 channels, weight %conv1.weight expects 4
// Errors are sticky: the first one is kept, later calls are no-ops that return a poisoned
// Var, and finish() returns it. Model code therefore never checks after each call.
#pragma once

#include <cstdint>
#include <source_location>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "ir/attrs.h"
#include "ir/graph.h"
#include "ir/module.h"
#include "ir/ops.h"
#include "ir/status.h"
#include "ir/types.h"

namespace kiln::frontend {

/// A location for a DSL call site: the file name is made relative to the kiln source tree
/// (`models/resnet.cpp`) when it lies inside it.
Loc sourceLoc(const std::source_location& loc);

/// A handle on a graph value. A default-constructed (or poisoned) Var has no value; its type
/// is the empty f32 scalar and every dim() is 0.
class Var {
 public:
  Var() = default;
  explicit Var(ir::Value* v) : value(v) {}

  ir::Value* value = nullptr;

  bool valid() const { return value != nullptr; }
  explicit operator bool() const { return valid(); }
  const ir::TensorType& type() const;
  const ir::Shape& shape() const;
  size_t rank() const { return shape().rank(); }
  /// Dim `i` (negative counts from the end); 0 when out of range or poisoned, so model code
  /// may read dims without checking and let the next op report the error.
  ir::Dim dim(int64_t i) const;
};

class Builder;

/// RAII name scope; see Builder::scope.
class [[nodiscard]] Scope {
 public:
  Scope(Scope&& other) noexcept : builder_(other.builder_), depth_(other.depth_) {
    other.builder_ = nullptr;
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  Scope& operator=(Scope&&) = delete;
  ~Scope();

 private:
  friend class Builder;
  Scope(Builder* b, size_t depth) : builder_(b), depth_(depth) {}
  Builder* builder_;
  size_t depth_;  // number of levels open once this one is
};

class Builder {
 public:
  explicit Builder(std::string graphName);
  Builder(const Builder&) = delete;
  Builder& operator=(const Builder&) = delete;

  /// A graph input (not scoped: its name is used as given).
  Var input(std::string name, ir::TensorType type,
            std::source_location loc = std::source_location::current());

  /// Opens a name scope, like a torch submodule attribute: inside
  /// `auto s = b.scope("layer1"); auto t = b.scope("0");` the param "conv1.weight" is
  /// "layer1.0.conv1.weight". An empty name opens no level (so `conv2d(b, "", …)` inside a
  /// Sequential child names "features.0.weight"). Scopes must close in reverse order.
  Scope scope(std::string_view name);
  /// The current prefix joined with `localName` ("layer1.0" + "conv1" = "layer1.0.conv1").
  std::string qualify(std::string_view localName) const;

  /// A trainable parameter (f32), bound by its qualified name to the weight store.
  Var param(std::string_view localName, ir::Shape shape, ir::Layout layout,
            std::source_location loc = std::source_location::current());
  /// A non-trainable state tensor (f32), e.g. BN running_mean / running_var.
  Var buffer(std::string_view localName, ir::Shape shape, ir::Layout layout,
             std::source_location loc = std::source_location::current());

  /// A single-result node. `attrs` left as {} (NoAttrs) means the op's default attributes.
  /// The op's shape rule runs now; a rule error is recorded with `loc`.
  Var op(ir::OpKind kind, std::vector<Var> operands, ir::Attrs attrs = {},
         std::source_location loc = std::source_location::current());
  /// Any number of results (split).
  std::vector<Var> opN(ir::OpKind kind, std::vector<Var> operands, ir::Attrs attrs = {},
                       std::source_location loc = std::source_location::current());

  /// Names an anonymous result (qualified by the current scope), e.g. "logits".
  Var setName(Var v, std::string_view localName,
              std::source_location loc = std::source_location::current());

  void output(Var v, std::source_location loc = std::source_location::current());

  /// Records an error at `loc` (first error wins) and returns a poisoned Var. For DSL
  /// functions that check their own arguments.
  Var fail(const std::source_location& loc, std::string message);

  /// True while no error has been recorded.
  bool ok() const { return status_.isOk(); }
  const Status& status() const { return status_; }
  ir::Graph& graph() { return graph_; }

  /// The first build error, or the verified module (with an empty weight store). The builder
  /// is spent afterwards.
  Expected<ir::Module> finish();

 private:
  friend class Scope;
  Var weight(ir::ValueKind kind, std::string_view localName, ir::Shape shape, ir::Layout layout,
             const std::source_location& loc);
  bool usable(const std::vector<Var>& operands, const std::source_location& loc);
  bool claimName(const std::string& name, const std::source_location& loc);

  ir::Graph graph_;
  Status status_;
  bool finished_ = false;
  std::vector<std::string> scopes_;
  std::unordered_set<std::string> names_;
};

}  // namespace kiln::frontend
