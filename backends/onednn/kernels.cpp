// The small kernels of ours: fills, adaptive average pooling with uneven windows, general
// broadcasting binaries, and strided copies (the training kernels are in train_kernels.cpp).
#include "backends/onednn/kernels.h"

#include <algorithm>

namespace kiln::backends::onednn {

namespace {

float* asFloats(std::byte* p) { return reinterpret_cast<float*>(p); }

std::vector<int64_t> rowMajorStrides(const Dims& d) {
  std::vector<int64_t> s(d.size(), 1);
  for (size_t i = d.size(); i-- > 1;) s[i - 1] = s[i] * d[i];
  return s;
}

int64_t count(const Dims& d) {
  int64_t n = 1;
  for (int64_t v : d) n *= v;
  return n;
}

/// Calls `f(offsetA, offsetB)` for every element of `dims` in row-major order, where the
/// offsets advance by `sa` / `sb` per index of each dim. `f` gets the running output index.
template <typename F>
void forEachIndex(const Dims& dims, const std::vector<int64_t>& sa, const std::vector<int64_t>& sb,
                  int64_t baseA, int64_t baseB, F&& f) {
  const size_t rank = dims.size();
  if (count(dims) == 0) return;
  if (rank == 0) {
    f(int64_t{0}, baseA, baseB);
    return;
  }
  // An odometer over all dims but the last; the last runs as the inner loop.
  std::vector<int64_t> index(rank, 0);
  const int64_t inner = dims[rank - 1];
  int64_t out = 0;
  int64_t a = baseA, b = baseB;
  while (true) {
    for (int64_t i = 0; i < inner; ++i) f(out + i, a + i * sa[rank - 1], b + i * sb[rank - 1]);
    out += inner;
    size_t d = rank - 1;
    while (d-- > 0) {
      ++index[d];
      a += sa[d];
      b += sb[d];
      if (index[d] < dims[d]) break;
      a -= sa[d] * dims[d];
      b -= sb[d] * dims[d];
      index[d] = 0;
    }
    if (d == static_cast<size_t>(-1)) return;
  }
}

}  // namespace

Kernel fillKernel(int64_t n, float value) {
  return [n, value](std::span<std::byte* const> args) { std::fill_n(asFloats(args[0]), n, value); };
}

Kernel adaptiveAvgPoolKernel(const Dims& x, const Dims& y) {
  const int64_t planes = x[0] * x[1], h = x[2], w = x[3], oh = y[2], ow = y[3];
  return [=](std::span<std::byte* const> args) {
    const float* px = asFloats(args[0]);
    float* py = asFloats(args[1]);
    for (int64_t plane = 0; plane < planes; ++plane) {
      const float* xp = px + plane * h * w;
      for (int64_t oy = 0; oy < oh; ++oy) {
        const int64_t y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh;
        for (int64_t ox = 0; ox < ow; ++ox) {
          const int64_t x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow;
          float sum = 0.0f;
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) sum += xp[iy * w + ix];
          const int64_t n = (y1 - y0) * (x1 - x0);
          py[(plane * oh + oy) * ow + ox] = n ? sum / static_cast<float>(n) : 0.0f;
        }
      }
    }
  };
}

Kernel broadcastBinaryKernel(BinaryOp op, const Dims& a, const Dims& b, const Dims& y) {
  // Strides of a and b over y's dims: 0 where the operand broadcasts (or is missing).
  auto stridesOver = [&](const Dims& d) {
    const std::vector<int64_t> own = rowMajorStrides(d);
    std::vector<int64_t> s(y.size(), 0);
    const size_t off = y.size() - d.size();
    for (size_t i = 0; i < d.size(); ++i) s[off + i] = d[i] == 1 ? 0 : own[i];
    return s;
  };
  const std::vector<int64_t> sa = stridesOver(a), sb = stridesOver(b);
  return [=](std::span<std::byte* const> args) {
    const float* pa = asFloats(args[0]);
    const float* pb = asFloats(args[1]);
    float* py = asFloats(args[2]);
    forEachIndex(y, sa, sb, 0, 0, [&](int64_t i, int64_t ia, int64_t ib) {
      switch (op) {
        case BinaryOp::Add:
          py[i] = pa[ia] + pb[ib];
          break;
        case BinaryOp::Sub:
          py[i] = pa[ia] - pb[ib];
          break;
        case BinaryOp::Mul:
          py[i] = pa[ia] * pb[ib];
          break;
        case BinaryOp::Div:
          py[i] = pa[ia] / pb[ib];
          break;
      }
    });
  };
}

Kernel stridedCopyKernel(const Dims& y, const Dims& strides, int64_t offset) {
  const std::vector<int64_t> sx(strides.begin(), strides.end()), sy(y.size(), 0);
  return [=](std::span<std::byte* const> args) {
    const float* px = asFloats(args[0]);
    float* py = asFloats(args[1]);
    forEachIndex(y, sx, sy, offset, 0, [&](int64_t i, int64_t ix, int64_t) { py[i] = px[ix]; });
  };
}

}  // namespace kiln::backends::onednn
