// DataLoader: worker threads build whole batches into fixed slots. A batch depends only on
// (seed, epoch, batch index) and on which files are unreadable, so any worker count, any
// timing and any seek give the same tensors.
#include "runtime/data.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>
#include <vector>

#include "runtime/augment.h"
#include "runtime/datasets.h"

namespace kiln::runtime {

class DataLoader::Impl {
 public:
  Impl(const DataOptions& o, std::unique_ptr<Dataset> data)
      : o_(o), data_(std::move(data)), shuffle_(o.shuffle && o.split == "train") {
    const int64_t n = data_->size();
    batches_ = o_.dropLast ? n / o_.batch : (n + o_.batch - 1) / o_.batch;
    prefetch_ = std::max(1, o_.prefetch);
    startEpoch(0);
    for (int i = 0; i < o_.workers; ++i) threads_.emplace_back([this] { work(); });
  }

  ~Impl() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  int64_t numSamples() const { return data_->size(); }
  int64_t numClasses() const { return data_->numClasses(); }
  int64_t batchesPerEpoch() const { return batches_; }

  void startEpoch(int64_t epoch) { restart(epoch, 0); }

  Expected<std::optional<Batch>> next() {
    std::unique_lock lock(mu_);
    if (consumed_ >= batches_) return std::optional<Batch>();
    const int64_t k = consumed_++;
    if (threads_.empty()) {
      const std::shared_ptr<const Epoch> epoch = epoch_;
      lock.unlock();
      KILN_ASSIGN_OR_RETURN(Batch b, build(*epoch, k));
      return std::optional<Batch>(std::move(b));
    }
    cv_.notify_all();  // a prefetch slot may have opened
    cv_.wait(lock, [&] { return ready_.count(k) != 0; });
    Expected<Batch> b = std::move(ready_.at(k));
    ready_.erase(k);
    cv_.notify_all();
    if (!b) return b.status();
    return std::optional<Batch>(std::move(*b));
  }

  Position position() const {
    std::lock_guard lock(mu_);
    return {epoch_->index, consumed_};
  }

  Status seek(Position p) {
    if (p.epoch < 0 || p.batch < 0 || p.batch > batches_)
      return error("data: cannot seek to epoch {} batch {} (an epoch has {} batches)", p.epoch,
                   p.batch, batches_);
    restart(p.epoch, p.batch);
    return Status::ok();
  }

  int64_t skipped() const {
    std::lock_guard lock(badMu_);
    return static_cast<int64_t>(bad_.size());
  }

 private:
  struct Epoch {
    int64_t index = 0;
    std::vector<int64_t> order;  // position in the epoch → sample index
  };

  void restart(int64_t epoch, int64_t batch) {
    auto e = std::make_shared<Epoch>();
    e->index = epoch;
    e->order.resize(static_cast<size_t>(data_->size()));
    std::iota(e->order.begin(), e->order.end(), int64_t{0});
    if (shuffle_) {
      // Fisher-Yates with our own RNG: std::shuffle's results differ between libraries.
      SampleRng rng(o_.seed, epoch, -1);
      for (int64_t i = data_->size() - 1; i > 0; --i)
        std::swap(e->order[static_cast<size_t>(i)],
                  e->order[static_cast<size_t>(rng.uniformInt(0, i))]);
    }
    {
      std::lock_guard lock(mu_);
      epoch_ = std::move(e);
      ++generation_;
      ready_.clear();
      consumed_ = scheduled_ = batch;
    }
    cv_.notify_all();
  }

