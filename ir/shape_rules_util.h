// Checks shared by the shape rules (internal to ir/).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ir/ops.h"
#include "ir/status.h"

namespace kiln::ir::rules {

Status expectRank(const OpContext& c, size_t i, size_t rank);
Status expectSameDType(const OpContext& c);
Status expectFloat(const OpContext& c, size_t i);
/// The first operand's layout when ranks agree, else the default layout of `rank`.
Layout layoutLike(const OpContext& c, size_t rank);
std::string dimStr(Dim d);

// ---- limits (ir/types.h): rules never form a dim by int64 arithmetic that can overflow ----
/// An integer attribute a rule computes dims from: min <= v <= kMaxDim, else an error naming
/// the op and the attribute ("conv2d: pad 9223372036854775807 exceeds the limit 2^40").
Status checkAttr(const OpContext& c, std::string_view attr, int64_t v, int64_t min);
Status checkAttrs(const OpContext& c, std::string_view attr, std::span<const int64_t> vs,
                  int64_t min);
/// A result shape within the limits ("pad: result dimension ... exceeds the limit 2^40").
Status checkResult(const OpContext& c, const Shape& y);
/// The error for a result dim whose arithmetic went past kMaxDim (or int64).
Status resultTooLarge(const OpContext& c, std::string_view what);
/// a + b and a * b of dims >= 0; nullopt when the result exceeds kMaxDim.
std::optional<int64_t> addDims(int64_t a, int64_t b);
std::optional<int64_t> mulDims(int64_t a, int64_t b);
/// The product of dims >= 0 (0 if any is 0); nullopt when it exceeds kMaxDim.
std::optional<int64_t> productOfDims(std::span<const int64_t> dims);

/// PyTorch's pooling output size along one dim (ceil_mode included); errors when the window
/// does not fit the padded input.
Expected<int64_t> pooledSize(const OpContext& c, int64_t in, int64_t k, int64_t s, int64_t padBegin,
                             int64_t padEnd, int64_t dilation, bool ceilMode);

}  // namespace kiln::ir::rules
