// Graph construction and rewriting: declarations, node insertion/erasure, use queries.
#include "ir/graph.h"

#include <algorithm>
#include <unordered_map>

#include "ir/shape_rules.h"

namespace kiln::ir {

std::string_view valueKindKeyword(ValueKind k) {
  switch (k) {
    case ValueKind::Input: return "input";
    case ValueKind::Param: return "param";
    case ValueKind::Buffer: return "buffer";
    case ValueKind::Const: return "const";
    case ValueKind::Result: return "";
  }
  return "";
}

Value* Graph::newValue(ValueKind kind, std::string name, TensorType type, Loc loc) {
  const int id = static_cast<int>(values_.size());
  values_.push_back(std::make_unique<Value>(id, kind, std::move(name), std::move(type), std::move(loc)));
  return values_.back().get();
}

Value* Graph::addInput(std::string name, TensorType type, Loc loc) {
  Value* v = newValue(ValueKind::Input, std::move(name), std::move(type), std::move(loc));
  inputs_.push_back(v);
  return v;
}

Value* Graph::addWeight(ValueKind kind, std::string name, TensorType type, Loc loc) {
  KILN_ASSERT(kind == ValueKind::Param || kind == ValueKind::Buffer || kind == ValueKind::Const);
  Value* v = newValue(kind, std::move(name), std::move(type), std::move(loc));
  weights_.push_back(v);
  return v;
}

void Graph::removeDeclaration(Value* v) {
  KILN_ASSERT(numUses(v) == 0, "removing a declaration that is still used");
  std::erase(inputs_, v);
  std::erase(weights_, v);
}

Node* Graph::addNode(OpKind kind, std::vector<Value*> operands, Attrs attrs,
                     std::vector<TensorType> resultTypes, Loc loc, const Node* before) {
  auto node = std::make_unique<Node>();
  node->kind_ = kind;
  node->operands_ = std::move(operands);
  node->attrs_ = std::move(attrs);
  node->loc_ = loc;
  for (size_t i = 0; i < resultTypes.size(); ++i) {
    Value* r = newValue(ValueKind::Result, "", std::move(resultTypes[i]), loc);
    r->producer_ = node.get();
    r->resultIndex_ = i;
    node->results_.push_back(r);
  }
  Node* raw = node.get();
  auto pos = nodes_.end();
  if (before) {
    pos = std::find_if(nodes_.begin(), nodes_.end(),
                       [&](const std::unique_ptr<Node>& n) { return n.get() == before; });
  }
  nodes_.insert(pos, std::move(node));
  return raw;
}

Expected<Node*> Graph::createNode(OpKind kind, std::vector<Value*> operands, Attrs attrs, Loc loc,
                                  const Node* before) {
  const OpInfo& info = opInfo(kind);
  const int n = static_cast<int>(operands.size());
  if (n < info.minArity || (info.maxArity >= 0 && n > info.maxArity)) {
    if (info.maxArity < 0)
      return error(loc, "{}: expected at least {} operands, got {}", info.name, info.minArity, n);
    if (info.minArity == info.maxArity)
      return error(loc, "{}: expected {} operands, got {}", info.name, info.minArity, n);
    return error(loc, "{}: expected {} to {} operands, got {}", info.name, info.minArity,
                 info.maxArity, n);
  }
  if (attrs.index() != info.attrsIndex)
    return error(loc, "{}: wrong attribute kind", info.name);
  Node* node = addNode(kind, std::move(operands), std::move(attrs), {}, loc, before);
  std::vector<TensorType> types;
  Status st = inferResultTypes(*node, types);
  if (!st.isOk()) {
    eraseNode(node);
    return st;
  }
  for (size_t i = 0; i < types.size(); ++i) {
    Value* r = newValue(ValueKind::Result, "", std::move(types[i]), loc);
    r->producer_ = node;
    r->resultIndex_ = i;
    node->results_.push_back(r);
  }
  return node;
}

void Graph::eraseNode(Node* n) {
  for (Value* r : n->results_) KILN_ASSERT(numUses(r) == 0, "erasing a node whose result is used");
  for (Value* r : n->results_) r->producer_ = nullptr;
  nodes_.remove_if([&](const std::unique_ptr<Node>& p) { return p.get() == n; });
}

void Graph::replaceAllUsesWith(Value* from, Value* to) {
  for (auto& n : nodes_)
    for (Value*& v : n->operands_)
      if (v == from) v = to;
  for (Value*& v : outputs_)
    if (v == from) v = to;
}

size_t Graph::numUses(const Value* v) const {
  size_t count = 0;
  for (const auto& n : nodes_)
    count += std::count(n->operands_.begin(), n->operands_.end(), v);
  count += std::count(outputs_.begin(), outputs_.end(), v);
  return count;
}

std::vector<Node*> Graph::users(const Value* v) const {
  std::vector<Node*> out;
  for (const auto& n : nodes_)
    if (std::find(n->operands_.begin(), n->operands_.end(), v) != n->operands_.end())
      out.push_back(n.get());
  return out;
}

Value* Graph::findValue(std::string_view name) const {
  for (Value* v : inputs_)
    if (v->name() == name) return v;
  for (Value* v : weights_)
    if (v->name() == name) return v;
  for (const auto& n : nodes_)
    for (Value* r : n->results_)
      if (!r->name().empty() && r->name() == name) return r;
  return nullptr;
}

Graph Graph::clone() const {
  Graph g(name_);
  std::unordered_map<const Value*, Value*> map;
  // Recreate every value with the same id so ids stay comparable across clones.
  for (const auto& v : values_) {
    Value* c = g.newValue(v->kind_, v->name_, v->type_, v->loc_);
    map[v.get()] = c;
  }
  for (Value* v : inputs_) g.inputs_.push_back(map[v]);
  for (Value* v : weights_) g.weights_.push_back(map[v]);
  for (const auto& n : nodes_) {
    auto node = std::make_unique<Node>();
    node->kind_ = n->kind_;
    node->attrs_ = n->attrs_;
    node->loc_ = n->loc_;
    for (Value* o : n->operands_) node->operands_.push_back(map[o]);
    for (Value* r : n->results_) {
      Value* c = map[r];
      c->producer_ = node.get();
      c->resultIndex_ = r->resultIndex_;
      node->results_.push_back(c);
    }
    g.nodes_.push_back(std::move(node));
  }
  for (Value* v : outputs_) g.outputs_.push_back(map[v]);
  return g;
}

std::vector<TensorType> operandTypes(const Node& n) {
  std::vector<TensorType> types;
  types.reserve(n.numOperands());
  for (const Value* v : n.operands()) types.push_back(v->type());
  return types;
}

Status inferResultTypes(const Node& n, std::vector<TensorType>& results) {
  std::vector<TensorType> in = operandTypes(n);
  const OpInfo& info = opInfo(n.kind());
  OpContext ctx{n, in, info.name, n.loc()};
  return info.infer(ctx, results);
}

Cost graphCost(const Graph& g) {
  Cost total;
  for (const auto& n : g.nodes()) {
    std::vector<TensorType> in = operandTypes(*n);
    std::vector<TensorType> out;
    for (const Value* r : n->results()) out.push_back(r->type());
    const OpInfo& info = opInfo(n->kind());
    OpContext ctx{*n, in, info.name, n->loc()};
    Cost c = info.cost(ctx, out);
    total.macs = saturatingAdd(total.macs, c.macs);
    total.flops = saturatingAdd(total.flops, c.flops);
  }
  return total;
}

int64_t countParams(const Graph& g) {
  int64_t total = 0;
  for (const Value* v : g.weights())
    if (v->kind() == ValueKind::Param) total = saturatingAdd(total, v->type().shape.numElements(1));
  return total;
}

namespace {
bool hasSumPostOp(const Node& conv) {
  const PostOpList& ops = conv.attrs<Conv2dAttrs>().post_ops;
  return std::any_of(ops.begin(), ops.end(),
                     [](const PostOp& p) { return p.kind == PostOpKind::Sum; });
}
}  // namespace

Value* convBias(const Node& conv) {
  const size_t bias = conv.numOperands() - (hasSumPostOp(conv) ? 1 : 0);
  return bias == 3 ? conv.operand(2) : nullptr;
}

Value* convSummand(const Node& conv) {
  return hasSumPostOp(conv) && conv.numOperands() >= 3 ? conv.operands().back() : nullptr;
}

}  // namespace kiln::ir
