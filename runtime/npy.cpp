// NumPy `.npy` / `.npz` reading and writing (format spec: numpy/lib/format.py). The zip
// container is libzip's; everything inside a member is parsed here.
#include "runtime/npy.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>

#include "ir/proto_io.h"

namespace kiln::runtime {

using ir::DType;
using ir::Tensor;

namespace {

constexpr std::array<unsigned char, 6> kMagic = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr size_t kMaxRank = 5;

// The dtypes kiln reads and writes, as numpy spells them when writing.
struct NpyDType {
  DType dtype;
  std::string_view descr;
};
constexpr NpyDType kNpyDTypes[] = {{DType::F32, "<f4"}, {DType::F64, "<f8"}, {DType::F16, "<f2"},
                                   {DType::I64, "<i8"}, {DType::I32, "<i4"}, {DType::I8, "|i1"},
                                   {DType::U8, "|u1"},  {DType::Bool, "|b1"}};

// ---- the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } ----

struct NpyHeader {
  DType dtype = DType::F32;
  size_t itemSize = 4;
  bool byteSwap = false;  // the data is big-endian
  bool fortranOrder = false;
  std::vector<int64_t> shape;
};

// A parser for the one Python literal numpy writes; numpy reads it with ast.literal_eval,
// so this accepts either quote style, 'L'-suffixed ints (Python 2) and trailing commas.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::string_view what) : s_(text), what_(what) {}

  Expected<NpyHeader> parse() {
    NpyHeader h;
    bool haveDescr = false, haveOrder = false, haveShape = false;
    skipSpace();
    if (!eat('{')) return fail("expected '{' at the start of the header");
    while (true) {
      skipSpace();
      if (eat('}')) break;
      KILN_ASSIGN_OR_RETURN(std::string key, parseString("a dict key"));
      skipSpace();
      if (!eat(':')) return fail(fmt::format("expected ':' after key '{}'", key));
      skipSpace();
      if (key == "descr") {
        if (peek() == '[' || peek() == '{')
          return err("structured dtypes (a list or dict descr) are not supported");
        KILN_ASSIGN_OR_RETURN(std::string descr, parseString("the 'descr' string"));
        KILN_TRY(setDType(h, descr));
        haveDescr = true;
      } else if (key == "fortran_order") {
        KILN_ASSIGN_OR_RETURN(h.fortranOrder, parseBool());
        haveOrder = true;
      } else if (key == "shape") {
        KILN_ASSIGN_OR_RETURN(h.shape, parseShape());
        haveShape = true;
      } else {
        return fail(fmt::format("unexpected key '{}' (expected descr, fortran_order, shape)", key));
      }
      skipSpace();
      if (eat(',')) continue;
      skipSpace();
      if (!eat('}')) return fail("expected ',' or '}' in the header dict");
      break;
    }
    skipSpace();
    if (pos_ != s_.size()) return fail("unexpected text after the header dict");
    if (!haveDescr || !haveOrder || !haveShape)
      return err("the header dict lacks one of 'descr', 'fortran_order', 'shape'");
    return h;
  }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool eat(char c) {
    if (peek() != c || pos_ >= s_.size()) return false;
    ++pos_;
    return true;
  }
  void skipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  Status err(std::string_view msg) const {
    return error("{}: malformed npy header: {}", what_, msg);
  }
  Status fail(std::string_view msg) const {
    return error("{}: malformed npy header: {} at offset {}", what_, msg, pos_);
  }

  Expected<std::string> parseString(std::string_view expected) {
    char quote = peek();
    if (quote != '\'' && quote != '"') return fail(fmt::format("expected {}", expected));
    ++pos_;
    size_t end = s_.find(quote, pos_);
    if (end == std::string_view::npos) return fail("unterminated string");
    std::string out(s_.substr(pos_, end - pos_));
    if (out.find('\\') != std::string::npos) return fail("escapes in strings are not supported");
    pos_ = end + 1;
    return out;
  }

