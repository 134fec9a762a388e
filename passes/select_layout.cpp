// select-layout: one walk in graph order deciding each 4-D result's layout from its operands
// (convs from the policy), with a cache of the reorders made so far.
#include "passes/select_layout.h"

#include <algorithm>
#include <iterator>
#include <map>

#include "ir/graph.h"
#include "ir/module.h"
#include "ir/printer.h"

namespace kiln::passes {

using ir::Layout;
using ir::Node;
using ir::OpKind;
using ir::Value;

LayoutPolicy::~LayoutPolicy() = default;

namespace {

int blockOf(Layout l) {
  const auto [dim, size] = ir::layoutBlock(l);
  return dim == 1 ? size : 0;
}

/// Channels of a rank-4 value (dim 1).
int64_t channels(const Value* v) {
  return v->type().shape[1];
}

bool isRank4(const Value* v) {
  return v->type().shape.rank() == 4;
}

/// The layout holds the value without padding its channels.
bool fits(Layout l, const Value* v) {
  const int b = blockOf(l);
  return b == 0 || (channels(v) >= 0 && channels(v) % b == 0);
}

/// Plain row-major 4-D (nchw, or oihw, which has the same bytes).
bool isPlain(Layout l) {
  return ir::isRowMajor(l);
}

/// How an op treats the layouts of its rank-4 operands.
enum class Behaviour : uint8_t {
  Conv,    // the policy decides
  Follow,  // runs in any layout its operands and result share
  Concat,  // along channels: a layout whose block divides every part
  Split,   // along channels: likewise for the results
  ConvBackwardData,    // dy and dx in the layouts of the forward conv dx -> dy
  ConvBackwardWeight,  // x and dy likewise; the weight gradient stays oihw (optimizers are plain)
  AnyIn,   // reads any layout, writes its declared (plain) result: reduce_sum
  Plain,   // needs nchw operands
  Keep,    // an existing reorder or a constant: left as it is
};

int64_t normalizedAxis(int64_t axis, size_t rank) {
  return axis < 0 ? axis + static_cast<int64_t>(rank) : axis;
}

Behaviour behaviourOf(const Node& n) {
  const OpKind k = n.kind();
  if (k == OpKind::Reorder || n.numOperands() == 0) return Behaviour::Keep;
  if (k == OpKind::Conv2d) return isRank4(n.operand(0)) ? Behaviour::Conv : Behaviour::Plain;
  const bool rank4Result = n.numResults() > 0 && isRank4(n.result(0));
  if (ir::hasTrait(k, ir::Elementwise) && !ir::hasTrait(k, ir::Stochastic))
    return rank4Result ? Behaviour::Follow : Behaviour::Plain;
  switch (k) {
    case OpKind::Conv2dBackwardData:
      return isRank4(n.operand(0)) ? Behaviour::ConvBackwardData : Behaviour::Plain;
    case OpKind::Conv2dBackwardWeight:
      return isRank4(n.operand(0)) ? Behaviour::ConvBackwardWeight : Behaviour::Plain;
    case OpKind::ReduceSum:
      return Behaviour::AnyIn;
    // The training ops run in their forward op's layout: batch statistics and pooling
    // gradients are per channel (or per window), so any layout that keeps channels whole.
    case OpKind::BatchNormTrain:
    case OpKind::BatchNormBackward:
    case OpKind::MaxPool2dBackward:
    case OpKind::AvgPool2dBackward:
    case OpKind::BatchNorm:
    case OpKind::ChannelScale:
    case OpKind::MaxPool2d:
    case OpKind::AvgPool2d:
    case OpKind::GlobalAvgPool:
    case OpKind::AdaptiveAvgPool2d:
      return Behaviour::Follow;
    case OpKind::Dropout:
    case OpKind::DropPath: {
      // A training mask is drawn in memory order: only the identity may change layout.
      const auto& a = n.attrs<ir::DropoutAttrs>();
      return rank4Result && (!a.training || a.p == 0.0) ? Behaviour::Follow : Behaviour::Plain;
    }
    case OpKind::Concat:
      return rank4Result && normalizedAxis(n.attrs<ir::AxisAttrs>().axis, 4) == 1
                 ? Behaviour::Concat
                 : Behaviour::Plain;
    case OpKind::Split:
      return isRank4(n.operand(0)) && normalizedAxis(n.attrs<ir::SplitAttrs>().axis, 4) == 1
                 ? Behaviour::Split
                 : Behaviour::Plain;
    default:
      return Behaviour::Plain;
  }
}

/// The first rank-4 value among `vs` in a layout other than plain row-major, or nchw.
Layout firstNonPlain(const std::vector<Value*>& vs) {
  for (const Value* v : vs)
    if (isRank4(v) && !isPlain(v->type().layout)) return v->type().layout;
  return Layout::NCHW;
}

/// `want` when its block divides every rank-4 value's channels; else nChw8c when 8 does;
/// else nchw.
Layout fitting(Layout want, const std::vector<Value*>& vs, bool allowEight) {
  auto fitsAll = [&](Layout l) {
    for (const Value* v : vs)
      if (isRank4(v) && !fits(l, v)) return false;
    return true;
  };
  if (fitsAll(want)) return want;
  if (allowEight && blockOf(want) != 0 && fitsAll(Layout::NChw8c)) return Layout::NChw8c;
  return Layout::NCHW;
}

class Selector {
 public:
  Selector(ir::Graph& g, const LayoutPolicy& policy) : g_(g), policy_(policy) {}

