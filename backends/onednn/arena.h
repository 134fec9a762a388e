// Internal to the oneDNN backend: a greedy first-fit offset allocator for the activation arena.
// Plans walk the nodes in order, allocating results and temporaries and releasing buffers
// after their last use; the arena's size is the high-water mark.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>

namespace kiln::backends::onednn {

class FirstFitArena {
 public:
  static constexpr int64_t kAlignment = 64;

  /// The lowest free offset where `bytes` (rounded up to kAlignment) fit; grows the arena
  /// when no gap is large enough.
  int64_t allocate(int64_t bytes);
  /// Returns a block from allocate (same `bytes`); neighbouring free blocks merge.
  void release(int64_t offset, int64_t bytes);
  int64_t size() const { return size_; }

  static int64_t rounded(int64_t bytes) {
    return (std::max<int64_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  }

 private:
  std::map<int64_t, int64_t> free_;  // offset -> bytes, disjoint and not adjacent
  int64_t size_ = 0;
};

}  // namespace kiln::backends::onednn
