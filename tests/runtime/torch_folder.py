#!/usr/bin/python3
"""Reference data for tests/runtime/data_folder_test.cpp: an image folder as torchvision sees it.

Usage: torch_folder.py ROOT RESIZE CROP OUTDIR

- ImageFolder(ROOT/val) with Resize(RESIZE) → CenterCrop(CROP) → ToTensor → Normalize
  (ImageNet statistics), in ImageFolder's order:
      OUTDIR/val.npy (float32 [N, 3, CROP, CROP]), OUTDIR/val_labels.npy (int64 [N]),
      OUTDIR/classes.txt (one class a line).
- For each line `FILE TOP LEFT HEIGHT WIDTH SIZE INTERP` of ROOT/crops.txt (FILE relative to
  ROOT): np.array(F.resized_crop(Image.open(FILE).convert("RGB"), TOP, LEFT, HEIGHT, WIDTH,
  [SIZE, SIZE], INTERP)) — what RandomResizedCrop makes of that box — as OUTDIR/crop_<i>.npy
  (uint8 [SIZE, SIZE, 3]).
Run with the python that has torch and torchvision (/usr/bin/python3).
"""

import os
import sys

import numpy as np
import torch
from PIL import Image
from torchvision import datasets
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

root, resize, crop, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.makedirs(out, exist_ok=True)

val = datasets.ImageFolder(
    os.path.join(root, "val"),
    transform=T.Compose([
        T.Resize(resize),
        T.CenterCrop(crop),
        T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ]))
xs, ys = zip(*[val[i] for i in range(len(val))])
np.save(os.path.join(out, "val.npy"), torch.stack(xs).numpy())
np.save(os.path.join(out, "val_labels.npy"), np.array(ys, dtype=np.int64))
with open(os.path.join(out, "classes.txt"), "w") as f:
    f.write("".join(c + "\n" for c in val.classes))

modes = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}
with open(os.path.join(root, "crops.txt")) as f:
    for i, line in enumerate(f):
        name, top, left, h, w, size, interp = line.split()
        img = Image.open(os.path.join(root, name)).convert("RGB")
        r = F.resized_crop(img, int(top), int(left), int(h), int(w), [int(size), int(size)],
                           modes[interp])
        np.save(os.path.join(out, f"crop_{i}.npy"), np.array(r))
