// Data set sources: IDX arrays (Fashion-MNIST), class folders (torchvision ImageFolder's
// order) and list files (PaddleClas `path label` lines).
#include "runtime/datasets.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <utility>
#include <vector>

#include "ir/proto_io.h"
#include "runtime/augment.h"
#include "runtime/idx.h"
#include "runtime/image.h"

namespace kiln::runtime {

namespace fs = std::filesystem;

namespace {

bool isFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}
bool isDir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// The IDX file `<prefix>-<kind>` or `<prefix>-<kind>.gz` in `dir`, or "".
std::string idxFile(const fs::path& dir, std::string_view prefix, std::string_view kind) {
  for (std::string_view ext : {"", ".gz"}) {
    const fs::path p = dir / fmt::format("{}-{}{}", prefix, kind, ext);
    if (isFile(p)) return p.string();
  }
  return "";
}

Status checkPreprocess(const Preprocess& p, std::string_view what) {
  if (p.channels != 1 && p.channels != 3)
    return error("{}: preprocessing asks for {} channels (1 = gray or 3 = RGB)", what, p.channels);
  if (p.resize < 0 || p.crop < 0)
    return error("{}: negative resize ({}) or crop ({})", what, p.resize, p.crop);
  for (int64_t c = 0; c < p.channels; ++c)
    if (!(p.std[static_cast<size_t>(c)] != 0))
      return error("{}: normalization std of channel {} is {}", what, c,
                   p.std[static_cast<size_t>(c)]);
  return Status::ok();
}

// ---- IDX (Fashion-MNIST) ----

class IdxDataset final : public Dataset {
 public:
  IdxDataset(std::string imagesPath, IdxArray images, IdxArray labels, const Preprocess& p)
      : imagesPath_(std::move(imagesPath)),
        images_(std::move(images)),
        labels_(std::move(labels)),
        p_(p) {
    height_ = images_.dims[1];
    width_ = images_.dims[2];
    numClasses_ = labels_.data.empty()
                      ? 0
                      : int64_t{*std::max_element(labels_.data.begin(), labels_.data.end())} + 1;
    const Image shape = view(0);
    shape_ = {p_.channels, shape.height, shape.width};
  }
  int64_t size() const override { return images_.dims[0]; }
  int64_t numClasses() const override { return numClasses_; }
  int64_t label(int64_t index) const override { return labels_.data[static_cast<size_t>(index)]; }
  std::string describe(int64_t index) const override {
    return fmt::format("{}[{}]", imagesPath_, index);
  }
  std::array<int64_t, 3> sampleShape() const override { return shape_; }
  Status load(int64_t index, int64_t /*epoch*/, float* out) const override {
    normalizeInto(view(index), p_, out);
    return Status::ok();
  }

 private:
  // torchvision's FashionMNIST gives Image.fromarray(x, mode="L"); the model's transforms
  // follow (resnet20: none but ToTensor + Normalize). RGB models see the gray replicated.
  Image view(int64_t index) const {
    Image img(width_, height_, p_.channels);
    const uint8_t* src = images_.data.data() + index * width_ * height_;
    for (int64_t i = 0; i < width_ * height_; ++i)
      for (int64_t c = 0; c < p_.channels; ++c)
        img.pixels[static_cast<size_t>(i * p_.channels + c)] = src[i];
    if (p_.resize == 0 && (p_.crop == 0 || (p_.crop == width_ && p_.crop == height_))) return img;
    return preprocessPixels(img, p_);
  }

