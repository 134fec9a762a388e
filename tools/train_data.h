// What `kiln train` and `kiln eval` share: --data / --dataset, the model's preprocessing, the
// loaders of the training and evaluation splits, and the model built for the data's classes.
#pragma once

#include <memory>
#include <string>

#include "ir/module.h"
#include "runtime/data.h"
#include "tools/common.h"

namespace kiln::models {
struct Preprocess;
}

namespace kiln::tools {

struct DataArgs {
  std::string data;     // --data DIR (or list file)
  std::string dataset;  // --dataset fashion-mnist
  int workers = 1;
};

void addDataOptions(CLI::App& app, DataArgs& d);

/// A registry model's preprocessing in runtime terms.
runtime::ImagePreprocess preprocessFromRegistry(const models::Preprocess& p);

/// A model and the data it runs on.
struct ModelData {
  ir::Module model;  // built for the data's classes (registry models) or read from a file
  runtime::DataOptions options;                // the source, preprocess, batch, seed
  std::unique_ptr<runtime::DataLoader> train;  // null unless asked for
  std::unique_ptr<runtime::DataLoader> eval;   // null when the data has no separate eval split
  std::string evalName;                        // "test" or "val"
};

/// Checks the flags, resolves the source, opens the loaders (`withTrain`: the training split,
/// shuffled, augmented unless `augment` is false) and builds/loads the model of `source`
/// (weights per source.weights / source.randomWeights) for the data's number of classes.
Expected<ModelData> openModelData(SourceOptions source, const DataArgs& d, int64_t batch,
                                  uint64_t seed, bool withTrain, bool augment);

}  // namespace kiln::tools
