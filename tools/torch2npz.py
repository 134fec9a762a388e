#!/usr/bin/env python3
"""Converts PyTorch weights to a kiln weight store (.npz keyed by state_dict name).

Sources:
  torch2npz.py model.pth -o w.npz                 a state_dict, a checkpoint dict holding one
                                                  ('state_dict' / 'model' / 'model_state_dict'),
                                                  or a pickled nn.Module
  torch2npz.py --torchvision resnet50 --random-seed 0 -o w.npz
                                                  a freshly initialized torchvision model
                                                  (no download)

num_batches_tracked entries are dropped (kiln has no use for them); floating tensors are
stored as float32 unless --keep-dtype. A 'module.' prefix (DataParallel) is stripped when
every key has it. Needs torch (and torchvision for --torchvision) and numpy; run it with the
python that has them (/usr/bin/python3 here).
"""

import argparse
import sys

import numpy as np

CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")


def randomize_batchnorm(model, generator):
    """Gives every BatchNorm non-trivial running statistics and affine parameters, so that
    a test comparing against it cannot pass with BN treated as the identity."""
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=generator) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=generator) * 1.5 + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                    m.bias.copy_(torch.randn(c, generator=generator) * 0.2)


def torchvision_model(name, seed, randomize_bn=False):
    """torchvision.models.NAME with torch.manual_seed(seed) init, in eval mode."""
    import torch
    import torchvision

    if not hasattr(torchvision.models, name):
        raise SystemExit(f"error: torchvision has no model '{name}'")
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)()
    if randomize_bn:
        g = torch.Generator().manual_seed(seed + 1)
        randomize_batchnorm(model, g)
    return model.eval()


def load_state_dict(path):
    """The state_dict in a .pth/.pt file, whatever common form it was saved in."""
    import torch

    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, dict):
        for key in CHECKPOINT_KEYS:
            if key in obj and isinstance(obj[key], dict):
                return obj[key]
        if all(hasattr(v, "detach") for v in obj.values()):
            return obj
    raise SystemExit(f"error: {path}: no state_dict found (a dict of tensors, a checkpoint "
                     f"with one of {', '.join(CHECKPOINT_KEYS)}, or an nn.Module)")


def to_arrays(state_dict, keep_dtype=False, strip_prefix=None):
    """name -> numpy array, without num_batches_tracked."""
    keys = list(state_dict.keys())
    if strip_prefix is None and keys and all(k.startswith("module.") for k in keys):
        strip_prefix = "module."
    arrays = {}
    for key, tensor in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        name = key[len(strip_prefix):] if strip_prefix and key.startswith(strip_prefix) else key
        a = tensor.detach().cpu().numpy()
        if not keep_dtype and np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float32)
        arrays[name] = np.ascontiguousarray(a)
    return arrays


def save_npz(state_dict, path, keep_dtype=False, strip_prefix=None, compressed=False):
    arrays = to_arrays(state_dict, keep_dtype, strip_prefix)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return arrays


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Convert a PyTorch state_dict / checkpoint (or a torchvision model) to a "
                    "kiln weight store (.npz, torchvision parameter names).",
        epilog="example: torch2npz.py --torchvision resnet18 --random-seed 0 -o resnet18.npz")
    p.add_argument("checkpoint", nargs="?", help=".pth/.pt file (state_dict, checkpoint or module)")
    p.add_argument("-o", "--output", required=True, help="output .npz")
    p.add_argument("--torchvision", metavar="NAME", help="use torchvision.models.NAME instead")
    p.add_argument("--random-seed", type=int, default=0, metavar="S",
                   help="torch.manual_seed for --torchvision initialization (default 0)")
    p.add_argument("--randomize-bn", action="store_true",
                   help="with --torchvision: random BN running stats and affine params")
    p.add_argument("--keep-dtype", action="store_true", help="do not convert floats to float32")
    p.add_argument("--strip-prefix", metavar="P",
                   help="remove P from key names (default: 'module.' when every key has it)")
    p.add_argument("--compressed", action="store_true", help="write with np.savez_compressed")
    args = p.parse_args(argv)

    if (args.checkpoint is None) == (args.torchvision is None):
        p.error("give either a checkpoint file or --torchvision NAME")
    if args.torchvision:
        state = torchvision_model(args.torchvision, args.random_seed, args.randomize_bn).state_dict()
    else:
        state = load_state_dict(args.checkpoint)
    arrays = save_npz(state, args.output, args.keep_dtype, args.strip_prefix, args.compressed)
    total = sum(a.size for a in arrays.values())
    print(f"wrote {args.output}: {len(arrays)} tensors, {total:,} elements")
    return 0


if __name__ == "__main__":
    sys.exit(main())
