// The SSA graph: values, nodes in topological order, graph inputs, weights and outputs.
#pragma once

#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ir/attrs.h"
#include "ir/ops.h"
#include "ir/status.h"
#include "ir/types.h"

namespace kiln::ir {

class Node;

/// How a value comes to exist. Param, Buffer and Const are bound by name to the weight
/// store: params are trainable, buffers are state (BN running statistics), consts are
/// tensors passes made (folded weights).
enum class ValueKind : uint8_t { Input, Param, Buffer, Const, Result };
std::string_view valueKindKeyword(ValueKind k);  // "input", "param", "buffer", "const", ""

class Value {
 public:
  Value(int id, ValueKind kind, std::string name, TensorType type, Loc loc)
      : id_(id), kind_(kind), name_(std::move(name)), type_(std::move(type)), loc_(std::move(loc)) {}

  int id() const { return id_; }
  ValueKind kind() const { return kind_; }
  bool isWeight() const {
    return kind_ == ValueKind::Param || kind_ == ValueKind::Buffer || kind_ == ValueKind::Const;
  }
  /// Empty for anonymous results (printed as %0, %1, … in definition order).
  const std::string& name() const { return name_; }
  void setName(std::string name) { name_ = std::move(name); }
  const TensorType& type() const { return type_; }
  void setType(TensorType t) { type_ = std::move(t); }
  const Loc& loc() const { return loc_; }
  /// The node that defines this value, or null for inputs and weights.
  Node* producer() const { return producer_; }
  size_t resultIndex() const { return resultIndex_; }

 private:
  friend class Graph;
  int id_;
  ValueKind kind_;
  std::string name_;
  TensorType type_;
  Loc loc_;
  Node* producer_ = nullptr;
  size_t resultIndex_ = 0;
};

class Node {
 public:
  OpKind kind() const { return kind_; }
  std::string_view opName() const { return ir::opName(kind_); }
  const std::vector<Value*>& operands() const { return operands_; }
  Value* operand(size_t i) const { return operands_[i]; }
  size_t numOperands() const { return operands_.size(); }
  void setOperand(size_t i, Value* v) { operands_[i] = v; }
  const std::vector<Value*>& results() const { return results_; }
  Value* result(size_t i = 0) const { return results_[i]; }
  size_t numResults() const { return results_.size(); }
  const Attrs& attrs() const { return attrs_; }
  void setAttrs(Attrs a) { attrs_ = std::move(a); }
  template <typename A>
  const A& attrs() const { return std::get<A>(attrs_); }
  const Loc& loc() const { return loc_; }

 private:
  friend class Graph;
  OpKind kind_ = OpKind::Relu;
  std::vector<Value*> operands_;
  std::vector<Value*> results_;
  Attrs attrs_;
  Loc loc_;
};

/// Owns values and nodes. Nodes are kept in a valid topological order; passes insert
/// and erase through the methods below so the order stays valid.
class Graph {
 public:
  using NodeList = std::list<std::unique_ptr<Node>>;

  explicit Graph(std::string name = "main") : name_(std::move(name)) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  Graph(Graph&&) = default;
  Graph& operator=(Graph&&) = default;

  const std::string& name() const { return name_; }
  void setName(std::string n) { name_ = std::move(n); }

  // ---- declarations ----
  Value* addInput(std::string name, TensorType type, Loc loc = {});
  /// A param, buffer or const bound by name to the weight store.
  Value* addWeight(ValueKind kind, std::string name, TensorType type, Loc loc = {});
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& weights() const { return weights_; }
  /// Drops an unused input or weight declaration.
  void removeDeclaration(Value* v);

  // ---- nodes ----
  /// Appends (or inserts before `before`) a node; results get `resultTypes`.
  Node* addNode(OpKind kind, std::vector<Value*> operands, Attrs attrs,
                std::vector<TensorType> resultTypes, Loc loc = {}, const Node* before = nullptr);
  /// Creates a node and infers its result types with the op table; fails on a rule error.
  Expected<Node*> createNode(OpKind kind, std::vector<Value*> operands, Attrs attrs, Loc loc = {},
                             const Node* before = nullptr);
  /// Removes a node; its results must be unused.
  void eraseNode(Node* n);
  NodeList& nodes() { return nodes_; }
  const NodeList& nodes() const { return nodes_; }
  size_t numNodes() const { return nodes_.size(); }

  // ---- outputs ----
  const std::vector<Value*>& outputs() const { return outputs_; }
  void setOutputs(std::vector<Value*> outs) { outputs_ = std::move(outs); }
  void addOutput(Value* v) { outputs_.push_back(v); }

  // ---- uses ----
  /// Rewrites every operand and output that is `from` to `to`.
  void replaceAllUsesWith(Value* from, Value* to);
  /// Number of operand slots and outputs that read `v`.
  size_t numUses(const Value* v) const;
  /// Nodes reading `v`, in graph order (a node appears once however often it reads v).
  std::vector<Node*> users(const Value* v) const;

  /// Input or weight or named result with this name, or null.
  Value* findValue(std::string_view name) const;
  /// All values ever created (including those of erased nodes), indexed by id.
  size_t numValueIds() const { return values_.size(); }

  /// Deep copy (values keep their ids).
  Graph clone() const;

 private:
  Value* newValue(ValueKind kind, std::string name, TensorType type, Loc loc);

  std::string name_;
  std::vector<std::unique_ptr<Value>> values_;
  std::vector<Value*> inputs_;
  std::vector<Value*> weights_;
  std::vector<Value*> outputs_;
  NodeList nodes_;
};

/// conv2d(x, w, [bias], [summand]): the bias operand, or null.
Value* convBias(const Node& conv);
/// The summand of a conv2d's `sum` post-op, or null.
Value* convSummand(const Node& conv);

/// Per-sample operation totals of a graph (N = 1), from the op table's cost rules.
Cost graphCost(const Graph& g);
/// Elements of all Param declarations (trainable parameters).
int64_t countParams(const Graph& g);

/// Operand types of a node.
std::vector<TensorType> operandTypes(const Node& n);
/// Runs the op's shape rule on the node's current operands.
Status inferResultTypes(const Node& n, std::vector<TensorType>& results);

}  // namespace kiln::ir
