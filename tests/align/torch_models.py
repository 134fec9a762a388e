#!/usr/bin/env python3
"""Reference data for the PyTorch alignment tests (tests/align/*_align_test.cpp).

  torch_models.py --model resnet18 --seed 0 --batch 2 --resolution 64 --out DIR

writes into DIR:
  weights.npz  the model's state_dict (torchvision names, no num_batches_tracked, float32)
  x.npy        a random input [batch, 3, res, res] (float32)
  y.npy        the eval-mode output for x, computed in float64 from the same float32
               weights and input, so the reference itself has no float32 rounding
and prints one line: `max|y| <v> f32_vs_f64 <d>` (how far torch's own float32 run is).
BatchNorm running stats and affine params are randomized so BN is not the identity.

  torch_models.py --keys squeezenet1_0 resnet20     # state_dict entries, one a line:
                                                    # `model P|B key [shape]`

--fan-in-init re-draws every conv weight from kaiming_normal(mode='fan_in'), which preserves
activation variance. torchvision's fan_out init gives a depthwise 3x3 conv over C channels a
std of sqrt(2 / 9C), so each MobileNet block shrinks the signal ~100x and the logits stop
depending on the early layers (relative sensitivity 1e-11 for mobilenet_v2's stem): a
comparison at 1e-4 would not see an error there. Use it for models with depthwise convs.

Models are torchvision's, plus those defined below (LOCAL_MODELS: resnet20, CIFAR-style, 1
input channel and 10 classes by default; --in-channels sets its input channels).
Run with the python that has torch (/usr/bin/python3).
"""

import argparse
import sys

import torch

import align_common
from align_common import torch2npz


class CifarBasicBlock(torch.nn.Module):
    """torchvision's BasicBlock, with a 1x1 conv + BN projection when the shape changes."""

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        nn = torch.nn
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class CifarResNet(torch.nn.Module):
    """He et al. 2015 sec. 4.2: 3x3 stem (16), 3 stages of n blocks (16/32/64), avg pool, fc."""

    def __init__(self, n, in_channels=1, num_classes=10):
        super().__init__()
        nn = torch.nn
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        inplanes = 16
        for i, planes in enumerate((16, 32, 64)):
            blocks = []
            for j in range(n):
                blocks.append(CifarBasicBlock(inplanes, planes, 2 if i > 0 and j == 0 else 1))
                inplanes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


LOCAL_MODELS = {"resnet20": lambda in_channels: CifarResNet(3, in_channels or 1)}


def input_channels(name, in_channels):
    """--in-channels, else the model's default (1 for resnet20, 3 for torchvision's)."""
    return in_channels or (1 if name == "resnet20" else 3)


def build_model(name, seed, in_channels):
    """torchvision.models.NAME or LOCAL_MODELS[NAME], seeded, random BN, eval mode."""
    if name not in LOCAL_MODELS:
        return torch2npz.torchvision_model(name, seed, randomize_bn=True)
    torch.manual_seed(seed)
    model = LOCAL_MODELS[name](in_channels)
    torch2npz.randomize_batchnorm(model, torch.Generator().manual_seed(seed + 1))
    return model.eval()


def fan_in_init(model, seed):
    """Variance-preserving conv weights (see --fan-in-init)."""
    torch.manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")


def scale_residual_branches(model, scale):
    """Multiplies the last BN scale of every torchvision residual block by `scale`.

    With random BN statistics, 33-50 residual adds grow the logits to 1e4-1e7 (resnet101/152),
    which makes an absolute tolerance meaningless; damping the branches keeps them O(10)."""
    from torchvision.models.resnet import BasicBlock, Bottleneck
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, Bottleneck):
                m.bn3.weight.mul_(scale)
            elif isinstance(m, BasicBlock):
                m.bn2.weight.mul_(scale)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="torchvision model name, e.g. resnet18, or resnet20")
    p.add_argument("--keys", nargs="+", metavar="MODEL", help="print state_dict keys and exit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--in-channels", type=int, default=None, help="default: the model's")
    p.add_argument("--out", help="output directory")
    p.add_argument("--fan-in-init", action="store_true",
                   help="variance-preserving conv weights (for depthwise-conv models)")
    p.add_argument("--residual-scale", type=float, default=None,
                   help="scale the last BN of each ResNet block (keeps deep ResNets' logits O(10))")
    args = p.parse_args()
    if args.keys:
        for name in args.keys:
            align_common.print_keys(name, build_model(name, 0, args.in_channels))
        return 0
    if not args.model or not args.out:
        p.error("--model and --out are required (unless --keys)")

    align_common.set_threads()
    model = build_model(args.model, args.seed, args.in_channels)
    if args.fan_in_init:
        fan_in_init(model, args.seed + 3)
    if args.residual_scale is not None:
        scale_residual_branches(model, args.residual_scale)
    print(align_common.export_reference(model, args.out, args.seed, args.batch,
                                        input_channels(args.model, args.in_channels),
                                        args.resolution))
    return 0


if __name__ == "__main__":
    sys.exit(main())
