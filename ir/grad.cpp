// GradContext: node building for gradient rules, with sticky errors.
#include "ir/grad.h"

namespace kiln::ir {

void GradContext::begin(const Node& node, std::vector<bool> needs) {
  node_ = &node;
  needs_ = std::move(needs);
  unsupported_.clear();
}

std::vector<Value*> GradContext::opN(OpKind kind, std::vector<Value*> operands, Attrs attrs) {
  if (!status_) return {};
  for (Value* v : operands)
    if (!v) return {};
  if (std::holds_alternative<NoAttrs>(attrs)) attrs = defaultAttrs(kind);
  Expected<Node*> n = graph_.createNode(kind, std::move(operands), std::move(attrs), node_->loc());
  if (!n) {
    status_ = n.status();
    return {};
  }
  return (*n)->results();
}

Value* GradContext::op(OpKind kind, std::vector<Value*> operands, Attrs attrs) {
  std::vector<Value*> r = opN(kind, std::move(operands), std::move(attrs));
  return r.empty() ? nullptr : r[0];
}

Value* GradContext::constant(double v, DType dtype, Shape shape) {
  ConstantAttrs a;
  a.value = {v};
  a.shape = shape.dims();
  a.dtype = dtype;
  return op(OpKind::Constant, {}, a);
}

Value* GradContext::neg(Value* v) {
  if (!v) return nullptr;
  return op(OpKind::Mul, {v, constant(-1.0, v->type().dtype)});
}

Value* GradContext::reduceSum(Value* v, IntList axes, bool keepdims) {
  ReduceAttrs a;
  a.axes = std::move(axes);
  a.keepdims = keepdims;
  return op(OpKind::ReduceSum, {v}, a);
}

Value* GradContext::sumTo(Value* grad, const Shape& target) {
  if (!grad) return nullptr;
  const Shape& g = grad->type().shape;
  if (g == target) return grad;
  if (target.rank() > g.rank())
    return unsupported(
        fmt::format("cannot sum a gradient {} to the larger shape {}", g.str(), target.str()));
  // Leading dimensions the operand lacks go away; stretched 1s stay as 1s.
  const size_t lead = g.rank() - target.rank();
  IntList leading, stretched;
  for (size_t i = 0; i < lead; ++i) leading.push_back(static_cast<int64_t>(i));
  for (size_t i = 0; i < target.rank(); ++i)
    if (target[i] == 1 && g[lead + i] != 1) stretched.push_back(static_cast<int64_t>(i));
  Value* r = grad;
  if (!leading.empty()) r = reduceSum(r, leading, /*keepdims=*/false);
  if (!stretched.empty()) r = reduceSum(r, stretched, /*keepdims=*/true);
  if (r && r->type().shape != target)
    return unsupported(
        fmt::format("the gradient {} does not broadcast to {}", g.str(), target.str()));
  return r;
}

Value* GradContext::unsupported(std::string why) {
  if (unsupported_.empty()) unsupported_ = std::move(why);
  return nullptr;
}

}  // namespace kiln::ir
