// autodiff: the reverse walk over the op table's gradient rules, and the train step.
#include "passes/autodiff.h"

#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "ir/grad.h"
#include "ir/graph.h"
#include "ir/verifier.h"

namespace kiln::passes {

namespace {

using ir::Node;
using ir::OpKind;
using ir::Value;

std::string locText(const Loc& loc) {
  return loc.known() ? "at " + loc.str() : "at an unknown location";
}

/// One node autodiff could not differentiate, for the report.
std::string noGradient(const Node& n, std::string_view why) {
  std::string value;
  for (const Value* r : n.results())
    if (!r->name().empty()) {
      value = "%" + r->name() + ": ";
      break;
    }
  return fmt::format("no gradient for op {} {} ({}{})", n.opName(), locText(n.loc()), value, why);
}

}  // namespace

Expected<std::vector<Value*>> appendGradients(ir::Graph& graph, std::span<const GradSeed> seeds,
                                              std::span<Value* const> wrt) {
  std::vector<Node*> forward;
  for (auto& n : graph.nodes()) forward.push_back(n.get());

  // Values that depend on a value of `wrt` through floating-point results.
  std::unordered_set<const Value*> needsGrad(wrt.begin(), wrt.end());
  for (Node* n : forward) {
    bool any = false;
    for (const Value* o : n->operands()) any = any || needsGrad.count(o);
    if (!any) continue;
    for (const Value* r : n->results())
      if (ir::isFloat(r->type().dtype)) needsGrad.insert(r);
  }

  std::unordered_map<const Value*, Value*> grads;
  // Adds a contribution to v's gradient; `loc` locates the add.
  auto accumulate = [&](const Value* v, Value* g, const Loc& loc) -> Status {
    auto [it, fresh] = grads.emplace(v, g);
    if (fresh) return Status::ok();
    KILN_ASSIGN_OR_RETURN(Node * sum, graph.createNode(OpKind::Add, {it->second, g}, {}, loc));
    it->second = sum->result();
    return Status::ok();
  };
  for (const GradSeed& s : seeds) {
    if (s.value->type().dtype != s.grad->type().dtype ||
        s.value->type().shape != s.grad->type().shape)
      return error("autodiff: the seed gradient {} does not match its value {}",
                   s.grad->type().str(), s.value->type().str());
    KILN_TRY(accumulate(s.value, s.grad, s.value->loc()));
  }

  ir::GradContext ctx(graph);
  std::vector<std::string> problems;
  for (auto it = forward.rbegin(); it != forward.rend(); ++it) {
    const Node& n = **it;
    std::vector<Value*> resultGrads;
    bool anyResult = false;
    for (const Value* r : n.results()) {
      auto g = grads.find(r);
      resultGrads.push_back(g == grads.end() ? nullptr : g->second);
      anyResult = anyResult || g != grads.end();
    }
    std::vector<bool> needs;
    bool anyOperand = false;
    for (const Value* o : n.operands()) {
      needs.push_back(needsGrad.count(o) && ir::isFloat(o->type().dtype));
      anyOperand = anyOperand || needs.back();
    }
    if (!anyResult || !anyOperand) continue;

    // After a node fails, its operands still count as reached (each its own placeholder
    // gradient, of the right type), so the nodes before it are checked too and the report
    // lists them all.
    auto poison = [&] {
      for (size_t i = 0; i < needs.size(); ++i)
        if (needs[i]) grads.emplace(n.operand(i), n.operand(i));
    };
    const ir::GradFn rule = ir::opInfo(n.kind()).grad;
    if (!rule) {
      problems.push_back(noGradient(n, "the op has no gradient rule"));
      poison();
      continue;
    }
    ctx.begin(n, needs);
    std::vector<Value*> operandGrads(n.numOperands(), nullptr);
    Status st = rule(ctx, n, resultGrads, operandGrads);
    if (st.isOk()) st = ctx.status();
    if (!st)
      return error("autodiff: the gradient of {} {} failed: {}", n.opName(), locText(n.loc()),
                   st.message());
    if (!ctx.unsupportedReason().empty()) {
      problems.push_back(noGradient(n, ctx.unsupportedReason()));
      poison();
      continue;
    }
    for (size_t i = 0; i < operandGrads.size(); ++i) {
      Value* g = operandGrads[i];
      if (!g || !needs[i]) continue;
      const ir::TensorType& want = n.operand(i)->type();
      if (g->type().dtype != want.dtype || g->type().shape != want.shape)
        return error(
            "autodiff: the gradient rule of {} {} gives operand {} a gradient {}, "
            "expected {}",
            n.opName(), locText(n.loc()), i, g->type().str(), want.str());
      KILN_TRY(accumulate(n.operand(i), g, n.loc()));
    }
  }
  if (!problems.empty()) {
    std::string msg =
        fmt::format("autodiff: {} node{} on the path to the loss {} no gradient:", problems.size(),
                    problems.size() == 1 ? "" : "s", problems.size() == 1 ? "has" : "have");
    for (const std::string& p : problems) msg += "\n  " + p;
    return Status::error(std::move(msg));
  }
  std::vector<Value*> out;
  for (Value* v : wrt) {
    auto g = grads.find(v);
    out.push_back(g == grads.end() ? nullptr : g->second);
  }
  return out;
}

namespace {

Status checkOptions(const TrainStepOptions& o) {
  if (!(o.labelSmoothing >= 0.0 && o.labelSmoothing <= 1.0))
    return error("train step: label smoothing must be in [0, 1], got {}", o.labelSmoothing);
  if (!(o.momentum >= 0.0) || std::isinf(o.momentum))
    return error("train step: momentum must be finite and >= 0, got {}", o.momentum);
  if (!(o.weightDecay >= 0.0) || std::isinf(o.weightDecay))
    return error("train step: weight decay must be finite and >= 0, got {}", o.weightDecay);
  if (o.nesterov && o.momentum == 0.0) return error("train step: nesterov needs a momentum > 0");
  if (!(o.bnMomentum >= 0.0 && o.bnMomentum <= 1.0))
    return error("train step: batch norm momentum must be in [0, 1], got {}", o.bnMomentum);
  return Status::ok();
}

/// Replaces `old` by a node of `kind` with new operands and attributes (same location,
/// result 0 takes over the old result's name and uses).
Expected<Node*> replaceNode(ir::Graph& g, Node* old, OpKind kind, std::vector<Value*> operands,
                            ir::Attrs attrs) {
  KILN_ASSIGN_OR_RETURN(Node * n,
                        g.createNode(kind, std::move(operands), std::move(attrs), old->loc(), old));
  Value* r = old->result();
  n->result()->setName(r->name());
  r->setName("");
  g.replaceAllUsesWith(r, n->result());
  g.eraseNode(old);
  return n;
}

class TrainStepBuilder {
 public:
  TrainStepBuilder(ir::Module& m, const TrainStepOptions& o) : m_(m), g_(m.graph), o_(o) {}

