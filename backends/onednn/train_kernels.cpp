// The kernels of ours for train steps: dropout masks, running statistics, the loss and its
// gradient, accuracy counts, the optimizer updates (SGD, RMSProp, AdamW, EMA), the global
// gradient norm and the activation gradients oneDNN lacks. They follow the
// reference backend's formulas (backends/reference/train.cpp, dropout.cpp, norm.cpp) so that
// the two backends agree to rounding.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <omp.h>

#include "backends/onednn/kernels.h"

namespace kiln::backends::onednn {

namespace {

float* asFloats(std::byte* p) {
  return reinterpret_cast<float*>(p);
}
const int64_t* asInts(std::byte* p) {
  return reinterpret_cast<const int64_t*>(p);
}

uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// log_softmax of one row in double (the reference's loop).
void logSoftmax(const float* z, int64_t k, double* out) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < k; ++j)
    if (z[j] > mx || std::isnan(static_cast<double>(z[j]))) mx = z[j];
  double sum = 0;
  for (int64_t j = 0; j < k; ++j) sum += std::exp(z[j] - mx);
  const double lse = mx + std::log(sum);
  for (int64_t j = 0; j < k; ++j) out[j] = z[j] - lse;
}

/// The smoothed target row t~ = (1 - s) t + s / k (ids already checked).
void smoothedTarget(std::byte* targets, bool ids, int64_t row, int64_t k, double s, double* out) {
  if (ids) {
    std::fill_n(out, k, s / static_cast<double>(k));
    out[asInts(targets)[row]] += 1.0 - s;
    return;
  }
  const float* t = asFloats(targets) + row * k;
  for (int64_t j = 0; j < k; ++j) out[j] = (1.0 - s) * t[j] + s / static_cast<double>(k);
}

/// The first maximum of a row (a NaN counts as the maximum, as in torch.argmax).
int64_t argmax(const float* row, int64_t k) {
  int64_t best = 0;
  for (int64_t j = 1; j < k; ++j) {
    const float v = row[j], b = row[best];
    if (!std::isnan(b) && (v > b || std::isnan(v))) best = j;
  }
  return best;
}

}  // namespace

Kernel maskedDropoutKernel(int64_t n, int64_t block, double p, int64_t seedAttr, bool seedOperand) {
  return [=](std::span<std::byte* const> args) {
    const float* x = asFloats(args[0]);
    float* y = asFloats(args[seedOperand ? 2 : 1]);
    uint64_t seed = static_cast<uint64_t>(seedAttr);
    if (seedOperand)
      seed = splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(asInts(args[1])[0]));
    std::mt19937_64 rng(seed);
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    for (int64_t b = 0; b < n; b += block) {
      const bool kept = static_cast<double>(rng() >> 11) * 0x1.0p-53 >= p;
      const int64_t end = std::min(n, b + block);
      for (int64_t i = b; i < end; ++i) y[i] = kept ? x[i] * scale : 0.0f;
    }
  };
}

Kernel runningStatsKernel(int64_t channels, int64_t count, double momentum) {
  return [=](std::span<std::byte* const> args) {
    const float* runMean = asFloats(args[0]);
    const float* runVar = asFloats(args[1]);
    const float* mean = asFloats(args[2]);
    const float* var = asFloats(args[3]);
    float* newMean = asFloats(args[4]);
    float* newVar = asFloats(args[5]);
    const double unbias = static_cast<double>(count) / static_cast<double>(count - 1);
    for (int64_t j = 0; j < channels; ++j) {
      const double m = mean[j], v = var[j] * unbias;
      newMean[j] = static_cast<float>((1 - momentum) * runMean[j] + momentum * m);
      newVar[j] = static_cast<float>((1 - momentum) * runVar[j] + momentum * v);
    }
  };
}

Check classIdCheck(int64_t n, int64_t k, Loc loc, std::string op) {
  return [=](std::span<std::byte* const> args) -> Status {
    const int64_t* ids = asInts(args[0]);
    for (int64_t i = 0; i < n; ++i)
      if (ids[i] < 0 || ids[i] >= k)
        return error(loc, "{}: class id {} of row {} is outside [0, {})", op, ids[i], i, k);
    return Status::ok();
  };
}

