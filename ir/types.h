// Value types: element dtypes, shapes with a symbolic batch dimension, and layouts.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {
class Status;
}

namespace kiln::ir {

// ---- dtypes ---------------------------------------------------------------
// KILN_DTYPE(Enum, spelling, bytes)
#define KILN_DTYPES(X) \
  X(F32, "f32", 4)     \
  X(F64, "f64", 8)     \
  X(F16, "f16", 2)     \
  X(BF16, "bf16", 2)   \
  X(I64, "i64", 8)     \
  X(I32, "i32", 4)     \
  X(I8, "i8", 1)       \
  X(U8, "u8", 1)       \
  X(Bool, "bool", 1)

enum class DType : uint8_t {
#define KILN_DTYPE_ENUM(e, s, b) e,
  KILN_DTYPES(KILN_DTYPE_ENUM)
#undef KILN_DTYPE_ENUM
};

std::string_view dtypeName(DType t);
size_t dtypeSize(DType t);
std::optional<DType> parseDType(std::string_view s);
bool isFloat(DType t);

// ---- dimensions and shapes -----------------------------------------------
/// A dimension is a static extent (>= 0) or the symbolic batch size `N` (kBatch).
using Dim = int64_t;
inline constexpr Dim kBatch = -1;

/// The largest static dimension a type may have (2^40). The parser rejects larger ones, the
/// verifier checks every value against it, and shape rules check the integer attributes
/// they compute dims from (kernel, stride, pad, ...) against it, so that sums and small
/// products of dims stay far from int64 overflow.
inline constexpr int64_t kMaxDim = int64_t{1} << 40;
/// How messages write kMaxDim.
inline constexpr std::string_view kMaxDimText = "2^40";
/// The largest element count of a type, N counted as 1. Equal to kMaxDim on purpose: then
/// flattening or reshaping any valid type gives valid dims.
inline constexpr int64_t kMaxElements = kMaxDim;
static_assert(kMaxDim == int64_t{1} << 40, "kMaxDimText spells the limit");

/// A logical shape (always in the canonical order, e.g. N,C,H,W — the layout says how
/// it sits in memory).
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<Dim> dims) : dims_(dims) {}
  explicit Shape(std::vector<Dim> dims) : dims_(std::move(dims)) {}

  size_t rank() const { return dims_.size(); }
  Dim operator[](size_t i) const { return dims_[i]; }
  Dim& operator[](size_t i) { return dims_[i]; }
  const std::vector<Dim>& dims() const { return dims_; }
  std::vector<Dim>& dims() { return dims_; }
  bool isStatic() const;
  /// Elements with N bound to `batch`. Never overflows: a product beyond int64 saturates at
  /// INT64_MAX (only shapes outside the limits below can get there), and any 0 dim gives 0.
  int64_t numElements(int64_t batch = 1) const;
  /// Replaces N by `batch`.
  Shape bind(int64_t batch) const;
  /// `[N,3,224,224]`
  std::string str() const;
  friend bool operator==(const Shape&, const Shape&) = default;

 private:
  std::vector<Dim> dims_;
};

/// Ok when every dim is N or in [0, kMaxDim] and numElements(1) <= kMaxElements; otherwise
/// an error without a location ("dimension 4611686018427387904 exceeds the limit 2^40") for
/// the caller to locate.
Status checkShapeLimits(const Shape& shape);

// ---- layouts --------------------------------------------------------------
// A layout says how the logical dims sit in memory. Plain layouts are permutations;
// blocked ones (nChw16c) split one dimension into an outer and an inner block.
// KILN_LAYOUT(Enum, spelling, rank, order (outer→inner logical dims), blockDim, blockSize)
//   order: logical dim indices outermost first; blockDim -1 = not blocked.
#define KILN_LAYOUTS(V)                                     \
  V(Scalar, "", 0, (), -1, 0)                               \
  V(X, "x", 1, (0), -1, 0)                                  \
  V(NC, "nc", 2, (0, 1), -1, 0)                             \
  V(OI, "oi", 2, (0, 1), -1, 0)                             \
  V(NCW, "ncw", 3, (0, 1, 2), -1, 0)                        \
  V(NCHW, "nchw", 4, (0, 1, 2, 3), -1, 0)                   \
  V(NHWC, "nhwc", 4, (0, 2, 3, 1), -1, 0)                   \
  V(OIHW, "oihw", 4, (0, 1, 2, 3), -1, 0)                   \
  V(HWIO, "hwio", 4, (2, 3, 1, 0), -1, 0)                   \
  V(OHWI, "ohwi", 4, (0, 2, 3, 1), -1, 0)                   \
  V(NChw8c, "nChw8c", 4, (0, 1, 2, 3), 1, 8)                \
  V(NChw16c, "nChw16c", 4, (0, 1, 2, 3), 1, 16)             \
  V(NCDHW, "ncdhw", 5, (0, 1, 2, 3, 4), -1, 0)

enum class Layout : uint8_t {
#define KILN_LAYOUT_ENUM(e, s, r, o, bd, bs) e,
  KILN_LAYOUTS(KILN_LAYOUT_ENUM)
#undef KILN_LAYOUT_ENUM
};

std::string_view layoutName(Layout l);
std::optional<Layout> parseLayout(std::string_view s);
size_t layoutRank(Layout l);
/// Plain row-major layout of a rank: scalar, x, nc, ncw, nchw, ncdhw.
std::optional<Layout> defaultLayout(size_t rank);
/// Row-major with the logical order (nchw, oihw, nc, oi, x, …): memory order == logical order.
bool isRowMajor(Layout l);
/// Same bytes for the same logical tensor: equal layouts, or two row-major ones of a rank
/// (nchw and oihw, nc and oi differ only in what the dims mean).
inline bool sameMemoryOrder(Layout a, Layout b) {
  return a == b || (isRowMajor(a) && isRowMajor(b) && layoutRank(a) == layoutRank(b));
}
/// Logical dims outermost first.
std::span<const int> layoutOrder(Layout l);
/// Blocked dimension and block size, or {-1, 0}.
std::pair<int, int> layoutBlock(Layout l);

// ---- tensor types ---------------------------------------------------------
struct TensorType {
  DType dtype = DType::F32;
  Shape shape;
  Layout layout = Layout::Scalar;

  /// `f32[N,3,224,224]{nchw}`
  std::string str() const;
  friend bool operator==(const TensorType&, const TensorType&) = default;
};

/// Builds a type with the default row-major layout of its rank (asserts rank <= 5).
TensorType makeType(DType dtype, Shape shape);

}  // namespace kiln::ir
