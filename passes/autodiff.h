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

/// The update a train step applies to each param (see TrainStepOptions for the hyper-parameters).
enum class Optimizer {
  /// torch.optim.SGD (dampening 0): momentum, nesterov, weightDecay.
  Sgd,
  /// timm's RMSpropTF, EfficientNet's optimizer: TensorFlow's order (square_avg += (1 - alpha)
  /// (g^2 - square_avg), starting at ones), eps inside the square root, the learning rate
  /// inside the momentum buffer (buf = momentum buf + lr g / sqrt(square_avg + eps); p -= buf).
  /// rmsAlpha, eps, momentum, weightDecay (added to the gradient).
  RmsPropTf,
  /// torch.optim.RMSprop, not centered: square_avg starts at zeros, eps outside the root.
  RmsProp,
  /// torch.optim.AdamW: beta1, beta2, eps, decoupled weightDecay, bias correction from the
  /// step count buffer `optimizer.step`.
  AdamW,
};

struct TrainStepOptions {
  /// PyTorch's cross_entropy label_smoothing.
  double labelSmoothing = 0.0;
  /// Labels are probabilities [N, K] (mixup / cutmix targets) instead of class ids i64[N].
  bool softTargets = false;
  /// torch.optim.SGD (dampening 0) and RMSProp's momentum. 0 keeps no momentum buffers.
  double momentum = 0.9;
  double weightDecay = 0.0;
  bool nesterov = false;  // SGD only
  /// No weight decay for rank-1 params (BN weights and biases, conv/linear biases).
  bool noDecayOnBnAndBias = false;
  /// batch_norm_train's running-statistics momentum (PyTorch's 0.1).
  double bnMomentum = 0.1;
  /// Adds the output `correct` (count_correct of the logits).
  bool countCorrect = true;
  /// Adds one output `grad:<param>` per param (tests, debugging): the gradient of this step's
  /// loss, before accumulation and clipping.
  bool outputGradients = false;

  Optimizer optimizer = Optimizer::Sgd;
  /// RMSProp's decay and eps (timm/EfficientNet: 0.9 and 1e-3; torch.optim.RMSprop's defaults
  /// are 0.99 and 1e-8). AdamW reads `eps` too: set it to 1e-8, torch.optim.AdamW's default.
  double rmsAlpha = 0.9, eps = 1e-3;
  /// AdamW's moment decays (torch's defaults).
  double beta1 = 0.9, beta2 = 0.999;
  /// torch.nn.utils.clip_grad_norm_(max_norm = clipGradNorm) before the update: the L2 norm
  /// of all gradients together (output `grad_norm`), each gradient scaled by
  /// min(1, max_norm / (norm + 1e-6)). 0: off.
  double clipGradNorm = 0;
  /// timm's ModelEmaV2 after the update: `<name>.ema` = decay * ema + (1 - decay) * new value
  /// for every float weight of the forward graph (params and BN running statistics). 0: off.
  double emaDecay = 0;
  /// Gradient accumulation over accumSteps micro-batches (`kiln train --accum K`):
  ///  - None: one step updates the params (accumSteps must be 1);
  ///  - Accumulate: `<param>.grad_acc` += the gradient; no update, clipping or EMA (the
  ///    optimizer options are ignored);
  ///  - Apply: g = (`<param>.grad_acc` + the gradient) / accumSteps, then clipping, the update
  ///    and EMA as in None; the accumulators are set to zero.
  /// Run Accumulate on micro-batches 1..K-1 and Apply on micro-batch K: for a model without
  /// batch norm that is one step on the K micro-batches together (losses are batch means).
  /// Both graphs bind the same store: use the Apply step's, a superset of the Accumulate's.
  enum class Accum { None, Accumulate, Apply } accum = Accum::None;
  int accumSteps = 1;
};

