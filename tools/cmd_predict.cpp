// `kiln predict`: classify JPEG/PNG images — decode, preprocess as the model's registry entry
// says (torchvision's eval transforms), run batches through a runtime::Session, softmax,
// print the top K classes with their names.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "ir/graph.h"
#include "models/labels.h"
#include "models/registry.h"
#include "runtime/image.h"
#include "runtime/image_ops.h"
#include "runtime/session.h"
#include "tools/commands.h"
#include "tools/train_data.h"

namespace kiln::tools {

namespace {

constexpr int64_t kDefaultChunk = 8;  // images per run when the graph's batch is symbolic

struct Options {
  SourceOptions source;
  std::vector<std::string> images;
  int64_t top = 5;
  bool json = false;
  std::string backend = runtime::SessionOptions{}.backend;
  int threads = 0;
  std::string labels;
  int64_t resize = -1;  // -1: the model's
  int64_t crop = 0;     // 0: the model's
  std::string interpolation;
  std::string mean, std;  // comma-separated per-channel values
};

struct Prediction {
  std::vector<int64_t> ids;
  std::vector<double> scores;
};

// The registry's preprocessing with the command-line overrides applied; sets the resolution
// a registry model is built at. `--resolution R` alone scales the resize with the crop
// (256/224 at R gives floor(R * 256 / 224)).
Expected<runtime::ImagePreprocess> choosePreprocess(Options& o, const models::ModelInfo* info) {
  runtime::ImagePreprocess p =
      info ? preprocessFromRegistry(info->preprocess) : runtime::ImagePreprocess{};
  const int64_t baseCrop = p.crop, baseResize = p.resize;
  if (info) {
    const int64_t res = o.source.resolution ? o.source.resolution : o.crop ? o.crop : p.crop;
    o.source.resolution = res;
    p.crop = res;
  }
  if (o.crop) p.crop = o.crop;
  if (o.resize >= 0) {
    p.resize = o.resize;
  } else if (p.crop != baseCrop && baseResize > 0) {
    p.resize = p.crop * baseResize / baseCrop;
  }
  if (!o.interpolation.empty()) {
    auto i = runtime::parseInterpolation(o.interpolation);
    if (!i) return error("--interpolation {}: expected bilinear or bicubic", o.interpolation);
    p.interpolation = *i;
  }
  return p;
}

// "0.485,0.456,0.406" → its numbers.
Expected<std::vector<double>> parseNumbers(std::string_view flag, const std::string& text) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string field = text.substr(start, end - start);
    char* stop = nullptr;
    const double v = std::strtod(field.c_str(), &stop);
    if (field.empty() || *stop != '\0' || !std::isfinite(v))
      return error("{} {}: '{}' is not a number", flag, text, field);
    out.push_back(v);
    start = end + 1;
  }
  return out;
}

// Checks the graph takes one f32[N|B, C, H, W]{nchw} image batch and gives [N|B, classes];
// fills what the registry could not say for .kir/.kpb files (channels, crop, mean/std).
Status matchGraph(const Options& o, const ir::Graph& g, bool fromFile,
                  runtime::ImagePreprocess& p) {
  if (g.inputs().size() != 1 || g.outputs().size() != 1)
    return error(
        "graph @{} has {} inputs and {} outputs; predict needs one image input and one "
        "output of class scores",
        g.name(), g.inputs().size(), g.outputs().size());
  const ir::TensorType in = g.inputs()[0]->type();
  if (in.dtype != ir::DType::F32 || in.layout != ir::Layout::NCHW || in.shape.rank() != 4)
    return error("graph @{}: input %{} is {}; predict feeds f32[N,C,H,W]{{nchw}} images", g.name(),
                 g.inputs()[0]->name(), in.str());
  const int64_t c = in.shape[1], h = in.shape[2], w = in.shape[3];
  if (fromFile) {
    if (!o.crop) {
      if (h != w)
        return error("graph @{} takes {}x{} images: give --crop (square) or use a square input",
                     g.name(), h, w);
      if (o.resize < 0) p.resize = h * p.resize / p.crop;
      p.crop = h;
    }
  }
  if (c != 1 && c != 3)
    return error("graph @{} takes {}-channel images; predict makes 1 or 3", g.name(), c);
  // ImageNet's statistics are per RGB channel; other channel counts need their own.
  if (c != p.channels && (o.mean.empty() || o.std.empty()))
    return error(
        "graph @{} takes {}-channel images, the model's normalization is for {}: give "
        "--mean and --std",
        g.name(), c, p.channels);
  p.channels = c;
  for (auto [flag, given, dst] :
       {std::tuple("--mean", &o.mean, &p.mean), std::tuple("--std", &o.std, &p.std)}) {
    if (given->empty()) continue;
    KILN_ASSIGN_OR_RETURN(std::vector<double> values, parseNumbers(flag, *given));
    if (static_cast<int64_t>(values.size()) != c)
      return error("{} {}: {} values, the model takes {} channels", flag, *given, values.size(), c);
    std::copy(values.begin(), values.end(), dst->begin());
  }
  for (int64_t i = 0; i < c; ++i)
    if (!(p.std[static_cast<size_t>(i)] > 0)) return error("--std values must be > 0");
  if (p.crop != h || p.crop != w)
    return error("images are cropped to {}x{}, graph @{} takes {}x{}", p.crop, p.crop, g.name(), h,
                 w);
  const ir::TensorType out = g.outputs()[0]->type();
  if (out.shape.rank() != 2 || out.shape[1] < 1 || !ir::isFloat(out.dtype))
    return error("graph @{}: output is {}; predict needs [N, classes] scores", g.name(), out.str());
  return Status::ok();
}

