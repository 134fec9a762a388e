// .npy / .npz: round trips, files written by numpy itself (and kiln's read back by numpy),
// layout conversion, atomic writes and one test per malformed-input error.
#include "runtime/npy.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zip.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>

#include "ir/proto_io.h"

namespace kiln::runtime {
namespace {

namespace fs = std::filesystem;
using ir::DType;
using ir::Layout;
using ir::Shape;
using ir::Tensor;

constexpr DType kNpyDTypes[] = {DType::F32, DType::F64, DType::F16, DType::I64,
                                DType::I32, DType::I8,  DType::U8,  DType::Bool};

class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           fmt::format("kiln_npy_{}_{}_{}", info->name(), ::getpid(), counter_++);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(std::string_view name) const { return (dir_ / name).string(); }

  static std::vector<std::byte> readAll(const std::string& p) {
    auto bytes = ir::readFileBytes(p);
    EXPECT_TRUE(bytes.isOk()) << bytes.message();
    return bytes.isOk() ? *bytes : std::vector<std::byte>{};
  }
  static void writeAll(const std::string& p, std::span<const std::byte> bytes) {
    std::ofstream f(p, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  }
  // Files in the test dir other than `keep` (to catch leftover temporaries).
  std::vector<std::string> strayFiles(const std::set<std::string>& keep) const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_))
      if (!keep.count(e.path().filename().string())) out.push_back(e.path().filename().string());
    return out;
  }

  fs::path dir_;
  static inline int counter_ = 0;
};

// Random bit patterns (any float bits are fine: comparison is bytewise); bools are 0/1.
Tensor randomTensor(DType dtype, Shape shape, uint32_t seed) {
  Tensor t(dtype, std::move(shape));
  std::mt19937 rng(seed);
  for (size_t i = 0; i < t.nbytes(); ++i)
    t.raw()[i] = std::byte{static_cast<unsigned char>(dtype == DType::Bool ? rng() % 2 : rng())};
  return t;
}

void expectSameTensor(const Tensor& a, const Tensor& b, std::string_view what) {
  EXPECT_EQ(a.dtype(), b.dtype()) << what;
  EXPECT_EQ(a.shape(), b.shape()) << what;
  EXPECT_EQ(a.layout(), b.layout()) << what;
  ASSERT_EQ(a.nbytes(), b.nbytes()) << what;
  if (a.nbytes()) {
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << what;
  }
}

const std::vector<Shape>& testShapes() {
  static const std::vector<Shape> shapes = {
      Shape{},     Shape{0},       Shape{7},          Shape{2, 0, 3},
      Shape{3, 5}, Shape{2, 3, 4}, Shape{2, 3, 2, 2}, Shape{1, 2, 1, 3, 2}};
  return shapes;
}

TEST_F(NpyTest, NpyRoundTripsEveryDTypeAndShape) {
  uint32_t seed = 1;
  for (DType dtype : kNpyDTypes) {
    for (const Shape& shape : testShapes()) {
      std::string what = fmt::format("{}{}", ir::dtypeName(dtype), shape.str());
      Tensor t = randomTensor(dtype, shape, seed++);
      ASSERT_TRUE(writeNpy(path("t.npy"), t).isOk()) << what;
      auto back = readNpy(path("t.npy"));
      ASSERT_TRUE(back.isOk()) << what << ": " << back.message();
      expectSameTensor(t, *back, what);
      EXPECT_EQ(back->layout(), *ir::defaultLayout(shape.rank())) << what;
    }
  }
}

TEST_F(NpyTest, HeaderIsPaddedToSixtyFourBytes) {
  auto bytes = serializeNpy(randomTensor(DType::F32, Shape{3, 4}, 7));
  ASSERT_TRUE(bytes.isOk());
  size_t headerLen = static_cast<size_t>(bytes->at(8)) | static_cast<size_t>(bytes->at(9)) << 8;
  EXPECT_EQ((10 + headerLen) % 64, 0u);
  std::string header(reinterpret_cast<const char*>(bytes->data() + 10), headerLen);
  EXPECT_EQ(header.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 0), 0u)
      << header;
  EXPECT_EQ(header.back(), '\n');
}

