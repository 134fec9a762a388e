// dtype, shape and layout tables and their text forms.
#include "ir/types.h"

#include <array>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ir/status.h"

namespace kiln::ir {

namespace {
struct DTypeInfo {
  std::string_view name;
  size_t bytes;
};
constexpr DTypeInfo kDTypes[] = {
#define KILN_DTYPE_INFO(e, s, b) {s, b},
    KILN_DTYPES(KILN_DTYPE_INFO)
#undef KILN_DTYPE_INFO
};

struct LayoutInfo {
  std::string_view name;
  size_t rank;
  std::array<int, 5> order;
  int blockDim;
  int blockSize;
};
#define KILN_UNPAREN(...) __VA_ARGS__
constexpr LayoutInfo kLayouts[] = {
#define KILN_LAYOUT_INFO(e, s, r, o, bd, bs) {s, r, {KILN_UNPAREN o}, bd, bs},
    KILN_LAYOUTS(KILN_LAYOUT_INFO)
#undef KILN_LAYOUT_INFO
};
}  // namespace

std::string_view dtypeName(DType t) { return kDTypes[static_cast<int>(t)].name; }
size_t dtypeSize(DType t) { return kDTypes[static_cast<int>(t)].bytes; }
std::optional<DType> parseDType(std::string_view s) {
  for (size_t i = 0; i < std::size(kDTypes); ++i)
    if (kDTypes[i].name == s) return static_cast<DType>(i);
  return std::nullopt;
}
bool isFloat(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::F16 || t == DType::BF16;
}

bool Shape::isStatic() const {
  for (Dim d : dims_)
    if (d < 0) return false;
  return true;
}

int64_t Shape::numElements(int64_t batch) const {
  int64_t n = 1;
  bool saturated = false;
  for (Dim d : dims_) {
    const int64_t e = d == kBatch ? batch : d;
    if (e == 0) return 0;
    saturated = saturated || __builtin_mul_overflow(n, e, &n);
  }
  return saturated ? std::numeric_limits<int64_t>::max() : n;
}

Status checkShapeLimits(const Shape& shape) {
  for (Dim d : shape.dims()) {
    if (d == kBatch) continue;
    if (d < 0) return error("dimension {} is negative (a dimension is N or an integer >= 0)", d);
    if (d > kMaxDim) return error("dimension {} exceeds the limit {}", d, kMaxDimText);
  }
  // Dims are <= 2^40 here, so the product can only saturate past kMaxElements.
  if (shape.numElements(1) > kMaxElements)
    return error("shape {} has more than {} elements", shape.str(), kMaxDimText);
  return Status::ok();
}

Shape Shape::bind(int64_t batch) const {
  Shape s = *this;
  for (Dim& d : s.dims_)
    if (d == kBatch) d = batch;
  return s;
}

std::string Shape::str() const {
  std::string out = "[";
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (i) out += ',';
    out += dims_[i] == kBatch ? std::string("N") : std::to_string(dims_[i]);
  }
  return out + "]";
}

std::string_view layoutName(Layout l) { return kLayouts[static_cast<int>(l)].name; }
std::optional<Layout> parseLayout(std::string_view s) {
  for (size_t i = 0; i < std::size(kLayouts); ++i)
    if (kLayouts[i].name == s) return static_cast<Layout>(i);
  return std::nullopt;
}
size_t layoutRank(Layout l) { return kLayouts[static_cast<int>(l)].rank; }
std::optional<Layout> defaultLayout(size_t rank) {
  switch (rank) {
    case 0: return Layout::Scalar;
    case 1: return Layout::X;
    case 2: return Layout::NC;
    case 3: return Layout::NCW;
    case 4: return Layout::NCHW;
    case 5: return Layout::NCDHW;
    default: return std::nullopt;
  }
}
std::span<const int> layoutOrder(Layout l) {
  const LayoutInfo& info = kLayouts[static_cast<int>(l)];
  return std::span<const int>(info.order.data(), info.rank);
}
bool isRowMajor(Layout l) {
  const LayoutInfo& info = kLayouts[static_cast<int>(l)];
  if (info.blockDim >= 0) return false;
  for (size_t i = 0; i < info.rank; ++i)
    if (info.order[i] != static_cast<int>(i)) return false;
  return true;
}
std::pair<int, int> layoutBlock(Layout l) {
  const LayoutInfo& info = kLayouts[static_cast<int>(l)];
  return {info.blockDim, info.blockSize};
}

std::string TensorType::str() const {
  return fmt::format("{}{}{{{}}}", dtypeName(dtype), shape.str(), layoutName(layout));
}

TensorType makeType(DType dtype, Shape shape) {
  auto layout = defaultLayout(shape.rank());
  KILN_ASSERT(layout.has_value(), "rank above 5 has no default layout");
  return TensorType{dtype, std::move(shape), *layout};
}

}  // namespace kiln::ir
