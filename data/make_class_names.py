#!/usr/bin/python3
"""Writes the class-name files kiln embeds (models/labels.cpp), one name per line in class-id
order, from torchvision (Debian's python3-torchvision; run with /usr/bin/python3):
  data/imagenet_classes.txt       1000 names, torchvision's _IMAGENET_CATEGORIES (the names
                                  its ImageNet weights' meta["categories"] give)
  data/fashion_mnist_classes.txt  10 names, torchvision.datasets.FashionMNIST.classes
Run once; the output is committed."""

import pathlib

from torchvision.datasets import FashionMNIST
from torchvision.models._meta import _IMAGENET_CATEGORIES

here = pathlib.Path(__file__).resolve().parent
for filename, names, count in [
    ("imagenet_classes.txt", _IMAGENET_CATEGORIES, 1000),
    ("fashion_mnist_classes.txt", FashionMNIST.classes, 10),
]:
    assert len(names) == count
    assert all(n and "\n" not in n and n.strip() == n for n in names)
    (here / filename).write_text("".join(n + "\n" for n in names), encoding="utf-8")
    print(f"wrote {here / filename} ({count} names)")