  Expected<bool> parseBool() {
    if (s_.substr(pos_, 4) == "True") {
      pos_ += 4;
      return true;
    }
    if (s_.substr(pos_, 5) == "False") {
      pos_ += 5;
      return false;
    }
    return fail("expected True or False for 'fortran_order'");
  }

  Expected<std::vector<int64_t>> parseShape() {
    std::vector<int64_t> dims;
    if (!eat('(')) return fail("expected a tuple for 'shape'");
    while (true) {
      skipSpace();
      if (eat(')')) return dims;
      if (peek() < '0' || peek() > '9') return fail("expected a non-negative integer in 'shape'");
      int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        int digit = peek() - '0';
        if (v > (std::numeric_limits<int64_t>::max() - digit) / 10)
          return fail("dimension too large in 'shape'");
        v = v * 10 + digit;
        ++pos_;
      }
      eat('L');
      dims.push_back(v);
      if (dims.size() > 64) return fail("too many dimensions in 'shape'");
      skipSpace();
      if (eat(',')) continue;
      skipSpace();
      if (!eat(')')) return fail("expected ',' or ')' in 'shape'");
      return dims;
    }
  }

  Status setDType(NpyHeader& h, std::string_view descr) const {
    std::string_view type = descr;
    char order = '=';
    if (!type.empty() && (type[0] == '<' || type[0] == '>' || type[0] == '|' || type[0] == '=')) {
      order = type[0];
      type.remove_prefix(1);
    }
    for (const NpyDType& k : kNpyDTypes) {
      if (k.descr.substr(1) != type) continue;
      h.dtype = k.dtype;
      h.itemSize = ir::dtypeSize(k.dtype);
      h.byteSwap = order == '>' && h.itemSize > 1;
      return Status::ok();
    }
    return error("{}: unsupported npy dtype '{}' (kiln reads <f4 <f8 <f2 <i8 <i4 |i1 |u1 |b1)",
                 what_, descr);
  }

  std::string_view s_;
  std::string_view what_;
  size_t pos_ = 0;
};

uint64_t readLE(const std::byte* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

std::optional<int64_t> checkedNumElements(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return std::nullopt;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return std::nullopt;
    n *= d;
  }
  return n;
}

void byteSwapInPlace(std::byte* data, size_t count, size_t itemSize) {
  for (size_t i = 0; i < count; ++i) std::reverse(data + i * itemSize, data + (i + 1) * itemSize);
}

// Copies the elements of a `dims` array into row-major order. Logical dim k of element idx
// sits at `stride[k] * idx[k]` in `src`, or, for the blocked dim, at
// `stride[k] * (idx[k] / blockSize) + idx[k] % blockSize` (the block is innermost).
void gatherRowMajor(const std::byte* src, std::byte* dst, const std::vector<int64_t>& dims,
                    const std::vector<int64_t>& stride, size_t itemSize, int blockDim = -1,
                    int64_t blockSize = 1) {
  size_t rank = dims.size();
  std::vector<int64_t> idx(rank, 0);
  int64_t count = checkedNumElements(dims).value_or(0);
  for (int64_t i = 0; i < count; ++i) {
    int64_t off = 0;
    for (size_t k = 0; k < rank; ++k)
      off += static_cast<int>(k) == blockDim ? idx[k] / blockSize * stride[k] + idx[k] % blockSize
                                             : idx[k] * stride[k];
    std::memcpy(dst + i * itemSize, src + off * itemSize, itemSize);
    for (size_t k = rank; k-- > 0;) {
      if (++idx[k] < dims[k]) break;
      idx[k] = 0;
    }
  }
}

// ---- writing ----

std::string_view npyDescr(DType t) {
  if (t == DType::BF16) return "<f4";  // widened on write
  for (const NpyDType& k : kNpyDTypes)
    if (k.dtype == t) return k.descr;
  return "";
}

// A tensor as npy: the header, and the data in logical row-major order (pointing into the
// tensor when no conversion was needed, else into `converted`).
struct NpyParts {
  std::vector<std::byte> header;
  std::vector<std::byte> converted;
  std::span<const std::byte> data;
};