TEST_F(NpyTest, NpzRoundTripsStoredAndDeflated) {
  ir::WeightStore store;
  uint32_t seed = 100;
  for (DType dtype : kNpyDTypes)
    for (const Shape& shape : testShapes())
      store.set(fmt::format("layer.{}{}", ir::dtypeName(dtype), shape.str()),
                randomTensor(dtype, shape, seed++));
  store.set("nested/dir/name", randomTensor(DType::F32, Shape{2}, 5));
  for (NpzCompression c : {NpzCompression::Stored, NpzCompression::Deflated}) {
    ASSERT_TRUE(writeNpz(path("w.npz"), store, c).isOk());
    auto back = readNpz(path("w.npz"));
    ASSERT_TRUE(back.isOk()) << back.message();
    ASSERT_EQ(back->size(), store.size());
    for (const auto& [name, t] : store.entries()) {
      const Tensor* got = back->find(name);
      ASSERT_NE(got, nullptr) << name;
      expectSameTensor(t, *got, name);
    }
  }
  EXPECT_TRUE(strayFiles({"w.npz"}).empty());
}

TEST_F(NpyTest, DeflatedIsSmallerAndWritesAreDeterministic) {
  ir::WeightStore store;
  store.set("zeros", Tensor(DType::F32, Shape{256, 256}));
  ASSERT_TRUE(writeNpz(path("a.npz"), store, NpzCompression::Stored).isOk());
  ASSERT_TRUE(writeNpz(path("b.npz"), store, NpzCompression::Stored).isOk());
  ASSERT_TRUE(writeNpz(path("c.npz"), store, NpzCompression::Deflated).isOk());
  EXPECT_EQ(readAll(path("a.npz")), readAll(path("b.npz")));
  EXPECT_LT(fs::file_size(path("c.npz")) * 10, fs::file_size(path("a.npz")));
}

TEST_F(NpyTest, EmptyStoreRoundTrips) {
  ASSERT_TRUE(writeNpz(path("e.npz"), ir::WeightStore{}).isOk());
  auto back = readNpz(path("e.npz"));
  ASSERT_TRUE(back.isOk()) << back.message();
  EXPECT_EQ(back->size(), 0u);
}

// Logical value (n, c, h, w) = 1000n + 100c + 10h + w, whatever the memory layout.
float logicalValue(int64_t n, int64_t c, int64_t h, int64_t w) {
  return static_cast<float>(1000 * n + 100 * c + 10 * h + w);
}

TEST_F(NpyTest, PermutedAndBlockedLayoutsAreWrittenInLogicalOrder) {
  const int64_t N = 2, C = 16, H = 3, W = 2;
  Tensor nhwc(DType::F32, Shape{N, C, H, W}, Layout::NHWC);
  Tensor blocked(DType::F32, Shape{N, C, H, W}, Layout::NChw8c);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) {
          nhwc.data<float>()[((n * H + h) * W + w) * C + c] = logicalValue(n, c, h, w);
          blocked.data<float>()[(((n * (C / 8) + c / 8) * H + h) * W + w) * 8 + c % 8] =
              logicalValue(n, c, h, w);
        }
  for (const Tensor* t : {&nhwc, &blocked}) {
    ASSERT_TRUE(writeNpy(path("t.npy"), *t).isOk());
    auto back = readNpy(path("t.npy"));
    ASSERT_TRUE(back.isOk()) << back.message();
    EXPECT_EQ(back->layout(), Layout::NCHW);
    const float* d = back->data<float>();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w)
            ASSERT_EQ(d[((n * C + c) * H + h) * W + w], logicalValue(n, c, h, w))
                << ir::layoutName(t->layout()) << " at " << n << "," << c << "," << h << "," << w;
  }
}

