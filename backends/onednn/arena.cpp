// First-fit arena offsets.
#include "backends/onednn/arena.h"

#include <algorithm>

namespace kiln::backends::onednn {

int64_t FirstFitArena::allocate(int64_t bytes) {
  bytes = rounded(bytes);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    const auto [offset, size] = *it;
    if (size < bytes) {
      // The last gap may end at the arena's end: extend it instead of starting past it.
      if (offset + size == size_ && std::next(it) == free_.end()) {
        free_.erase(it);
        size_ = offset + bytes;
        return offset;
      }
      continue;
    }
    free_.erase(it);
    if (size > bytes) free_.emplace(offset + bytes, size - bytes);
    return offset;
  }
  const int64_t offset = size_;
  size_ += bytes;
  return offset;
}

void FirstFitArena::release(int64_t offset, int64_t bytes) {
  bytes = rounded(bytes);
  auto next = free_.lower_bound(offset);
  if (next != free_.end() && offset + bytes == next->first) {
    bytes += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      prev->second += bytes;
      return;
    }
  }
  free_.emplace(offset, bytes);
}

}  // namespace kiln::backends::onednn