std::vector<std::byte> makeHeader(DType dtype, const ir::Shape& shape) {
  std::string dims;
  for (size_t i = 0; i < shape.rank(); ++i) dims += fmt::format("{}, ", shape[i]);
  if (shape.rank() > 1)
    dims.resize(dims.size() - 2);  // (3,) but (2, 3)
  else if (shape.rank() == 1)
    dims.resize(dims.size() - 1);
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}",
                                 npyDescr(dtype), dims);
  size_t preamble = dict.size() + 1 < 65536 - 10 ? 10 : 12;
  size_t total = preamble + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::vector<std::byte> out(preamble + dict.size());
  std::memcpy(out.data(), kMagic.data(), kMagic.size());
  out[6] = std::byte{static_cast<unsigned char>(preamble == 10 ? 1 : 2)};
  out[7] = std::byte{0};
  uint64_t len = dict.size();
  for (size_t i = 0; i < preamble - 8; ++i)
    out[8 + i] = std::byte{static_cast<unsigned char>(len >> (8 * i))};
  std::memcpy(out.data() + preamble, dict.data(), dict.size());
  return out;
}

// Gathers a tensor stored in a permuted or blocked layout into logical row-major order.
Expected<std::vector<std::byte>> toRowMajor(const Tensor& t) {
  const ir::Shape& shape = t.shape();
  size_t rank = shape.rank();
  std::span<const int> order = ir::layoutOrder(t.layout());
  auto [blockDim, blockSize] = ir::layoutBlock(t.layout());
  if (order.size() != rank)
    return error("tensor of shape {} has layout '{}' of another rank", shape.str(),
                 ir::layoutName(t.layout()));
  // Physical dims, outermost first; a blocked dim becomes outer blocks here and the block
  // innermost.
  std::vector<int64_t> phys;
  for (int k : order)
    phys.push_back(k == blockDim ? (shape[k] + blockSize - 1) / blockSize : shape[k]);
  if (blockDim >= 0) phys.push_back(blockSize);
  std::vector<int64_t> physStride(phys.size());
  int64_t physCount = 1;
  for (size_t i = phys.size(); i-- > 0;) {
    physStride[i] = physCount;
    physCount *= phys[i];
  }
  if (physCount > t.numElements())
    return error("tensor of shape {} in layout '{}' does not fill whole blocks of {}", shape.str(),
                 ir::layoutName(t.layout()), blockSize);
  std::vector<int64_t> strideOf(rank);  // stride of logical dim k (the outer part if blocked)
  for (size_t i = 0; i < order.size(); ++i) strideOf[order[i]] = physStride[i];
  size_t itemSize = ir::dtypeSize(t.dtype());
  std::vector<std::byte> out(t.nbytes());
  gatherRowMajor(t.raw(), out.data(), shape.dims(), strideOf, itemSize, blockDim, blockSize);
  return out;
}

Expected<NpyParts> npyParts(const Tensor& t) {
  if (!t.shape().isStatic() || t.shape().numElements() != t.numElements() ||
      (t.raw() == nullptr && t.nbytes() != 0))
    return error("cannot write a tensor without data (shape {})", t.shape().str());
  NpyParts parts;
  parts.header = makeHeader(t.dtype(), t.shape());
  parts.data = std::span<const std::byte>(t.raw(), t.nbytes());
  if (!ir::isRowMajor(t.layout())) {
    KILN_ASSIGN_OR_RETURN(parts.converted, toRowMajor(t));
    parts.data = parts.converted;
  }
  if (t.dtype() == DType::BF16) {
    std::vector<std::byte> wide(parts.data.size() * 2);
    for (size_t i = 0; i < parts.data.size() / 2; ++i) {
      // bf16 is the top half of an f32: little-endian, its two bytes go to bytes 2..3.
      wide[4 * i + 2] = parts.data[2 * i];
      wide[4 * i + 3] = parts.data[2 * i + 1];
    }
    parts.converted = std::move(wide);
    parts.data = parts.converted;
  }
  return parts;
}

