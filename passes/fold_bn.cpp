// fold-bn: one walk in graph order; each batch_norm is matched against its producer.
#include "passes/fold_bn.h"

#include <cmath>
#include <optional>

#include "ir/graph.h"
#include "ir/module.h"

namespace kiln::passes {

namespace {

using ir::Node;
using ir::Tensor;
using ir::Value;

/// `name` without a `.folded` or `.folded.<k>` suffix left by an earlier fold.
std::string stripFolded(std::string name) {
  const size_t at = name.rfind(".folded");
  if (at == std::string::npos) return name;
  std::string_view rest = std::string_view(name).substr(at + 7);
  bool digits = rest.empty() || (rest.size() > 1 && rest[0] == '.');
  for (size_t i = 1; digits && i < rest.size(); ++i) digits = rest[i] >= '0' && rest[i] <= '9';
  if (digits) name.resize(at);
  return name;
}

/// A name free both in the weight store and among the graph's values.
std::string freshName(const ir::Module& m, const std::string& base) {
  std::string name = m.weights.uniqueName(base);
  for (int k = 1; m.graph.findValue(name) || m.weights.contains(name); ++k)
    name = fmt::format("{}.{}", base, k);
  return name;
}

/// `conv.bias.folded` for weight `conv.weight`; `<W>.bias.folded` for other weight names.
std::string biasBase(const std::string& weightName) {
  const std::string w = stripFolded(weightName);
  constexpr std::string_view kWeight = ".weight";
  if (w.ends_with(kWeight)) return w.substr(0, w.size() - kWeight.size()) + ".bias.folded";
  return w + ".bias.folded";
}

/// The data of a weight operand, or why it cannot be folded.
struct WeightData {
  const Tensor* tensor = nullptr;
  std::string problem;
};

WeightData weightData(const ir::Module& m, const Value* v) {
  const std::string name = v->name().empty() ? "an anonymous value" : "%" + v->name();
  if (!v->isWeight()) return {nullptr, fmt::format("{} is not a weight declaration", name)};
  const Tensor* t = m.weights.find(v->name());
  if (!t) return {nullptr, fmt::format("{} has no data in the weight store", name)};
  if (t->dtype() != v->type().dtype || t->shape() != v->type().shape ||
      !ir::sameMemoryOrder(t->layout(), v->type().layout))
    return {nullptr, fmt::format("{}'s data is {}, declared {}", name, t->type().str(),
                                 v->type().str())};
  if (t->dtype() != ir::DType::F32 && t->dtype() != ir::DType::F64)
    return {nullptr, fmt::format("{} is {}: only f32 and f64 weights fold", name,
                                 ir::dtypeName(t->dtype()))};
  return {t, ""};
}

void store(Tensor& t, int64_t i, double v) {
  if (t.dtype() == ir::DType::F64) t.data<double>()[i] = v;
  else t.data<float>()[i] = static_cast<float>(v);
}

/// dst[a, o, j] = src[a, o, j] * scale[o] over memory viewed as [outer, O, inner].
template <typename T>
void scaleRows(const Tensor& src, Tensor& dst, const std::vector<double>& scale, int64_t outer,
               int64_t inner) {
  const T* in = src.data<T>();
  T* out = dst.data<T>();
  const int64_t outC = static_cast<int64_t>(scale.size());
  for (int64_t a = 0; a < outer; ++a)
    for (int64_t o = 0; o < outC; ++o) {
      const int64_t base = (a * outC + o) * inner;
      for (int64_t j = 0; j < inner; ++j)
        out[base + j] = static_cast<T>(static_cast<double>(in[base + j]) * scale[o]);
    }
}

class Folder {
 public:
  Folder(ir::Module& m, FusionLog& log) : m_(m), log_(log) {}

