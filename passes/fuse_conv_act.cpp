// fuse-conv-act: each conv2d absorbs the activation chain after it; then every activation
// left is recorded with the reason it stayed.
#include "passes/fuse_conv_act.h"

#include <algorithm>

#include "ir/graph.h"
#include "ir/module.h"
#include "ir/printer.h"

namespace kiln::passes {

using ir::Node;
using ir::OpKind;
using ir::PostOp;
using ir::PostOpKind;
using ir::Value;

namespace {

/// Activation ops and the post-op each one is (parameters come from the node's attributes).
struct ActivationRow {
  OpKind op;
  PostOpKind post;
};
constexpr ActivationRow kActivations[] = {
    {OpKind::Relu, PostOpKind::Relu},
    {OpKind::Relu6, PostOpKind::Relu6},
    {OpKind::Sigmoid, PostOpKind::Sigmoid},
    {OpKind::Swish, PostOpKind::Swish},
    {OpKind::HardSwish, PostOpKind::HardSwish},
    {OpKind::Tanh, PostOpKind::Tanh},
    {OpKind::HardSigmoid, PostOpKind::HardSigmoid},
    {OpKind::Clip, PostOpKind::Clip},
};

/// "the conv2d result is also read by %a, %b and 2 more".
std::string otherReaders(const ir::Graph& g, const Value* y, const Node& except,
                         const std::vector<std::string>& names) {
  std::vector<std::string> readers;
  for (const Node* u : g.users(y))
    if (u != &except) readers.push_back(names[static_cast<size_t>(u->result()->id())]);
  std::string out;
  const size_t shown = std::min<size_t>(readers.size(), 3);
  for (size_t i = 0; i < shown; ++i) out += (i ? ", " : "") + readers[i];
  if (readers.size() > shown) out += fmt::format(" and {} more", readers.size() - shown);
  return out;
}

}  // namespace

std::optional<PostOp> activationPostOp(const Node& n) {
  for (const ActivationRow& row : kActivations) {
    if (row.op != n.kind()) continue;
    PostOp p{row.post, 0, 0};
    if (n.kind() == OpKind::HardSigmoid) {
      p.alpha = n.attrs<ir::HardSigmoidAttrs>().alpha;
      p.beta = n.attrs<ir::HardSigmoidAttrs>().beta;
    } else if (n.kind() == OpKind::Clip) {
      p.alpha = n.attrs<ir::ClipAttrs>().min;
      p.beta = n.attrs<ir::ClipAttrs>().max;
    }
    return p;
  }
  return std::nullopt;
}

std::vector<const Value*> absorbActivations(ir::Graph& g, Node& conv,
                                            std::vector<std::string>& ops) {
  std::vector<const Value*> gone;
  while (true) {
    Value* y = conv.result();
    if (g.numUses(y) != 1) break;
    const std::vector<Node*> users = g.users(y);
    if (users.size() != 1) break;  // the one use is a graph output
    Node& act = *users.front();
    const std::optional<PostOp> post = activationPostOp(act);
    if (!post || act.result()->type() != y->type()) break;
    ir::Conv2dAttrs attrs = conv.attrs<ir::Conv2dAttrs>();
    attrs.post_ops.push_back(*post);
    conv.setAttrs(std::move(attrs));
    // The activation's readers now read the conv; its name goes with its value.
    Value* r = act.result();
    std::string name = r->name();
    r->setName("");
    y->setName(std::move(name));
    g.replaceAllUsesWith(r, y);
    ops.emplace_back(act.opName());
    gone.push_back(r);
    g.eraseNode(&act);
  }
  return gone;
}

Status FuseConvAct::run(ir::Module& module) {
  log_.clear();
  ir::Graph& g = module.graph;
  std::vector<Node*> convs;
  for (const auto& n : g.nodes())
    if (n->kind() == OpKind::Conv2d) convs.push_back(n.get());
  for (Node* conv : convs) {
    std::vector<std::string> ops;
    std::vector<const Value*> gone = absorbActivations(g, *conv, ops);
    if (gone.empty()) continue;
    std::string pattern;
    for (const std::string& op : ops) pattern += (pattern.empty() ? "" : ", ") + op;
    log_.fused(*conv, std::move(pattern), std::move(gone));
  }

  // What stays, and why.
  const std::vector<std::string> names = ir::printedValueNames(g);
  for (const auto& n : g.nodes()) {
    if (!activationPostOp(*n)) continue;
    const Value* x = n->operand(0);
    const Node* p = x->producer();
    const std::string op(n->opName());
    if (!p) {
      log_.refused(n->result(), op,
                   fmt::format("{} of {} {}: no conv2d to fold into", op,
                               x->isWeight() ? "weight" : "graph input",
                               names[static_cast<size_t>(x->id())]));
    } else if (p->kind() != OpKind::Conv2d) {
      const bool linear = p->kind() == OpKind::Linear;
      log_.refused(n->result(), op,
                   fmt::format("{} after {}: no conv2d to fold into{}", op, p->opName(),
                               linear ? " (linear takes no post-ops on the oneDNN backend)" : ""));
    } else if (const std::string readers = otherReaders(g, x, *n, names); !readers.empty()) {
      log_.refused(n->result(), op,
                   fmt::format("{} after conv2d: the conv result {} is also read by {}", op,
                               names[static_cast<size_t>(x->id())], readers));
    } else if (std::count(g.outputs().begin(), g.outputs().end(), x) != 0) {
      log_.refused(n->result(), op,
                   fmt::format("{} after conv2d: the conv result {} is a graph output", op,
                               names[static_cast<size_t>(x->id())]));
    } else {
      log_.refused(n->result(), op,
                   fmt::format("{} after conv2d: the {} result {} differs from the conv's {}", op,
                               op, n->result()->type().str(), x->type().str()));
    }
  }
  log_.finish(g);
  report_ = formatFusions(g, log_.records());
  return Status::ok();
}

std::unique_ptr<Pass> createFuseConvActPass(const PassEnv&) {
  return std::make_unique<FuseConvAct>();
}

}  // namespace kiln::passes
