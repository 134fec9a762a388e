"""What the PyTorch reference scripts of tests/align share: tools/torch2npz.py, the state_dict
key listing (--keys), the MAC count (--count), writing one model's reference data
(weights.npz, x.npy, y.npy) and the command line of the scripts that serve several models in
one run (torch_seed_models.py, torch_resnet_vd.py).

Import it from a script in this folder (`import align_common`); run with the python that has
torch (/usr/bin/python3).
"""

import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import torch2npz  # noqa: E402,F401  (re-exported for the scripts)


def set_threads():
    """A few threads: faster than one, and CI machines are shared."""
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))


def print_keys(name, model):
    """`name P|B key [shape]` per state_dict entry, without num_batches_tracked."""
    params = {k for k, _ in model.named_parameters()}
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            print(name, "P" if k in params else "B", k, "[" + ",".join(map(str, v.shape)) + "]")


def count_macs(model, resolution):
    """Conv + linear multiply-accumulates for one image, from forward hooks."""
    macs = [0]

    def conv_hook(m, _, out):
        macs[0] += out.numel() * m.weight[0].numel()

    def linear_hook(m, _, out):
        macs[0] += out.numel() * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution))
    for h in hooks:
        h.remove()
    return macs[0]


def export_reference(model, out, seed, batch, channels, resolution):
    """Writes out/weights.npz (the state_dict), out/x.npy (a random float32 input drawn from
    seed + 2) and out/y.npy (the output in float64 from the same float32 weights and input);
    returns `max|y| <v> f32_vs_f64 <d>` (how far torch's own float32 run is)."""
    os.makedirs(out, exist_ok=True)
    torch2npz.save_npz(model.state_dict(), os.path.join(out, "weights.npz"))
    g = torch.Generator().manual_seed(seed + 2)
    x = torch.randn(batch, channels, resolution, resolution, generator=g)
    with torch.no_grad():
        y32 = model(x)
        y64 = model.double()(x.double())
    np.save(os.path.join(out, "x.npy"), x.numpy())
    np.save(os.path.join(out, "y.npy"), y64.numpy())
    return (f"max|y| {y64.abs().max().item():.6g} "
            f"f32_vs_f64 {(y32.double() - y64).abs().max().item():.3g}")


def multi_model_main(doc, models, build, plain_build, with_resolution=False):
    """The command line of a script that serves several models in one run (see its doc):
    --keys / --count print `plain_build(name, seed)`'s keys or params and MACs at 224;
    --model ... --out DIR writes DIR/<key> per model with `build(name, seed, randomize_bn=True)`
    and prints `<key> <summary>`. The key is the name, or `name@res` when `with_resolution`
    (then NAME:RES runs NAME at RES instead of --resolution)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--model", nargs="+", metavar="NAME[:RES]" if with_resolution else None,
                   help="any of: " + ", ".join(models))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--out", help="output directory")
    p.add_argument("--keys", nargs="+", metavar="MODEL", help="print state_dict keys and shapes")
    p.add_argument("--count", nargs="+", metavar="MODEL", help="print params and MACs at 224")
    args = p.parse_args()

    set_threads()
    if args.keys:
        for name in args.keys:
            print_keys(name, plain_build(name, args.seed))
        return 0
    if args.count:
        for name in args.count:
            model = plain_build(name, args.seed)
            params = sum(v.numel() for v in model.parameters())
            print(name, "params", params, "macs", count_macs(model, 224))
        return 0
    if not args.model or not args.out:
        p.error("give --model and --out (or --keys / --count)")

    for spec in args.model:
        if with_resolution:
            name, _, res = spec.partition(":")
            res = int(res) if res else args.resolution
            key = f"{name}@{res}"
        else:
            name, res, key = spec, args.resolution, spec
        model = build(name, args.seed, randomize_bn=True)
        summary = export_reference(model, os.path.join(args.out, key), args.seed, args.batch, 3,
                                   res)
        print(key, summary)
    return 0
