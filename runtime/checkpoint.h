// Training checkpoints: a versioned folder per save — weights.npz (params and batch-norm
// statistics, torchvision names), optimizer.npz (momentum buffers and other optimizer state)
// and state.json (format version, model, step, epoch, data position, schedule step, RNG seed,
// options) — written atomically under a checkpoint root that names the newest in `latest`.
#pragma once

#include <cstdint>
#include <string>

#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln::runtime {

/// state.json's "format_version"; a checkpoint with a larger one is refused.
inline constexpr int kCheckpointFormatVersion = 1;

struct CheckpointState {
  std::string model;               // the model's name (registry name or file)
  int64_t step = 0;                // optimizer steps taken
  int64_t epoch = 0;               // epochs completed
  int64_t dataEpoch = 0;           // DataLoader::Position the next step reads: epoch …
  int64_t dataBatch = 0;           // … and batch
  int64_t scheduleStep = 0;        // the learning-rate schedule's iteration for the next step
  uint64_t seed = 0;               // every random stream (data order, augmentation, dropout masks)
                                   // derives from (seed, epoch, sample) or (seed, step)
  std::string optionsJson = "{}";  // the training options, a JSON object
  std::string metricsJson = "{}";  // the latest evaluation, a JSON object
};

struct Checkpoint {
  std::string dir;  // the folder read (root/step-NNNNNNNN)
  CheckpointState state;
  ir::WeightStore weights;
  ir::WeightStore optimizer;
};

/// Saves a checkpoint under `root` (created if needed) as `root/step-<step, 8 digits>`: the
/// files go to a temporary sibling folder which is renamed into place only when complete,
/// then `root/latest` (one line: the folder's name) is replaced atomically, and older
/// checkpoints are removed except the previous one. A failure leaves the last good checkpoint
/// as it was. Returns the folder written.
Expected<std::string> saveCheckpoint(const std::string& root, const ir::WeightStore& weights,
                                     const ir::WeightStore& optimizer, const CheckpointState& s);

/// Reads a checkpoint: `path` is a checkpoint folder (holding state.json) or a root (its
/// `latest`). Errors name the file and what was expected; a newer format version is refused.
Expected<Checkpoint> loadCheckpoint(const std::string& path);

/// Whether `root` holds a checkpoint (a `latest` file or a state.json).
bool hasCheckpoint(const std::string& root);

}  // namespace kiln::runtime
