#!/usr/bin/env python3
"""Writes the peer models of `kiln bench --compare`: the PyTorch module of a kiln registry
model, with kiln's weights loaded by name, as TorchScript (model.pt, for torch_peer.py) and
ONNX (model.onnx, for ort_peer.js).

  export.py --model resnet50 --weights w.npz --batch 1 --resolution 224 --out DIR
            [--in-channels 3] [--num-classes 1000] [--opset 13]

The modules are the alignment suites' (tests/align): torchvision's, resnet20 from
torch_models.py, PeleeNet / MobileNeXt from torch_seed_models.py and the ResNet-vc/vd family
from torch_resnet_vd.py; their state_dict keys are kiln's parameter names, so the weights
bind strictly (every key present, none left over, same shapes). The TorchScript file is a
trace at the given input shape (eval mode, not frozen: the peer freezes and optimizes it at
load, which counts as its session creation); the ONNX file is exported at that fixed shape
with constant folding. Both are written atomically. Prints one line:
`wrote DIR: model.pt model.onnx (opset N, P params)`.
Run with the python that has torch (/usr/bin/python3).
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "align"))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def build(name, in_channels, num_classes):
    """The PyTorch module kiln's registry model NAME mirrors, in eval mode (weights arbitrary)."""
    import torch_models
    import torch_resnet_vd
    import torch_seed_models
    import torchvision

    if name == "resnet20":
        model = torch_models.CifarResNet(3, in_channels, num_classes)
    elif name in torch_seed_models.MODELS:
        if name == "peleenet":
            model = torch_seed_models.PeleeNet(num_classes=num_classes)
        else:
            width = int(name.rsplit("_", 1)[1]) / 100
            model = torch_seed_models.MobileNeXt(class_num=num_classes, width_mult=width)
    elif name in torch_resnet_vd.MODELS:
        model = torch_resnet_vd.MODELS[name]()
        if num_classes != 1000 or in_channels != 3:
            raise SystemExit(f"error: {name}: only 3 input channels and 1000 classes")
    elif hasattr(torchvision.models, name):
        model = getattr(torchvision.models, name)(num_classes=num_classes)
        if in_channels != 3:
            raise SystemExit(f"error: {name}: torchvision models take 3 input channels")
    else:
        raise SystemExit(f"error: no PyTorch definition of '{name}'")
    return model.eval()


def load_weights(model, path):
    """Copies every array of the .npz into the state_dict entry of the same name; an error
    names every missing, unexpected or mis-shaped key."""
    arrays = np.load(path)
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    missing = sorted(set(state) - set(arrays.files))
    unexpected = sorted(set(arrays.files) - set(state))
    shapes = [f"{k} {tuple(arrays[k].shape)} vs {tuple(state[k].shape)}"
              for k in sorted(set(state) & set(arrays.files))
              if tuple(arrays[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {', '.join(missing[:5])}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {', '.join(unexpected[:5])}")
        if shapes:
            parts.append(f"{len(shapes)} mis-shaped: {', '.join(shapes[:5])}")
        raise SystemExit(f"error: {path} does not fit the PyTorch model: {'; '.join(parts)}")
    with torch.no_grad():
        for k, t in state.items():
            t.copy_(torch.from_numpy(np.asarray(arrays[k], dtype=np.float32)))
    return sum(p.numel() for p in model.parameters())


def replace_atomically(write, path):
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="kiln registry model name")
    p.add_argument("--weights", required=True, help=".npz keyed by parameter name")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--opset", type=int, default=13, choices=range(13, 18))
    p.add_argument("--out", required=True, help="output directory")
    args = p.parse_args()

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model = build(args.model, args.in_channels, args.num_classes)
    params = load_weights(model, args.weights)
    os.makedirs(args.out, exist_ok=True)
    x = torch.zeros(args.batch, args.in_channels, args.resolution, args.resolution)
    with torch.no_grad():
        traced = torch.jit.trace(model, x, check_trace=False)
    replace_atomically(lambda path: traced.save(path), os.path.join(args.out, "model.pt"))
    replace_atomically(
        lambda path: torch.onnx.export(model, x, path, opset_version=args.opset,
                                       input_names=["x"], output_names=["y"],
                                       do_constant_folding=True),
        os.path.join(args.out, "model.onnx"))
    print(f"wrote {args.out}: model.pt model.onnx (opset {args.opset}, {params} params)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
