// Learning-rate schedules evaluated per iteration: constant, step, multistep and cosine, each
// optionally after a linear warmup. The values are PyTorch's LambdaLR closed forms, computed
// in double with the same operations in the same order, so they equal torch's bit for bit.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace kiln::runtime {

enum class ScheduleKind { Constant, Step, MultiStep, Cosine };

std::string_view scheduleName(ScheduleKind k);
std::optional<ScheduleKind> parseSchedule(std::string_view name);

/// Every length is in iterations (the trainer converts epochs with its batches per epoch).
struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::Cosine;
  double baseLr = 0.1;
  /// Iterations of linear warmup: lr = base · (it + 1) / warmup for it < warmup (torch's
  /// LinearLR(start_factor = 1 / warmup, total_iters = warmup - 1)); the main schedule then
  /// starts at its own iteration 0.
  int64_t warmup = 0;
  /// Iterations of the whole run, warmup included (cosine reaches 0 here).
  int64_t total = 1;
  /// Step: lr = base · gamma^⌊t / stepSize⌋ (StepLR).
  int64_t stepSize = 1;
  /// MultiStep: lr = base · gamma^(number of milestones ≤ t) (MultiStepLR), sorted.
  std::vector<int64_t> milestones;
  double gamma = 0.1;
};

/// The learning rate of iteration `it` (0-based, counted over the whole run):
///  - warmup (it < warmup): base · ((it + 1) / warmup)
///  - then with t = it − warmup, T = total − warmup:
///    constant: base · 1;  step: base · gamma^⌊t / stepSize⌋;
///    multistep: base · gamma^bisect_right(milestones, t);
///    cosine: base · (0.5 · (1 + cos(π · t / T))) (CosineAnnealingLR, eta_min 0; t ≥ T: 0).
double learningRate(const ScheduleOptions& o, int64_t it);

}  // namespace kiln::runtime
