// Bounded fuzzing of the IDX reader (plain and gzip): seeded byte mutations of valid files
// must give a Status naming the input or an array whose size matches its dimensions.
#include <gtest/gtest.h>
#include <zlib.h>

#include <random>

#include "runtime/idx.h"
#include "tests/fuzz/fuzz_util.h"

namespace kiln::runtime {
namespace {

using testing::Bytes;
using testing::fuzzScale;
using testing::mutate;

Bytes idx(const std::vector<uint32_t>& dims, uint32_t seed) {
  Bytes b{std::byte{0}, std::byte{0}, std::byte{8}, std::byte{static_cast<uint8_t>(dims.size())}};
  size_t n = 1;
  for (uint32_t d : dims) {
    n *= d;
    for (int s = 24; s >= 0; s -= 8) b.push_back(std::byte{static_cast<uint8_t>(d >> s)});
  }
  std::mt19937 rng(seed);
  for (size_t i = 0; i < n; ++i) b.push_back(std::byte{static_cast<uint8_t>(rng())});
  return b;
}

Bytes gzip(const Bytes& in) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&zs, static_cast<uLong>(in.size())) + 64);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

TEST(IdxFuzzTest, MutatedIdxFilesNeverCrash) {
  std::vector<Bytes> seeds = {idx({3, 5, 4}, 1), idx({7}, 2), idx({2, 2, 2, 2}, 3), idx({0, 9}, 4)};
  seeds.push_back(gzip(seeds[0]));
  seeds.push_back(gzip(seeds[1]));
  std::mt19937_64 rng(20240611);
  int ok = 0, failed = 0;
  for (int i = 0; i < 3000 * fuzzScale(); ++i) {
    const Bytes& seed = seeds[static_cast<size_t>(i) % seeds.size()];
    const Bytes b = mutate(seed, rng, 24);
    auto a = parseIdx(b, "fuzz.idx");
    if (!a.isOk()) {
      ++failed;
      ASSERT_NE(a.message().find("fuzz.idx"), std::string::npos) << a.message();
      continue;
    }
    ++ok;
    size_t n = 1;
    for (int64_t d : a->dims) n *= static_cast<size_t>(d);
    ASSERT_EQ(a->data.size(), n);
    ASSERT_GE(a->dims.size(), 1u);
    ASSERT_LE(a->dims.size(), 4u);
  }
  EXPECT_GT(failed, 0);
  EXPECT_GT(ok, 0);
}

// A gzip bomb stops at the limit instead of exhausting memory.
TEST(IdxFuzzTest, DecompressionIsBounded) {
  const Bytes zeros(1 << 22);
  auto r = gunzip(gzip(zeros), "bomb.gz", 1 << 20);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.message().find("bomb.gz: decompresses to more than 1048576 bytes"), std::string::npos)
      << r.message();
  auto fine = gunzip(gzip(zeros), "ok.gz", 1 << 22);
  ASSERT_TRUE(fine.isOk()) << fine.message();
  EXPECT_EQ(fine->size(), zeros.size());
}

}  // namespace
}  // namespace kiln::runtime
