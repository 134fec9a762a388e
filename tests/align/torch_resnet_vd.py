#!/usr/bin/env python3
"""PyTorch reference for the ResNet-vc/vd family (seed 002, PaddleClas ResNet.md) that kiln
builds in models/resnet_vd.cpp, and reference data for tests/align/resnet_vd_align_test.cpp.

  torch_resnet_vd.py --model resnet18_vd resnet50_vd:72 --seed 0 --batch 2 --resolution 64 --out DIR
  torch_resnet_vd.py --keys resnet50_vd se_resnet18_vd    # state_dict keys, one a line
  torch_resnet_vd.py --count resnet50_vd                  # params and MACs at 224

--out writes DIR/<model>@<res>/{weights.npz, x.npy, y.npy} per model as torch_models.py does
(y in float64 from the float32 weights and input; BN statistics and affine parameters
randomized) and prints `<model>@<res> max|y| <v> f32_vs_f64 <d>` per model; `NAME:RES` runs
NAME at RES instead of --resolution. One run serves several models because importing torch is
the slow part.
--keys prints `model P|B key [shape]` per state_dict entry (no num_batches_tracked).
--count prints `model params <n> macs <m>` (conv + linear multiply-accumulates per image).

timm is not installed here, so the modules below mirror timm.models.resnet (ResNet with
stem_type='deep', stem_width=32; Bottleneck / BasicBlock; downsample_avg / downsample_conv;
SEModule) with timm's module names, hence its state_dict keys:
  conv1 = Sequential(conv 0, bn 1, relu 2, conv 3, bn 4, relu 5, conv 6), then bn1, act1,
  maxpool; layer1..4; global pool; fc.
  vd (timm resnet50d): downsample = Sequential(AvgPool2d(2, stride, ceil_mode=True,
  count_include_pad=False) or Identity when the stride is 1, conv1x1 stride 1, bn), so keys
  downsample.1 / downsample.2. vc (timm resnet50c): downsample = Sequential(conv1x1 stride s, bn).
  SE (Hu et al.; PaddleClas SE_ResNet_vd's SELayer): se.fc1 (1x1 conv with bias, C -> C // 16),
  ReLU, se.fc2 (1x1 conv with bias), sigmoid, x * gate, on the residual branch before the add.
Where PaddleClas' own code differs (see models/resnet_vd.cpp): its BasicBlock nets give
layer1.0 a 1x1 conv + BN shortcut although the shape does not change (timm's, and this, do
not), and timm's SEModule rounds C/16 up to a multiple of 8 (PaddleClas, and this, do not).
Conv weights are He-normal with fan_in (variance-preserving, like torch_seed_models.py's
init_weights) so the stem still matters in the logits; SE convs and fc keep torch's default.
Run with the python that has torch (/usr/bin/python3).
"""

import math
import sys

import torch
from torch import nn

import align_common
from align_common import torch2npz


class SEModule(nn.Module):
    """timm.layers.SEModule with rd_channels = channels // 16 (no rounding to 8)."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        rd = channels // reduction
        self.fc1 = nn.Conv2d(channels, rd, kernel_size=1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(rd, channels, kernel_size=1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, downsample, se):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SEModule(planes) if se else None
        self.act2 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        if self.se is not None:
            x = self.se(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        return self.act2(x + shortcut)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, downsample, se):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.se = SEModule(out) if se else None
        self.act3 = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        if self.se is not None:
            x = self.se(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        return self.act3(x + shortcut)


def downsample_avg(inplanes, out, stride):
    pool = nn.Identity() if stride == 1 else nn.AvgPool2d(2, stride, ceil_mode=True,
                                                          count_include_pad=False)
    return nn.Sequential(pool, nn.Conv2d(inplanes, out, 1, stride=1, bias=False),
                         nn.BatchNorm2d(out))


def downsample_conv(inplanes, out, stride):
    return nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out))


class ResNetD(nn.Module):
    """timm ResNet(stem_type='deep', stem_width=32, avg_down=avg_down, attn_layer=se)."""

    def __init__(self, block, layers, avg_down, se=False, num_classes=1000, in_chans=3):
        super().__init__()
        stem = 32
        inplanes = 2 * stem
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_chans, stem, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem, stem, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem, inplanes, 3, stride=1, padding=1, bias=False))
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            out = planes * block.expansion
            downsample = None
            if stride != 1 or inplanes != out:
                downsample = (downsample_avg if avg_down else downsample_conv)(inplanes, out,
                                                                               stride)
            blocks = []
            for j in range(n):
                blocks.append(block(inplanes, planes, stride if j == 0 else 1,
                                    downsample if j == 0 else None, se))
                inplanes = out
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x):
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(x.mean((2, 3)), 1))


B, BB = BasicBlock, Bottleneck
MODELS = {
    "resnet50_vc": lambda: ResNetD(BB, (3, 4, 6, 3), avg_down=False),
    "resnet18_vd": lambda: ResNetD(B, (2, 2, 2, 2), avg_down=True),
    "resnet34_vd": lambda: ResNetD(B, (3, 4, 6, 3), avg_down=True),
    "resnet50_vd": lambda: ResNetD(BB, (3, 4, 6, 3), avg_down=True),
    "resnet101_vd": lambda: ResNetD(BB, (3, 4, 23, 3), avg_down=True),
    "resnet152_vd": lambda: ResNetD(BB, (3, 8, 36, 3), avg_down=True),
    "resnet200_vd": lambda: ResNetD(BB, (3, 12, 48, 3), avg_down=True),
    "se_resnet18_vd": lambda: ResNetD(B, (2, 2, 2, 2), avg_down=True, se=True),
    "se_resnet34_vd": lambda: ResNetD(B, (3, 4, 6, 3), avg_down=True, se=True),
    "se_resnet50_vd": lambda: ResNetD(BB, (3, 4, 6, 3), avg_down=True, se=True),
}


def init_weights(model):
    """He-normal convs with fan_in = in/groups * kh * kw (SE convs keep torch's default)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and ".se." not in name:
            with torch.no_grad():
                m.weight.normal_(0, math.sqrt(2. / m.weight[0].numel()))


def build(name, seed, randomize_bn=False, init=True):
    """MODELS[name] seeded with torch.manual_seed(seed), He fan-in convs unless not init, in
    eval mode."""
    if name not in MODELS:
        raise SystemExit(f"error: unknown model '{name}' (known: {', '.join(MODELS)})")
    torch.manual_seed(seed)
    model = MODELS[name]()
    if init:
        init_weights(model)
    if randomize_bn:
        torch2npz.randomize_batchnorm(model, torch.Generator().manual_seed(seed + 1))
    return model.eval()


def main():
    return align_common.multi_model_main(__doc__, MODELS, build,
                                         lambda name, seed: build(name, seed, init=False),
                                         with_resolution=True)


if __name__ == "__main__":
    sys.exit(main())
