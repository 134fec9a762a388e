// Bounded fuzzing of the .npy and .npz readers: seeded byte mutations of valid files must
// give a Status (naming the input) or a consistent tensor, never a crash (CI runs ASan).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "ir/proto_io.h"
#include "runtime/npy.h"
#include "tests/fuzz/fuzz_util.h"

namespace kiln::runtime {
namespace {

using ir::DType;
using ir::Shape;
using ir::Tensor;
using testing::Bytes;
using testing::fuzzScale;
using testing::mutate;

void checkTensor(const Tensor& t, std::string_view ctx) {
  ASSERT_TRUE(t.shape().isStatic()) << ctx;
  ASSERT_LE(t.shape().rank(), 5u) << ctx;
  ASSERT_EQ(t.numElements(), t.shape().numElements()) << ctx;
  ASSERT_EQ(t.layout(), *ir::defaultLayout(t.shape().rank())) << ctx;
  if (t.dtype() == DType::Bool) {
    for (int64_t i = 0; i < t.numElements(); ++i) ASSERT_LE(t.data<uint8_t>()[i], 1) << ctx;
  }
}

Tensor seededTensor(DType dtype, Shape shape, uint32_t seed) {
  Tensor t(dtype, std::move(shape));
  std::mt19937 rng(seed);
  for (size_t i = 0; i < t.nbytes(); ++i)
    t.raw()[i] = std::byte{static_cast<unsigned char>(dtype == DType::Bool ? rng() % 2 : rng())};
  return t;
}

// Rewrites `from` to `to` (same length) in an npy header: big-endian / fortran-order seeds.
Bytes patchHeader(Bytes b, std::string_view from, std::string_view to) {
  std::string_view text(reinterpret_cast<const char*>(b.data()), std::min<size_t>(b.size(), 128));
  size_t at = text.find(from);
  EXPECT_NE(at, std::string_view::npos) << from;
  if (at != std::string_view::npos) std::memcpy(b.data() + at, to.data(), to.size());
  return b;
}

TEST(NpyFuzzTest, MutatedNpyFilesNeverCrash) {
  std::vector<Bytes> seeds;
  for (auto [dtype, shape] : {std::pair{DType::F32, Shape{2, 3}}, std::pair{DType::I64, Shape{}},
                              std::pair{DType::Bool, Shape{5}}, std::pair{DType::F16, Shape{0, 3}},
                              std::pair{DType::U8, Shape{1, 2, 1, 2, 2}}}) {
    auto b = serializeNpy(seededTensor(dtype, shape, 3));
    ASSERT_TRUE(b.isOk());
    seeds.push_back(*b);
  }
  seeds.push_back(patchHeader(seeds[0], "'<f4'", "'>f4'"));
  seeds.push_back(patchHeader(seeds[0], "False", "True "));
  std::mt19937_64 rng(20240601 + fuzzScale() - 1);
  int ok = 0, failed = 0;
  for (int i = 0; i < 100000 * fuzzScale(); ++i) {
    Bytes input = mutate(seeds[i % seeds.size()], rng, 128);
    auto r = parseNpy(input, "fuzz.npy");
    if (r.isOk()) {
      ++ok;
      checkTensor(*r, fmt::format("iteration {}", i));
    } else {
      ++failed;
      ASSERT_EQ(r.message().rfind("fuzz.npy: ", 0), 0u) << "iteration " << i << ": " << r.message();
    }
  }
  // Both outcomes must occur, or the mutations are not reaching the parser's paths.
  EXPECT_GT(ok, 1000);
  EXPECT_GT(failed, 50000);
}

TEST(NpzFuzzTest, MutatedNpzFilesNeverCrash) {
  ir::WeightStore store;
  store.set("conv1.weight", seededTensor(DType::F32, Shape{4, 3, 3, 3}, 1));
  store.set("bn1.num_batches_tracked", seededTensor(DType::I64, Shape{}, 2));
  store.set("mask", seededTensor(DType::Bool, Shape{7}, 3));
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / fmt::format("kiln_npz_fuzz_{}", ::getpid());
  std::filesystem::create_directories(dir);
  std::vector<Bytes> seeds;
  for (NpzCompression c : {NpzCompression::Stored, NpzCompression::Deflated}) {
    std::string p = (dir / "seed.npz").string();
    ASSERT_TRUE(writeNpz(p, store, c).isOk());
    auto b = ir::readFileBytes(p);
    ASSERT_TRUE(b.isOk());
    seeds.push_back(*b);
  }
  std::filesystem::remove_all(dir);
  std::mt19937_64 rng(77 + fuzzScale() - 1);
  int ok = 0, failed = 0;
  for (int i = 0; i < 20000 * fuzzScale(); ++i) {
    const Bytes& seed = seeds[i % seeds.size()];
    // Hot region: the central directory and end record at the end of the file, by rotating
    // the bias to the tail every other iteration.
    Bytes input;
    if (i % 4 < 2) {
      input = mutate(seed, rng, 200);
    } else {
      Bytes rev(seed.rbegin(), seed.rend());
      rev = mutate(rev, rng, 120);
      input.assign(rev.rbegin(), rev.rend());
    }
    auto r = parseNpz(input, "fuzz.npz");
    if (r.isOk()) {
      ++ok;
      for (const auto& [name, t] : r->entries())
        checkTensor(t, fmt::format("iteration {} '{}'", i, name));
    } else {
      ++failed;
      ASSERT_EQ(r.message().rfind("fuzz.npz: ", 0), 0u) << "iteration " << i << ": " << r.message();
    }
  }
  EXPECT_GT(failed, 10000);
  EXPECT_GT(ok, 0);  // mutations of timestamps, comments or names still read
}

}  // namespace
}  // namespace kiln::runtime