  std::string imagesPath_;
  IdxArray images_, labels_;
  Preprocess p_;
  int64_t height_ = 0, width_ = 0, numClasses_ = 0;
  std::array<int64_t, 3> shape_{};
};

Expected<std::unique_ptr<Dataset>> openIdx(const SourceInfo& s, const DataOptions& o) {
  const std::string imagesPath = idxFile(s.path, s.idxPrefix, "images-idx3-ubyte");
  const std::string labelsPath = idxFile(s.path, s.idxPrefix, "labels-idx1-ubyte");
  if (imagesPath.empty() || labelsPath.empty())
    return error("{}: no {}-{}-ubyte file (or .gz)", s.path, s.idxPrefix,
                 imagesPath.empty() ? "images-idx3" : "labels-idx1");
  KILN_ASSIGN_OR_RETURN(IdxArray images, readIdx(imagesPath));
  KILN_ASSIGN_OR_RETURN(IdxArray labels, readIdx(labelsPath));
  if (images.dims.size() != 3)
    return error("{}: images must be a rank-3 IDX array (count, height, width), got rank {}",
                 imagesPath, images.dims.size());
  if (labels.dims.size() != 1)
    return error("{}: labels must be a rank-1 IDX array, got rank {}", labelsPath,
                 labels.dims.size());
  if (images.dims[0] != labels.dims[0])
    return error("{} holds {} images but {} holds {} labels", imagesPath, images.dims[0],
                 labelsPath, labels.dims[0]);
  if (images.dims[0] == 0) return error("{}: no images", imagesPath);
  if (images.dims[1] == 0 || images.dims[2] == 0)
    return error("{}: images of {}x{} pixels", imagesPath, images.dims[2], images.dims[1]);
  KILN_TRY(checkPreprocess(o.preprocess, imagesPath));
  return std::unique_ptr<Dataset>(
      new IdxDataset(imagesPath, std::move(images), std::move(labels), o.preprocess));
}

// ---- image files (class folders and list files) ----

struct Sample {
  std::string path;
  int64_t label;
};

class FileDataset final : public Dataset {
 public:
  FileDataset(std::vector<Sample> samples, int64_t numClasses, const DataOptions& o, bool train)
      : samples_(std::move(samples)),
        numClasses_(numClasses),
        p_(o.preprocess),
        augment_(train && o.augment),
        seed_(o.seed) {}
  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  int64_t numClasses() const override { return numClasses_; }
  int64_t label(int64_t index) const override { return samples_[static_cast<size_t>(index)].label; }
  std::string describe(int64_t index) const override {
    return samples_[static_cast<size_t>(index)].path;
  }
  std::array<int64_t, 3> sampleShape() const override { return {p_.channels, p_.crop, p_.crop}; }
  Status load(int64_t index, int64_t epoch, float* out) const override {
    KILN_ASSIGN_OR_RETURN(Image img, readImage(samples_[static_cast<size_t>(index)].path));
    if (augment_) {
      SampleRng rng(seed_, epoch, index);
      normalizeInto(randomResizedCropAndFlip(img, p_, rng), p_, out);
    } else {
      normalizeInto(preprocessPixels(img, p_), p_, out);
    }
    return Status::ok();
  }

 private:
  std::vector<Sample> samples_;
  int64_t numClasses_;
  Preprocess p_;
  bool augment_;
  uint64_t seed_;
};

bool isImageName(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

// torchvision.datasets.ImageFolder: classes are the sorted sub-folder names; each class's
// files come from sorted(os.walk(dir, followlinks=True)) with sorted file names.
Expected<std::vector<Sample>> listFolder(const fs::path& root, int64_t& numClasses) {
  std::error_code ec;
  std::vector<std::string> classes;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec))
    if (isDir(it->path())) classes.push_back(it->path().filename().string());
  if (ec) return error("{}: cannot list: {}", root.string(), ec.message());
  std::sort(classes.begin(), classes.end());
  if (classes.empty())
    return error("{}: no class folders (expected <class>/<image>.JPEG files)", root.string());
  std::vector<Sample> samples;
  for (size_t c = 0; c < classes.size(); ++c) {
    std::vector<std::pair<std::string, std::string>> files;  // (folder, name)
    const fs::path dir = root / classes[c];
    for (fs::recursive_directory_iterator
             it(dir, fs::directory_options::follow_directory_symlink, ec),
         end;
         !ec && it != end; it.increment(ec)) {
      if (isFile(it->path()) && isImageName(it->path()))
        files.emplace_back(it->path().parent_path().string(), it->path().filename().string());
    }
    if (ec) return error("{}: cannot list: {}", dir.string(), ec.message());
    std::sort(files.begin(), files.end());
    for (auto& [folder, name] : files)
      samples.push_back({(fs::path(folder) / name).string(), static_cast<int64_t>(c)});
  }
  if (samples.empty())
    return error("{}: no .jpg, .jpeg or .png files in its {} class folders", root.string(),
                 classes.size());
  numClasses = static_cast<int64_t>(classes.size());
  return samples;
}

