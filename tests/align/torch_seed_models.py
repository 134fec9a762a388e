#!/usr/bin/env python3
"""PyTorch reference modules for models kiln builds from seed code that is not in torchvision,
and reference data for their alignment tests (tests/align/pelee_mobilenext_align_test.cpp).

  torch_seed_models.py --model peleenet mobilenext_100 --seed 0 --batch 2 --resolution 64 --out DIR
  torch_seed_models.py --keys peleenet mobilenext_100     # state_dict keys, one a line
  torch_seed_models.py --count peleenet mobilenext_100    # params and MACs at 224

--out writes DIR/<model>/{weights.npz, x.npy, y.npy} per model as tests/align/torch_models.py
does (y in float64 from the float32 weights and input; convs He-normal, see init_weights; BN
statistics and affine parameters randomized) and prints `<model> max|y| <v> f32_vs_f64 <d>` per model. One run serves several
models because importing torch is the slow part.
--keys prints `model P|B key [shape]` per state_dict entry (no num_batches_tracked).
--count prints `model params <n> macs <m>` (conv + linear multiply-accumulates per image).

The modules translate the seeds' PaddlePaddle code (`paddle.nn` -> `torch.nn`, BN buffers
`_mean`/`_variance` -> running_mean/running_var) keeping every module name, so the state_dict
keys are the seed code's parameter names. What the seeds leave out is completed as follows:

PeleeNet (seed 000, a Paddle port of Robert-JunWang/PeleeNet): the text lost its `*` signs
  and PeleeNet has no forward(). `int(growth_rate bottleneck_width / 4) 4` is read as
  `int(growth_rate * bottleneck_width / 4) * 4`, `[growth_rate] 4` as `[growth_rate] * 4`,
  `num_layers growth_rates[i]` as `num_layers * growth_rates[i]`. forward() is the paper's
  (and the reference repo's): features -> global average pool -> flatten -> dropout(0.05,
  identity in eval) -> classifier. BasicConv2d's `kwargs` is `**kwargs`.
MobileNeXt (seed 003, PaddleClas MobileNeXt): `_make_divisible` and `conv_3x3_bn` are not in
  the seed; they are MobileNetV2's helpers: _make_divisible(v, divisor, min_value=divisor)
  rounds to the nearest multiple, never below min_value nor below 90% of v; conv_3x3_bn is
  Sequential(Conv2d 3x3 stride s pad 1 no bias, BatchNorm2d, ReLU6). The classifier's
  `bias_attr=no_weight_decay_attr` only changes the optimizer; the bias exists. The seed text
  lost its indentation: SGBlock's `hidden_dim = _make_divisible(hidden_dim, 16)` sits inside
  `if hidden_dim < oup / 6.`, as in the authors' code (at width 1.0 every hidden width is a
  multiple of 16 anyway; the narrower widths depend on it).
Run with the python that has torch (/usr/bin/python3).
"""

import math
import sys

import torch
from torch import nn
import torch.nn.functional as F

import align_common
from align_common import torch2npz


# ---- PeleeNet (seed 000) ------------------------------------------------------------------

class BasicConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, activation=True, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.norm = nn.BatchNorm2d(out_channels)
        self.activation = activation

    def forward(self, x):
        x = self.norm(self.conv(x))
        return F.relu(x) if self.activation else x


class _DenseLayer(nn.Module):
    def __init__(self, num_input_features, growth_rate, bottleneck_width, drop_rate):
        super().__init__()
        growth_rate = int(growth_rate / 2)
        inter_channel = int(growth_rate * bottleneck_width / 4) * 4
        if inter_channel > num_input_features / 2:
            inter_channel = int(num_input_features / 8) * 4
        self.branch1a = BasicConv2d(num_input_features, inter_channel, kernel_size=1)
        self.branch1b = BasicConv2d(inter_channel, growth_rate, kernel_size=3, padding=1)
        self.branch2a = BasicConv2d(num_input_features, inter_channel, kernel_size=1)
        self.branch2b = BasicConv2d(inter_channel, growth_rate, kernel_size=3, padding=1)
        self.branch2c = BasicConv2d(growth_rate, growth_rate, kernel_size=3, padding=1)

    def forward(self, x):
        branch1 = self.branch1b(self.branch1a(x))
        branch2 = self.branch2c(self.branch2b(self.branch2a(x)))
        return torch.cat([x, branch1, branch2], 1)


