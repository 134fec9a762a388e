// IDX parsing and gzip decompression (zlib's inflate with gzip header detection).
#include "runtime/idx.h"

#include <fmt/ranges.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "ir/proto_io.h"

namespace kiln::runtime {

Expected<std::vector<std::byte>> gunzip(std::span<const std::byte> bytes, std::string_view what,
                                        int64_t maxBytes) {
  std::vector<std::byte> out;
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return error("{}: cannot start zlib", what);
  size_t pos = 0;
  int rc = Z_OK;
  std::string failure;
  while (true) {
    // zlib's counters are 32-bit: feed at most 1 GiB at a time.
    const size_t chunk = std::min<size_t>(bytes.size() - pos, size_t{1} << 30);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(bytes.data() + pos));
    zs.avail_in = static_cast<uInt>(chunk);
    const size_t before = out.size();
    out.resize(before + (size_t{1} << 20));
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + before);
    zs.avail_out = static_cast<uInt>(out.size() - before);
    rc = inflate(&zs, Z_NO_FLUSH);
    pos += chunk - zs.avail_in;
    out.resize(out.size() - zs.avail_out);
    if (static_cast<int64_t>(out.size()) > maxBytes) {
      failure = fmt::format("decompresses to more than {} bytes", maxBytes);
      break;
    }
    if (rc == Z_STREAM_END) {
      if (pos == bytes.size()) break;
      // Another gzip member follows (what `cat a.gz b.gz` makes; gzip -d reads them all).
      if (inflateReset(&zs) != Z_OK) {
        failure = "cannot reset zlib";
        break;
      }
      continue;
    }
    if (rc == Z_BUF_ERROR && pos == bytes.size()) {
      failure = "truncated gzip data";
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      failure = fmt::format("corrupt gzip data ({})", zs.msg ? zs.msg : "zlib error");
      break;
    }
  }
  inflateEnd(&zs);
  if (!failure.empty()) return error("{}: {}", what, failure);
  return out;
}

Expected<IdxArray> parseIdx(std::span<const std::byte> bytes, std::string_view what) {
  if (bytes.size() >= 2 && bytes[0] == std::byte{0x1f} && bytes[1] == std::byte{0x8b}) {
    KILN_ASSIGN_OR_RETURN(std::vector<std::byte> raw, gunzip(bytes, what));
    return parseIdx(raw, what);
  }
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  if (bytes.size() < 4)
    return error("{}: not an IDX file ({} bytes, shorter than the 4-byte magic)", what,
                 bytes.size());
  if (p[0] != 0 || p[1] != 0)
    return error(
        "{}: not an IDX file (magic {:02x} {:02x} {:02x} {:02x}, expected 00 00 08 <rank>)", what,
        p[0], p[1], p[2], p[3]);
  if (p[2] != 0x08)
    return error("{}: IDX data type 0x{:02x} is not supported (only 0x08, unsigned bytes)", what,
                 p[2]);
  const int rank = p[3];
  if (rank < 1 || rank > 4) return error("{}: IDX rank {} (expected 1 to 4)", what, rank);
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  if (bytes.size() < header)
    return error("{}: truncated IDX header ({} bytes, rank {} needs {})", what, bytes.size(), rank,
                 header);
  IdxArray a;
  int64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    const uint8_t* d = p + 4 + 4 * i;
    const int64_t dim = (int64_t{d[0]} << 24) | (int64_t{d[1]} << 16) | (int64_t{d[2]} << 8) | d[3];
    a.dims.push_back(dim);
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / dim)
      return error("{}: IDX dimensions overflow", what);
    count *= dim;
  }
  const auto available = static_cast<int64_t>(bytes.size() - header);
  if (available < count)
    return error("{}: truncated IDX data: dimensions {} need {} bytes, the file has {}", what,
                 fmt::join(a.dims, "x"), count, available);
  if (available > count)
    return error("{}: {} trailing bytes after the IDX data (dimensions {})", what,
                 available - count, fmt::join(a.dims, "x"));
  a.data.resize(static_cast<size_t>(count));
  if (count > 0) std::memcpy(a.data.data(), p + header, static_cast<size_t>(count));
  return a;
}

Expected<IdxArray> readIdx(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, ir::readFileBytes(path));
  return parseIdx(bytes, path);
}

}  // namespace kiln::runtime