TEST_F(NpyTest, PartialBlocksAreAnError) {
  Tensor blocked(DType::F32, Shape{1, 3, 2, 2}, Layout::NChw8c);
  Status s = writeNpy(path("t.npy"), blocked);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("does not fill whole blocks of 8"), std::string::npos) << s.message();
  EXPECT_TRUE(strayFiles({}).empty());
}

TEST_F(NpyTest, Bf16IsWidenedToF32) {
  Tensor t(DType::BF16, Shape{3});
  const uint16_t bits[] = {0x3f80, 0xc040, 0x7f80};  // 1.0, -3.0, +inf
  std::memcpy(t.raw(), bits, sizeof bits);
  ASSERT_TRUE(writeNpy(path("t.npy"), t).isOk());
  auto back = readNpy(path("t.npy"));
  ASSERT_TRUE(back.isOk()) << back.message();
  ASSERT_EQ(back->dtype(), DType::F32);
  EXPECT_EQ(back->data<float>()[0], 1.0f);
  EXPECT_EQ(back->data<float>()[1], -3.0f);
  EXPECT_EQ(back->data<float>()[2], std::numeric_limits<float>::infinity());
}

// ---- atomic writes ----

TEST_F(NpyTest, FailedWriteLeavesTheOldFileAndNoTemporary) {
  Tensor good = randomTensor(DType::F32, Shape{4}, 3);
  ASSERT_TRUE(writeNpy(path("t.npy"), good).isOk());
  ir::WeightStore bad;
  bad.set("ok", good);
  bad.set("partial", Tensor(DType::F32, Shape{1, 3, 1, 1}, Layout::NChw16c));
  ASSERT_TRUE(writeNpz(path("w.npz"), bad).isOk() == false);
  Status s = writeNpy(path("t.npy"), Tensor());  // a tensor without data
  EXPECT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("cannot write '" + path("t.npy") + "'"), std::string::npos)
      << s.message();
  auto back = readNpy(path("t.npy"));
  ASSERT_TRUE(back.isOk());
  expectSameTensor(good, *back, "old file");
  EXPECT_EQ(strayFiles({"t.npy"}), std::vector<std::string>{});
}

TEST_F(NpyTest, WriteIntoMissingDirectoryFails) {
  std::string p = path("no/such/dir/w.npz");
  ir::WeightStore store;
  store.set("a", Tensor(DType::F32, Shape{2}));
  Status s = writeNpz(p, store);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(), fmt::format("cannot write '{}': No such file or directory", p));
  s = writeNpy(path("no/such/t.npy"), Tensor(DType::F32, Shape{2}));
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.message(),
            fmt::format("cannot write '{}': No such file or directory", path("no/such/t.npy")));
}

// ---- malformed input ----