Expected<std::vector<Sample>> readList(const std::string& path, int64_t& numClasses) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, ir::readFileBytes(path));
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  const fs::path base = fs::path(path).parent_path();
  std::vector<Sample> samples;
  int64_t maxLabel = -1;
  size_t start = 0;
  for (int line = 1; start < text.size(); ++line) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view l = text.substr(start, end - start);
    start = end + 1;
    const auto isSpace = [](char ch) { return ch == ' ' || ch == '\t' || ch == '\r'; };
    while (!l.empty() && isSpace(l.back())) l.remove_suffix(1);
    while (!l.empty() && isSpace(l.front())) l.remove_prefix(1);
    if (l.empty()) continue;
    size_t sep = l.size();
    while (sep > 0 && !isSpace(l[sep - 1])) --sep;
    std::string_view file = l.substr(0, sep), label = l.substr(sep);
    while (!file.empty() && isSpace(file.back())) file.remove_suffix(1);
    int64_t value = -1;
    const auto [ptr, err] = std::from_chars(label.data(), label.data() + label.size(), value);
    if (file.empty() || err != std::errc() || ptr != label.data() + label.size() || value < 0)
      return error("{}:{}: expected 'path label' (a path and a class index >= 0), got '{}'", path,
                   line, l);
    const fs::path f(file);
    samples.push_back({(f.is_absolute() ? f : base / f).string(), value});
    maxLabel = std::max(maxLabel, value);
  }
  if (samples.empty()) return error("{}: no samples ('path label' lines)", path);
  numClasses = maxLabel + 1;
  return samples;
}

}  // namespace

Expected<std::string> canonicalSplit(std::string_view split) {
  if (split == "train") return std::string("train");
  if (split == "val" || split == "test") return std::string("val");
  return error("unknown data split '{}' (expected train, val or test)", split);
}

Expected<SourceInfo> resolveSource(const DataOptions& o, std::string_view split) {
  KILN_ASSIGN_OR_RETURN(std::string s, canonicalSplit(split));
  const bool train = s == "train";
  if (o.source.empty()) return error("no data source (fashion-mnist, a folder or a list file)");
  const bool fashion = o.source == "fashion-mnist";
  const fs::path src = fashion ? fs::path(kFashionMnistDir) : fs::path(o.source);
  if (isFile(src)) return SourceInfo{SourceInfo::Kind::List, src.string(), ""};
  if (!isDir(src)) {
    if (fashion)
      return error(
          "fashion-mnist: no folder {} (apt-get install dataset-fashion-mnist, or give "
          "the folder of the IDX files)",
          src.string());
    return error("data source '{}': no such file or folder", o.source);
  }
  if (!idxFile(src, "train", "images-idx3-ubyte").empty() ||
      !idxFile(src, "t10k", "images-idx3-ubyte").empty() || fashion) {
    const std::string_view prefix = train ? "train" : "t10k";
    if (idxFile(src, prefix, "images-idx3-ubyte").empty())
      return error("{}: no {}-images-idx3-ubyte file (or .gz) for the {} split", src.string(),
                   prefix, split);
    return SourceInfo{SourceInfo::Kind::Idx, src.string(), std::string(prefix)};
  }
  const std::vector<std::string_view> folders =
      train ? std::vector<std::string_view>{"train"} : std::vector<std::string_view>{"val", "test"};
  if (isDir(src / "train") || isDir(src / "val") || isDir(src / "test")) {
    for (std::string_view f : folders)
      if (isDir(src / f)) return SourceInfo{SourceInfo::Kind::Folder, (src / f).string(), ""};
    return error("{}: no {} folder for the {} split", src.string(), fmt::join(folders, "/ or "),
                 split);
  }
  const std::vector<std::string_view> lists =
      train ? std::vector<std::string_view>{"train_list.txt"}
            : std::vector<std::string_view>{"val_list.txt", "test_list.txt"};
  if (isFile(src / "train_list.txt") || isFile(src / "val_list.txt") ||
      isFile(src / "test_list.txt")) {
    for (std::string_view f : lists)
      if (isFile(src / f)) return SourceInfo{SourceInfo::Kind::List, (src / f).string(), ""};
    return error("{}: no {} for the {} split", src.string(), fmt::join(lists, " or "), split);
  }
  return SourceInfo{SourceInfo::Kind::Folder, src.string(), ""};
}

Expected<std::unique_ptr<Dataset>> openDataset(const DataOptions& o) {
  KILN_ASSIGN_OR_RETURN(SourceInfo s, resolveSource(o, o.split));
  if (s.kind == SourceInfo::Kind::Idx) return openIdx(s, o);
  KILN_TRY(checkPreprocess(o.preprocess, s.path));
  if (o.preprocess.crop <= 0)
    return error(
        "{}: image folders need a crop size (preprocess.crop) so that images can share "
        "a batch",
        s.path);
  int64_t numClasses = 0;
  std::vector<Sample> samples;
  if (s.kind == SourceInfo::Kind::List) {
    KILN_ASSIGN_OR_RETURN(samples, readList(s.path, numClasses));
  } else {
    KILN_ASSIGN_OR_RETURN(samples, listFolder(s.path, numClasses));
  }
  const bool train = o.split == "train";
  return std::unique_ptr<Dataset>(new FileDataset(std::move(samples), numClasses, o, train));
}

}  // namespace kiln::runtime
