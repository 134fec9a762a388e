// --data / --dataset handling and model + loader setup for `kiln train` and `kiln eval`.
#include "tools/train_data.h"

#include <CLI/CLI.hpp>
#include <filesystem>

#include "models/registry.h"
#include "runtime/datasets.h"

namespace kiln::tools {

namespace {

namespace fs = std::filesystem;

/// A graph file's preprocessing from its input f32[N,C,H,W]: center crop H, no resize,
/// Fashion-MNIST's statistics for one channel and ImageNet's for three.
Expected<runtime::ImagePreprocess> fromGraph(const ir::Graph& g) {
  if (g.inputs().size() != 1 || g.outputs().size() != 1)
    return error(
        "graph @{} has {} inputs and {} outputs; training needs one image input and "
        "one output of class logits",
        g.name(), g.inputs().size(), g.outputs().size());
  const ir::TensorType in = g.inputs()[0]->type();
  if (in.dtype != ir::DType::F32 || in.layout != ir::Layout::NCHW || in.shape.rank() != 4 ||
      in.shape[2] != in.shape[3] || (in.shape[1] != 1 && in.shape[1] != 3))
    return error("graph @{}: input %{} is {}; expected f32[N,C,H,H]{{nchw}} with C 1 or 3",
                 g.name(), g.inputs()[0]->name(), in.str());
  runtime::ImagePreprocess p;
  p.resize = 0;
  p.crop = in.shape[2];
  p.channels = in.shape[1];
  if (p.channels == 1) {
    p.mean = {0.2860, 0, 0};
    p.std = {0.3530, 1, 1};
  }
  return p;
}

std::string splitName(const runtime::SourceInfo& s) {
  if (s.kind == runtime::SourceInfo::Kind::Idx) return "test";
  const std::string name = fs::path(s.path).filename().string();
  return name.starts_with("test") ? "test" : "val";
}

}  // namespace

runtime::ImagePreprocess preprocessFromRegistry(const models::Preprocess& p) {
  runtime::ImagePreprocess r;
  r.resize = p.resize;
  r.crop = p.crop;
  r.interpolation = p.interpolation == models::Resample::Bicubic ? runtime::Interpolation::Bicubic
                                                                 : runtime::Interpolation::Bilinear;
  r.channels = p.channels;
  r.mean = p.mean;
  r.std = p.std;
  return r;
}

void addDataOptions(CLI::App& app, DataArgs& d) {
  app.add_option("--data", d.data,
                 "data folder: Fashion-MNIST IDX files, train/ and val/ class folders, "
                 "train_list.txt / val_list.txt, or a list file");
  app.add_option("--dataset", d.dataset,
                 "a named data set: fashion-mnist (Debian's dataset-fashion-mnist)");
  app.add_option("--workers", d.workers, "data loading threads (default 1)")
      ->check(CLI::NonNegativeNumber);
}

Expected<ModelData> openModelData(SourceOptions source, const DataArgs& d, int64_t batch,
                                  uint64_t seed, bool withTrain, bool augment) {
  if (d.data.empty() == d.dataset.empty())
    return error("give exactly one of --data DIR and --dataset fashion-mnist");
  std::string where;
  if (!d.dataset.empty()) {
    if (d.dataset != "fashion-mnist")
      return error(
          "--dataset {}: unknown data set (known: fashion-mnist; use --data DIR for "
          "others)",
          d.dataset);
    where = "fashion-mnist";
    if (!fs::exists(fs::path(runtime::kFashionMnistDir) / "train-images-idx3-ubyte.gz") &&
        !fs::exists(fs::path(runtime::kFashionMnistDir) / "train-images-idx3-ubyte"))
      return error(
          "--dataset fashion-mnist: {} holds no IDX files (install the Debian package "
          "dataset-fashion-mnist)",
          runtime::kFashionMnistDir);
  } else {
    std::error_code ec;
    if (!fs::exists(d.data, ec)) return error("--data {}: no such file or directory", d.data);
    where = d.data;
  }

  const models::ModelInfo* info =
      isFileSource(source.source) ? nullptr : models::findModel(source.source);
  if (!info && !isFileSource(source.source))
    return error("'{}' is neither a known model (see `kiln models`) nor a .kir/.kpb file",
                 source.source);

  ModelData md;
  runtime::DataOptions& o = md.options;
  o.source = where;
  o.batch = batch;
  o.seed = seed;
  o.workers = d.workers;
  o.augment = augment;
  o.dropLast = false;
  if (info) o.preprocess = preprocessFromRegistry(info->preprocess);

  // The eval split, when the source has one apart from the training data.
  auto trainInfo = runtime::resolveSource(o, "train");
  auto evalInfo = runtime::resolveSource(o, "val");
  if (withTrain && !trainInfo.isOk()) return error("--data {}: {}", where, trainInfo.message());
  if (!withTrain && !evalInfo.isOk()) return error("--data {}: {}", where, evalInfo.message());
  const bool separateEval = evalInfo.isOk() && (!withTrain || evalInfo->path != trainInfo->path ||
                                                evalInfo->idxPrefix != trainInfo->idxPrefix);

  // The number of classes comes from the data: open a loader first.
  auto openSplit = [&](const std::string& split) -> Expected<std::unique_ptr<runtime::DataLoader>> {
    runtime::DataOptions so = o;
    so.split = split;
    if (split != "train") {
      so.shuffle = false;
      so.augment = false;
    }
    auto l = runtime::DataLoader::open(so);
    if (!l.isOk()) return error("--data {}: {}", where, l.message());
    return std::move(*l);
  };
  if (!info) {
    // Files: read the graph first; its input says how to preprocess.
    KILN_ASSIGN_OR_RETURN(md.model, loadSource(source));
    KILN_ASSIGN_OR_RETURN(o.preprocess, fromGraph(md.model.graph));
  }
  if (withTrain) {
    KILN_ASSIGN_OR_RETURN(md.train, openSplit("train"));
  }
  if (separateEval) {
    KILN_ASSIGN_OR_RETURN(md.eval, openSplit("val"));
    md.evalName = splitName(*evalInfo);
  }
  const int64_t classes = md.train ? md.train->numClasses() : md.eval->numClasses();
  if (info) {
    source.numClasses = classes;
    source.inChannels = o.preprocess.channels;
    if (!source.resolution) source.resolution = o.preprocess.crop;
    KILN_ASSIGN_OR_RETURN(md.model, loadSource(source));
  }
  const ir::Graph& g = md.model.graph;
  if (g.outputs().size() != 1 || g.outputs()[0]->type().shape.rank() != 2)
    return error("model '{}' must have one [N, classes] output", source.source);
  const int64_t k = g.outputs()[0]->type().shape[1];
  if (k < classes)
    return error("model '{}' has {} outputs, the data has {} classes", source.source, k, classes);
  return md;
}

}  // namespace kiln::tools
