// Internal to the oneDNN backend: the small kernels of ours for what oneDNN lacks. Each
// builder checks and precomputes everything, so the returned kernel only loops over floats.
#pragma once

#include <cstdint>

#include "backends/onednn/lowering.h"

namespace kiln::backends::onednn {

/// args: {y}; y[0..count) = value.
Kernel fillKernel(int64_t count, float value);

/// args: {x, y}, row-major NCHW; PyTorch's adaptive windows [floor(i*in/out), ceil((i+1)*in/out)).
Kernel adaptiveAvgPoolKernel(const Dims& x, const Dims& y);

enum class BinaryOp : uint8_t { Add, Sub, Mul, Div };
/// args: {a, b, y}, row-major; numpy broadcasting of a and b (right-aligned) to y's dims.
Kernel broadcastBinaryKernel(BinaryOp op, const Dims& a, const Dims& b, const Dims& y);

/// args: {x, y}; y[i] = x[offset + sum_d index_d * strides[d]] over y's dims in row-major
/// order (strides may be negative: slices with negative steps).
Kernel stridedCopyKernel(const Dims& y, const Dims& strides, int64_t offset);

// ---- training (train steps from passes/autodiff), the reference backend's formulas ----

/// args: {x, [seed], y}, row-major; dropout (block 1) or drop_path (block = one sample) in
/// training: the reference backend's mask (mt19937_64 from the `seed` attribute, mixed with
/// the i64 seed operand when there is one), kept values scaled by 1 / (1 - p).
Kernel maskedDropoutKernel(int64_t count, int64_t block, double p, int64_t seedAttr,
                           bool seedOperand);

/// args: {running_mean, running_var, batch_mean, batch_var (biased), new_mean, new_var};
/// PyTorch's momentum rule with the unbiased variance (count values per channel). The new
/// statistics may share storage with the running ones.
Kernel runningStatsKernel(int64_t channels, int64_t count, double momentum);

/// args: {targets}; class ids (i64[n]) outside [0, k) fail the run with a message at `loc`.
Check classIdCheck(int64_t n, int64_t k, Loc loc, std::string op);

/// args: {logits [n,k], targets, loss [], scratch (2k doubles)}: mean cross entropy with label
/// smoothing; targets are i64 class ids (`ids`) or probabilities [n,k]. Accumulates in double.
Kernel softmaxCrossEntropyKernel(int64_t n, int64_t k, double smoothing, bool ids);
/// args: {dloss [], logits, targets, dlogits, scratch (2k doubles)}.
Kernel softmaxCrossEntropyBackwardKernel(int64_t n, int64_t k, double smoothing, bool ids);
/// args: {logits, targets, correct (i64 [])}: rows whose first arg-max is the target.
Kernel countCorrectKernel(int64_t n, int64_t k, bool ids);

/// args: {param, grad, lr [], [buffer], new param, [new buffer]}: torch.optim.SGD
/// (dampening 0) elementwise; the results may share storage with param and buffer.
Kernel sgdKernel(int64_t count, double momentum, double weightDecay, bool nesterov, bool buffer);

/// args: {param, grad, lr [], square_avg, [buffer], new param, new square_avg, [new buffer]}:
/// rmsprop_update (timm's RMSpropTF when `tf`, else torch.optim.RMSprop); the results may
/// share storage with the operands they replace.
Kernel rmsPropKernel(int64_t count, const ir::RmsPropAttrs& a, bool buffer);
/// args: {param, grad, lr [], exp_avg, exp_avg_sq, step [], new param, new exp_avg,
/// new exp_avg_sq}: torch.optim.AdamW (step: updates before this one); results may share
/// storage as above.
Kernel adamWKernel(int64_t count, const ir::AdamWAttrs& a);
/// args: {ema, x, new ema}: decay ema + (1 - decay) x; new ema may share ema's storage.
Kernel emaKernel(int64_t count, double decay);
/// args: {x_1, ..., x_n, y []}: y = sqrt(sum of x_i^2) over the counts[i] floats of each x_i,
/// accumulated in double.
Kernel globalNormKernel(std::vector<int64_t> counts);

/// args: {dy, x, dx}: dy * alpha where 0 < alpha x + beta < 1, else 0.
Kernel hardSigmoidBackwardKernel(int64_t count, double alpha, double beta);

/// args: {dy, dx}, row-major NCHW: average-pool backward with PyTorch's windows and divisors
/// (the case oneDNN's algorithms cannot express: counted padding and ceil_mode overhang).
Kernel avgPoolBackwardKernel(const Dims& dy, const Dims& dx, const ir::AvgPool2dBackwardAttrs& a);

/// args: {src, dst}; copies `bytes`.
Kernel copyKernel(int64_t bytes);

/// Row-major x viewed as [n, c, inner] (oneDNN's batch normalization on plain NCHW is a slow
/// scalar loop; these run a channel per thread with vectorized inner loops).
struct ChannelShape {
  int64_t n = 0, c = 0, inner = 0;
};

/// args: {x, weight, bias, running_mean, running_var, y, mean, var (biased), new_mean,
/// new_var}: batch_norm_train (two-pass statistics in double, PyTorch's running update).
Kernel batchNormTrainKernel(ChannelShape s, double epsilon, double momentum);

/// args: {dy, x, weight, mean, var, dx, dweight, dbias}; dx may share dy's storage.
Kernel batchNormBackwardKernel(ChannelShape s, double epsilon);

/// x in a layout that keeps channels in the innermost dim (nhwc, nChw8c, nChw16c): `rows`
/// rows of `block` consecutive channels; row r holds channels ((r / inner) % blocks) * block
/// + [0, block). nhwc: {N*H*W, 1, 1, C}; nChw16c: {N*(C/16)*H*W, C/16, H*W, 16}.
struct LaneShape {
  int64_t rows = 0, blocks = 0, inner = 0, block = 0;
};

/// batch_norm_train and batch_norm_backward (same args as the ChannelShape kernels) on a
/// LaneShape layout: per-thread per-channel partial sums in double over row ranges (the
/// statistics in one pass of sums shifted by each channel's first value), then one parallel
/// pass writing y (dx). In resnet20's train step at batch 128 on 2
/// threads oneDNN 2.6's bnorm_jit took 16 ms per batch_norm_train in nhwc, these 2.3
/// (docs/performance.md).
Kernel batchNormTrainLanesKernel(LaneShape s, double epsilon, double momentum);
Kernel batchNormBackwardLanesKernel(LaneShape s, double epsilon);

}  // namespace kiln::backends::onednn
