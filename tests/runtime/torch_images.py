#!/usr/bin/python3
"""Reference data for tests/runtime/image_test.cpp: images written by PIL, what PIL decodes
them to, and what torchvision's eval transforms make of them.

Usage: torch_images.py OUTDIR

OUTDIR/manifest.txt has one line per case:
    decode FILE EXPECTED.npy
        EXPECTED = np.array(Image.open(FILE).convert("RGB")), uint8 [H, W, 3]. For 16-bit gray
        PNGs, where PIL clips to 0..255 (mostly white), it is the high byte instead (kiln's
        documented choice, the same as PIL's own handling of 16-bit RGB).
    pre FILE RESIZE CROP INTERP CHANNELS MEAN0 MEAN1 MEAN2 STD0 STD1 STD2 PIXELS.npy TENSOR.npy
        Image.open(FILE).convert("RGB" or "L") → [Resize(RESIZE, INTERP) unless 0] →
        CenterCrop(CROP): PIXELS (uint8 [H, W, C]); then ToTensor → Normalize: TENSOR
        (float32 [C, H, W]).
Run with the python that has torch and torchvision (/usr/bin/python3).
"""

import os
import struct
import sys
import zlib

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

rng = np.random.RandomState(20240607)
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
FASHION = ([0.2860], [0.3530])


def photo(w, h):
    """Smooth colour waves plus noise: JPEG-friendly and not trivial to resample."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 110 * np.sin(x / 7.0 + y / 13.0)
    g = 128 + 110 * np.cos(x / 5.0 - y / 9.0)
    b = (x * 3 + y * 2) % 256
    a = np.stack([r, g, b], -1) + rng.randint(-25, 26, (h, w, 3))
    return np.clip(a, 0, 255).astype(np.uint8)


def raw_png(w, h, color_type, bit_depth, rows):
    """A PNG written by hand, for sample formats PIL cannot save (16-bit RGB)."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) +
            chunk(b"IEND", b""))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    lines = []

    def path(name):
        return os.path.join(out, name)

    def decode_case(name, expected=None):
        if expected is None:
            expected = np.array(Image.open(path(name)).convert("RGB"))
        np.save(path(name + ".rgb.npy"), np.ascontiguousarray(expected, dtype=np.uint8))
        lines.append(f"decode {name} {name}.rgb.npy")

    rgb = photo(83, 61)
    Image.fromarray(rgb).save(path("rgb.jpg"), quality=90)
    Image.fromarray(rgb).save(path("rgb444.jpg"), quality=95, subsampling=0)
    Image.fromarray(rgb).save(path("progressive.jpg"), quality=85, progressive=True)
    Image.fromarray(rgb).convert("L").save(path("gray.jpg"), quality=90)
    Image.fromarray(rgb).convert("CMYK").save(path("cmyk.jpg"), quality=90)
    Image.fromarray(rgb).save(path("rgb.png"))
    rgba = np.concatenate([rgb, rng.randint(0, 256, (61, 83, 1)).astype(np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(path("rgba.png"))
    Image.fromarray(rgba, "RGBA").convert("LA").save(path("la.png"))
    Image.fromarray(rgb).convert("L").save(path("gray.png"))
    Image.fromarray(rgb).convert("1").save(path("gray1.png"))
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=37)
    pal.save(path("palette.png"), transparency=3)
    gray16 = (rng.randint(0, 65536, (61, 83))).astype(np.uint16)
    Image.fromarray(gray16).save(path("gray16.png"))
    rgb16 = rng.randint(0, 65536, (61, 83, 3)).astype(">u2")
    with open(path("rgb16.png"), "wb") as f:
        f.write(raw_png(83, 61, 2, 16, [rgb16[y].tobytes() for y in range(61)]))
    for name in ["rgb.jpg", "rgb444.jpg", "progressive.jpg", "gray.jpg", "cmyk.jpg", "rgb.png",
                 "rgba.png", "la.png", "gray.png", "gray1.png", "palette.png", "rgb16.png"]:
        decode_case(name)
    assert Image.open(path("gray16.png")).mode.startswith("I")
    decode_case("gray16.png", np.repeat((gray16 >> 8).astype(np.uint8)[:, :, None], 3, axis=2))

    # Preprocessing sources: a wide and a tall photo, a 28x28 gray image, odd sizes.
    Image.fromarray(photo(400, 300)).save(path("wide.jpg"), quality=92)
    Image.fromarray(photo(217, 333)).save(path("tall.png"))
    Image.fromarray(photo(224, 300)).save(path("exact.png"))
    Image.fromarray(photo(28, 28)).convert("L").save(path("fashion.png"))
    Image.fromarray(photo(33, 30)).save(path("small.png"))
    bil, bic = T.InterpolationMode.BILINEAR, T.InterpolationMode.BICUBIC
    cases = [
        ("wide.jpg", 64, 56, "bilinear", IMAGENET),   # downscale x4.7
        ("wide.jpg", 64, 56, "bicubic", IMAGENET),
        ("wide.jpg", 20, 20, "bicubic", IMAGENET),    # downscale x15
        ("tall.png", 100, 87, "bicubic", IMAGENET),   # odd crop offsets: round half to even
        ("tall.png", 73, 64, "bilinear", IMAGENET),
        ("rgb.jpg", 256, 224, "bilinear", IMAGENET),  # upscale
        ("rgb.jpg", 150, 160, "bicubic", IMAGENET),   # crop taller than the image: zero padding
        ("exact.png", 224, 224, "bilinear", IMAGENET),  # shorter side already 224: no resize
        ("cmyk.jpg", 40, 32, "bilinear", IMAGENET),
        ("palette.png", 50, 45, "bicubic", IMAGENET),
        ("fashion.png", 0, 28, "bilinear", FASHION),  # resnet20: gray, no resize
        ("small.png", 0, 28, "bilinear", FASHION),    # RGB → L, crop 33x30 → 28
    ]
    for i, (name, resize, crop, interp, (mean, std)) in enumerate(cases):
        mode = "L" if len(mean) == 1 else "RGB"
        geometric = ([T.Resize(resize, interpolation=bil if interp == "bilinear" else bic)]
                     if resize else []) + [T.CenterCrop(crop)]
        img = Image.open(path(name)).convert(mode)
        pixels = np.array(T.Compose(geometric)(img))
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        tensor = T.Compose(geometric + [T.ToTensor(), T.Normalize(mean, std)])(img)
        assert tensor.dtype == torch.float32
        np.save(path(f"pre{i}.pixels.npy"), np.ascontiguousarray(pixels, dtype=np.uint8))
        np.save(path(f"pre{i}.tensor.npy"), tensor.numpy())
        m3 = (mean + [0.0, 0.0])[:3]
        s3 = (std + [1.0, 1.0])[:3]
        lines.append(f"pre {name} {resize} {crop} {interp} {len(mean)} " +
                     " ".join(repr(v) for v in m3 + s3) + f" pre{i}.pixels.npy pre{i}.tensor.npy")

    with open(path("manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
