// dropout and drop_path: identity in inference; in training a Bernoulli(1 - p) keep-mask
// scaled by 1 / (1 - p), drawn from std::mt19937_64 — one draw per element (dropout) or per
// sample (drop_path, torchvision's stochastic depth "row" mode). The generator is seeded
// with the `seed` attribute, mixed with the optional i64[] seed operand. The standard fixes
// mt19937_64's output sequence, so a seed gives the same mask on every platform, and a
// backward node with the same seed and shape reproduces the forward mask.
#include <random>

#include "backends/reference/kernels.h"

namespace kiln::backends::reference {

using namespace ir;

namespace {

uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::mt19937_64 generator(const KernelContext& ctx, const DropoutAttrs& a) {
  uint64_t seed = static_cast<uint64_t>(a.seed);
  if (ctx.in.size() == 2)
    seed = splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(ctx.in[1].data<int64_t>()[0]));
  return std::mt19937_64(seed);
}

/// 53 random bits -> u uniform in [0, 1); kept when u >= p.
bool keep(std::mt19937_64& rng, double p) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53 >= p;
}

/// y = x * mask * scale, one mask draw per `block` consecutive elements.
Status masked(const KernelContext& ctx, int64_t block) {
  const auto& a = ctx.attrs<DropoutAttrs>();
  return dispatchFloat(ctx, ctx.in[0].dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = ctx.in[0].data<T>();
    T* y = ctx.out[0].data<T>();
    const int64_t n = ctx.in[0].numElements();
    if (!a.training || a.p == 0.0) {
      for (int64_t i = 0; i < n; ++i) y[i] = x[i];
      return Status::ok();
    }
    std::mt19937_64 rng = generator(ctx, a);
    const T scale = T(1.0 / (1.0 - a.p));
    for (int64_t b = 0; b < n; b += block) {
      const bool kept = keep(rng, a.p);
      for (int64_t i = b; i < std::min(n, b + block); ++i) y[i] = kept ? x[i] * scale : T(0);
    }
    return Status::ok();
  });
}

}  // namespace

template <>
Status kernel<OpKind::Dropout>(const KernelContext& ctx) {
  return masked(ctx, 1);
}

template <>
Status kernel<OpKind::DropPath>(const KernelContext& ctx) {
  KILN_TRY(checkRowMajor(ctx));
  const Shape& s = ctx.in[0].shape();
  const int64_t samples = s.rank() ? s[0] : 1;
  const int64_t block = samples ? std::max<int64_t>(1, ctx.in[0].numElements() / samples) : 1;
  return masked(ctx, block);
}

}  // namespace kiln::backends::reference