// ---- zip ----

std::string zipMessage(zip_error_t* e) {
  return zip_error_strerror(e);
}

bool looksLikeNpy(std::span<const std::byte> head) {
  return head.size() >= kMagic.size() &&
         std::memcmp(head.data(), kMagic.data(), kMagic.size()) == 0;
}

Expected<std::vector<std::byte>> readMember(zip_t* za, zip_uint64_t i, const zip_stat_t& st,
                                            std::string_view what) {
  zip_file_t* zf = zip_fopen_index(za, i, 0);
  if (!zf) return error("{}: cannot read: {}", what, zip_strerror(za));
  std::vector<std::byte> data;
  if ((st.valid & ZIP_STAT_SIZE) && (st.valid & ZIP_STAT_COMP_SIZE) &&
      st.size <= st.comp_size * 1100 + 4096)  // deflate expands at most ~1032×
    data.reserve(std::min<zip_uint64_t>(st.size, zip_uint64_t{1} << 31));
  std::vector<std::byte> chunk(1 << 16);
  while (true) {
    zip_int64_t n = zip_fread(zf, chunk.data(), chunk.size());
    if (n < 0) {
      Status s = error("{}: cannot read: {}", what, zipMessage(zip_file_get_error(zf)));
      zip_fclose(zf);
      return s;
    }
    if (n == 0) break;
    data.insert(data.end(), chunk.begin(), chunk.begin() + n);
  }
  zip_fclose(zf);
  if ((st.valid & ZIP_STAT_SIZE) && data.size() != st.size)
    return error("{}: holds {} bytes, the zip directory says {}", what, data.size(), st.size);
  return data;
}

// Takes ownership of `src`.
Expected<ir::WeightStore> readZip(zip_source_t* src, std::string_view what) {
  zip_error_t zerr;
  zip_error_init(&zerr);
  zip_t* za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
  if (!za) {
    Status s = error("{}: not a valid npz (zip) file: {}", what, zipMessage(&zerr));
    zip_error_fini(&zerr);
    zip_source_free(src);
    return s;
  }
  zip_error_fini(&zerr);
  ir::WeightStore store;
  zip_int64_t n = zip_get_num_entries(za, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(za, i, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME)) {
      Status s = error("{}: cannot read zip entry {}: {}", what, i, zip_strerror(za));
      zip_discard(za);
      return s;
    }
    std::string name = st.name;
    std::string shownName;  // control bytes escaped for the terminal
    for (unsigned char c : name.substr(0, 200))
      shownName += c >= 0x20 && c != 0x7f ? std::string(1, static_cast<char>(c))
                                          : fmt::format("\\x{:02x}", c);
    std::string member = fmt::format("{}: member '{}'", what, shownName);
    constexpr std::string_view kExt = ".npy";
    Status s;
    if (name.size() <= kExt.size() ||
        name.compare(name.size() - kExt.size(), kExt.size(), kExt) != 0) {
      s = error("{}: expected a .npy member (name ending in '.npy')", member);
    } else {
      std::string key = name.substr(0, name.size() - kExt.size());
      if (store.contains(key)) {
        s = error("{}: duplicate entry '{}'", member, key);
      } else {
        auto bytes = readMember(za, i, st, member);
        auto tensor = bytes ? parseNpy(*bytes, member) : Expected<Tensor>(bytes.status());
        if (tensor)
          store.set(key, std::move(*tensor));
        else
          s = tensor.status();
      }
    }
    if (!s) {
      zip_discard(za);
      return s;
    }
  }
  zip_discard(za);
  return store;
}

}  // namespace