  /// Folds the batch_norm `bn` into its producer; returns why not, or nullopt when it did.
  Expected<std::optional<std::string>> tryFold(Node& bn) {
    Node* p = bn.operand(0)->producer();
    if (!p) return reason("its input is a graph input, not conv2d or linear");
    if (p->kind() != ir::OpKind::Conv2d && p->kind() != ir::OpKind::Linear)
      return reason(fmt::format("its input is produced by {}, not conv2d or linear", p->opName()));
    if (p->kind() == ir::OpKind::Conv2d && !p->attrs<ir::Conv2dAttrs>().post_ops.empty())
      return reason(fmt::format("the conv2d already applies post-ops ({})",
                                ir::fusedOpName("conv2d", p->attrs<ir::Conv2dAttrs>().post_ops)));
    Value* y = p->result();
    if (p->kind() == ir::OpKind::Linear && y->type().shape.rank() != 2)
      return reason(fmt::format("the linear result {} is not [N, C]", y->type().str()));
    if (const size_t uses = m_.graph.numUses(y); uses != 1)
      return reason(fmt::format("the {} result has {} uses", p->opName(), uses));

    // operands: W, b (optional); gamma, beta, mean, var
    std::vector<const Value*> vals{p->operand(1)};
    if (p->numOperands() == 3) vals.push_back(p->operand(2));
    for (size_t i = 1; i < 5; ++i) vals.push_back(bn.operand(i));
    std::vector<const Tensor*> data;
    for (const Value* v : vals) {
      WeightData d = weightData(m_, v);
      if (!d.tensor) return reason(std::move(d.problem));
      data.push_back(d.tensor);
    }
    const Value* wDecl = vals[0];
    const Tensor& w = *data[0];
    const Tensor* b = p->numOperands() == 3 ? data[1] : nullptr;
    const size_t k = b ? 2 : 1;
    const Tensor &gamma = *data[k], &beta = *data[k + 1], &mean = *data[k + 2], &var = *data[k + 3];
    if (ir::layoutBlock(w.layout()).first >= 0)
      return reason(fmt::format("weight %{} has blocked layout {{{}}}", wDecl->name(),
                                ir::layoutName(w.layout())));

    // s[o] = gamma[o] / sqrt(var[o] + eps), in double.
    const int64_t outC = w.shape()[0];
    const double eps = bn.attrs<ir::BatchNormAttrs>().epsilon;
    std::vector<double> scale(static_cast<size_t>(outC));
    for (int64_t o = 0; o < outC; ++o) {
      const double d = var.at(o) + eps;
      if (!(d > 0))
        return reason(fmt::format("running variance + epsilon is {} at channel {}", d, o));
      scale[o] = gamma.at(o) / std::sqrt(d);
    }

    // W'[o] = W[o] * s[o]. The layout's memory order says where dim 0 (o) sits: memory is
    // [outer, o, inner] with inner = the dims after o in memory order.
    Tensor wf(w.dtype(), w.shape(), wDecl->type().layout);  // same memory order as w
    const std::span<const int> order = ir::layoutOrder(w.layout());
    int64_t inner = 1;
    for (size_t j = order.size(); j-- > 0 && order[j] != 0;) inner *= w.shape()[order[j]];
    const int64_t outer = outC * inner == 0 ? 0 : w.numElements() / (outC * inner);
    if (w.dtype() == ir::DType::F64) scaleRows<double>(w, wf, scale, outer, inner);
    else scaleRows<float>(w, wf, scale, outer, inner);

    // b'[o] = (b[o] - mean[o]) * s[o] + beta[o].
    const ir::TensorType biasType =
        b ? p->operand(2)->type() : ir::TensorType{w.dtype(), ir::Shape{outC}, ir::Layout::X};
    Tensor bf(biasType.dtype, biasType.shape, biasType.layout);
    for (int64_t o = 0; o < outC; ++o)
      store(bf, o, ((b ? b->at(o) : 0.0) - mean.at(o)) * scale[o] + beta.at(o));

    const std::string wName = freshName(m_, stripFolded(wDecl->name()) + ".folded");
    Value* wv = m_.graph.addWeight(ir::ValueKind::Const, wName, wDecl->type(), p->loc());
    m_.weights.set(wName, std::move(wf));
    const std::string bName =
        freshName(m_, b ? stripFolded(vals[1]->name()) + ".folded" : biasBase(wDecl->name()));
    Value* bv = m_.graph.addWeight(ir::ValueKind::Const, bName, biasType, p->loc());
    m_.weights.set(bName, std::move(bf));

    KILN_ASSIGN_OR_RETURN(Node * folded, m_.graph.createNode(p->kind(), {p->operand(0), wv, bv},
                                                             p->attrs(), p->loc(), p));
    Value* r = folded->result();
    if (r->type() != bn.result()->type())
      return error(bn.loc(), "fold-bn: the folded {} gives {}, the batch_norm gave {}",
                   p->opName(), r->type().str(), bn.result()->type().str());
    if (!bn.result()->name().empty()) {
      r->setName(bn.result()->name());
      bn.result()->setName("");
    }
    m_.graph.replaceAllUsesWith(bn.result(), r);
    log_.fused(*folded, "batch_norm", {bn.result(), p->result()});
    m_.graph.eraseNode(&bn);
    m_.graph.eraseNode(p);
    return std::optional<std::string>();
  }

 private:
  static std::optional<std::string> reason(std::string why) { return why; }

  ir::Module& m_;
  FusionLog& log_;
};

}  // namespace

Status FoldBn::run(ir::Module& module) {
  numFolded_ = 0;
  unfoldable_.clear();
  log_.clear();
  Folder folder(module, log_);
  auto& nodes = module.graph.nodes();
  // Folding erases the batch_norm and its producer (both at or before the current node) and
  // inserts the new node before the producer, so the iterator to the next node stays valid.
  for (auto it = nodes.begin(); it != nodes.end();) {
    Node& n = **it;
    ++it;
    if (n.kind() != ir::OpKind::BatchNorm) continue;
    const Loc loc = n.loc();
    KILN_ASSIGN_OR_RETURN(std::optional<std::string> why, folder.tryFold(n));
    if (why) {
      log_.refused(n.result(), "batch_norm", *why);
      unfoldable_.push_back({loc, std::move(*why)});
    } else {
      ++numFolded_;
    }
  }
  log_.finish(module.graph);
  return Status::ok();
}

std::unique_ptr<Pass> createFoldBnPass(const PassEnv&) { return std::make_unique<FoldBn>(); }

}  // namespace kiln::passes