  Status build() {
    KILN_TRY(checkOptions(o_));
    if (g_.outputs().size() != 1)
      return error(
          "train step: graph @{} has {} outputs; the loss needs exactly one, the "
          "logits [N, classes]",
          g_.name(), g_.outputs().size());
    Value* logits = g_.outputs()[0];
    const ir::TensorType& lt = logits->type();
    if (lt.shape.rank() != 2 || !ir::isFloat(lt.dtype))
      return error("train step: the output of graph @{} must be float logits [N, classes], got {}",
                   g_.name(), lt.str());
    const Loc lossLoc = logits->producer() ? logits->producer()->loc() : logits->loc();
    for (const char* name : {"labels", "lr", "seed", "loss", "correct"})
      if (g_.findValue(name))
        return error("train step: graph @{} already has a value named %{}", g_.name(), name);

    Value* labels = g_.addInput(
        "labels",
        o_.softTargets ? ir::TensorType{lt.dtype, lt.shape, ir::Layout::NC}
                       : ir::TensorType{ir::DType::I64, ir::Shape{lt.shape[0]}, ir::Layout::X},
        lossLoc);
    lr_ = g_.addInput("lr", ir::TensorType{lt.dtype, ir::Shape{}, ir::Layout::Scalar}, lossLoc);
    KILN_TRY(trainingMode());

    KILN_ASSIGN_OR_RETURN(Node * loss,
                          g_.createNode(OpKind::SoftmaxCrossEntropy, {logits, labels},
                                        ir::CrossEntropyAttrs{o_.labelSmoothing}, lossLoc));
    loss->result()->setName("loss");
    std::vector<Value*> outputs{loss->result()};
    if (o_.countCorrect) {
      KILN_ASSIGN_OR_RETURN(Node * correct, g_.createNode(OpKind::CountCorrect, {logits, labels},
                                                          ir::NoAttrs{}, lossLoc));
      correct->result()->setName("correct");
      outputs.push_back(correct->result());
    }

    std::vector<Value*> params;
    for (Value* w : g_.weights())
      if (w->kind() == ir::ValueKind::Param && ir::isFloat(w->type().dtype)) params.push_back(w);
    KILN_ASSIGN_OR_RETURN(
        Node * one,
        g_.createNode(OpKind::Constant, {}, ir::ConstantAttrs{{1.0}, {}, lt.dtype}, lossLoc));
    const GradSeed seed{loss->result(), one->result()};
    KILN_ASSIGN_OR_RETURN(std::vector<Value*> grads,
                          appendGradients(g_, std::span(&seed, 1), params));
    for (size_t i = 0; i < params.size(); ++i)
      if (grads[i]) KILN_TRY(update(params[i], grads[i]));

    // new:<name> outputs in declaration order (momentum buffers were declared last).
    for (const Value* w : g_.weights()) {
      auto it = updates_.find(w);
      if (it == updates_.end()) continue;
      it->second->setName(std::string(kNewPrefix) + w->name());
      outputs.push_back(it->second);
    }
    if (o_.outputGradients) {
      for (size_t i = 0; i < params.size(); ++i) {
        if (!grads[i]) continue;
        Value* gv = grads[i];
        // Outputs are named values: a gradient that already has a name (the gradient of
        // another param too) is copied by an identity reshape to get its own.
        if (!gv->name().empty() || !gv->producer()) {
          KILN_ASSIGN_OR_RETURN(
              Node * copy,
              g_.createNode(OpKind::Reshape, {gv}, ir::ReshapeAttrs{gv->type().shape.dims()},
                            params[i]->loc()));
          gv = copy->result();
        }
        gv->setName(std::string(kGradPrefix) + params[i]->name());
        outputs.push_back(gv);
      }
    }
    g_.setOutputs(std::move(outputs));
    g_.setName(g_.name() + ".train");
    return ir::verify(g_);
  }

