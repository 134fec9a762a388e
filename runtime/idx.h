// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed: a 4-byte magic
// (0, 0, dtype, rank), `rank` big-endian u32 dimensions, then the row-major data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/status.h"

namespace kiln::runtime {

/// An IDX array of unsigned bytes (dtype 0x08, the only one MNIST-style data sets use).
struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // product(dims) bytes, row-major
};

/// Largest decompressed IDX file accepted (a gzip bomb is an error, not an out-of-memory).
inline constexpr int64_t kMaxIdxBytes = int64_t{1} << 32;

/// Parses IDX bytes (gzip-compressed when they start with the gzip signature 1f 8b).
/// Checks the magic, the dtype (0x08 only), rank 1..4, dimensions against the data size
/// (truncated data and trailing bytes are errors); `what` names the file in messages.
Expected<IdxArray> parseIdx(std::span<const std::byte> bytes, std::string_view what);

/// Reads and parses the IDX file at `path` (see parseIdx).
Expected<IdxArray> readIdx(const std::string& path);

/// Decompresses a gzip stream (one or more members); `what` names it in messages.
Expected<std::vector<std::byte>> gunzip(std::span<const std::byte> bytes, std::string_view what,
                                        int64_t maxBytes = kMaxIdxBytes);

}  // namespace kiln::runtime
