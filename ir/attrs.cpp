// Field-wise equality and hashing of attribute structs (used by CSE).
#include "ir/attrs.h"

#include <bit>
#include <cstring>
#include <functional>

namespace kiln::ir {

namespace {

void mix(size_t& h, size_t v) { h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2); }

size_t hashValue(int64_t v) { return std::hash<int64_t>{}(v); }
size_t hashValue(bool v) { return v ? 1 : 2; }
size_t hashValue(double v) { return std::hash<uint64_t>{}(std::bit_cast<uint64_t>(v)); }
size_t hashValue(DType v) { return static_cast<size_t>(v) + 101; }
size_t hashValue(Layout v) { return static_cast<size_t>(v) + 211; }
template <typename T>
size_t hashValue(const T& range) {
  size_t h = range.size();
  for (const auto& x : range) mix(h, hashValue(x));
  return h;
}

bool sameValue(double a, double b) { return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b); }
template <typename T>
bool sameValue(const T& a, const T& b) {
  if constexpr (std::is_same_v<T, FloatList>) {
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

}  // namespace kiln::ir