  Status run(const std::vector<LayoutOverride>& overrides) {
    KILN_TRY(resolve(overrides));
    std::vector<Layout> declared;
    for (const Value* o : g_.outputs()) declared.push_back(o->type().layout);
    stripReorders();
    std::vector<Node*> order;
    for (auto& n : g_.nodes()) order.push_back(n.get());
    for (Node* n : order) KILN_TRY(visit(*n));
    restoreOutputs(declared);
    return Status::ok();
  }

  int reorders() const { return numReorders_; }

 private:
  Status resolve(const std::vector<LayoutOverride>& overrides) {
    if (overrides.empty()) return Status::ok();
    const std::vector<std::string> names = ir::printedValueNames(g_);
    for (const LayoutOverride& o : overrides) {
      const std::string want = "%" + o.value;
      Value* found = nullptr;
      for (auto& n : g_.nodes())
        for (Value* r : n->results())
          if (names[r->id()] == want || (!r->name().empty() && r->name() == o.value)) found = r;
      if (!found) {
        if (Value* v = g_.findValue(o.value))
          return error(v->loc(), "--layout-of: %{} is a graph {} (only node results get a layout)",
                       o.value, ir::valueKindKeyword(v->kind()));
        return error(
            "--layout-of: no node result is printed as %{} (names as printed before "
            "select-layout, e.g. by --print-before=select-layout)",
            o.value);
      }
      if (!isRank4(found))
        return error(found->loc(),
                     "--layout-of: %{} is {}, a layout of rank 4 needs a rank-4 value", o.value,
                     found->type().str());
      if (!fits(o.layout, found))
        return error(found->loc(),
                     "--layout-of: {{{}}} does not fit %{} : {} ({} channels are not a "
                     "multiple of {})",
                     ir::layoutName(o.layout), o.value, found->type().str(), channels(found),
                     blockOf(o.layout));
      overrides_[found] = o.layout;
    }
    return Status::ok();
  }