  void work() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] {
        return stop_ || (scheduled_ < batches_ && scheduled_ < consumed_ + prefetch_);
      });
      if (stop_) return;
      const int64_t k = scheduled_++;
      const uint64_t generation = generation_;
      const std::shared_ptr<const Epoch> epoch = epoch_;
      lock.unlock();
      Expected<Batch> b = build(*epoch, k);
      lock.lock();
      if (generation == generation_) {
        ready_.emplace(k, std::move(b));
        cv_.notify_all();
      }
    }
  }

  bool knownBad(int64_t sample) const {
    std::lock_guard lock(badMu_);
    return bad_.count(sample) != 0;
  }

  // Loads `sample` into `out`; false when it cannot be read (recorded and warned about once).
  bool tryLoad(int64_t sample, int64_t epoch, float* out) {
    if (knownBad(sample)) return false;
    const Status s = data_->load(sample, epoch, out);
    if (s) return true;
    std::lock_guard lock(badMu_);
    if (bad_.insert(sample).second) {
      const std::string msg = fmt::format("skipping unreadable image: {}", s.message());
      if (o_.onWarning) {
        o_.onWarning(msg);
      } else {
        fmt::print(stderr, "warning: {}\n", msg);
      }
    }
    return false;
  }

  Expected<Batch> build(const Epoch& e, int64_t k) {
    const int64_t n = data_->size();
    const int64_t first = k * o_.batch;
    const int64_t size = std::min(o_.batch, n - first);
    const auto [c, h, w] = data_->sampleShape();
    const int64_t stride = c * h * w;
    Batch b;
    b.size = size;
    b.images = ir::Tensor(ir::DType::F32, ir::Shape({size, c, h, w}), ir::Layout::NCHW);
    b.labels = ir::Tensor(ir::DType::I64, ir::Shape({size}));
    float* images = b.images.data<float>();
    int64_t* labels = b.labels.data<int64_t>();
    // Slots whose sample is unreadable take the next readable samples of the order after
    // this batch (wrapping around), tried in order.
    int64_t candidate = first + size;
    for (int64_t i = 0; i < size; ++i) {
      int64_t sample = e.order[static_cast<size_t>(first + i)];
      float* out = images + i * stride;
      if (!tryLoad(sample, e.index, out)) {
        bool found = false;
        for (; candidate < first + n && !found; ++candidate) {
          sample = e.order[static_cast<size_t>(candidate % n)];
          found = tryLoad(sample, e.index, out);
        }
        if (!found)
          return error(
              "data: not enough readable images to fill batch {} of epoch {} ({} "
              "unreadable)",
              k, e.index, skipped());
      }
      labels[i] = data_->label(sample);
    }
    return b;
  }

  const DataOptions o_;
  const std::unique_ptr<Dataset> data_;
  const bool shuffle_;
  int64_t batches_ = 0;
  int64_t prefetch_ = 1;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const Epoch> epoch_;
  uint64_t generation_ = 0;
  int64_t consumed_ = 0;   // batches handed out by next() (or skipped by seek)
  int64_t scheduled_ = 0;  // batches taken by a worker
  std::map<int64_t, Expected<Batch>> ready_;
  bool stop_ = false;
  std::vector<std::thread> threads_;

  mutable std::mutex badMu_;
  std::set<int64_t> bad_;
};

Expected<std::unique_ptr<DataLoader>> DataLoader::open(const DataOptions& o) {
  if (o.batch < 1) return error("data: batch size {} (must be at least 1)", o.batch);
  if (o.workers < 0 || o.workers > 256)
    return error("data: {} workers (expected 0 to 256)", o.workers);
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Dataset> data, openDataset(o));
  if (o.dropLast && data->size() < o.batch)
    return error("data: {} samples make no full batch of {} (dropLast)", data->size(), o.batch);
  return std::unique_ptr<DataLoader>(new DataLoader(std::make_unique<Impl>(o, std::move(data))));
}

DataLoader::DataLoader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DataLoader::~DataLoader() = default;
int64_t DataLoader::numSamples() const {
  return impl_->numSamples();
}
int64_t DataLoader::numClasses() const {
  return impl_->numClasses();
}
int64_t DataLoader::batchesPerEpoch() const {
  return impl_->batchesPerEpoch();
}
void DataLoader::startEpoch(int64_t epoch) {
  impl_->startEpoch(epoch);
}
Expected<std::optional<Batch>> DataLoader::next() {
  return impl_->next();
}
DataLoader::Position DataLoader::position() const {
  return impl_->position();
}
Status DataLoader::seek(Position p) {
  return impl_->seek(p);
}
int64_t DataLoader::skipped() const {
  return impl_->skipped();
}

bool hasSplit(const DataOptions& o, std::string_view split) {
  return resolveSource(o, split).isOk();
}

}  // namespace kiln::runtime