Expected<Tensor> parseNpy(std::span<const std::byte> bytes, std::string_view what) {
  if (bytes.size() < 10) return error("{}: truncated npy file ({} bytes)", what, bytes.size());
  if (std::memcmp(bytes.data(), kMagic.data(), kMagic.size()) != 0)
    return error("{}: not an npy file (expected the magic \"\\x93NUMPY\")", what);
  unsigned major = static_cast<unsigned>(bytes[6]), minor = static_cast<unsigned>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0)
    return error("{}: unsupported npy format version {}.{} (expected 1.0, 2.0 or 3.0)", what, major,
                 minor);
  size_t lenBytes = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + lenBytes) return error("{}: truncated npy header", what);
  uint64_t headerLen = readLE(bytes.data() + 8, lenBytes);
  size_t start = 8 + lenBytes;
  if (headerLen > bytes.size() - start)
    return error("{}: truncated npy header (expected {} header bytes, file has {})", what,
                 headerLen, bytes.size() - start);
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + start), headerLen);
  KILN_ASSIGN_OR_RETURN(NpyHeader h, HeaderParser(text, what).parse());
  if (h.shape.size() > kMaxRank)
    return error("{}: array of rank {} is not supported (kiln tensors have rank <= {})", what,
                 h.shape.size(), kMaxRank);
  std::optional<int64_t> count = checkedNumElements(h.shape);
  if (!count || static_cast<uint64_t>(*count) > std::numeric_limits<uint64_t>::max() / 8)
    return error("{}: shape ({}) is too large", what, fmt::join(h.shape, ", "));
  uint64_t nbytes = static_cast<uint64_t>(*count) * h.itemSize;
  size_t dataOffset = start + headerLen;
  size_t available = bytes.size() - dataOffset;
  if (nbytes != available)
    return error("{}: shape ({}) of {} needs {} data bytes, the file has {}", what,
                 fmt::join(h.shape, ", "), ir::dtypeName(h.dtype), nbytes, available);
  Tensor t(h.dtype, ir::Shape(h.shape));
  if (t.nbytes() != nbytes)
    return error("{}: internal size mismatch ({} vs {} bytes)", what, t.nbytes(), nbytes);
  if (nbytes == 0) return t;
  const std::byte* src = bytes.data() + dataOffset;
  if (h.fortranOrder && h.shape.size() > 1) {
    std::vector<int64_t> stride(h.shape.size());  // column-major: the first dim is innermost
    for (size_t k = 0, s = 1; k < h.shape.size(); s *= h.shape[k++]) stride[k] = s;
    gatherRowMajor(src, t.raw(), h.shape, stride, h.itemSize);
  } else
    std::memcpy(t.raw(), src, nbytes);
  if (h.byteSwap) byteSwapInPlace(t.raw(), static_cast<size_t>(*count), h.itemSize);
  if (h.dtype == DType::Bool)
    for (std::byte& b : std::span<std::byte>(t.raw(), nbytes)) b = std::byte{b != std::byte{0}};
  return t;
}

Expected<Tensor> readNpy(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, ir::readFileBytes(path));
  return parseNpy(bytes, path);
}

Expected<std::vector<std::byte>> serializeNpy(const Tensor& t) {
  KILN_ASSIGN_OR_RETURN(NpyParts parts, npyParts(t));
  std::vector<std::byte> out = std::move(parts.header);
  out.insert(out.end(), parts.data.begin(), parts.data.end());
  return out;
}

Status writeNpy(const std::string& path, const Tensor& t) {
  auto bytes = serializeNpy(t);
  if (!bytes) return bytes.status().withContext(fmt::format("cannot write '{}'", path));
  return ir::writeFileAtomic(path, *bytes);
}

Expected<ir::WeightStore> parseNpz(std::span<const std::byte> bytes, std::string_view what) {
  if (looksLikeNpy(bytes)) return error("{}: is a single .npy array, not an .npz archive", what);
  zip_error_t zerr;
  zip_error_init(&zerr);
  zip_source_t* src = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &zerr);
  if (!src) {
    Status s = error("{}: {}", what, zipMessage(&zerr));
    zip_error_fini(&zerr);
    return s;
  }
  zip_error_fini(&zerr);
  return readZip(src, what);
}

