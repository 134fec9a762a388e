// tests/runtime/data_util.h — helpers of the data pipeline tests: temporary folders, whole
// epochs, bit-exact batch comparison.
#pragma once

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/data.h"

namespace kiln::testing {

namespace fs = std::filesystem;
using runtime::Batch;
using runtime::DataLoader;
using runtime::DataOptions;

// A fresh temporary folder, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() / fmt::format("kiln_data_{}_{}", ::getpid(), counter++);
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

inline void writeBytes(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline void writeBytes(const fs::path& p, const std::vector<std::byte>& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline std::unique_ptr<DataLoader> openOrDie(const DataOptions& o) {
  auto l = DataLoader::open(o);
  EXPECT_TRUE(l.isOk()) << l.status().message();
  return l.isOk() ? std::move(*l) : nullptr;
}

/// Every remaining batch of the current epoch.
inline std::vector<Batch> epochBatches(DataLoader& l) {
  std::vector<Batch> out;
  while (true) {
    auto b = l.next();
    EXPECT_TRUE(b.isOk()) << b.status().message();
    if (!b.isOk() || !b->has_value()) break;
    out.push_back(std::move(**b));
  }
  return out;
}

/// Same type and the same bytes.
inline bool sameBytes(const ir::Tensor& a, const ir::Tensor& b) {
  return a.type() == b.type() && a.nbytes() == b.nbytes() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

inline void expectSameBatches(const std::vector<Batch>& a, const std::vector<Batch>& b,
                              const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].size, b[i].size) << what << " batch " << i;
    EXPECT_TRUE(sameBytes(a[i].images, b[i].images)) << what << " batch " << i << " images";
    EXPECT_TRUE(sameBytes(a[i].labels, b[i].labels)) << what << " batch " << i << " labels";
  }
}

/// Writes the uncompressed IDX pair `<prefix>-images-idx3-ubyte` / `<prefix>-labels-idx1-ubyte`
/// ("train" or "t10k") of `n` 28x28 images into `dir`: image i has label i % classes and is
/// that class's gray level (0 … 255 in even steps) plus seeded noise of ±noise, so a small
/// model can learn it.
inline void writeIdxClasses(const fs::path& dir, const std::string& prefix, uint32_t n,
                            uint32_t classes, int noise = 20, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  auto header = [](std::vector<uint8_t>& b, uint8_t rank, std::initializer_list<uint32_t> dims) {
    b.insert(b.end(), {0, 0, 0x08, rank});
    for (uint32_t d : dims)
      for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  };
  std::vector<uint8_t> img, lab;
  header(img, 3, {n, 28, 28});
  header(lab, 1, {n});
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t c = i % classes;
    lab.push_back(static_cast<uint8_t>(c));
    const int level = classes > 1 ? static_cast<int>(255 * c / (classes - 1)) : 128;
    for (int p = 0; p < 28 * 28; ++p) {
      const int v = level + static_cast<int>(rng() % static_cast<uint32_t>(2 * noise + 1)) - noise;
      img.push_back(static_cast<uint8_t>(std::clamp(v, 0, 255)));
    }
  }
  fs::create_directories(dir);
  writeBytes(dir / (prefix + "-images-idx3-ubyte"), img);
  writeBytes(dir / (prefix + "-labels-idx1-ubyte"), lab);
}

}  // namespace kiln::testing
