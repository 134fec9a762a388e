// Google Benchmark: the data pipeline's throughput (batches/s, images/s) on Fashion-MNIST and
// on a synthetic folder of ImageNet-sized JPEGs through the 224 training and eval views.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "runtime/data.h"
#include "tests/image_util.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using runtime::DataLoader;
using runtime::DataOptions;

std::unique_ptr<DataLoader> openOrDie(const DataOptions& o) {
  auto l = DataLoader::open(o);
  KILN_ASSERT(l.isOk(), "cannot open the data");
  return std::move(l).value();
}

// Takes batches for the whole run, starting a new epoch whenever one ends.
void drain(benchmark::State& state, DataLoader& l) {
  int64_t images = 0, epoch = 0;
  for (auto _ : state) {
    auto b = l.next();
    KILN_ASSERT(b.isOk(), "batch failed");
    if (!b->has_value()) {
      l.startEpoch(++epoch);
      b = l.next();
    }
    images += (*b)->size;
    benchmark::DoNotOptimize((*b)->images.raw());
  }
  state.SetItemsProcessed(images);
  state.counters["batches/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_FashionMnist(benchmark::State& state) {
  if (!fs::exists(fs::path(runtime::kFashionMnistDir))) {
    state.SkipWithError("dataset-fashion-mnist is not installed");
    return;
  }
  DataOptions o;
  o.source = "fashion-mnist";
  o.batch = 128;
  o.workers = static_cast<int>(state.range(0));
  o.preprocess.resize = 0;
  o.preprocess.crop = 28;
  o.preprocess.channels = 1;
  o.preprocess.mean = {0.2860, 0, 0};
  o.preprocess.std = {0.3530, 1, 1};
  auto l = openOrDie(o);
  drain(state, *l);
}
BENCHMARK(BM_FashionMnist)->Arg(0)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// 256 JPEGs of 500x375 (ImageNet's typical size) in 4 classes, made once, removed at exit.
struct JpegFolder {
  fs::path root = fs::temp_directory_path() / fmt::format("kiln_data_bench_{}", ::getpid());
  JpegFolder() {
    for (int i = 0; i < 256; ++i) {
      const fs::path dir = root / "train" / fmt::format("n{:08d}", i % 4);
      fs::create_directories(dir);
      const auto bytes = testing::encodeJpeg(
          testing::testPixels(500, 375, 3, static_cast<uint32_t>(i)), 500, 375, 3);
      std::ofstream(dir / fmt::format("{}.JPEG", i), std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes.data()),
                 static_cast<std::streamsize>(bytes.size()));
    }
  }
  ~JpegFolder() { fs::remove_all(root); }
};

const fs::path& jpegFolder() {
  static const JpegFolder folder;
  return folder.root;
}

void BM_JpegFolder224(benchmark::State& state) {
  DataOptions o;
  o.source = jpegFolder().string();
  o.batch = 64;
  o.workers = static_cast<int>(state.range(0));
  o.augment = state.range(1) != 0;  // RandomResizedCrop + flip, else Resize 256 + CenterCrop
  auto l = openOrDie(o);
  drain(state, *l);
}
BENCHMARK(BM_JpegFolder224)
    ->ArgNames({"workers", "augment"})
    ->Args({2, 1})
    ->Args({2, 0})
    ->Args({1, 1})
    ->Args({0, 1})
    ->Args({0, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace kiln