  /// Removes the reorders a previous run (or the author) placed, so that layouts are chosen
  /// afresh: a second run, or one with another policy, does not stack reorders. A named
  /// reorder result (an output's) hands its name to an anonymous operand.
  void stripReorders() {
    std::vector<Node*> reorders;
    for (auto& n : g_.nodes())
      if (n->kind() == OpKind::Reorder) reorders.push_back(n.get());
    for (Node* n : reorders) {
      Value* from = n->operand(0);
      Value* to = n->result();
      if (!to->name().empty() && from->name().empty() && from->producer() &&
          !overrides_.count(from)) {
        from->setName(to->name());
        to->setName("");
      }
      if (auto it = overrides_.find(to); it != overrides_.end()) {
        overrides_[from] = it->second;
        overrides_.erase(it);
      }
      g_.replaceAllUsesWith(to, from);
      g_.eraseNode(n);
    }
  }

  const Layout* overrideOf(const Value* v) const {
    auto it = overrides_.find(v);
    return it == overrides_.end() ? nullptr : &it->second;
  }

  /// Makes operand `i` of `n` read `want`, through a (shared) reorder placed before `n`.
  void require(Node& n, size_t i, Layout want) {
    Value* v = n.operand(i);
    if (!isRank4(v) || ir::sameMemoryOrder(v->type().layout, want)) return;
    auto key = std::make_pair(v, want);
    auto it = reorders_.find(key);
    if (it == reorders_.end()) {
      ir::TensorType t = v->type();
      t.layout = want;
      Node* r = g_.addNode(OpKind::Reorder, {v}, ir::ReorderAttrs{want}, {t}, n.loc(), &n);
      ++numReorders_;
      it = reorders_.emplace(key, r->result()).first;
    }
    n.setOperand(i, it->second);
  }

  /// The policy's layouts for the forward conv2d x -> y that a gradient op belongs to: a
  /// scratch conv2d of those types, so that gradients run in the layouts their forward conv
  /// runs in (and the backend's answer for the forward shapes is the one it gives).
  ConvLayouts forwardLayouts(const Node& n, const ir::TensorType& x, const ir::TensorType& w,
                             const ir::TensorType& y, const ir::Conv2dAttrs& attrs) const {
    ir::Graph scratch("conv");
    Value* xs = scratch.addInput("x", x);
    Value* ws = scratch.addInput("w", w);
    const Node* conv = scratch.addNode(OpKind::Conv2d, {xs, ws}, attrs, {y}, n.loc());
    ConvLayouts cl = policy_.convLayouts(*conv);
    if (!fitsType(cl.src, x)) cl.src = Layout::NCHW;
    if (!fitsType(cl.dst, y)) cl.dst = Layout::NCHW;
    return cl;
  }

  static bool fitsType(Layout l, const ir::TensorType& t) {
    const int b = blockOf(l);
    return b == 0 || (t.shape[1] >= 0 && t.shape[1] % b == 0);
  }

  static void setLayout(Value* v, Layout l) {
    if (!isRank4(v) || ir::sameMemoryOrder(v->type().layout, l)) return;
    ir::TensorType t = v->type();
    t.layout = l;
    v->setType(std::move(t));
  }