class _DenseBlock(nn.Sequential):
    def __init__(self, num_layers, num_input_features, bn_size, growth_rate, drop_rate):
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size,
                                drop_rate)
            self.add_module('denselayer%d' % (i + 1), layer)


class _StemBlock(nn.Module):
    def __init__(self, num_input_channels, num_init_features):
        super().__init__()
        num_stem_features = int(num_init_features / 2)
        self.stem1 = BasicConv2d(num_input_channels, num_init_features, kernel_size=3, stride=2,
                                 padding=1)
        self.stem2a = BasicConv2d(num_init_features, num_stem_features, kernel_size=1, stride=1,
                                  padding=0)
        self.stem2b = BasicConv2d(num_stem_features, num_init_features, kernel_size=3, stride=2,
                                  padding=1)
        self.stem3 = BasicConv2d(2 * num_init_features, num_init_features, kernel_size=1,
                                 stride=1, padding=0)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, x):
        out = self.stem1(x)
        branch2 = self.stem2b(self.stem2a(out))
        branch1 = self.pool(out)
        return self.stem3(torch.cat([branch1, branch2], 1))


class PeleeNet(nn.Module):
    def __init__(self, growth_rate=32, block_config=(3, 4, 8, 6), num_init_features=32,
                 bottleneck_width=(1, 2, 4, 4), drop_rate=0.05, num_classes=1000):
        super().__init__()
        self.features = nn.Sequential()
        self.features.add_module('stemblock', _StemBlock(3, num_init_features))
        growth_rates = list(growth_rate) if isinstance(growth_rate, (list, tuple)) \
            else [growth_rate] * 4
        bottleneck_widths = list(bottleneck_width) if isinstance(bottleneck_width, (list, tuple)) \
            else [bottleneck_width] * 4
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers=num_layers, num_input_features=num_features,
                                bn_size=bottleneck_widths[i], growth_rate=growth_rates[i],
                                drop_rate=drop_rate)
            self.features.add_module('denseblock%d' % (i + 1), block)
            num_features = num_features + num_layers * growth_rates[i]
            self.features.add_module('transition%d' % (i + 1), BasicConv2d(
                num_features, num_features, kernel_size=1, stride=1, padding=0))
            if i != len(block_config) - 1:
                self.features.add_module('transition%d_pool' % (i + 1),
                                         nn.AvgPool2d(kernel_size=2, stride=2))
        self.classifier = nn.Linear(num_features, num_classes)
        self.drop_rate = drop_rate

    def forward(self, x):
        features = self.features(x)
        out = F.avg_pool2d(features, kernel_size=(features.size(2), features.size(3)))
        out = out.flatten(1)
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return self.classifier(out)


# ---- MobileNeXt (seed 003) ----------------------------------------------------------------

def _make_divisible(v, divisor, min_value=None):
    """MobileNetV2's helper (not in the seed)."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def conv_3x3_bn(inp, oup, stride):
    """MobileNetV2's stem helper (not in the seed)."""
    return nn.Sequential(nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup),
                         nn.ReLU6())


