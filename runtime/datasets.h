// The data sets behind runtime::DataLoader: a sample index → label and normalized pixels.
// Internal to runtime/ (data.cpp and the tests use it).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ir/status.h"
#include "runtime/data.h"

namespace kiln::runtime {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int64_t numClasses() const = 0;
  virtual int64_t label(int64_t index) const = 0;
  /// How warnings name sample `index` (its file).
  virtual std::string describe(int64_t index) const = 0;
  /// C, H, W of every sample.
  virtual std::array<int64_t, 3> sampleShape() const = 0;
  /// Writes sample `index`'s normalized pixels (C*H*W floats, planar) to `out`; thread-safe.
  /// Augmentation draws from SampleRng(seed, epoch, index). An error means the sample cannot
  /// be read (the loader skips it).
  virtual Status load(int64_t index, int64_t epoch, float* out) const = 0;
};

/// Which kind of source `o.source` is and where the files of `split` are.
struct SourceInfo {
  enum class Kind { Idx, Folder, List } kind = Kind::Folder;
  std::string path;       // IDX: the folder; Folder: the class root; List: the list file
  std::string idxPrefix;  // "train" | "t10k"
};

/// "train", or "val" for "val"/"test"; other names are an error.
Expected<std::string> canonicalSplit(std::string_view split);

/// Resolves o.source for `split`; a missing split is an error saying what was looked for.
Expected<SourceInfo> resolveSource(const DataOptions& o, std::string_view split);

/// Opens o.source's o.split (IDX arrays and list files are read whole; folders are listed).
Expected<std::unique_ptr<Dataset>> openDataset(const DataOptions& o);

}  // namespace kiln::runtime