 private:
  /// batch_norm -> batch_norm_train; dropout and drop_path -> training, seeded per step.
  Status trainingMode() {
    std::vector<Node*> nodes;
    for (auto& n : g_.nodes()) nodes.push_back(n.get());
    int64_t stochastic = 0;
    for (Node* n : nodes) {
      if (n->kind() == OpKind::BatchNorm) {
        const double eps = n->attrs<ir::BatchNormAttrs>().epsilon;
        std::vector<Value*> operands = n->operands();
        KILN_ASSIGN_OR_RETURN(Node * t, replaceNode(g_, n, OpKind::BatchNormTrain, operands,
                                                    ir::BatchNormTrainAttrs{eps, o_.bnMomentum}));
        // results 3 and 4 replace the running statistics
        KILN_TRY(stateUpdate(operands[3], t->result(3), t->loc()));
        KILN_TRY(stateUpdate(operands[4], t->result(4), t->loc()));
      } else if (n->kind() == OpKind::Dropout || n->kind() == OpKind::DropPath) {
        ir::DropoutAttrs a = n->attrs<ir::DropoutAttrs>();
        a.training = true;
        a.seed = stochastic++;
        if (!seed_)
          seed_ = g_.addInput(
              "seed", ir::TensorType{ir::DType::I64, ir::Shape{}, ir::Layout::Scalar}, n->loc());
        KILN_TRY(replaceNode(g_, n, n->kind(), {n->operand(0), seed_}, a).status());
      }
    }
    return Status::ok();
  }