Kernel softmaxCrossEntropyKernel(int64_t n, int64_t k, double smoothing, bool ids) {
  return [=](std::span<std::byte* const> args) {
    const float* logits = asFloats(args[0]);
    double total = 0;
    double* logp = reinterpret_cast<double*>(args[3]);
    double* t = logp + k;
    for (int64_t i = 0; i < n; ++i) {
      logSoftmax(logits + i * k, k, logp);
      smoothedTarget(args[1], ids, i, k, smoothing, t);
      for (int64_t j = 0; j < k; ++j)
        if (t[j] != 0) total -= t[j] * logp[j];
    }
    asFloats(args[2])[0] = static_cast<float>(total / static_cast<double>(n));
  };
}

Kernel softmaxCrossEntropyBackwardKernel(int64_t n, int64_t k, double smoothing, bool ids) {
  return [=](std::span<std::byte* const> args) {
    const double scale = static_cast<double>(asFloats(args[0])[0]) / static_cast<double>(n);
    const float* logits = asFloats(args[1]);
    float* dz = asFloats(args[3]);
    double* logp = reinterpret_cast<double*>(args[4]);
    double* t = logp + k;
    for (int64_t i = 0; i < n; ++i) {
      logSoftmax(logits + i * k, k, logp);
      smoothedTarget(args[2], ids, i, k, smoothing, t);
      double mass = 0;
      for (int64_t j = 0; j < k; ++j) mass += t[j];
      for (int64_t j = 0; j < k; ++j)
        dz[i * k + j] = static_cast<float>(scale * (std::exp(logp[j]) * mass - t[j]));
    }
  };
}

Kernel countCorrectKernel(int64_t n, int64_t k, bool ids) {
  return [=](std::span<std::byte* const> args) {
    const float* logits = asFloats(args[0]);
    int64_t correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t want = ids ? asInts(args[1])[i] : argmax(asFloats(args[1]) + i * k, k);
      if (k > 0 && argmax(logits + i * k, k) == want) ++correct;
    }
    std::memcpy(args[2], &correct, sizeof correct);
  };
}

Kernel sgdKernel(int64_t count, double momentum, double weightDecay, bool nesterov, bool buffer) {
  return [=](std::span<std::byte* const> args) {
    const float* p = asFloats(args[0]);
    const float* grad = asFloats(args[1]);
    const float lr = asFloats(args[2])[0];
    const float* buf = buffer ? asFloats(args[3]) : nullptr;
    float* newP = asFloats(args[buffer ? 4 : 3]);
    float* newBuf = buffer ? asFloats(args[5]) : nullptr;
    const float wd = static_cast<float>(weightDecay), m = static_cast<float>(momentum);
    const bool decay = weightDecay != 0.0;
    // torch.optim.SGD: g += wd p; buf = m buf + g; d = nesterov ? g + m buf : buf; p -= lr d.
    // Each element is read before it is written, so the results may alias p and buf.
#pragma omp parallel for schedule(static) if (count > 65536)
    for (int64_t i = 0; i < count; ++i) {
      float g = decay ? grad[i] + wd * p[i] : grad[i];
      if (buffer) {
        const float b = m * buf[i] + g;
        newBuf[i] = b;
        g = nesterov ? g + m * b : b;
      }
      newP[i] = p[i] - lr * g;
    }
  };
}

Kernel rmsPropKernel(int64_t count, const ir::RmsPropAttrs& a, bool buffer) {
  const float alpha = static_cast<float>(a.alpha), eps = static_cast<float>(a.eps);
  const float m = static_cast<float>(a.momentum), wd = static_cast<float>(a.weight_decay);
  const bool decay = a.weight_decay != 0.0, tf = a.tf;
  return [=](std::span<std::byte* const> args) {
    const float* p = asFloats(args[0]);
    const float* grad = asFloats(args[1]);
    const float lr = asFloats(args[2])[0];
    const float* sq = asFloats(args[3]);
    const float* buf = buffer ? asFloats(args[4]) : nullptr;
    float* newP = asFloats(args[buffer ? 5 : 4]);
    float* newSq = asFloats(args[buffer ? 6 : 5]);
    float* newBuf = buffer ? asFloats(args[7]) : nullptr;
    // The reference's formulas (backends/reference/train.cpp) in float; each element is read
    // before it is written, so the results may alias their operands.
    if (tf) {
#pragma omp parallel for simd schedule(static) if (count > 65536)
      for (int64_t i = 0; i < count; ++i) {
        const float g = decay ? grad[i] + wd * p[i] : grad[i];
        const float s = sq[i] + (1.0f - alpha) * (g * g - sq[i]);
        const float d = lr * g / std::sqrt(s + eps);
        const float step = buffer ? m * buf[i] + d : d;
        if (buffer) newBuf[i] = step;
        newSq[i] = s;
        newP[i] = p[i] - step;
      }
    } else {
#pragma omp parallel for simd schedule(static) if (count > 65536)
      for (int64_t i = 0; i < count; ++i) {
        const float g = decay ? grad[i] + wd * p[i] : grad[i];
        const float s = alpha * sq[i] + (1.0f - alpha) * g * g;
        const float d = g / (std::sqrt(s) + eps);
        const float b = buffer ? m * buf[i] + d : d;
        if (buffer) newBuf[i] = b;
        newSq[i] = s;
        newP[i] = p[i] - lr * b;
      }
    }
  };
}