// A zip with the given members (stored), written with libzip directly.
void writeZip(const std::string& p,
              const std::vector<std::pair<std::string, std::vector<std::byte>>>& members) {
  std::filesystem::remove(p);
  int err = 0;
  zip_t* za = zip_open(p.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  ASSERT_NE(za, nullptr);
  for (const auto& [name, bytes] : members) {
    zip_source_t* src = zip_source_buffer(za, bytes.data(), bytes.size(), 0);
    ASSERT_NE(src, nullptr);
    ASSERT_GE(zip_file_add(za, name.c_str(), src, 0), 0);
  }
  ASSERT_EQ(zip_close(za), 0);
}

struct Corruption {
  std::string name;
  std::function<void(std::vector<std::byte>&)> apply;
  std::string expected;  // substring of the message
};

TEST_F(NpyTest, MalformedNpyGivesClearErrors) {
  auto valid = serializeNpy(randomTensor(DType::F32, Shape{2, 3}, 9));
  ASSERT_TRUE(valid.isOk());
  auto setHeader = [](std::string header) {
    return [header](std::vector<std::byte>& b) {
      std::vector<std::byte> out(b.begin(), b.begin() + 8);
      out.push_back(std::byte{static_cast<unsigned char>(header.size() & 0xff)});
      out.push_back(std::byte{static_cast<unsigned char>(header.size() >> 8)});
      for (char c : header) out.push_back(std::byte{static_cast<unsigned char>(c)});
      out.resize(out.size() + 24);  // 2x3 f32
      b = out;
    };
  };
  const std::vector<Corruption> cases = {
      {"empty", [](auto& b) { b.clear(); }, "truncated npy file (0 bytes)"},
      {"bad magic", [](auto& b) { b[1] = std::byte{'X'}; }, "not an npy file (expected the magic"},
      {"version 4.0", [](auto& b) { b[6] = std::byte{4}; }, "unsupported npy format version 4.0"},
      {"truncated header", [](auto& b) { b.resize(40); }, "truncated npy header (expected"},
      {"truncated data", [](auto& b) { b.pop_back(); }, "needs 24 data bytes, the file has 23"},
      {"trailing data", [](auto& b) { b.push_back(std::byte{0}); },
       "needs 24 data bytes, the file has 25"},
      {"garbage dict", setHeader("{'descr': '<f4'; 'fortran_order': False, 'shape': (2, 3), }\n"),
       "malformed npy header: expected ',' or '}' in the header dict at offset 15"},
      {"garbage key", setHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ]\n"),
       "malformed npy header: expected a dict key at offset 58"},
      {"not a dict", setHeader("hello\n"), "expected '{' at the start of the header"},
      {"missing key", setHeader("{'descr': '<f4', 'shape': (2, 3), }\n"),
       "lacks one of 'descr', 'fortran_order', 'shape'"},
      {"unknown key",
       setHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}\n"),
       "unexpected key 'x'"},
      {"negative dim", setHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }\n"),
       "expected a non-negative integer in 'shape'"},
      {"huge dim",
       setHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n"),
       "dimension too large"},
      {"overflowing shape",
       setHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n"),
       "shape (4294967296, 4294967296) is too large"},
      {"large shape",
       setHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }\n"),
       "shape (1000000000000) of f32 needs 4000000000000 data bytes, the file has 24"},
      {"bad dtype", setHeader("{'descr': '<u4', 'fortran_order': False, 'shape': (2, 3), }\n"),
       "unsupported npy dtype '<u4'"},
      {"structured",
       setHeader("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }\n"),
       "structured dtypes"},
      {"rank 6",
       setHeader("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 1, 2, 1, 3, 4), }\n"),
       "array of rank 6 is not supported"},
      {"bad bool", setHeader("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 3), }\n"),
       "expected True or False"},
  };
  for (const Corruption& c : cases) {
    std::vector<std::byte> bytes = *valid;
    c.apply(bytes);
    writeAll(path("bad.npy"), bytes);
    auto r = readNpy(path("bad.npy"));
    ASSERT_FALSE(r.isOk()) << c.name;
    EXPECT_EQ(r.message().rfind(path("bad.npy") + ": ", 0), 0u) << c.name << ": " << r.message();
    EXPECT_NE(r.message().find(c.expected), std::string::npos) << c.name << ": " << r.message();
  }
}

TEST_F(NpyTest, MissingFilesAreReportedByName) {
  auto npz = readNpz("x.npz");
  ASSERT_FALSE(npz.isOk());
  EXPECT_EQ(npz.message(), "cannot open 'x.npz': No such file or directory");
  auto npy = readNpy("x.npy");
  ASSERT_FALSE(npy.isOk());
  EXPECT_EQ(npy.message(), "cannot open 'x.npy': No such file or directory");
}

