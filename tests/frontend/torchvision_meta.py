#!/usr/bin/python3
"""What torchvision says about its ImageNet weights, for tests/frontend/labels_test.cpp.

  torchvision_meta.py transforms resnet18 efficientnet_b0 ...
      one line per model: NAME RESIZE CROP INTERPOLATION MEAN0 MEAN1 MEAN2 STD0 STD1 STD2
      from get_model_weights(NAME).IMAGENET1K_V1.transforms()
  torchvision_meta.py labels
      ImageNet's 1000 class names (weights meta["categories"]), then the 10 of
      torchvision.datasets.FashionMNIST.classes, one a line
Run with the python that has torchvision (/usr/bin/python3).
"""

import sys

import torchvision.models as models
from torchvision.datasets import FashionMNIST


def main():
    what = sys.argv[1]
    if what == "transforms":
        for name in sys.argv[2:]:
            t = models.get_model_weights(name).IMAGENET1K_V1.transforms()
            print(name, t.resize_size[0], t.crop_size[0], t.interpolation.value,
                  " ".join(repr(v) for v in list(t.mean) + list(t.std)))
    elif what == "labels":
        for c in models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"] + FashionMNIST.classes:
            print(c)
    else:
        sys.exit(f"unknown query {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
