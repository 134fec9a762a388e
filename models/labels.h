// Class names of the label sets models are trained on, embedded in the binary at build time
// from data/*.txt (data/make_class_names.py wrote those from torchvision).
#pragma once

#include <optional>
#include <span>
#include <string_view>

#include "models/registry.h"

namespace kiln::models {

/// The names in class-id order: 1000 for ImageNet (torchvision's spelling: "tench",
/// "goldfish", …), 10 for Fashion-MNIST, none for LabelSet::None.
std::span<const std::string_view> labelNames(LabelSet set);

/// "imagenet", "fashion-mnist", "none".
std::string_view labelSetName(LabelSet set);

}  // namespace kiln::models