Kernel adamWKernel(int64_t count, const ir::AdamWAttrs& a) {
  const double beta1 = a.beta1, beta2 = a.beta2, weightDecay = a.weight_decay;
  const float b1 = static_cast<float>(a.beta1), b2 = static_cast<float>(a.beta2);
  const float eps = static_cast<float>(a.eps);
  return [=](std::span<std::byte* const> args) {
    const float* p = asFloats(args[0]);
    const float* grad = asFloats(args[1]);
    const double lr = asFloats(args[2])[0];
    const float* m = asFloats(args[3]);
    const float* v = asFloats(args[4]);
    const double t = static_cast<double>(asFloats(args[5])[0]) + 1.0;
    float* newP = asFloats(args[6]);
    float* newM = asFloats(args[7]);
    float* newV = asFloats(args[8]);
    // The per-step scalars in double, as the reference computes them.
    const float stepSize = static_cast<float>(lr / (1.0 - std::pow(beta1, t)));
    const float invBc2Sqrt = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(beta2, t)));
    const float shrink = static_cast<float>(1.0 - lr * weightDecay);
#pragma omp parallel for simd schedule(static) if (count > 65536)
    for (int64_t i = 0; i < count; ++i) {
      const float g = grad[i];
      const float mi = m[i] + (1.0f - b1) * (g - m[i]);
      const float vi = b2 * v[i] + (1.0f - b2) * g * g;
      newM[i] = mi;
      newV[i] = vi;
      newP[i] = p[i] * shrink - stepSize * mi / (std::sqrt(vi) * invBc2Sqrt + eps);
    }
  };
}

Kernel emaKernel(int64_t count, double decay) {
  const float d = static_cast<float>(decay), rest = static_cast<float>(1.0 - decay);
  return [=](std::span<std::byte* const> args) {
    const float* ema = asFloats(args[0]);
    const float* x = asFloats(args[1]);
    float* y = asFloats(args[2]);
#pragma omp parallel for simd schedule(static) if (count > 65536)
    for (int64_t i = 0; i < count; ++i) y[i] = d * ema[i] + rest * x[i];
  };
}

Kernel globalNormKernel(std::vector<int64_t> counts) {
  return [counts = std::move(counts)](std::span<std::byte* const> args) {
    double sum = 0;
    for (size_t k = 0; k < counts.size(); ++k) {
      const float* x = asFloats(args[k]);
      const int64_t count = counts[k];
#pragma omp parallel for simd schedule(static) reduction(+ : sum) if (count > 65536)
      for (int64_t i = 0; i < count; ++i) sum += static_cast<double>(x[i]) * x[i];
    }
    asFloats(args[counts.size()])[0] = static_cast<float>(std::sqrt(sum));
  };
}

Kernel hardSigmoidBackwardKernel(int64_t count, double alpha, double beta) {
  return [=](std::span<std::byte* const> args) {
    const float* dy = asFloats(args[0]);
    const float* x = asFloats(args[1]);
    float* dx = asFloats(args[2]);
    const float a = static_cast<float>(alpha), b = static_cast<float>(beta);
#pragma omp parallel for schedule(static) if (count > 65536)
    for (int64_t i = 0; i < count; ++i) {
      const float v = a * x[i] + b;
      dx[i] = v > 0.0f && v < 1.0f ? dy[i] * a : 0.0f;
    }
  };
}

