// Fusion records: recording, merging across passes and the report table.
#include "passes/fusion_log.h"

#include <algorithm>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "ir/graph.h"
#include "ir/printer.h"

namespace kiln::passes {

using ir::Value;

void FusionLog::fused(const ir::Node& node, std::string pattern,
                      std::vector<const Value*> replaced) {
  FusionRecord r;
  r.fused = true;
  r.value = node.result();
  r.pattern = std::move(pattern);
  r.result = node.kind() == ir::OpKind::Conv2d
                 ? ir::fusedOpName(node.opName(), node.attrs<ir::Conv2dAttrs>().post_ops)
                 : std::string(node.opName());
  if (node.numOperands() > 1) r.weight = node.operand(1)->name();
  r.replaced = std::move(replaced);
  records_.push_back(std::move(r));
}

void FusionLog::refused(const Value* value, std::string op, std::string reason) {
  FusionRecord r;
  r.value = value;
  r.pattern = std::move(op);
  r.reason = std::move(reason);
  records_.push_back(std::move(r));
}

void FusionLog::finish(const ir::Graph& g) {
  const std::vector<std::string> names = ir::printedValueNames(g);
  for (FusionRecord& r : records_) {
    const size_t id = static_cast<size_t>(r.value->id());
    if (id < names.size() && !names[id].empty())
      r.name = names[id];
    else if (r.name.empty())
      r.name = "%<removed>";
  }
}

namespace {

struct Line {
  const Value* value = nullptr;
  std::string name, op, pattern, weight, reason;
  std::vector<std::string> passes;
};

void addPass(Line& l, const std::string& pass) {
  if (!pass.empty() && std::find(l.passes.begin(), l.passes.end(), pass) == l.passes.end())
    l.passes.push_back(pass);
}

struct Merged {
  std::vector<Line> fused, refused;
};

Merged merge(const ir::Graph& g, std::span<const FusionRecord> records) {
  Merged m;
  std::unordered_map<const Value*, size_t> fusedAt;  // a fused line's current value -> line
  std::unordered_set<const Value*> replaced;
  for (const FusionRecord& r : records) {
    if (!r.fused) continue;
    // The line of an earlier fusion this one built on (the node it replaced or rewrote).
    size_t at = std::numeric_limits<size_t>::max();
    auto take = [&](const Value* v) {
      const auto it = fusedAt.find(v);
      if (it == fusedAt.end()) return;
      if (at == std::numeric_limits<size_t>::max()) at = it->second;
      fusedAt.erase(it);
    };
    take(r.value);
    for (const Value* v : r.replaced) take(v);
    if (at == std::numeric_limits<size_t>::max()) {
      at = m.fused.size();
      m.fused.emplace_back();
    } else {
      m.fused[at].pattern += ", ";
    }
    Line& l = m.fused[at];
    l.value = r.value;
    l.name = r.name;
    l.op = r.result;
    l.pattern += r.pattern;
    l.weight = r.weight;
    addPass(l, r.pass);
    fusedAt[r.value] = at;
    replaced.insert(r.replaced.begin(), r.replaced.end());
  }
  // Lines of fused values a later fusion replaced without building on them cannot exist:
  // a fusion that replaces a fused node always names it, so `take` found it.
  std::unordered_map<const Value*, size_t> refusedAt;
  for (const FusionRecord& r : records) {
    if (r.fused || replaced.count(r.value)) continue;
    const auto it = refusedAt.find(r.value);
    Line l{r.value, r.name, r.pattern, "", "", r.reason, {}};
    addPass(l, r.pass);
    if (it == refusedAt.end()) {
      refusedAt[r.value] = m.refused.size();
      m.refused.push_back(std::move(l));
    } else {
      m.refused[it->second] = std::move(l);  // the last pass's reason
    }
  }

  // Graph order; values the graph no longer defines go last.
  std::unordered_map<const Value*, size_t> position;
  size_t i = 0;
  for (const auto& n : g.nodes())
    for (const Value* v : n->results()) position[v] = i++;
  const std::vector<std::string> names = ir::printedValueNames(g);
  auto finish = [&](std::vector<Line>& lines) {
    for (Line& l : lines) {
      const size_t id = static_cast<size_t>(l.value->id());
      if (position.count(l.value) && id < names.size() && !names[id].empty()) l.name = names[id];
    }
    auto pos = [&](const Line& l) {
      const auto it = position.find(l.value);
      return it == position.end() ? std::numeric_limits<size_t>::max() : it->second;
    };
    // By graph position, ties in report order. (Not std::stable_sort: with libstdc++ 12 its
    // temporary buffer is allocated with new(nothrow) and released with free, which ASan
    // reports as an alloc-dealloc mismatch.)
    std::vector<std::pair<size_t, size_t>> keys;
    for (size_t i = 0; i < lines.size(); ++i) keys.emplace_back(pos(lines[i]), i);
    std::sort(keys.begin(), keys.end());
    std::vector<Line> sorted;
    sorted.reserve(lines.size());
    for (const auto& k : keys) sorted.push_back(std::move(lines[k.second]));
    lines = std::move(sorted);
  };
  finish(m.fused);
  finish(m.refused);
  return m;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

FusionSummary summarizeFusions(const ir::Graph& g, std::span<const FusionRecord> records) {
  const Merged m = merge(g, records);
  FusionSummary s;
  s.fusedNodes = static_cast<int>(m.fused.size());
  s.notFused = static_cast<int>(m.refused.size());
  for (const Line& l : m.fused) {
    // "conv2d+relu", "conv2d+sum+relu": the post-ops follow the first '+'.
    const size_t plus = l.op.find('+');
    if (plus == std::string::npos) continue;
    const std::string_view postOps = std::string_view(l.op).substr(plus);
    if (postOps.find("+sum") != std::string_view::npos) ++s.withSum;
    if (postOps != "+sum") ++s.withActivation;
  }
  return s;
}

std::string formatFusions(const ir::Graph& g, std::span<const FusionRecord> records) {
  const Merged m = merge(g, records);
  size_t nameW = 0, opW = 0, patW = 0, weightW = 0;
  bool passes = false;
  for (const auto* lines : {&m.fused, &m.refused})
    for (const Line& l : *lines) {
      nameW = std::max(nameW, l.name.size());
      opW = std::max(opW, l.op.size());
      patW = std::max(patW, l.pattern.size());
      weightW = std::max(weightW, l.weight.size());
      passes = passes || !l.passes.empty();
    }
  auto row = [](std::string line) {
    while (!line.empty() && line.back() == ' ') line.pop_back();
    return line + "\n";
  };
  std::string out;
  if (!m.fused.empty()) {
    out += fmt::format("fused ({}): value, op, folded in, weight{}\n", m.fused.size(),
                       passes ? ", passes" : "");
    for (const Line& l : m.fused)
      out += row(fmt::format("  {:<{}}  {:<{}}  {:<{}}  {:<{}}  {}", l.name, nameW, l.op, opW,
                             l.pattern, patW, l.weight, weightW, joined(l.passes)));
  }
  if (!m.refused.empty()) {
    out += fmt::format("not fused ({}): value, op, reason{}\n", m.refused.size(),
                       passes ? " [pass]" : "");
    for (const Line& l : m.refused)
      out += row(fmt::format("  {:<{}}  {:<{}}  {}{}", l.name, nameW, l.op, opW, l.reason,
                             l.passes.empty() ? "" : " [" + joined(l.passes) + "]"));
  }
  if (m.fused.empty() && m.refused.empty()) return {};
  const FusionSummary s = summarizeFusions(g, records);
  out += fmt::format("{} fused ({} with sum, {} with an activation), {} not fused\n", s.fusedNodes,
                     s.withSum, s.withActivation, s.notFused);
  return out;
}

}  // namespace kiln::passes
