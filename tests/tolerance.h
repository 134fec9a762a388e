// tests/tolerance.h — the only place numeric tolerances are written down.
#pragma once

#include <algorithm>

namespace kiln::testing {

struct Tolerance {
  double atol, rtol;
};
inline constexpr Tolerance kExact{0, 0};            // reorder, copy, layout change
inline constexpr Tolerance kF32{1e-5, 1e-4};        // reassociated f32 (fold-bn, fusion)
inline constexpr Tolerance kGradCheck{1e-3, 1e-2};  // finite differences, f64
// Single ops vs PyTorch: same math, different summation order.
inline constexpr Tolerance kOpVsTorch{1e-5, 1e-4};
// Image preprocessing vs torchvision, after Normalize: the 8-bit pixels are identical (the
// test checks that separately) and ToTensor/Normalize is the same f32 arithmetic.
inline constexpr Tolerance kPreprocessVsTorchvision{1e-6, 0};
// whole models vs PyTorch: |a - b| <= 1e-4 * max(1, max|b|)
inline double modelTolerance(double maxAbsRef) {
  return 1e-4 * std::max(1.0, maxAbsRef);
}
// A train step on the oneDNN backend vs the reference backend, several steps: per tensor
// (loss, gradients, weights after the update) ||a - b||_2 / ||b||_2.
inline constexpr double kTrainStepVsReference = 1e-4;
// Training vs PyTorch (float32 kiln, float64 torch from the same start), per tensor relative
// L2 error (the loss: |a - b| <= tol * max(1, |b|)): the first step, and later steps, which
// carry the rounding of earlier updates through every batch-norm layer.
inline constexpr double kTrainAlignFirstStep = 1e-4;
inline constexpr double kTrainAlignLaterSteps = 5e-2;
// Gradients and momentum buffers at steps 2-3 of that run: chaotic (lr 0.1 on batch 2 through
// 20 BN layers over 8 values per channel in layer4), so float32 rounding of earlier steps
// moves some BN gradients by 10-25 %; this bound still catches a wrong gradient rule
// (relative error >= 1).
inline constexpr double kTrainAlignLaterGradients = 0.5;
// log-softmax of those logits (kiln predict's scores, logged): a logit error e moves each
// log-probability by at most 2e.
inline double logProbTolerance(double maxAbsLogit) {
  return 2 * modelTolerance(maxAbsLogit);
}

}  // namespace kiln::testing
