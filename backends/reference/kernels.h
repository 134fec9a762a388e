// Internal to the reference backend: the kernel signature (one specialization per op in
// ir/ops.def), dtype dispatch, and the loop helpers the kernel families share.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "ir/graph.h"
#include "ir/ops.h"
#include "ir/status.h"
#include "ir/tensor.h"
#include "ir/types.h"

namespace kiln::backends::reference {

/// What a kernel sees: the node (attributes, location), its operands, and its results,
/// already allocated (zero-filled) with the types the op's shape rule gives.
struct KernelContext {
  const ir::Node& node;
  std::span<const ir::Tensor> in;
  std::span<ir::Tensor> out;

  template <typename A>
  const A& attrs() const {
    return node.attrs<A>();
  }
  std::string_view op() const { return node.opName(); }
};

/// One kernel per op kind. Each family file (conv.cpp, pool.cpp, …) defines the explicit
/// specializations of its ops; the dispatch table in evaluate.cpp takes the address of every
/// one, so an op without a kernel is a link error.
template <ir::OpKind K>
Status kernel(const KernelContext& ctx);

#define KILN_OP(e, ...) \
  template <>           \
  Status kernel<ir::OpKind::e>(const KernelContext& ctx);
#include "ir/ops.def"
#undef KILN_OP

// ---- checks and dtype dispatch ---------------------------------------------

/// "relu: the reference backend has no i64 kernel (it runs f32 and f64)".
Status unsupportedDType(const KernelContext& ctx, ir::DType t);

/// Error unless every operand is in a plain row-major layout (nchw, oihw, nc, x, …). Kernels
/// that index by logical position need it; evaluateNode hands them row-major copies of
/// other layouts, so this guards kernels called directly.
Status checkRowMajor(const KernelContext& ctx);

/// `x` in layout `to` (the reorder kernel; `node` locates its errors).
Expected<ir::Tensor> relayout(const ir::Node& node, const ir::Tensor& x, ir::Layout to);

/// Calls `f(T{})` with T = float or double for f32 / f64; any other dtype is an error.
template <typename F>
Status dispatchFloat(const KernelContext& ctx, ir::DType t, F&& f) {
  if (t == ir::DType::F32) return f(float{});
  if (t == ir::DType::F64) return f(double{});
  return unsupportedDType(ctx, t);
}

/// For pure data movement: calls `f(U{})` with an unsigned integer type of the element's
/// size, so every dtype is copied bit-exactly by the same code.
template <typename F>
Status dispatchBits(const KernelContext& ctx, ir::DType t, F&& f) {
  switch (ir::dtypeSize(t)) {
    case 1:
      return f(uint8_t{});
    case 2:
      return f(uint16_t{});
    case 4:
      return f(uint32_t{});
    case 8:
      return f(uint64_t{});
  }
  return unsupportedDType(ctx, t);
}

// ---- index helpers ---------------------------------------------------------

/// Product of dims [from, to).
int64_t product(const ir::Shape& s, size_t from, size_t to);
/// Row-major strides (in elements) of a static shape.
std::vector<int64_t> rowMajorStrides(const ir::Shape& s);
/// Strides that read `in` broadcast (numpy rules, right-aligned) to `out`: 0 along
/// broadcast dimensions.
std::vector<int64_t> broadcastStrides(const ir::Shape& in, const ir::Shape& out);

/// An N-d iteration space with one stride vector per operand.
template <size_t K>
struct Strided {
  std::vector<int64_t> dims;
  std::array<std::vector<int64_t>, K> strides;
};

/// Merges adjacent dimensions that every operand walks contiguously with respect to each
/// other, and drops extent-1 dimensions, so the inner loop is as long as possible.
template <size_t K>
Strided<K> coalesce(const Strided<K>& s) {
  Strided<K> r;
  for (size_t d = 0; d < s.dims.size(); ++d) {
    if (s.dims[d] == 1) continue;
    bool merge = !r.dims.empty();
    for (size_t k = 0; k < K && merge; ++k)
      merge = r.strides[k].back() == s.strides[k][d] * s.dims[d];
    if (merge) {
      r.dims.back() *= s.dims[d];
      for (size_t k = 0; k < K; ++k) r.strides[k].back() = s.strides[k][d];
    } else {
      r.dims.push_back(s.dims[d]);
      for (size_t k = 0; k < K; ++k) r.strides[k].push_back(s.strides[k][d]);
    }
  }
  return r;
}

/// Calls `f(offsets, innerLen, innerStrides)` once per row of the space (every index but the
/// last), with each operand's element offset at the row start. A rank-0 space is one row of
/// length 1; a space with an empty dimension has no rows.
template <size_t K, typename F>
void forEachRow(const Strided<K>& space, F&& f) {
  const size_t rank = space.dims.size();
  for (int64_t d : space.dims)
    if (d == 0) return;
  std::array<int64_t, K> off{};
  std::array<int64_t, K> inner{};
  for (size_t k = 0; k < K; ++k) inner[k] = rank ? space.strides[k][rank - 1] : 0;
  const int64_t len = rank ? space.dims[rank - 1] : 1;
  std::vector<int64_t> idx(rank > 0 ? rank - 1 : 0, 0);
  for (;;) {
    f(off, len, inner);
    size_t d = idx.size();  // odometer over the outer dims, last one fastest
    for (;;) {
      if (d == 0) return;
      --d;
      if (++idx[d] < space.dims[d]) {
        for (size_t k = 0; k < K; ++k) off[k] += space.strides[k][d];
        break;
      }
      for (size_t k = 0; k < K; ++k) off[k] -= space.strides[k][d] * (space.dims[d] - 1);
      idx[d] = 0;
    }
  }
}

/// dst[dstOff] = src[srcOff] over an N-d space; strides may be negative (reversed slices).
template <typename T>
void stridedCopy(T* dst, const T* src, const Strided<2>& space) {
  forEachRow(coalesce(space), [&](const std::array<int64_t, 2>& off, int64_t len,
                                  const std::array<int64_t, 2>& inner) {
    T* d = dst + off[0];
    const T* s = src + off[1];
    if (inner[0] == 1 && inner[1] == 1) {
      for (int64_t i = 0; i < len; ++i) d[i] = s[i];
    } else {
      for (int64_t i = 0; i < len; ++i) d[i * inner[0]] = s[i * inner[1]];
    }
  });
}

/// Smallest q with q * b >= a, for b > 0 and any sign of a.
inline int64_t ceilDiv(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }
/// Largest q with q * b <= a, for b > 0 and any sign of a.
inline int64_t floorDiv(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace kiln::backends::reference