Kernel avgPoolBackwardKernel(const Dims& dyd, const Dims& dxd,
                             const ir::AvgPool2dBackwardAttrs& a) {
  const int64_t planes = dxd[0] * dxd[1], h = dxd[2], w = dxd[3], oh = dyd[2], ow = dyd[3];
  return [=](std::span<std::byte* const> args) {
    const float* dy = asFloats(args[0]);
    float* dx = asFloats(args[1]);
    std::fill_n(dx, planes * h * w, 0.0f);
    for (int64_t plane = 0; plane < planes; ++plane) {
      const float* dyp = dy + plane * oh * ow;
      float* dxp = dx + plane * h * w;
      for (int64_t oy = 0; oy < oh; ++oy) {
        for (int64_t ox = 0; ox < ow; ++ox) {
          int64_t y0 = oy * a.stride[0] - a.pad[0];
          int64_t y1 = std::min(y0 + a.kernel[0], h + a.pad[2]);
          int64_t x0 = ox * a.stride[1] - a.pad[1];
          int64_t x1 = std::min(x0 + a.kernel[1], w + a.pad[3]);
          const int64_t padded = (y1 - y0) * (x1 - x0);
          y0 = std::max<int64_t>(y0, 0);
          y1 = std::min(y1, h);
          x0 = std::max<int64_t>(x0, 0);
          x1 = std::min(x1, w);
          if (y0 >= y1 || x0 >= x1) continue;
          const int64_t divisor = a.count_include_pad ? padded : (y1 - y0) * (x1 - x0);
          const float share = dyp[oy * ow + ox] / static_cast<float>(divisor);
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) dxp[iy * w + ix] += share;
        }
      }
    }
  };
}

Kernel batchNormTrainKernel(ChannelShape sh, double epsilon, double momentum) {
  return [=](std::span<std::byte* const> args) {
    const float* x = asFloats(args[0]);
    const float* weight = asFloats(args[1]);
    const float* bias = asFloats(args[2]);
    const float* runMean = asFloats(args[3]);
    const float* runVar = asFloats(args[4]);
    float* y = asFloats(args[5]);
    float* mean = asFloats(args[6]);
    float* var = asFloats(args[7]);
    float* newMean = asFloats(args[8]);
    float* newVar = asFloats(args[9]);
    const double count = static_cast<double>(sh.n * sh.inner);
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < sh.c; ++j) {
      double sum = 0;
      for (int64_t i = 0; i < sh.n; ++i) {
        const float* row = x + (i * sh.c + j) * sh.inner;
#pragma omp simd reduction(+ : sum)
        for (int64_t k = 0; k < sh.inner; ++k) sum += row[k];
      }
      const double m = sum / count;
      double sq = 0;
      for (int64_t i = 0; i < sh.n; ++i) {
        const float* row = x + (i * sh.c + j) * sh.inner;
#pragma omp simd reduction(+ : sq)
        for (int64_t k = 0; k < sh.inner; ++k) sq += (row[k] - m) * (row[k] - m);
      }
      const double biased = sq / count;
      const double scale = static_cast<double>(weight[j]) / std::sqrt(biased + epsilon);
      const float fs = static_cast<float>(scale);
      const float fb = static_cast<float>(bias[j] - m * scale);
      for (int64_t i = 0; i < sh.n; ++i) {
        const float* row = x + (i * sh.c + j) * sh.inner;
        float* out = y + (i * sh.c + j) * sh.inner;
#pragma omp simd
        for (int64_t k = 0; k < sh.inner; ++k) out[k] = row[k] * fs + fb;
      }
      mean[j] = static_cast<float>(m);
      var[j] = static_cast<float>(biased);
      newMean[j] = static_cast<float>((1 - momentum) * runMean[j] + momentum * m);
      newVar[j] = static_cast<float>((1 - momentum) * runVar[j] + momentum * sq / (count - 1));
    }
  };
}