TEST_F(NpyTest, MalformedNpzGivesClearErrors) {
  ir::WeightStore store;
  store.set("conv1.weight", randomTensor(DType::F32, Shape{4, 4}, 11));
  ASSERT_TRUE(writeNpz(path("good.npz"), store).isOk());
  std::vector<std::byte> good = readAll(path("good.npz"));
  auto find = [&](std::string_view needle) {
    auto it = std::search(good.begin(), good.end(), needle.begin(), needle.end(),
                          [](std::byte a, char b) { return a == std::byte(b); });
    return static_cast<size_t>(it - good.begin());
  };
  std::string p = path("bad.npz");
  auto expectError = [&](std::vector<std::byte> bytes, std::string_view expected) {
    writeAll(p, bytes);
    auto r = readNpz(p);
    ASSERT_FALSE(r.isOk()) << expected;
    EXPECT_EQ(r.message().rfind(p + ": ", 0), 0u) << r.message();
    EXPECT_NE(r.message().find(expected), std::string::npos) << r.message();
  };
  {  // not a zip at all
    std::string text = "this is not a zip file, just text";
    expectError(
        std::vector<std::byte>(reinterpret_cast<const std::byte*>(text.data()),
                               reinterpret_cast<const std::byte*>(text.data() + text.size())),
        "not a valid npz (zip) file: Not a zip archive");
  }
  {  // a .npy where an .npz belongs
    auto npy = serializeNpy(store.entries().begin()->second);
    expectError(*npy, "is a single .npy array, not an .npz archive");
  }
  {  // flip a data byte of the (stored) member: the CRC no longer matches
    std::vector<std::byte> bytes = good;
    size_t data = find("NUMPY") + 128 + 5;
    bytes[data] ^= std::byte{0x40};
    expectError(bytes, "member 'conv1.weight.npy': cannot read: CRC error");
  }
  {  // truncated archive
    std::vector<std::byte> bytes(good.begin(), good.begin() + good.size() / 2);
    expectError(bytes, "not a valid npz (zip) file");
  }
  {  // members that are not (valid) npy files
    auto npy = serializeNpy(randomTensor(DType::F32, Shape{2}, 1));
    std::vector<std::byte> badNpy = *npy;
    badNpy[0] = std::byte{'X'};
    writeZip(p, {{"readme.txt", *npy}});
    auto r = readNpz(p);
    ASSERT_FALSE(r.isOk());
    EXPECT_EQ(r.message(),
              p + ": member 'readme.txt': expected a .npy member (name ending in '.npy')");
    writeZip(p, {{"a.npy", *npy}, {"b.npy", badNpy}});
    r = readNpz(p);
    ASSERT_FALSE(r.isOk());
    EXPECT_EQ(r.message().rfind(p + ": member 'b.npy': not an npy file", 0), 0u) << r.message();
  }
}

// ---- interoperability with numpy itself ----

class NumpyInteropTest : public NpyTest {
 protected:
  void SetUp() override {
    NpyTest::SetUp();
    if (std::system(KILN_PYTHON " -c 'import numpy' >/dev/null 2>&1") != 0)
      GTEST_SKIP() << KILN_PYTHON " has no numpy; skipping numpy interoperability tests";
  }
  // Runs a python script with `d` bound to the test directory; true on exit status 0.
  bool runPython(const std::string& body) {
    std::string script = path("script.py");
    std::ofstream(script) << "import numpy as np, sys, os\nd = sys.argv[1]\n" << body << "\n";
    std::string cmd = fmt::format("{} {} {}", KILN_PYTHON, script, dir_.string());
    return std::system(cmd.c_str()) == 0;
  }
};

// numpy writes arange(n).reshape(shape).astype(dtype); check element i == i (bools: i % 2).
void expectArange(const Tensor& t, DType dtype, const Shape& shape, std::string_view what) {
  ASSERT_EQ(t.dtype(), dtype) << what;
  ASSERT_EQ(t.shape(), shape) << what;
  EXPECT_EQ(t.layout(), *ir::defaultLayout(shape.rank())) << what;
  for (int64_t i = 0; i < t.numElements(); ++i) {
    double expected = dtype == DType::Bool ? i % 2 : static_cast<double>(i % 100);
    double got = 0;
    if (dtype == DType::F16) {
      uint16_t h;
      std::memcpy(&h, t.raw() + 2 * i, 2);
      // Small integers in f16: exponent/mantissa decode.
      int e = (h >> 10) & 0x1f, m = h & 0x3ff;
      got = e == 0 ? m / 1024.0 / 16384.0 : std::ldexp(1.0 + m / 1024.0, e - 15);
    } else {
      got = t.at(i);
    }
    ASSERT_EQ(got, expected) << what << " element " << i;
  }
}