  Status visit(Node& n) {
    const Layout* forced = n.numResults() ? overrideOf(n.result()) : nullptr;
    switch (behaviourOf(n)) {
      case Behaviour::Keep:
        return Status::ok();
      case Behaviour::Conv: {
        ConvLayouts cl = policy_.convLayouts(n);
        if (forced) cl.src = cl.dst = *forced;
        if (!fits(cl.src, n.operand(0))) cl.src = Layout::NCHW;
        if (!fits(cl.dst, n.result())) cl.dst = Layout::NCHW;
        require(n, 0, cl.src);
        if (ir::convSummand(n)) require(n, n.numOperands() - 1, cl.dst);
        setLayout(n.result(), cl.dst);
        return Status::ok();
      }
      case Behaviour::Follow: {
        std::vector<Value*> all = n.operands();
        all.insert(all.end(), n.results().begin(), n.results().end());
        const Layout want =
            forced ? *forced : fitting(firstNonPlain(n.operands()), all, /*allowEight=*/false);
        for (size_t i = 0; i < n.numOperands(); ++i) require(n, i, want);
        for (Value* r : n.results()) setLayout(r, want);
        return Status::ok();
      }
      case Behaviour::Concat: {
        std::vector<Value*> all = n.operands();
        all.push_back(n.result());
        const Layout want =
            forced ? *forced : fitting(firstNonPlain(n.operands()), all, /*allowEight=*/true);
        for (size_t i = 0; i < n.numOperands(); ++i) require(n, i, want);
        setLayout(n.result(), want);
        return Status::ok();
      }
      case Behaviour::Split: {
        std::vector<Value*> all = n.results();
        all.push_back(n.operand(0));
        const Layout want = fitting(firstNonPlain(n.operands()), all, /*allowEight=*/true);
        require(n, 0, want);
        for (Value* r : n.results()) setLayout(r, forced && r == n.result() ? *forced : want);
        return Status::ok();
      }
      case Behaviour::ConvBackwardData: {
        // dy, w -> dx
        const auto& a = n.attrs<ir::Conv2dBackwardDataAttrs>();
        ConvLayouts cl =
            forwardLayouts(n, n.result()->type(), n.operand(1)->type(), n.operand(0)->type(),
                           ir::Conv2dAttrs{a.stride, a.pad, a.dilation, a.groups, {}});
        if (forced && fits(*forced, n.result())) cl.src = *forced;
        require(n, 0, cl.dst);
        setLayout(n.result(), cl.src);
        return Status::ok();
      }
      case Behaviour::ConvBackwardWeight: {
        // x, dy -> dw (oihw, as the param it updates)
        const auto& a = n.attrs<ir::Conv2dBackwardWeightAttrs>();
        const ConvLayouts cl =
            forwardLayouts(n, n.operand(0)->type(), n.result()->type(), n.operand(1)->type(),
                           ir::Conv2dAttrs{a.stride, a.pad, a.dilation, a.groups, {}});
        require(n, 0, cl.src);
        require(n, 1, cl.dst);
        return Status::ok();
      }
      case Behaviour::AnyIn:
        if (forced) setLayout(n.result(), *forced);
        return Status::ok();
      case Behaviour::Plain:
        for (size_t i = 0; i < n.numOperands(); ++i)
          if (!isPlain(n.operand(i)->type().layout)) require(n, i, Layout::NCHW);
        if (forced) setLayout(n.result(), *forced);
        return Status::ok();
    }
    return Status::ok();
  }

  /// Graph outputs get their declared layouts back; the reorder takes the output's name.
  void restoreOutputs(const std::vector<Layout>& declared) {
    std::vector<Value*> outs = g_.outputs();
    std::map<Value*, Value*> done;
    for (size_t i = 0; i < outs.size(); ++i) {
      Value* v = outs[i];
      if (ir::sameMemoryOrder(v->type().layout, declared[i])) continue;
      if (auto it = done.find(v); it != done.end()) {
        outs[i] = it->second;
        continue;
      }
      ir::TensorType t = v->type();
      t.layout = declared[i];
      // Right after the producer, so the other layout dies early.
      const Node* before = nullptr;
      for (auto it = g_.nodes().begin(); it != g_.nodes().end(); ++it)
        if (it->get() == v->producer()) {
          before = std::next(it) == g_.nodes().end() ? nullptr : std::next(it)->get();
          break;
        }
      const Loc loc = v->producer() ? v->producer()->loc() : v->loc();
      Node* r = g_.addNode(OpKind::Reorder, {v}, ir::ReorderAttrs{declared[i]}, {t}, loc, before);
      ++numReorders_;
      if (!v->name().empty()) {
        r->result()->setName(v->name());
        v->setName("");
      }
      done[v] = r->result();
      outs[i] = r->result();
    }
    g_.setOutputs(std::move(outs));
  }