Expected<std::vector<std::string>> chooseLabels(const Options& o, const models::ModelInfo* info,
                                                int64_t classes) {
  std::vector<std::string> names;
  if (!o.labels.empty()) {
    std::ifstream in(o.labels);
    if (!in) return error("cannot open '{}': {}", o.labels, std::strerror(errno));
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      names.push_back(line);
    }
    if (static_cast<int64_t>(names.size()) != classes)
      return error("{}: has {} class names (one per line), the model has {} classes", o.labels,
                   names.size(), classes);
    return names;
  }
  const models::LabelSet set = info              ? info->preprocess.labels
                               : classes == 1000 ? models::LabelSet::ImageNet
                                                 : models::LabelSet::None;
  std::span<const std::string_view> builtin = models::labelNames(set);
  // A model built with --num-classes no longer indexes its label set.
  if (static_cast<int64_t>(builtin.size()) == classes) names.assign(builtin.begin(), builtin.end());
  return names;
}

std::vector<Prediction> topK(const ir::Tensor& logits, int64_t rows, int64_t k, bool isProb) {
  const int64_t classes = logits.shape()[1];
  std::vector<Prediction> out;
  std::vector<double> p(static_cast<size_t>(classes));
  for (int64_t r = 0; r < rows; ++r) {
    double max = -INFINITY;
    for (int64_t j = 0; j < classes; ++j) {
      p[static_cast<size_t>(j)] = logits.at(r * classes + j);
      max = std::max(max, p[static_cast<size_t>(j)]);
    }
    if (!isProb) {
      double sum = 0;
      for (double& v : p) sum += (v = std::exp(v - max));
      for (double& v : p) v /= sum;
    }
    std::vector<int64_t> order(static_cast<size_t>(classes));
    std::iota(order.begin(), order.end(), 0);
    const auto kk = static_cast<size_t>(std::min(k, classes));
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(kk), order.end(),
                      [&](int64_t a, int64_t b) {
                        const double pa = p[static_cast<size_t>(a)], pb = p[static_cast<size_t>(b)];
                        return pa > pb || (pa == pb && a < b);
                      });
    Prediction pred;
    for (size_t i = 0; i < kk; ++i) {
      pred.ids.push_back(order[i]);
      pred.scores.push_back(p[static_cast<size_t>(order[i])]);
    }
    out.push_back(std::move(pred));
  }
  return out;
}

