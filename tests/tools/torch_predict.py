#!/usr/bin/python3
"""The `kiln predict` pipeline in PyTorch, for tests/tools/predict_test.cpp.

  torch_predict.py images OUTDIR
      writes the test images with PIL: photo.jpg (160x120 RGB), tall.png (90x130 RGBA),
      shirt.png (28x28 gray)
  torch_predict.py run MODEL WEIGHTS.npz RESIZE CROP INTERPOLATION OUT.npy IMAGE...
      Image.open(IMAGE).convert("RGB", or "L" for resnet20) → Resize(RESIZE) (skipped when
      0) → CenterCrop(CROP) → ToTensor → Normalize (ImageNet's, or Fashion-MNIST's for
      resnet20); the model (torchvision's, or tests/align's resnet20) with the weights of
      WEIGHTS.npz, evaluated in float64 from the float32 weights and inputs; OUT.npy gets the
      logits [images, classes] (float64).
Run with the python that has torch and torchvision (/usr/bin/python3).
"""

import os
import sys

import numpy as np
from PIL import Image


def photo(w, h, seed):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 110 * np.sin(x / 9.0 + y / 17.0)
    g = 128 + 110 * np.cos(x / 6.0 - y / 11.0)
    b = (x * 2 + y * 3) % 256
    a = np.stack([r, g, b], -1) + rng.randint(-25, 26, (h, w, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


def write_images(out):
    os.makedirs(out, exist_ok=True)
    Image.fromarray(photo(160, 120, 1)).save(os.path.join(out, "photo.jpg"), quality=90)
    rgba = np.concatenate([photo(90, 130, 2), np.full((130, 90, 1), 200, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(os.path.join(out, "tall.png"))
    Image.fromarray(photo(28, 28, 3)).convert("L").save(os.path.join(out, "shirt.png"))


def run(model_name, weights, resize, crop, interpolation, out, images):
    # torch is imported here only: writing the images does not need it (and it is slow).
    import torch
    import torchvision
    from torchvision import transforms as T
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "align"))
    import torch_models  # resnet20, the CIFAR-style module

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    gray = model_name == "resnet20"
    if gray:
        model = torch_models.LOCAL_MODELS["resnet20"](1)
        mean, std = [0.2860], [0.3530]
    else:
        model = getattr(torchvision.models, model_name)()
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    state = {k: torch.from_numpy(v) for k, v in np.load(weights).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing), missing
    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
    steps = [T.Resize(resize, interpolation=mode[interpolation])] if resize else []
    transform = T.Compose(steps + [T.CenterCrop(crop), T.ToTensor(), T.Normalize(mean, std)])
    x = torch.stack([transform(Image.open(f).convert("L" if gray else "RGB")) for f in images])
    with torch.no_grad():
        y = model.double().eval()(x.double())
    np.save(out, y.numpy())


def main():
    if sys.argv[1] == "images":
        write_images(sys.argv[2])
    elif sys.argv[1] == "run":
        name, weights, resize, crop, interp, out = sys.argv[2:8]
        run(name, weights, int(resize), int(crop), interp, out, sys.argv[8:])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