Expected<ir::WeightStore> readNpz(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rbe");
  if (!f) return error("cannot open '{}': {}", path, std::strerror(errno));
  std::array<std::byte, 6> head{};
  size_t got = std::fread(head.data(), 1, head.size(), f);
  if (looksLikeNpy(std::span(head.data(), got))) {
    std::fclose(f);
    return error("{}: is a single .npy array, not an .npz archive", path);
  }
  std::rewind(f);
  zip_error_t zerr;
  zip_error_init(&zerr);
  zip_source_t* src = zip_source_filep_create(f, 0, -1, &zerr);
  if (!src) {
    Status s = error("cannot read '{}': {}", path, zipMessage(&zerr));
    zip_error_fini(&zerr);
    std::fclose(f);
    return s;
  }
  zip_error_fini(&zerr);
  return readZip(src, path);
}

Status writeNpz(const std::string& path, const ir::WeightStore& store, NpzCompression compression) {
  if (store.size() == 0) {
    // libzip writes nothing for an archive without entries; numpy writes this record.
    std::array<std::byte, 22> empty{};
    empty[0] = std::byte{'P'};
    empty[1] = std::byte{'K'};
    empty[2] = std::byte{5};
    empty[3] = std::byte{6};
    return ir::writeFileAtomic(path, empty);
  }
  std::vector<NpyParts> parts;
  parts.reserve(store.size());
  for (const auto& [name, tensor] : store.entries()) {
    if (name.empty()) return error("cannot write '{}': an entry has an empty name", path);
    auto p = npyParts(tensor);
    if (!p) return p.status().withContext(fmt::format("cannot write '{}': entry '{}'", path, name));
    parts.push_back(std::move(*p));
  }
  std::string tmp = ir::tempPathFor(path);
  // Create the temporary ourselves first: libzip only reports a bad directory at close.
  std::FILE* probe = std::fopen(tmp.c_str(), "wbe");
  if (!probe) return error("cannot write '{}': {}", path, std::strerror(errno));
  std::fclose(probe);
  int code = 0;
  zip_t* za = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  if (!za) {
    zip_error_t zerr;
    zip_error_init_with_code(&zerr, code);
    Status s = error("cannot write '{}': {}", path, zipMessage(&zerr));
    zip_error_fini(&zerr);
    std::remove(tmp.c_str());
    return s;
  }
  auto fail = [&](std::string_view msg) {
    Status s = error("cannot write '{}': {}", path, msg);
    zip_discard(za);
    std::remove(tmp.c_str());
    return s;
  };
  constexpr time_t kFixedMTime = 946684800;  // 2000-01-01: equal stores give equal files
  size_t i = 0;
  for (const auto& [name, tensor] : store.entries()) {
    NpyParts& p = parts[i++];
    zip_buffer_fragment_t frags[2];
    zip_uint64_t nfrags = 0;
    for (std::span<const std::byte> piece : {std::span<const std::byte>(p.header), p.data}) {
      if (piece.empty()) continue;
      frags[nfrags++] = {reinterpret_cast<zip_uint8_t*>(const_cast<std::byte*>(piece.data())),
                         piece.size()};
    }
    zip_source_t* src = zip_source_buffer_fragment(za, frags, nfrags, 0);
    if (!src) return fail(zip_strerror(za));
    std::string member = name + ".npy";
    zip_int64_t idx = zip_file_add(za, member.c_str(), src, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
      zip_source_free(src);
      return fail(fmt::format("entry '{}': {}", name, zip_strerror(za)));
    }
    zip_int32_t method = compression == NpzCompression::Deflated ? ZIP_CM_DEFLATE : ZIP_CM_STORE;
    if (zip_set_file_compression(za, idx, method, 0) != 0 ||
        zip_file_set_mtime(za, idx, kFixedMTime, 0) != 0)
      return fail(zip_strerror(za));
  }
  if (zip_close(za) != 0) return fail(zip_strerror(za));
  return ir::commitTempFile(tmp, path);
}

}  // namespace kiln::runtime
