// plan-memory: liveness, views and in-place reuse, greedy-by-size placement, the checker and
// the report.
#include "passes/plan_memory.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "ir/graph.h"
#include "ir/module.h"
#include "ir/printer.h"

namespace kiln::passes {

namespace {

using ir::Graph;
using ir::Node;
using ir::Value;

/// Sizes and offsets stay below this, so sums of two never overflow int64.
constexpr int64_t kMaxArenaBytes = int64_t{1} << 62;

bool isPowerOfTwo(int64_t x) {
  return x > 0 && (x & (x - 1)) == 0;
}

/// elements (N = batch) x dtype size, or -1 past kMaxArenaBytes.
int64_t naturalBytes(const Value& v, int64_t batch) {
  // A blocked layout stores whole blocks: nChw16c with 24 channels holds 32.
  ir::Shape shape = v.type().shape;
  const auto [blockDim, blockSize] = ir::layoutBlock(v.type().layout);
  if (blockDim >= 0 && static_cast<size_t>(blockDim) < shape.rank() && shape[blockDim] > 0)
    shape[blockDim] = (shape[blockDim] + blockSize - 1) / blockSize * blockSize;
  const int64_t elems = shape.numElements(batch);
  int64_t bytes = 0;
  if (__builtin_mul_overflow(elems, static_cast<int64_t>(ir::dtypeSize(v.type().dtype)), &bytes) ||
      bytes > kMaxArenaBytes)
    return -1;
  return bytes;
}

/// `bytes` rounded up to `alignment` (bytes <= kMaxArenaBytes, alignment a power of two below it).
int64_t alignUp(int64_t bytes, int64_t alignment) {
  return (bytes + alignment - 1) & ~(alignment - 1);
}

/// A reshape/flatten whose operand and result are row-major reads the operand's bytes as
/// they are; with any other layout the data would have to move, so it gets its own buffer.
bool isView(const Node& n) {
  return ir::hasTrait(n.kind(), ir::ShapeOnly) && n.numOperands() == 1 && n.numResults() == 1 &&
         ir::isRowMajor(n.operand(0)->type().layout) && ir::isRowMajor(n.result()->type().layout);
}

/// Node index of every node, value id → defining node index (-1: not a result in the graph),
/// and value id → last node reading it (numNodes for graph outputs).
struct Liveness {
  std::vector<const Node*> nodes;
  std::vector<int> def, last;
};

Liveness computeLiveness(const Graph& g) {
  Liveness l;
  l.def.assign(g.numValueIds(), -1);
  l.last.assign(g.numValueIds(), -1);
  for (const auto& n : g.nodes()) {
    const int i = static_cast<int>(l.nodes.size());
    l.nodes.push_back(n.get());
    for (const Value* r : n->results()) l.def[r->id()] = l.last[r->id()] = i;
    for (const Value* v : n->operands()) l.last[v->id()] = std::max(l.last[v->id()], i);
  }
  const int end = static_cast<int>(l.nodes.size());
  for (const Value* v : g.outputs())
    if (l.def[v->id()] >= 0) l.last[v->id()] = end;
  return l;
}

std::string humanBytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", v, units[u]);
}

using BufferOrder = bool (*)(const MemoryBuffer&, const MemoryBuffer&);

int span(const MemoryBuffer& b) {
  return b.lastUse - b.firstUse;
}

constexpr BufferOrder kBufferOrders[] = {
    // TFLite's: size, then first use.
    [](const MemoryBuffer& a, const MemoryBuffer& b) {
      return a.bytes != b.bytes ? a.bytes > b.bytes : a.firstUse < b.firstUse;
    },
    // Size, then the longer lifetime: long-lived skips and concat inputs settle low first
    // (DenseNet-121 reaches the lower bound with it, 10% under the one above).
    [](const MemoryBuffer& a, const MemoryBuffer& b) {
      return a.bytes != b.bytes ? a.bytes > b.bytes : span(a) > span(b);
    },
    // Size x lifetime.
    [](const MemoryBuffer& a, const MemoryBuffer& b) {
      return static_cast<double>(a.bytes) * (span(a) + 1) >
             static_cast<double>(b.bytes) * (span(b) + 1);
    },
};

/// Greedy by size (TFLite's ArenaPlanner, MXNet's): the buffers in `less` order (largest
/// first), each at the smallest gap that fits among the placed buffers whose lifetimes
/// overlap it, else above them. Returns the arena size, or -1 past kMaxArenaBytes.
int64_t placeGreedy(const std::vector<MemoryBuffer>& buffers, BufferOrder less,
                    std::vector<int64_t>& offsets) {
  std::vector<int> order(buffers.size());
  std::iota(order.begin(), order.end(), 0);
  // Ties keep index order. (Not std::stable_sort: with libstdc++ 12 its temporary buffer is
  // allocated with new(nothrow) and released with free, which ASan reports as a mismatch.)
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    if (less(buffers[a], buffers[b])) return true;
    return !less(buffers[b], buffers[a]) && a < b;
  });
  offsets.assign(buffers.size(), 0);
  std::vector<int> byOffset;  // placed buffers, sorted by offset
  int64_t peak = 0;
  for (int b : order) {
    const MemoryBuffer& buf = buffers[b];
    if (buf.bytes == 0) continue;  // takes no memory; offset 0
    int64_t best = -1, bestGap = std::numeric_limits<int64_t>::max(), top = 0;
    for (int p : byOffset) {
      const MemoryBuffer& q = buffers[p];
      if (q.lastUse < buf.firstUse || buf.lastUse < q.firstUse) continue;
      const int64_t gap = offsets[p] - top;
      if (gap >= buf.bytes && gap < bestGap) {
        best = top;
        bestGap = gap;
      }
      top = std::max(top, offsets[p] + q.bytes);
    }
    offsets[b] = best >= 0 ? best : top;
    if (offsets[b] > kMaxArenaBytes - buf.bytes) return -1;
    peak = std::max(peak, offsets[b] + buf.bytes);
    const auto at = std::upper_bound(byOffset.begin(), byOffset.end(), offsets[b],
                                     [&](int64_t off, int p) { return off < offsets[p]; });
    byOffset.insert(at, b);
  }
  return peak;
}

}  // namespace

