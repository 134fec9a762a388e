// Learning-rate schedules: torch's LambdaLR closed forms (lr = base_lr * lambda(it)).
#include "runtime/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace kiln::runtime {

std::string_view scheduleName(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::Constant:
      return "constant";
    case ScheduleKind::Step:
      return "step";
    case ScheduleKind::MultiStep:
      return "multistep";
    case ScheduleKind::Cosine:
      return "cosine";
  }
  return "?";
}

std::optional<ScheduleKind> parseSchedule(std::string_view name) {
  for (ScheduleKind k :
       {ScheduleKind::Constant, ScheduleKind::Step, ScheduleKind::MultiStep, ScheduleKind::Cosine})
    if (scheduleName(k) == name) return k;
  return std::nullopt;
}

namespace {

/// lambda(t) of the main schedule; the expressions are those of tests/runtime/torch_schedule.py
/// (Python floats are IEEE doubles and math.cos / ** are glibc's cos / pow), so the products
/// base_lr * lambda equal torch's LambdaLR values exactly.
double factor(const ScheduleOptions& o, int64_t t) {
  switch (o.kind) {
    case ScheduleKind::Constant:
      return 1.0;
    case ScheduleKind::Step: {
      const int64_t n = t / std::max<int64_t>(1, o.stepSize);
      return std::pow(o.gamma, static_cast<double>(n));
    }
    case ScheduleKind::MultiStep: {
      const auto n =
          std::upper_bound(o.milestones.begin(), o.milestones.end(), t) - o.milestones.begin();
      return std::pow(o.gamma, static_cast<double>(n));
    }
    case ScheduleKind::Cosine: {
      const int64_t len = std::max<int64_t>(1, o.total - o.warmup);
      if (t >= len) return 0.0;
      return 0.5 *
             (1.0 + std::cos(std::numbers::pi * static_cast<double>(t) / static_cast<double>(len)));
    }
  }
  return 1.0;
}

}  // namespace

double learningRate(const ScheduleOptions& o, int64_t it) {
  if (it < o.warmup)
    return o.baseLr * (static_cast<double>(it + 1) / static_cast<double>(o.warmup));
  return o.baseLr * factor(o, it - o.warmup);
}

}  // namespace kiln::runtime
