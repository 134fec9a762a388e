// The training/evaluation data pipeline: Fashion-MNIST (IDX), ImageNet-style class folders
// and list files, decoded and augmented by worker threads into normalized f32 batches.
// Batches are a pure function of (data, options, seed, epoch, batch index): the worker count
// and thread timing never change them, and seek() resumes bit-exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ir/status.h"
#include "ir/tensor.h"
#include "runtime/image_ops.h"

namespace kiln::runtime {

/// A model's preprocessing (models::Preprocess converted to runtime terms).
using Preprocess = ImagePreprocess;

/// Where Debian's dataset-fashion-mnist package puts the IDX files.
inline constexpr std::string_view kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct DataOptions {
  /// "fashion-mnist" (the IDX files of kFashionMnistDir), or a folder holding the four IDX
  /// files (train-/t10k-{images-idx3,labels-idx1}-ubyte, .gz or not), or a folder with
  /// train/<class>/* and val/<class>/* (or test/) image folders, or with train_list.txt /
  /// val_list.txt list files, or a folder of class folders (every split), or a list file
  /// (`path label` per line, paths relative to the list's folder).
  std::string source;
  std::string split = "train";  // "train" | "val" | "test" ("val" and "test" are one split)
  int64_t batch = 128;
  bool shuffle = true;    // train: a permutation per epoch from seed + epoch
  bool augment = true;    // train: RandomResizedCrop + flip (image folders; none for IDX)
  bool dropLast = false;  // drop the last partial batch
  uint64_t seed = 0;
  int workers = 2;        // decode/augment threads; 0 decodes in next() on the caller's thread
  int prefetch = 4;       // batches decoded ahead of the consumer
  Preprocess preprocess;  // crop size, resize (eval), channels, mean/std
  /// Called (from any thread, one call at a time) with each warning, e.g. an unreadable image
  /// that is skipped; unset: printed to stderr as "warning: ...".
  std::function<void(const std::string&)> onWarning;
};

struct Batch {
  ir::Tensor images;  // f32[B,C,H,W]{nchw}, normalized
  ir::Tensor labels;  // i64[B]
  int64_t size = 0;   // B (the last batch may be smaller)
};

class DataLoader {
 public:
  /// Opens the data set and starts the workers (epoch 0 is started). Errors name the files.
  static Expected<std::unique_ptr<DataLoader>> open(const DataOptions& o);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t numSamples() const;
  int64_t numClasses() const;
  int64_t batchesPerEpoch() const;
  /// Starts epoch `epoch` from its first batch; batches of the previous epoch not yet taken
  /// are dropped. The sample order is a permutation seeded by seed + epoch (shuffle, train),
  /// else the data set's order.
  void startEpoch(int64_t epoch);
  /// The next batch of the epoch, nullopt after its last one. Unreadable images are skipped
  /// (counted by skipped(), warned about once): their slots take the next readable samples
  /// of the epoch's order after the batch (wrapping around), so every batch keeps its size.
  Expected<std::optional<Batch>> next();

  struct Position {
    int64_t epoch = 0;
    int64_t batch = 0;
  };
  /// The batch next() returns next.
  Position position() const;
  /// Continues at `p` (batch 0..batchesPerEpoch()); the batches that follow are those an
  /// uninterrupted run gives from there.
  Status seek(Position p);
  /// Distinct corrupt or unreadable images met so far.
  int64_t skipped() const;

  class Impl;

 private:
  explicit DataLoader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Whether `split` exists for o.source (fashion-mnist has "test"; a folder may lack val/).
bool hasSplit(const DataOptions& o, std::string_view split);

}  // namespace kiln::runtime