std::vector<size_t> defaultInPlaceOperands(const Node& n) {
  if (n.numResults() != 1) return {};
  const ir::TensorType& y = n.result()->type();
  if (ir::hasTrait(n.kind(), ir::Elementwise)) {
    std::vector<size_t> slots;
    if (ir::hasTrait(n.kind(), ir::Unary) || ir::hasTrait(n.kind(), ir::Binary))
      for (size_t i = 0; i < n.numOperands(); ++i)
        if (n.operand(i)->type() == y) slots.push_back(i);
    return slots;
  }
  if (n.kind() == ir::OpKind::ChannelScale && n.operand(0)->type() == y) return {0};
  if (const ir::Value* summand = n.kind() == ir::OpKind::Conv2d ? ir::convSummand(n) : nullptr;
      summand && summand->type() == y)
    return {n.numOperands() - 1};
  return {};
}

// ---- planning --------------------------------------------------------------

Expected<MemoryPlan> planMemory(const Graph& g, const MemoryPlanOptions& o) {
  if (o.batch < 1) return error("memory plan: batch must be >= 1, got {}", o.batch);
  if (!isPowerOfTwo(o.alignment) || o.alignment > (int64_t{1} << 30))
    return error("memory plan: alignment must be a power of two up to 2^30, got {}", o.alignment);
  const std::vector<std::string> names = ir::printedValueNames(g);
  const Liveness live = computeLiveness(g);
  const int numNodes = static_cast<int>(live.nodes.size());

  MemoryPlan plan;
  plan.batch = o.batch;
  plan.alignment = o.alignment;
  plan.numNodes = numNodes;
  plan.values.assign(g.numValueIds(), ValuePlan{});

  // Sizes and live ranges of every result.
  for (const Node* n : live.nodes) {
    for (const Value* r : n->results()) {
      ValuePlan& vp = plan.values[r->id()];
      const int64_t natural = naturalBytes(*r, o.batch);
      if (natural < 0)
        return error(r->loc(), "memory plan: {} : {} needs more than 2^62 bytes at batch {}",
                     names[r->id()], r->type().str(), o.batch);
      int64_t bytes = natural;
      if (o.byteSize) {
        bytes = o.byteSize(*r);
        if (bytes < natural || bytes > kMaxArenaBytes)
          return error(r->loc(),
                       "memory plan: the size function gives {} : {} {} bytes; it needs at least "
                       "{} and at most 2^62",
                       names[r->id()], r->type().str(), bytes, natural);
      }
      vp.bytes = bytes;
      vp.firstUse = live.def[r->id()];
      vp.lastUse = live.last[r->id()];
    }
  }

  // Buffers, in node order: a view joins its operand's buffer; an in-place result joins the
  // buffer of the operand it overwrites when everything in that buffer dies at this node.
  std::vector<MemoryBuffer>& buffers = plan.buffers;
  auto join = [&](const Value* r, int b) {
    ValuePlan& vp = plan.values[r->id()];
    vp.inArena = true;
    vp.buffer = b;
    MemoryBuffer& buf = buffers[b];
    buf.values.push_back(r->id());
    buf.bytes = std::max(buf.bytes, alignUp(vp.bytes, o.alignment));
    buf.lastUse = std::max(buf.lastUse, vp.lastUse);
  };
  auto bufferOf = [&](const Value* v) { return plan.values[v->id()].buffer; };

  for (int i = 0; i < numNodes; ++i) {
    const Node& n = *live.nodes[i];
    if (isView(n)) {
      const Value* x = n.operand(0);
      ValuePlan& vp = plan.values[n.result()->id()];
      vp.alias = AliasKind::View;
      vp.aliasOf = x->id();
      if (bufferOf(x) >= 0) join(n.result(), bufferOf(x));
      continue;  // a view of an input or weight stays outside the arena
    }
    if (n.numResults() == 1) {
      const Value* r = n.result();
      const std::vector<size_t> slots =
          o.inPlaceOperands ? o.inPlaceOperands(n) : defaultInPlaceOperands(n);
      int chosen = -1;
      for (size_t s : slots) {
        if (s >= n.numOperands()) continue;
        const Value* x = n.operand(s);
        const int b = bufferOf(x);
        if (b < 0 || x->type() != r->type() ||
            plan.values[x->id()].bytes != plan.values[r->id()].bytes || buffers[b].lastUse != i)
          continue;
        // Another operand in the same memory must be this very value, read element by
        // element: add(x, x) may write over x, conv2d(x, w, x) {sum} may not.
        bool clash = false;
        for (size_t k = 0; k < n.numOperands(); ++k) {
          if (k == s || bufferOf(n.operand(k)) != b) continue;
          const bool sameElements = n.operand(k) == x && ir::hasTrait(n.kind(), ir::Elementwise);
          clash = clash || !sameElements;
        }
        if (clash) continue;
        chosen = b;
        plan.values[r->id()].alias = AliasKind::InPlace;
        plan.values[r->id()].aliasOf = x->id();
        ++plan.numInPlace;
        break;
      }
      if (chosen >= 0) {
        join(r, chosen);
        continue;
      }
    }
    for (const Value* r : n.results()) {
      buffers.push_back(MemoryBuffer{0, 0, i, i, {}});
      join(r, static_cast<int>(buffers.size()) - 1);
    }
  }

  // Greedy by size under a few tie-breaking orders; the smallest arena wins.
  std::vector<int64_t> bestOffsets;
  plan.peakBytes = -1;
  for (const BufferOrder order : kBufferOrders) {
    std::vector<int64_t> offsets;
    const int64_t peak = placeGreedy(buffers, order, offsets);
    if (peak < 0)
      return error("memory plan: the arena of @{} exceeds 2^62 bytes at batch {}", g.name(),
                   o.batch);
    if (plan.peakBytes < 0 || peak < plan.peakBytes) {
      plan.peakBytes = peak;
      bestOffsets = std::move(offsets);
    }
  }
  for (size_t b = 0; b < buffers.size(); ++b) buffers[b].offset = bestOffsets[b];

  std::vector<int64_t> delta(numNodes + 2, 0);  // bytes of buffers starting/ending per node
  for (const MemoryBuffer& buf : buffers) {
    for (int id : buf.values) {
      ValuePlan& vp = plan.values[id];
      vp.offset = buf.offset;
      if (vp.alias != AliasKind::View) plan.naiveBytes += alignUp(vp.bytes, o.alignment);
    }
    delta[buf.firstUse] += buf.bytes;
    delta[buf.lastUse + 1] -= buf.bytes;
  }
  int64_t liveBytes = 0;
  for (int t = 0; t <= numNodes; ++t) {
    liveBytes += delta[t];
    plan.lowerBoundBytes = std::max(plan.lowerBoundBytes, liveBytes);
  }
  return plan;
}

