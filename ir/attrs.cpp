// Field-wise equality and hashing of attribute structs (used by CSE).
#include "ir/attrs.h"

#include <bit>
#include <cstring>
#include <functional>

#include <fmt/format.h>

#include "ir/printer.h"

namespace kiln::ir {

namespace {

void mix(size_t& h, size_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); }

size_t hashValue(int64_t v) { return std::hash<int64_t>{}(v); }
size_t hashValue(bool v) { return v ? 1 : 2; }
size_t hashValue(double v) { return std::hash<uint64_t>{}(std::bit_cast<uint64_t>(v)); }
size_t hashValue(DType v) { return static_cast<size_t>(v) + 101; }
size_t hashValue(Layout v) { return static_cast<size_t>(v) + 211; }
size_t hashValue(const PostOp& p) {
  size_t h = static_cast<size_t>(p.kind) + 307;
  mix(h, hashValue(p.alpha));
  mix(h, hashValue(p.beta));
  return h;
}
template <typename T>
size_t hashValue(const T& range) {
  size_t h = range.size();
  for (const auto& x : range) mix(h, hashValue(x));
  return h;
}

bool sameValue(double a, double b) { return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b); }
bool sameValue(const PostOp& a, const PostOp& b) {
  return a.kind == b.kind && sameValue(a.alpha, b.alpha) && sameValue(a.beta, b.beta);
}
template <typename T>
bool sameValue(const T& a, const T& b) {
  if constexpr (std::is_same_v<T, FloatList> || std::is_same_v<T, PostOpList>) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!sameValue(a[i], b[i])) return false;
    return true;
  } else {
    return a == b;
  }
}

}  // namespace

bool attrsEqual(const Attrs& a, const Attrs& b) {
  if (a.index() != b.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using A = std::decay_t<decltype(x)>;
        const A& y = std::get<A>(b);
        bool eq = true;
        std::apply([&](const auto&... f) { ((eq = eq && sameValue(x.*(f.member), y.*(f.member))), ...); },
                   A::fields);
        return eq;
      },
      a);
}

size_t attrsHash(const Attrs& a) {
  size_t h = a.index();
  std::visit([&](const auto& x) { forEachField(x, [&](std::string_view, const auto& v) { mix(h, hashValue(v)); }); },
             a);
  return h;
}

namespace {
struct PostOpRow {
  PostOpKind kind;
  std::string_view name;
  int arity;
};
constexpr PostOpRow kPostOps[] = {
#define KILN_POST_OP_ROW(e, s, n) {PostOpKind::e, s, n},
    KILN_POST_OPS(KILN_POST_OP_ROW)
#undef KILN_POST_OP_ROW
};
}  // namespace

std::string_view postOpName(PostOpKind k) { return kPostOps[static_cast<size_t>(k)].name; }
int postOpArity(PostOpKind k) { return kPostOps[static_cast<size_t>(k)].arity; }
std::optional<PostOpKind> parsePostOpKind(std::string_view s) {
  for (const PostOpRow& r : kPostOps)
    if (r.name == s) return r.kind;
  return std::nullopt;
}

std::string postOpText(const PostOp& p) {
  std::string out(postOpName(p.kind));
  if (postOpArity(p.kind) == 2) out += fmt::format("({},{})", printDouble(p.alpha), printDouble(p.beta));
  return out;
}

std::string fusedOpName(std::string_view op, const PostOpList& postOps) {
  std::string out(op);
  for (const PostOp& p : postOps) {
    out += '+';
    out += postOpName(p.kind);
  }
  return out;
}

}  // namespace kiln::ir