Kernel batchNormBackwardKernel(ChannelShape sh, double epsilon) {
  return [=](std::span<std::byte* const> args) {
    const float* dy = asFloats(args[0]);
    const float* x = asFloats(args[1]);
    const float* weight = asFloats(args[2]);
    const float* mean = asFloats(args[3]);
    const float* var = asFloats(args[4]);
    float* dx = asFloats(args[5]);
    float* dweight = asFloats(args[6]);
    float* dbias = asFloats(args[7]);
    const double count = static_cast<double>(sh.n * sh.inner);
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < sh.c; ++j) {
      const double invstd = 1.0 / std::sqrt(static_cast<double>(var[j]) + epsilon);
      const float m = mean[j];
      double sumDy = 0, sumDyXc = 0;  // sum dy, sum dy (x - mean)
      for (int64_t i = 0; i < sh.n; ++i) {
        const size_t base = static_cast<size_t>((i * sh.c + j) * sh.inner);
#pragma omp simd reduction(+ : sumDy, sumDyXc)
        for (int64_t k = 0; k < sh.inner; ++k) {
          sumDy += dy[base + k];
          sumDyXc += static_cast<double>(dy[base + k]) * (x[base + k] - m);
        }
      }
      const double sumDyXhat = sumDyXc * invstd;
      // dx = weight invstd (dy - mean(dy) - xhat mean(dy xhat))
      const double k0 = weight[j] * invstd;
      const float a = static_cast<float>(k0);
      const float b = static_cast<float>(k0 * sumDy / count);
      const float c = static_cast<float>(k0 * invstd * sumDyXhat / count);
      for (int64_t i = 0; i < sh.n; ++i) {
        const size_t base = static_cast<size_t>((i * sh.c + j) * sh.inner);
#pragma omp simd
        for (int64_t k = 0; k < sh.inner; ++k)
          dx[base + k] = a * dy[base + k] - b - c * (x[base + k] - m);
      }
      dweight[j] = static_cast<float>(sumDyXhat);
      dbias[j] = static_cast<float>(sumDy);
    }
  };
}

namespace {

/// Per-channel sums of f(row r, lane j) over all rows: each thread sums its range of rows
/// into its own slice of `partial` (threads x channels), then the slices are added in thread
/// order (the result does not depend on timing).
template <int kSums, class F>
void laneSums(const LaneShape& sh, std::vector<double>& partial, double* out, F f) {
  const int64_t c = sh.blocks * sh.block;
  const int slots = omp_get_max_threads();
  partial.assign(static_cast<size_t>(slots * kSums * c), 0.0);
#pragma omp parallel
  {
    const int threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t begin = sh.rows * t / threads, end = sh.rows * (t + 1) / threads;
    double* acc = partial.data() + static_cast<size_t>(t * kSums * c);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t ch = ((r / sh.inner) % sh.blocks) * sh.block;
      f(r, acc + ch, kSums > 1 ? acc + c + ch : nullptr);
    }
  }
  std::fill(out, out + kSums * c, 0.0);
  for (int t = 0; t < slots; ++t)
    for (int64_t k = 0; k < kSums * c; ++k) out[k] += partial[static_cast<size_t>(t * kSums * c + k)];
}

}  // namespace

Kernel batchNormTrainLanesKernel(LaneShape sh, double epsilon, double momentum) {
  return [=](std::span<std::byte* const> args) {
    const float* x = asFloats(args[0]);
    const float* weight = asFloats(args[1]);
    const float* bias = asFloats(args[2]);
    const float* runMean = asFloats(args[3]);
    const float* runVar = asFloats(args[4]);
    float* y = asFloats(args[5]);
    float* mean = asFloats(args[6]);
    float* var = asFloats(args[7]);
    float* newMean = asFloats(args[8]);
    float* newVar = asFloats(args[9]);
    const int64_t c = sh.blocks * sh.block, b = sh.block;
    const double count = static_cast<double>(sh.rows * b / c);
    // One pass of shifted sums (shift: the channel's first value, so the squares do not
    // cancel): sums[0, c) = sum (x - k), sums[c, 2c) = sum (x - k)^2.
    std::vector<double> partial, sums(static_cast<size_t>(2 * c)), k(static_cast<size_t>(c));
    for (int64_t cb = 0; cb < sh.blocks; ++cb)
      for (int64_t j = 0; j < b; ++j) k[static_cast<size_t>(cb * b + j)] = x[cb * sh.inner * b + j];
    const double* kp = k.data();
    laneSums<2>(sh, partial, sums.data(), [&](int64_t r, double* s1, double* s2) {
      const float* row = x + r * b;
      const int64_t ch = ((r / sh.inner) % sh.blocks) * b;
#pragma omp simd
      for (int64_t j = 0; j < b; ++j) {
        const double d = row[j] - kp[ch + j];
        s1[j] += d;
        s2[j] += d * d;
      }
    });
    std::vector<double> m(static_cast<size_t>(c));
    for (int64_t j = 0; j < c; ++j) {
      const size_t u = static_cast<size_t>(j), v = u + static_cast<size_t>(c);
      m[u] = k[u] + sums[u] / count;
      // sum (x - mean)^2 = sum (x - k)^2 - (sum (x - k))^2 / count
      sums[u] = std::max(0.0, sums[v] - sums[u] * sums[u] / count);
    }
    std::vector<float> fs(static_cast<size_t>(c)), fb(static_cast<size_t>(c));
    for (int64_t j = 0; j < c; ++j) {
      const size_t u = static_cast<size_t>(j);
      const double biased = sums[u] / count;
      const double scale = static_cast<double>(weight[j]) / std::sqrt(biased + epsilon);
      fs[u] = static_cast<float>(scale);
      fb[u] = static_cast<float>(bias[j] - m[u] * scale);
      mean[j] = static_cast<float>(m[u]);
      var[j] = static_cast<float>(biased);
      newMean[j] = static_cast<float>((1 - momentum) * runMean[j] + momentum * m[u]);
      newVar[j] = static_cast<float>((1 - momentum) * runVar[j] + momentum * sums[u] / (count - 1));
    }
    const float* fsp = fs.data();
    const float* fbp = fb.data();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < sh.rows; ++r) {
      const int64_t ch = ((r / sh.inner) % sh.blocks) * b;
      const float* row = x + r * b;
      float* out = y + r * b;
#pragma omp simd
      for (int64_t j = 0; j < b; ++j) out[j] = row[j] * fsp[ch + j] + fbp[ch + j];
    }
  };
}