TEST_F(NumpyInteropTest, ReadsFilesWrittenByNumpy) {
  ASSERT_TRUE(runPython(R"(
def arr(dt, shape):
    n = int(np.prod(shape))
    a = np.arange(n) % 100
    if dt == '|b1': a = a % 2
    return a.astype(dt).reshape(shape)
dts = {'f32': '<f4', 'f64': '<f8', 'f16': '<f2', 'i64': '<i8', 'i32': '<i4', 'i8': '|i1', 'u8': '|u1', 'bool': '|b1'}
for name, dt in dts.items():
    np.save(os.path.join(d, name + '.npy'), arr(dt, (2, 3, 4)))
np.save(os.path.join(d, 'scalar.npy'), np.float32(0))
np.save(os.path.join(d, 'empty.npy'), np.zeros((0, 3), np.float32))
np.save(os.path.join(d, 'fortran.npy'), np.asfortranarray(arr('<f4', (3, 4, 5))))
np.save(os.path.join(d, 'bigendian.npy'), arr('>i4', (2, 5)))
np.save(os.path.join(d, 'bigfortran.npy'), np.asfortranarray(arr('>f8', (4, 3))))
for v in [(1, 0), (2, 0), (3, 0)]:
    with open(os.path.join(d, 'v%d.npy' % v[0]), 'wb') as f:
        np.lib.format.write_array(f, arr('<f4', (5, 2)), version=v)
np.save(os.path.join(d, 'u4.npy'), arr('<u4', (3,)))
np.save(os.path.join(d, 'rank6.npy'), arr('<f4', (1, 1, 1, 1, 2, 3)))
np.save(os.path.join(d, 'object.npy'), np.array([{'a': 1}], dtype=object), allow_pickle=True)
stored = {'conv1.weight': arr('<f4', (4, 3, 3, 3)), 'bn1.num_batches_tracked': np.int64(7) * 0,
          'fc.bias': arr('<f8', (10,)), 'mask': arr('|b1', (6,))}
np.savez(os.path.join(d, 'stored.npz'), **stored)
np.savez_compressed(os.path.join(d, 'deflated.npz'), **stored)
np.savez(os.path.join(d, 'positional.npz'), arr('<f4', (2,)), arr('<i8', (3,)))
# numpy writes every member with a zip64 extra field (id 0x0001) in its local header
for name in ['stored.npz', 'deflated.npz']:
    raw = open(os.path.join(d, name), 'rb').read()
    name_len = int.from_bytes(raw[26:28], 'little')
    assert raw[30 + name_len:32 + name_len] == b'\x01\x00', 'expected a zip64 extra'
)"));
  const std::pair<const char*, DType> dtypes[] = {
      {"f32", DType::F32}, {"f64", DType::F64}, {"f16", DType::F16}, {"i64", DType::I64},
      {"i32", DType::I32}, {"i8", DType::I8},   {"u8", DType::U8},   {"bool", DType::Bool}};
  for (auto [name, dtype] : dtypes) {
    auto t = readNpy(path(std::string(name) + ".npy"));
    ASSERT_TRUE(t.isOk()) << t.message();
    expectArange(*t, dtype, Shape{2, 3, 4}, name);
  }
  auto scalar = readNpy(path("scalar.npy"));
  ASSERT_TRUE(scalar.isOk()) << scalar.message();
  expectArange(*scalar, DType::F32, Shape{}, "scalar");
  auto empty = readNpy(path("empty.npy"));
  ASSERT_TRUE(empty.isOk()) << empty.message();
  expectArange(*empty, DType::F32, Shape{0, 3}, "empty");
  // Converted on load: fortran order is transposed, big-endian is byte-swapped.
  for (auto [name, dtype, shape] : {std::tuple{"fortran", DType::F32, Shape{3, 4, 5}},
                                    std::tuple{"bigendian", DType::I32, Shape{2, 5}},
                                    std::tuple{"bigfortran", DType::F64, Shape{4, 3}}}) {
    auto t = readNpy(path(std::string(name) + ".npy"));
    ASSERT_TRUE(t.isOk()) << t.message();
    expectArange(*t, dtype, shape, name);
  }
  for (int v = 1; v <= 3; ++v) {
    auto t = readNpy(path(fmt::format("v{}.npy", v)));
    ASSERT_TRUE(t.isOk()) << t.message();
    expectArange(*t, DType::F32, Shape{5, 2}, fmt::format("version {}.0", v));
  }
  for (auto [name, expected] : {std::pair{"u4", "unsupported npy dtype '<u4'"},
                                std::pair{"rank6", "array of rank 6 is not supported"},
                                std::pair{"object", "unsupported npy dtype '|O'"}}) {
    auto t = readNpy(path(std::string(name) + ".npy"));
    ASSERT_FALSE(t.isOk()) << name;
    EXPECT_NE(t.message().find(expected), std::string::npos) << t.message();
  }
  for (const char* file : {"stored.npz", "deflated.npz"}) {
    auto store = readNpz(path(file));
    ASSERT_TRUE(store.isOk()) << store.message();
    ASSERT_EQ(store->size(), 4u) << file;
    expectArange(*store->find("conv1.weight"), DType::F32, Shape{4, 3, 3, 3}, file);
    expectArange(*store->find("bn1.num_batches_tracked"), DType::I64, Shape{}, file);
    expectArange(*store->find("fc.bias"), DType::F64, Shape{10}, file);
    expectArange(*store->find("mask"), DType::Bool, Shape{6}, file);
  }
  auto positional = readNpz(path("positional.npz"));
  ASSERT_TRUE(positional.isOk()) << positional.message();
  EXPECT_TRUE(positional->contains("arr_0") && positional->contains("arr_1"));
}

TEST_F(NumpyInteropTest, NumpyReadsFilesWrittenByKiln) {
  ir::WeightStore store;
  Tensor f(DType::F32, Shape{2, 3});
  for (int i = 0; i < 6; ++i) f.data<float>()[i] = static_cast<float>(i) * 0.5f;
  Tensor l(DType::I64, Shape{});
  l.data<int64_t>()[0] = -123456789012345;
  Tensor b(DType::Bool, Shape{3});
  b.data<uint8_t>()[1] = 1;
  store.set("layer1.0.conv1.weight", f);
  store.set("steps", l);
  store.set("mask", b);
  store.set("empty", Tensor(DType::F16, Shape{0, 2}));
  ASSERT_TRUE(writeNpy(path("f.npy"), f).isOk());
  ASSERT_TRUE(writeNpz(path("stored.npz"), store, NpzCompression::Stored).isOk());
  ASSERT_TRUE(writeNpz(path("deflated.npz"), store, NpzCompression::Deflated).isOk());
  EXPECT_TRUE(runPython(R"(
f = np.load(os.path.join(d, 'f.npy'))
assert f.dtype == np.float32 and f.shape == (2, 3), f
assert (f.ravel() == np.arange(6) * 0.5).all(), f
for name in ['stored.npz', 'deflated.npz']:
    z = np.load(os.path.join(d, name))
    assert sorted(z.files) == ['empty', 'layer1.0.conv1.weight', 'mask', 'steps'], z.files
    assert (z['layer1.0.conv1.weight'] == f).all()
    assert z['steps'].dtype == np.int64 and z['steps'].shape == () and z['steps'] == -123456789012345
    assert z['mask'].dtype == np.bool_ and list(z['mask']) == [False, True, False]
    assert z['empty'].dtype == np.float16 and z['empty'].shape == (0, 2)
)")) << "numpy could not read kiln's files (see the Python traceback above)";
}

}  // namespace
}  // namespace kiln::runtime