Status runPredict(Options o) {
  const models::ModelInfo* info = models::findModel(o.source.source);
  const bool fromFile = !info || o.source.source.find('/') != std::string::npos ||
                        endsWith(o.source.source, ".kir") || endsWith(o.source.source, ".kpb");
  if (fromFile) info = nullptr;
  KILN_ASSIGN_OR_RETURN(runtime::ImagePreprocess pre, choosePreprocess(o, info));
  KILN_ASSIGN_OR_RETURN(ir::Module m, loadSource(o.source));
  KILN_TRY(matchGraph(o, m.graph, fromFile, pre));
  if (Status st = ir::checkWeightBinding(m.graph, m.weights, /*strict=*/false); !st.isOk())
    return error("{} (give them with --weights w.npz, or use --random-weights)", st.message());
  const ir::Value* output = m.graph.outputs()[0];
  const bool isProb = output->producer() && output->producer()->kind() == ir::OpKind::Softmax;
  const int64_t classes = output->type().shape[1];
  const ir::Dim graphBatch = m.graph.inputs()[0]->type().shape[0];
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> names, chooseLabels(o, info, classes));

  // Every image is decoded and preprocessed before anything runs: a bad file fails fast.
  std::vector<runtime::Image> inputs;
  inputs.reserve(o.images.size());
  for (const std::string& path : o.images) {
    KILN_ASSIGN_OR_RETURN(runtime::Image img, runtime::readImage(path));
    inputs.push_back(runtime::preprocessPixels(img, pre));
  }

  runtime::SessionOptions so;
  so.backend = o.backend;
  so.threads = o.threads;
  KILN_ASSIGN_OR_RETURN(auto session, runtime::Session::create(std::move(m), so));
  // A fixed batch B runs B images at a time, the last run padded with blank images.
  const int64_t chunk = graphBatch == ir::kBatch ? kDefaultChunk : graphBatch;
  std::vector<Prediction> preds;
  for (size_t begin = 0; begin < inputs.size(); begin += static_cast<size_t>(chunk)) {
    const size_t end = std::min(inputs.size(), begin + static_cast<size_t>(chunk));
    std::vector<runtime::Image> batch(inputs.begin() + static_cast<std::ptrdiff_t>(begin),
                                      inputs.begin() + static_cast<std::ptrdiff_t>(end));
    if (graphBatch != ir::kBatch)
      batch.resize(static_cast<size_t>(graphBatch),
                   runtime::Image(pre.crop, pre.crop, pre.channels));
    KILN_ASSIGN_OR_RETURN(ir::Tensor x, runtime::toTensor(batch, pre));
    KILN_ASSIGN_OR_RETURN(std::vector<ir::Tensor> y, session->run(std::span(&x, 1)));
    for (Prediction& p : topK(y[0], static_cast<int64_t>(end - begin), o.top, isProb))
      preds.push_back(std::move(p));
  }

  auto nameOf = [&](int64_t id) {
    return id < static_cast<int64_t>(names.size()) ? names[static_cast<size_t>(id)] : std::string();
  };
  if (o.json) {
    // The field names of PaddleClas' predict output (seed 000).
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (size_t i = 0; i < preds.size(); ++i) {
      std::vector<std::string> labelNames;
      for (int64_t id : preds[i].ids) labelNames.push_back(nameOf(id));
      out.push_back({{"class_ids", preds[i].ids},
                     {"scores", preds[i].scores},
                     {"file_name", o.images[i]},
                     {"label_names", labelNames}});
    }
    fmt::print("{}\n", out.dump(2));
    return Status::ok();
  }
  for (size_t i = 0; i < preds.size(); ++i) {
    fmt::print("{}\n", o.images[i]);
    for (size_t j = 0; j < preds[i].ids.size(); ++j)
      fmt::print("  {:>2}. {:>5}  {:.6f}{}{}\n", j + 1, preds[i].ids[j], preds[i].scores[j],
                 names.empty() ? "" : "  ", nameOf(preds[i].ids[j]));
  }
  return Status::ok();
}

}  // namespace

Action registerPredict(CLI::App& app) {
  auto o = std::make_shared<Options>();
  addSourceOptions(app, o->source, /*withWeights=*/true);
  app.get_option("--batch")->description(
      "fix the graph's batch size (default: symbolic N, 8 images per run)");
  app.get_option("--resolution")
      ->description(
          "run the model at this resolution (default: the crop size of its preprocessing)");
  app.add_option("images", o->images, "JPEG or PNG files")->required();
  app.add_option("--top", o->top, "classes to print per image")->check(CLI::PositiveNumber);
  app.add_flag("--json", o->json,
               "print one JSON array: class_ids, scores, file_name, label_names");
  addSessionOptions(app, o->backend, o->threads);
  app.add_option("--labels", o->labels,
                 "class names, one per line in class-id order (default: the model's)");
  app.add_option("--resize", o->resize,
                 "resize the shorter side to this (0: no resize; default: the model's)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--crop", o->crop, "center crop size (default: the model's)")
      ->check(CLI::PositiveNumber);
  app.add_option("--interpolation", o->interpolation,
                 "resize filter: bilinear or bicubic (default: the model's)");
  app.add_option("--mean", o->mean,
                 "per-channel mean of Normalize, comma-separated (default: the model's)");
  app.add_option("--std", o->std,
                 "per-channel std of Normalize, comma-separated (default: the model's)");
  return [o] { return runPredict(*o); };
}

}  // namespace kiln::tools