Kernel batchNormBackwardLanesKernel(LaneShape sh, double epsilon) {
  return [=](std::span<std::byte* const> args) {
    const float* dy = asFloats(args[0]);
    const float* x = asFloats(args[1]);
    const float* weight = asFloats(args[2]);
    const float* mean = asFloats(args[3]);
    const float* var = asFloats(args[4]);
    float* dx = asFloats(args[5]);
    float* dweight = asFloats(args[6]);
    float* dbias = asFloats(args[7]);
    const int64_t c = sh.blocks * sh.block, b = sh.block;
    const double count = static_cast<double>(sh.rows * b / c);
    // sums[0, c): sum dy; sums[c, 2c): sum dy (x - mean)
    std::vector<double> partial, sums(static_cast<size_t>(2 * c));
    laneSums<2>(sh, partial, sums.data(), [&](int64_t r, double* sDy, double* sDyXc) {
      const int64_t ch = ((r / sh.inner) % sh.blocks) * b;
      const float* g = dy + r * b;
      const float* row = x + r * b;
#pragma omp simd
      for (int64_t j = 0; j < b; ++j) {
        sDy[j] += g[j];
        sDyXc[j] += static_cast<double>(g[j]) * (row[j] - mean[ch + j]);
      }
    });
    std::vector<float> fa(static_cast<size_t>(c)), fb(static_cast<size_t>(c)),
        fc(static_cast<size_t>(c));
    for (int64_t j = 0; j < c; ++j) {
      const size_t u = static_cast<size_t>(j);
      const double invstd = 1.0 / std::sqrt(static_cast<double>(var[j]) + epsilon);
      const double sumDy = sums[u], sumDyXhat = sums[u + static_cast<size_t>(c)] * invstd;
      const double k0 = weight[j] * invstd;
      fa[u] = static_cast<float>(k0);
      fb[u] = static_cast<float>(k0 * sumDy / count);
      fc[u] = static_cast<float>(k0 * invstd * sumDyXhat / count);
      dweight[j] = static_cast<float>(sumDyXhat);
      dbias[j] = static_cast<float>(sumDy);
    }
    const float *pa = fa.data(), *pb = fb.data(), *pc = fc.data();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < sh.rows; ++r) {
      const int64_t ch = ((r / sh.inner) % sh.blocks) * b;
      const float* g = dy + r * b;
      const float* row = x + r * b;
      float* out = dx + r * b;
#pragma omp simd
      for (int64_t j = 0; j < b; ++j)
        out[j] = pa[ch + j] * g[j] - pb[ch + j] - pc[ch + j] * (row[j] - mean[ch + j]);
    }
  };
}

Kernel copyKernel(int64_t bytes) {
  return [bytes](std::span<std::byte* const> args) {
    if (args[0] != args[1]) std::memcpy(args[1], args[0], static_cast<size_t>(bytes));
  };
}

}  // namespace kiln::backends::onednn
