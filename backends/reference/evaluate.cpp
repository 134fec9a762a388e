// Single-node evaluation: result types from the op's shape rule, then the op's kernel from a
// table generated from ir/ops.def.
#include <iterator>
#include <new>

#include "backends/reference/kernels.h"
#include "backends/reference/reference.h"

namespace kiln::backends::reference {

using namespace ir;

namespace {

using KernelFn = Status (*)(const KernelContext&);

// One entry per row of ir/ops.def, in OpKind order.
constexpr KernelFn kKernels[] = {
#define KILN_OP(e, ...) &kernel<OpKind::e>,
#include "ir/ops.def"
#undef KILN_OP
};
static_assert(std::size(kKernels) == kNumOps, "one reference kernel per op");

}  // namespace

Status unsupportedDType(const KernelContext& ctx, DType t) {
  return error(ctx.node.loc(), "{}: the reference backend has no {} kernel (it runs f32 and f64)",
               ctx.op(), dtypeName(t));
}

Status checkRowMajor(const KernelContext& ctx) {
  for (size_t i = 0; i < ctx.in.size(); ++i) {
    const Layout l = ctx.in[i].layout();
    if (!isRowMajor(l))
      return error(ctx.node.loc(),
                   "{}: the reference backend needs plain row-major operands, operand {} is "
                   "{{{}}} (insert a reorder)",
                   ctx.op(), i, layoutName(l));
  }
  return Status::ok();
}

int64_t product(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i) p *= s[i];
  return p;
}

std::vector<int64_t> rowMajorStrides(const Shape& s) {
  std::vector<int64_t> strides(s.rank(), 1);
  for (size_t i = s.rank(); i > 1; --i) strides[i - 2] = strides[i - 1] * s[i - 1];
  return strides;
}

std::vector<int64_t> broadcastStrides(const Shape& in, const Shape& out) {
  std::vector<int64_t> strides(out.rank(), 0);
  const std::vector<int64_t> own = rowMajorStrides(in);
  const size_t lead = out.rank() - in.rank();
  for (size_t i = 0; i < in.rank(); ++i)
    strides[lead + i] = (in[i] == 1 && out[lead + i] != 1) ? 0 : own[i];
  return strides;
}

Expected<Tensor> relayout(const Node& node, const Tensor& x, Layout to) {
  Tensor y;
  try {
    y = Tensor(x.dtype(), x.shape(), to);
  } catch (const std::bad_alloc&) {
    return error(node.loc(), "{}: out of memory converting a {} operand to {{{}}}", node.opName(),
                 x.type().str(), layoutName(to));
  }
  std::span<const Tensor> in(&x, 1);
  std::span<Tensor> out(&y, 1);
  KILN_TRY(kernel<OpKind::Reorder>(KernelContext{node, in, out}));
  return y;
}

Expected<std::vector<Tensor>> evaluateNode(const Node& node, std::span<const Tensor> operands) {
  const OpInfo& info = opInfo(node.kind());
  if (operands.size() != node.numOperands())
    return error(node.loc(), "{}: the node has {} operands, but {} tensors were given", info.name,
                 node.numOperands(), operands.size());
  if (node.attrs().index() != info.attrsIndex)
    return error(node.loc(), "{}: the node carries the wrong attribute kind", info.name);

  for (size_t i = 0; i < operands.size(); ++i)
    if (operands[i].empty()) return error(node.loc(), "{}: operand {} has no data", info.name, i);
  // Kernels index operands by logical position: a permuted or blocked operand (after
  // select-layout) is computed on through row-major copies, and each result goes back to
  // the layout its node declares.
  const bool anyLayout = node.kind() == OpKind::Reorder;
  std::vector<Tensor> plainOperands;
  if (!anyLayout) {
    for (size_t i = 0; i < operands.size(); ++i) {
      if (isRowMajor(operands[i].layout())) continue;
      if (plainOperands.empty()) plainOperands.assign(operands.begin(), operands.end());
      KILN_ASSIGN_OR_RETURN(plainOperands[i], relayout(node, operands[i],
                                                       *defaultLayout(operands[i].shape().rank())));
    }
    if (!plainOperands.empty()) operands = plainOperands;
  }
  std::vector<TensorType> inTypes;
  inTypes.reserve(operands.size());
  for (const Tensor& t : operands) inTypes.push_back(t.type());
  OpContext octx{node, inTypes, info.name, node.loc()};
  std::vector<TensorType> outTypes;
  KILN_TRY(info.infer(octx, outTypes));
  if (node.numResults() != 0 && outTypes.size() != node.numResults())
    return error(node.loc(), "{}: the node has {} results, its shape rule gives {}", info.name,
                 node.numResults(), outTypes.size());

  std::vector<Tensor> results;
  results.reserve(outTypes.size());
  for (const TensorType& t : outTypes) {
    if (!t.shape.isStatic())
      return error(node.loc(), "{}: result type {} is not static", info.name, t.str());
    try {
      results.push_back(Tensor::zeros(t));
    } catch (const std::bad_alloc&) {
      return error(node.loc(), "{}: out of memory allocating a result of type {}", info.name,
                   t.str());
    }
  }
  KernelContext ctx{node, operands, results};
  KILN_TRY(kKernels[static_cast<size_t>(node.kind())](ctx));
  if (!anyLayout && results.size() == node.numResults()) {
    for (size_t i = 0; i < results.size(); ++i) {
      const Layout want = node.result(i)->type().layout;
      if (layoutRank(want) != results[i].shape().rank() ||
          sameMemoryOrder(want, results[i].layout()))
        continue;
      KILN_ASSIGN_OR_RETURN(results[i], relayout(node, results[i], want));
    }
  }
  return results;
}

Expected<std::vector<Tensor>> ReferenceEvaluator::evaluate(const Node& node,
                                                           std::span<const Tensor> operands) const {
  return evaluateNode(node, operands);
}

}  // namespace kiln::backends::reference
