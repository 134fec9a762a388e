// The embedded class-name files, split into lines once on first use.
#include "models/labels.h"

#include <vector>

// Defined in the build's generated labels_data.cpp (CMakeLists.txt: kiln_embed_text).
extern const char kilnImagenetClassesText[];
extern const char kilnFashionMnistClassesText[];

namespace kiln::models {

namespace {

std::vector<std::string_view> splitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
  }
  return lines;
}

}  // namespace

std::span<const std::string_view> labelNames(LabelSet set) {
  static const std::vector<std::string_view> kImageNet = splitLines(kilnImagenetClassesText);
  static const std::vector<std::string_view> kFashionMnist =
      splitLines(kilnFashionMnistClassesText);
  switch (set) {
    case LabelSet::None:
      return {};
    case LabelSet::ImageNet:
      return kImageNet;
    case LabelSet::FashionMnist:
      return kFashionMnist;
  }
  return {};
}

std::string_view labelSetName(LabelSet set) {
  switch (set) {
    case LabelSet::None:
      return "none";
    case LabelSet::ImageNet:
      return "imagenet";
    case LabelSet::FashionMnist:
      return "fashion-mnist";
  }
  return "?";
}

}  // namespace kiln::models