  Status stateUpdate(const Value* state, Value* next, const Loc& loc) {
    if (!state->isWeight()) return Status::ok();  // computed statistics: nothing to write back
    if (!updates_.emplace(state, next).second)
      return error(loc, "train step: %{} is updated by more than one node", state->name());
    return Status::ok();
  }

  Status update(Value* p, Value* grad) {
    ir::SgdAttrs a;
    a.momentum = o_.momentum;
    a.nesterov = o_.nesterov;
    a.weight_decay = o_.noDecayOnBnAndBias && p->type().shape.rank() == 1 ? 0.0 : o_.weightDecay;
    std::vector<Value*> operands{p, grad, lr_};
    Value* buffer = nullptr;
    if (o_.momentum != 0.0) {
      const std::string name = p->name() + ".momentum_buffer";
      if (g_.findValue(name)) return error(p->loc(), "train step: %{} already exists", name);
      buffer = g_.addWeight(ir::ValueKind::Buffer, name, p->type(), p->loc());
      if (m_.weights.contains(p->name()) && !m_.weights.contains(name))
        m_.weights.set(name, ir::Tensor::zeros(p->type()));
      operands.push_back(buffer);
    }
    KILN_ASSIGN_OR_RETURN(Node * n, g_.createNode(OpKind::SgdUpdate, operands, a, p->loc()));
    KILN_TRY(stateUpdate(p, n->result(0), p->loc()));
    if (buffer) KILN_TRY(stateUpdate(buffer, n->result(1), p->loc()));
    return Status::ok();
  }

  ir::Module& m_;
  ir::Graph& g_;
  const TrainStepOptions& o_;
  Value* lr_ = nullptr;
  Value* seed_ = nullptr;
  std::unordered_map<const Value*, Value*> updates_;
};

}  // namespace

Expected<ir::Module> buildTrainStep(const ir::Module& forward, const TrainStepOptions& options) {
  if (options.optimizer != Optimizer::Sgd)
    return error("train step: only the SGD optimizer is implemented (RMSProp and AdamW are not yet)");
  if (options.clipGradNorm != 0)
    return error("train step: gradient norm clipping is not implemented yet");
  if (options.emaDecay != 0)
    return error("train step: the weight EMA is not implemented yet");
  if (options.accum != TrainStepOptions::Accum::None || options.accumSteps != 1)
    return error("train step: gradient accumulation is not implemented yet");
  ir::Module m = forward.clone();
  TrainStepBuilder b(m, options);
  KILN_TRY(b.build());
  return m;
}

Status applyStateUpdates(const ir::Graph& trainStep, std::span<const ir::Tensor> outputs,
                         ir::WeightStore& store) {
  const auto& outs = trainStep.outputs();
  if (outputs.size() != outs.size())
    return error("train step @{} has {} outputs, {} tensors were given", trainStep.name(),
                 outs.size(), outputs.size());
  for (size_t i = 0; i < outs.size(); ++i) {
    const std::string& name = outs[i]->name();
    if (!name.starts_with(kNewPrefix)) continue;
    const std::string target = name.substr(kNewPrefix.size());
    const Value* decl = trainStep.findValue(target);
    if (!decl || !decl->isWeight())
      return error("train step @{}: output %{} names no weight declaration", trainStep.name(),
                   name);
    const ir::Tensor& t = outputs[i];
    if (t.dtype() != decl->type().dtype || t.shape() != decl->type().shape)
      return error("train step @{}: output %{} is {}, weight %{} is {}", trainStep.name(), name,
                   t.type().str(), target, decl->type().str());
    store.set(target, t);
  }
  return Status::ok();
}

}  // namespace kiln::passes