  ir::Graph& g_;
  const LayoutPolicy& policy_;
  std::map<const Value*, Layout> overrides_;
  std::map<std::pair<Value*, Layout>, Value*> reorders_;
  int numReorders_ = 0;
};

}  // namespace

Layout blockedLayoutFor(std::initializer_list<int64_t> counts) {
  for (Layout l : {Layout::NChw16c, Layout::NChw8c}) {
    bool all = true;
    for (int64_t c : counts) all = all && c > 0 && c % blockOf(l) == 0;
    if (all) return l;
  }
  return Layout::NCHW;
}

ConvLayouts RuleLayoutPolicy::convLayouts(const Node& conv) const {
  const int64_t ic = channels(conv.operand(0)), oc = channels(conv.result());
  const int64_t groups = conv.attrs<ir::Conv2dAttrs>().groups;
  if (groups > 1) {
    // Depthwise (and grouped) convs block per group; depthwise has 1 channel per group and
    // blocks over the groups themselves.
    const bool depthwise = groups == ic && groups == oc;
    const Layout l =
        depthwise ? blockedLayoutFor({ic}) : blockedLayoutFor({ic / groups, oc / groups});
    return {l, l};
  }
  if (ic < 8) return {Layout::NCHW, blockedLayoutFor({oc})};
  const Layout l = blockedLayoutFor({ic, oc});
  return {l, l};
}

Expected<LayoutOverride> parseLayoutOverride(std::string_view spec) {
  const size_t colon = spec.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == spec.size())
    return error("--layout-of: expected NODE:LAYOUT (e.g. %12:nhwc), got '{}'", spec);
  std::string_view node = spec.substr(0, colon);
  if (node.front() == '%') node.remove_prefix(1);
  if (node.empty())
    return error("--layout-of: expected NODE:LAYOUT (e.g. %12:nhwc), got '{}'", spec);
  const std::string_view layoutText = spec.substr(colon + 1);
  const std::optional<Layout> layout = ir::parseLayout(layoutText);
  constexpr Layout kAllowed[] = {Layout::NCHW, Layout::NHWC, Layout::NChw8c, Layout::NChw16c};
  if (!layout || std::find(std::begin(kAllowed), std::end(kAllowed), *layout) == std::end(kAllowed))
    return error(
        "--layout-of: unknown activation layout '{}' in '{}' (known: nchw, nhwc, nChw8c, "
        "nChw16c)",
        layoutText, spec);
  return LayoutOverride{std::string(node), *layout};
}

SelectLayout::SelectLayout(const LayoutPolicy* policy, std::vector<LayoutOverride> overrides)
    : policy_(policy), overrides_(std::move(overrides)) {}

Status SelectLayout::run(ir::Module& module) {
  numReorders_ = 0;
  report_.clear();
  ir::Graph& g = module.graph;
  bool hasConv = false;
  for (const auto& n : g.nodes()) hasConv = hasConv || n->kind() == OpKind::Conv2d;
  if (!hasConv && overrides_.empty()) return Status::ok();

  const LayoutPolicy& policy = policy_ ? *policy_ : rules_;
  Selector s(g, policy);
  KILN_TRY(s.run(overrides_));
  numReorders_ = s.reorders();

  std::map<Layout, int> counts;
  for (const auto& n : g.nodes())
    for (const Value* r : n->results())
      if (isRank4(r) && n->kind() != OpKind::Reorder) ++counts[r->type().layout];
  std::string byLayout;
  for (const auto& [l, c] : counts)
    byLayout += fmt::format("{}{} {}", byLayout.empty() ? "" : ", ", ir::layoutName(l), c);
  report_ = fmt::format("policy {}: 4-D results by layout: {}; {} reorders", policy.name(),
                        byLayout.empty() ? "none" : byLayout, numReorders_);
  return Status::ok();
}

std::unique_ptr<Pass> createSelectLayoutPass(const PassEnv& env) {
  return std::make_unique<SelectLayout>(
      env.layoutPolicy, env.layoutOverrides ? *env.layoutOverrides : std::vector<LayoutOverride>{});
}

}  // namespace kiln::passes