// ---- checking --------------------------------------------------------------

Status verifyPlan(const Graph& g, const MemoryPlan& plan) {
  if (plan.values.size() != g.numValueIds())
    return error("memory plan: it covers {} value ids, the graph has {}", plan.values.size(),
                 g.numValueIds());
  if (!isPowerOfTwo(plan.alignment))
    return error("memory plan: alignment {} is not a power of two", plan.alignment);
  if (plan.batch < 1) return error("memory plan: batch {} is not >= 1", plan.batch);
  const std::vector<std::string> names = ir::printedValueNames(g);
  const Liveness live = computeLiveness(g);
  const int numNodes = static_cast<int>(live.nodes.size());
  if (plan.numNodes != numNodes)
    return error("memory plan: it is for {} nodes, the graph has {}", plan.numNodes, numNodes);
  auto range = [&](int first, int last) {
    return fmt::format("[{}, {}]", first,
                       last == numNodes ? std::string("end") : std::to_string(last));
  };

  // Inputs, weights and views of them (through any chain of views) live outside the arena.
  std::vector<bool> external(plan.values.size(), true);
  for (const Node* n : live.nodes)
    for (const Value* r : n->results())
      external[r->id()] = isView(*n) && external[n->operand(0)->id()];

  std::vector<int> arena;  // value ids in the arena
  for (size_t id = 0; id < plan.values.size(); ++id) {
    const ValuePlan& vp = plan.values[id];
    const std::string& name = names[id];
    if (live.def[id] < 0) {
      if (vp.inArena)
        return error("memory plan: value #{}{} is in the arena but no node of @{} defines it", id,
                     name.empty() ? "" : " (" + name + ")", g.name());
      continue;
    }
    const Node& n = *live.nodes[live.def[id]];
    const Value* value = nullptr;
    for (const Value* r : n.results())
      if (static_cast<size_t>(r->id()) == id) value = r;
    if (!vp.inArena) {
      const bool externalView =
          external[id] && vp.alias == AliasKind::View && vp.aliasOf == n.operand(0)->id();
      if (!externalView) return error("memory plan: {} ({}) is not in the arena", name, n.opName());
      continue;
    }
    const int64_t natural = naturalBytes(*value, plan.batch);
    if (vp.offset < 0 || vp.offset % plan.alignment != 0 || natural < 0 || vp.bytes < natural ||
        vp.offset > plan.peakBytes - vp.bytes)
      return error(
          "memory plan: {} : {} at offset {} with {} bytes does not fit (needs {} bytes, "
          "{}-aligned, inside the {}-byte arena)",
          name, value->type().str(), vp.offset, vp.bytes, natural, plan.alignment, plan.peakBytes);
    if (vp.firstUse != live.def[id] || vp.lastUse != live.last[id])
      return error("memory plan: {} is planned live over {}, the graph has it live over {}", name,
                   range(vp.firstUse, vp.lastUse), range(live.def[id], live.last[id]));
    if (vp.alias == AliasKind::View) {
      const Value* x = n.operand(0);
      if (!isView(n) || vp.aliasOf != x->id() || !plan.values[x->id()].inArena ||
          plan.values[x->id()].offset != vp.offset)
        return error(
            "memory plan: {} ({}) is planned as a view of value #{} but is not a "
            "reshape/flatten of it at its offset",
            name, n.opName(), vp.aliasOf);
    }
    arena.push_back(static_cast<int>(id));
  }

  // Value ids follow creation, not graph order (passes insert nodes anywhere).
  // (ids are in increasing order: ties keep it)
  std::sort(arena.begin(), arena.end(), [&](int a, int b) {
    return std::pair(live.def[a], a) < std::pair(live.def[b], b);
  });

  // View groups: a value and the views of it (at its offset, checked above) share the bytes.
  std::vector<int> root(plan.values.size());
  std::iota(root.begin(), root.end(), 0);
  for (int id : arena)
    if (plan.values[id].alias == AliasKind::View) root[id] = root[plan.values[id].aliasOf];

  // Writing `late` at node t over memory that node t reads is safe only through the slots
  // that may run in place, element for element (same type and offset).
  auto writeIsSafe = [&](int lateId, int t) {
    const Node& n = *live.nodes[t];
    const ValuePlan& lp = plan.values[lateId];
    const std::vector<size_t> slots = defaultInPlaceOperands(n);
    for (size_t k = 0; k < n.numOperands(); ++k) {
      const Value* x = n.operand(k);
      const ValuePlan& xp = plan.values[x->id()];
      if (!xp.inArena || xp.bytes == 0 || xp.offset >= lp.offset + lp.bytes ||
          lp.offset >= xp.offset + xp.bytes)
        continue;
      const bool allowed = std::find(slots.begin(), slots.end(), k) != slots.end();
      if (!allowed || x->type() != n.result()->type() || xp.offset != lp.offset) return false;
    }
    return true;
  };

  // Sweep the node steps with the set of live values; check every pair whose bytes overlap.
  std::vector<int> active;
  size_t next = 0;  // arena is in definition order
  for (int t = 0; t <= numNodes; ++t) {
    std::erase_if(active, [&](int id) { return live.last[id] < t; });
    while (next < arena.size() && live.def[arena[next]] == t) active.push_back(arena[next++]);
    std::vector<int> sorted;
    for (int id : active)
      if (plan.values[id].bytes > 0) sorted.push_back(id);
    std::sort(sorted.begin(), sorted.end(),
              [&](int a, int b) { return plan.values[a].offset < plan.values[b].offset; });
    for (size_t a = 0; a < sorted.size(); ++a) {
      const ValuePlan& ap = plan.values[sorted[a]];
      for (size_t b = a + 1; b < sorted.size(); ++b) {
        const ValuePlan& bp = plan.values[sorted[b]];
        if (bp.offset >= ap.offset + ap.bytes) break;
        int early = sorted[a], late = sorted[b];
        if (live.def[early] > live.def[late]) std::swap(early, late);
        if (root[early] == root[late]) continue;  // views of one another
        const bool inPlace = live.def[late] == t && live.last[early] == t && live.def[early] < t &&
                             writeIsSafe(late, t);
        if (inPlace) continue;
        return error(
            "memory plan: {} (bytes [{}, {})) and {} (bytes [{}, {})) overlap and are "
            "both live at node {} ({})",
            names[early], plan.values[early].offset,
            plan.values[early].offset + plan.values[early].bytes, names[late],
            plan.values[late].offset, plan.values[late].offset + plan.values[late].bytes, t,
            t < numNodes ? live.nodes[t]->opName() : std::string_view("end"));
      }
    }
  }
  return Status::ok();
}

