// Checks shared by the shape rules (internal to ir/).
#pragma once

#include <string>

#include "ir/ops.h"
#include "ir/status.h"

namespace kiln::ir::rules {

Status expectRank(const OpContext& c, size_t i, size_t rank);
Status expectSameDType(const OpContext& c);
Status expectFloat(const OpContext& c, size_t i);
/// The first operand's layout when ranks agree, else the default layout of `rank`.
Layout layoutLike(const OpContext& c, size_t rank);
std::string dimStr(Dim d);

}  // namespace kiln::ir::rules
