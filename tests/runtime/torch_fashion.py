#!/usr/bin/python3
"""Reference data for tests/runtime/data_test.cpp: Fashion-MNIST as torchvision reads it.

Usage: torch_fashion.py IDXDIR OUTDIR FIRST LAST

For PREFIX in train, t10k: the IDX files of IDXDIR (gzip-compressed or not) are read with
torchvision.datasets.mnist's own readers; samples [0, FIRST) and the LAST final ones go
through Image.fromarray(x, mode="L") → ToTensor() → Normalize((0.2860,), (0.3530,)), exactly
what torchvision.datasets.FashionMNIST(transform=...) yields. Written to OUTDIR:
    PREFIX_first.npy, PREFIX_last.npy  float32 [K, 1, 28, 28]
    PREFIX_first_labels.npy, PREFIX_last_labels.npy  int64 [K]
    PREFIX_count.txt  the number of samples
Run with the python that has torch and torchvision (/usr/bin/python3).
"""

import gzip
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.datasets.mnist import read_image_file, read_label_file

idx_dir, out, first, last = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.makedirs(out, exist_ok=True)
transform = T.Compose([T.ToTensor(), T.Normalize((0.2860,), (0.3530,))])


def raw(name):
    """The uncompressed file (torchvision's readers take plain IDX files)."""
    plain = os.path.join(idx_dir, name)
    if os.path.exists(plain):
        return plain
    dst = os.path.join(out, name)
    with gzip.open(plain + ".gz", "rb") as f, open(dst, "wb") as g:
        shutil.copyfileobj(f, g)
    return dst


for prefix in ("train", "t10k"):
    images = read_image_file(raw(f"{prefix}-images-idx3-ubyte"))
    labels = read_label_file(raw(f"{prefix}-labels-idx1-ubyte"))
    n = len(images)
    for part, idx in (("first", range(first)), ("last", range(n - last, n))):
        xs = [transform(Image.fromarray(images[i].numpy(), mode="L")) for i in idx]
        np.save(os.path.join(out, f"{prefix}_{part}.npy"), torch.stack(xs).numpy())
        np.save(os.path.join(out, f"{prefix}_{part}_labels.npy"),
                np.array([int(labels[i]) for i in idx], dtype=np.int64))
    with open(os.path.join(out, f"{prefix}_count.txt"), "w") as f:
        f.write(f"{n}\n")