// ---- the report ------------------------------------------------------------

std::string formatPlan(const Graph& g, const MemoryPlan& plan) {
  const std::vector<std::string> names = ir::printedValueNames(g);
  struct Row {
    std::string cells[8];
  };
  std::vector<Row> rows;
  rows.push_back({{"value", "op", "type", "bytes", "offset", "live", "buffer", "reuse"}});
  int numViews = 0;
  for (const auto& n : g.nodes()) {
    for (const Value* r : n->results()) {
      if (static_cast<size_t>(r->id()) >= plan.values.size()) continue;
      const ValuePlan& vp = plan.values[r->id()];
      ir::TensorType bound = r->type();
      bound.shape = bound.shape.bind(plan.batch);
      const std::string of = vp.aliasOf >= 0 && static_cast<size_t>(vp.aliasOf) < names.size()
                                 ? names[vp.aliasOf]
                                 : "?";
      std::string reuse;
      if (vp.alias == AliasKind::View) {
        reuse = "view of " + of + (vp.inArena ? "" : " (outside the arena)");
        ++numViews;
      }
      if (vp.alias == AliasKind::InPlace) reuse = "in place of " + of;
      const std::string last = vp.lastUse == plan.numNodes ? "end" : std::to_string(vp.lastUse);
      if (vp.inArena)
        rows.push_back(
            {{names[r->id()], std::string(n->opName()), bound.str(), std::to_string(vp.bytes),
              std::to_string(vp.offset), fmt::format("{}..{}", vp.firstUse, last),
              std::to_string(vp.buffer), reuse}});
      else
        rows.push_back(
            {{names[r->id()], std::string(n->opName()), bound.str(), "-", "-", "-", "-", reuse}});
    }
  }
  size_t width[8] = {};
  for (const Row& row : rows)
    for (size_t c = 0; c < 8; ++c) width[c] = std::max(width[c], row.cells[c].size());
  std::string out;
  for (const Row& row : rows) {
    std::string line;
    for (size_t c = 0; c < 8; ++c) {
      const bool right = c == 3 || c == 4 || c == 6;  // numbers
      line += right ? fmt::format("{:>{}}", row.cells[c], width[c])
                    : fmt::format("{:<{}}", row.cells[c], c == 7 ? 0 : width[c]);
      if (c < 7) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + '\n';
  }
  const double ratio = plan.naiveBytes > 0 ? static_cast<double>(plan.peakBytes) /
                                                 static_cast<double>(plan.naiveBytes)
                                           : 1.0;
  out +=
      fmt::format("peak {} bytes ({}), naive {} bytes ({}), peak/naive {:.3f}\n", plan.peakBytes,
                  humanBytes(plan.peakBytes), plan.naiveBytes, humanBytes(plan.naiveBytes), ratio);
  out += fmt::format(
      "lower bound {} bytes ({}); {} buffers, {} in-place reuses, {} views; batch {}, alignment "
      "{}\n",
      plan.lowerBoundBytes, humanBytes(plan.lowerBoundBytes), plan.buffers.size(), plan.numInPlace,
      numViews, plan.batch, plan.alignment);
  return out;
}

// ---- the pass --------------------------------------------------------------

Status PlanMemory::run(ir::Module& module) {
  KILN_ASSIGN_OR_RETURN(plan_, planMemory(module.graph, options_));
  KILN_TRY(verifyPlan(module.graph, plan_));
  report_ = formatPlan(module.graph, plan_);
  return Status::ok();
}

std::unique_ptr<Pass> createPlanMemoryPass(const PassEnv&) {
  return std::make_unique<PlanMemory>();
}

}  // namespace kiln::passes