/// Output names of a train step: `new:<weight>` replaces that weight in the store,
/// `grad:<param>` is a gradient.
inline constexpr std::string_view kNewPrefix = "new:";
inline constexpr std::string_view kGradPrefix = "grad:";
/// The output with the gradients' global L2 norm before clipping (clipGradNorm > 0).
inline constexpr std::string_view kGradNormOutput = "grad_norm";
/// AdamW's step count: a scalar buffer of the logits' dtype, the number of updates done
/// (torch keeps it per param, as a float tensor; all params here update together).
inline constexpr std::string_view kStepBuffer = "optimizer.step";
/// Suffixes of the per-weight state buffers (`<param><suffix>`), torch's optimizer state
/// names where there is one.
inline constexpr std::string_view kMomentumSuffix = ".momentum_buffer";
inline constexpr std::string_view kSquareAvgSuffix = ".square_avg";
inline constexpr std::string_view kExpAvgSuffix = ".exp_avg";
inline constexpr std::string_view kExpAvgSqSuffix = ".exp_avg_sq";
inline constexpr std::string_view kEmaSuffix = ".ema";
inline constexpr std::string_view kGradAccSuffix = ".grad_acc";

/// The train step of a forward module whose one output is logits [N, K]:
///  - inputs: the forward inputs, then `labels` (i64[N], or [N, K] with softTargets),
///    `lr` (a scalar of the logits' dtype: schedules need no new graph; the Accumulate step
///    has it too, unused, so that every step takes the same inputs) and, when the graph
///    has dropout or drop_path, `seed` (i64[]: new masks each step). No other input: all
///    optimizer state lives in buffers of the store;
///  - batch_norm becomes batch_norm_train; dropout and drop_path get training=true, a
///    distinct `seed` attribute each and the `seed` input;
///  - loss = softmax_cross_entropy(logits, labels), differentiated by appendGradients with
///    respect to every param; params no gradient reaches are left alone (as torch skips
///    params without .grad);
///  - accumulation (options.accum): `<param>.grad_acc` buffers, see TrainStepOptions;
///  - clipping (clipGradNorm > 0): global_norm of all gradients (output `grad_norm`), then
///    each gradient times clip(max_norm / (norm + 1e-6), 0, 1);
///  - the update, one node per param: sgd_update (buffer `<param>.momentum_buffer` when
///    momentum > 0), rmsprop_update (`<param>.square_avg`, and `<param>.momentum_buffer` when
///    momentum > 0) or adamw_update (`<param>.exp_avg`, `<param>.exp_avg_sq` and the shared
///    scalar `optimizer.step`, incremented by one `add` per step, so a resumed run continues
///    the bias correction exactly). Rank-1 params get no weight decay with
///    noDecayOnBnAndBias;
///  - EMA (emaDecay > 0): ema_update of `<name>.ema` for every float weight of the forward
///    graph, from its value after the step;
///  - the store gets the initial state of each new buffer when it holds the weight it
///    belongs to: zeros (momentum, exp_avg(_sq), grad_acc, optimizer.step; torch's square_avg),
///    ones (RMSpropTF's square_avg), a copy of the weight (ema, as ModelEmaV2 copies the model);
///  - outputs: `loss`, `correct` (countCorrect), `grad_norm` (clipping), then `new:<name>`
///    for every param, BN running statistic and buffer the step updates, in declaration
///    order (forward weights, then the `grad_acc` accumulators, `optimizer.step`, the
///    per-param optimizer buffers, the EMA buffers), then `grad:<param>` (outputGradients).
/// The store is the forward store plus the new buffers.
Expected<ir::Module> buildTrainStep(const ir::Module& forward, const TrainStepOptions& options);

/// Writes a train step's `new:<name>` outputs (as returned by a backend run, in output
/// order) into `store[name]`; checks each against the declared type of `name`.
Status applyStateUpdates(const ir::Graph& trainStep, std::span<const ir::Tensor> outputs,
                         ir::WeightStore& store);

}  // namespace kiln::passes
