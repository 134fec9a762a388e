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
// whole models vs PyTorch: |a - b| <= 1e-4 * max(1, max|b|)
inline double modelTolerance(double maxAbsRef) { return 1e-4 * std::max(1.0, maxAbsRef); }

}  // namespace kiln::testing