class SGBlock(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio, keep_3x3=False):
        super().__init__()
        assert stride in [1, 2]
        hidden_dim = inp // expand_ratio
        if hidden_dim < oup / 6.:
            hidden_dim = math.ceil(oup / 6.)
            hidden_dim = _make_divisible(hidden_dim, 16)
        self.identity = False
        self.identity_div = 1
        self.expand_ratio = expand_ratio
        dw = lambda c, s: nn.Conv2d(c, c, 3, s, 1, groups=c, bias=False)  # noqa: E731
        pw = lambda i, o: nn.Conv2d(i, o, 1, 1, 0, bias=False)  # noqa: E731
        BN = nn.BatchNorm2d
        if expand_ratio == 2:
            self.conv = nn.Sequential(dw(inp, 1), BN(inp), nn.ReLU6(),
                                      pw(inp, hidden_dim), BN(hidden_dim),
                                      pw(hidden_dim, oup), BN(oup), nn.ReLU6(),
                                      dw(oup, stride), BN(oup))
        elif inp != oup and stride == 1 and not keep_3x3:
            self.conv = nn.Sequential(pw(inp, hidden_dim), BN(hidden_dim),
                                      pw(hidden_dim, oup), BN(oup), nn.ReLU6())
        elif inp != oup and stride == 2 and not keep_3x3:
            self.conv = nn.Sequential(pw(inp, hidden_dim), BN(hidden_dim),
                                      pw(hidden_dim, oup), BN(oup), nn.ReLU6(),
                                      dw(oup, stride), BN(oup))
        else:
            if not keep_3x3:
                self.identity = True
            self.conv = nn.Sequential(dw(inp, 1), BN(inp), nn.ReLU6(),
                                      pw(inp, hidden_dim), BN(hidden_dim),
                                      pw(hidden_dim, oup), BN(oup), nn.ReLU6(),
                                      dw(oup, 1), BN(oup))

    def forward(self, x):
        out = self.conv(x)
        if self.identity:
            if self.identity_div == 1:
                out = out + x
            else:
                c = x.shape[1] // self.identity_div
                out[:, :c] = out[:, :c] + x[:, :c]
        return out


class MobileNeXt(nn.Module):
    def __init__(self, class_num=1000, width_mult=1.00):
        super().__init__()
        self.cfgs = [
            # t, c, n, s
            [2, 96, 1, 2],
            [6, 144, 1, 1],
            [6, 192, 3, 2],
            [6, 288, 3, 2],
            [6, 384, 4, 1],
            [6, 576, 4, 2],
            [6, 960, 3, 1],
            [6, 1280, 1, 1],
        ]
        input_channel = _make_divisible(32 * width_mult, 4 if width_mult == 0.1 else 8)
        layers = [conv_3x3_bn(3, input_channel, 2)]
        block = SGBlock
        for t, c, n, s in self.cfgs:
            output_channel = _make_divisible(c * width_mult, 4 if width_mult == 0.1 else 8)
            if c == 1280 and width_mult < 1:
                output_channel = 1280
            layers.append(block(input_channel, output_channel, s, t, n == 1 and s == 1))
            input_channel = output_channel
            for _ in range(n - 1):
                layers.append(block(input_channel, output_channel, 1, t))
                input_channel = output_channel
        self.features = nn.Sequential(*layers)
        input_channel = output_channel
        output_channel = _make_divisible(input_channel, 4)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(output_channel, class_num))

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(x.flatten(1))


MODELS = {
    "peleenet": lambda: PeleeNet(),
    "mobilenext_035": lambda: MobileNeXt(width_mult=0.35),
    "mobilenext_050": lambda: MobileNeXt(width_mult=0.5),
    "mobilenext_075": lambda: MobileNeXt(width_mult=0.75),
    "mobilenext_100": lambda: MobileNeXt(width_mult=1.0),
    "mobilenext_140": lambda: MobileNeXt(width_mult=1.4),
}


def init_weights(model):
    """He-normal convs, normal(0, sqrt(2 / fan_in)) with fan_in = in/groups * kh * kw: it keeps
    the activations' scale through the depth (depthwise convs included), so an error deep in
    the net still shows in the logits. torch's default init shrinks them layer by layer, and
    the seeds' own init (fan_out = k*k*out_channels) crushes every depthwise conv's output
    by ~sqrt(channels). Linear layers keep torch's default init."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            with torch.no_grad():
                m.weight.normal_(0, math.sqrt(2. / m.weight[0].numel()))


def build(name, seed, randomize_bn=False):
    """MODELS[name] initialized as the seeds do (torch.manual_seed(seed)), in eval mode."""
    if name not in MODELS:
        raise SystemExit(f"error: unknown model '{name}' (known: {', '.join(MODELS)})")
    torch.manual_seed(seed)
    model = MODELS[name]()
    init_weights(model)
    if randomize_bn:
        torch2npz.randomize_batchnorm(model, torch.Generator().manual_seed(seed + 1))
    return model.eval()


def main():
    return align_common.multi_model_main(__doc__, MODELS, build, build)


if __name__ == "__main__":
    sys.exit(main())
