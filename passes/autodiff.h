// autodiff: reverse-mode differentiation over the IR, and the train step built with it
// (forward in training mode, loss, backward, SGD update) as one graph.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "ir/module.h"
#include "ir/status.h"

namespace kiln::passes {

/// A value and the gradient flowing into it (same dtype and shape).
struct GradSeed {
  ir::Value* value;
  ir::Value* grad;
};

/// Appends to `graph` the backward pass of L = sum over seeds of <value, grad> and returns
/// dL/dv for each v of `wrt` (null when no gradient reaches it). Each node on a path from
/// `wrt` to a seed is differentiated by its op's gradient rule (ir/grad_rules.h), in reverse
/// graph order; a value read by several nodes gets the sum of their contributions (`add`).
/// Nodes whose op has no rule, or whose rule cannot handle them, are reported all at once:
///   autodiff: 2 nodes on the path to the loss have no gradient:
///     no gradient for op batch_norm at m.kir:5:3 (%3: the op has no gradient rule)
///     no gradient for op slice at m.kir:7:3 (step 2 on axis 3: only step 1 is differentiable)
/// New nodes carry the location of the node they differentiate. On error the graph may hold
/// some backward nodes already (buildTrainStep works on a copy).
Expected<std::vector<ir::Value*>> appendGradients(ir::Graph& graph, std::span<const GradSeed> seeds,
                                                  std::span<ir::Value* const> wrt);

/// The optimizer a train step applies. Only Sgd is built so far; buildTrainStep refuses the
/// others (and clipGradNorm, emaDecay, accumulation) with an error naming them.
enum class Optimizer { Sgd, RmsPropTf, RmsProp, AdamW };

struct TrainStepOptions {
  /// PyTorch's cross_entropy label_smoothing.
  double labelSmoothing = 0.0;
  /// Labels are probabilities [N, K] (mixup / cutmix targets) instead of class ids i64[N].
  bool softTargets = false;
  /// torch.optim.SGD (dampening 0). momentum 0 keeps no momentum buffers.
  double momentum = 0.9;
  double weightDecay = 0.0;
  bool nesterov = false;
  /// No weight decay for rank-1 params (BN weights and biases, conv/linear biases).
  bool noDecayOnBnAndBias = false;
  /// batch_norm_train's running-statistics momentum (PyTorch's 0.1).
  double bnMomentum = 0.1;
  /// Adds the output `correct` (count_correct of the logits).
  bool countCorrect = true;
  /// Adds one output `grad:<param>` per param (tests, debugging).
  bool outputGradients = false;
  Optimizer optimizer = Optimizer::Sgd;
  /// RMSProp's smoothing constant and epsilon (TF's defaults for RmsPropTf).
  double rmsAlpha = 0.9, eps = 1e-3;
  /// AdamW's moment decay rates.
  double beta1 = 0.9, beta2 = 0.999;
  /// Clip the global gradient norm to this (0: no clipping).
  double clipGradNorm = 0;
  /// Keep an exponential moving average of the weights with this decay (0: none).
  double emaDecay = 0;
  /// Gradient accumulation over accumSteps micro-batches: Accumulate adds the gradients into
  /// buffers, Apply adds the last and updates.
  enum class Accum { None, Accumulate, Apply } accum = Accum::None;
  int accumSteps = 1;
};

/// Output names of a train step: `new:<weight>` replaces that weight in the store,
/// `grad:<param>` is a gradient.
inline constexpr std::string_view kNewPrefix = "new:";
inline constexpr std::string_view kGradPrefix = "grad:";

/// The train step of a forward module whose one output is logits [N, K]:
///  - inputs: the forward inputs, then `labels` (i64[N], or [N, K] with softTargets),
///    `lr` (a scalar of the logits' dtype: schedules need no new graph) and, when the graph
///    has dropout or drop_path, `seed` (i64[]: new masks each step);
///  - batch_norm becomes batch_norm_train; dropout and drop_path get training=true, a
///    distinct `seed` attribute each and the `seed` input;
///  - loss = softmax_cross_entropy(logits, labels), differentiated by appendGradients with
///    respect to every param; each param with a gradient gets an sgd_update (params no
///    gradient reaches are left alone, as torch skips params without .grad);
///  - momentum > 0 adds a buffer `<param>.momentum_buffer` per updated param; the store
///    gets zeros for it when it holds the param (a zero buffer makes torch's first step);
///  - outputs: `loss`, `correct` (countCorrect), then `new:<name>` for every param, BN
///    running statistic and momentum buffer the step updates, in declaration order, then
///    `grad:<param>` (outputGradients).
/// The store is the forward store plus the momentum buffers.
Expected<ir::Module> buildTrainStep(const ir::Module& forward, const TrainStepOptions& options);

/// Writes a train step's `new:<name>` outputs (as returned by a backend run, in output
/// order) into `store[name]`; checks each against the declared type of `name`.
Status applyStateUpdates(const ir::Graph& trainStep, std::span<const ir::Tensor> outputs,
                         ir::WeightStore& store);

}  // namespace kiln::passes
