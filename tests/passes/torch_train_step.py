#!/usr/bin/python3
"""PyTorch reference for kiln's train step (tests/passes/autodiff_torch_test.cpp).

  torch_train_step.py --out DIR CASE...
  CASE = "NAME --model tiny|tiny_mbconv|resnet20|TORCHVISION_NAME [--batch 4] [--resolution 8] [--label-smoothing S]
          [--optimizer sgd|rmsproptf|rmsprop|adamw] [--momentum M] [--weight-decay W]
          [--nesterov] [--alpha A] [--eps E] [--beta1 B] [--beta2 B] [--no-bias-decay]
          [--soft-targets] [--clip-grad-norm C] [--ema-decay D] [--accum K] [--lrs 0.1,0.05]"

For each case (one process, since importing torch is the slow part), runs one optimizer step
per learning rate of --lrs on a training-mode model (BN batch statistics, running statistics
with momentum 0.1) with cross-entropy loss, and writes into DIR/NAME:
  weights.npz          the initial state_dict (float32, no num_batches_tracked)
  x<s>.npy, labels<s>.npy    the inputs of step s (float32; int64 ids or float32 soft targets);
                       with --accum K: x<s>_<k>.npy, labels<s>_<k>.npy for micro-batch k < K
  expected<s>.npz      after step s, computed in float64 from the float32 start: `loss` (of the
                       last micro-batch), `grad:<param>` (not with --accum), `grad_norm` (with
                       --clip-grad-norm: before clipping), `new:<param>`, `new:<buffer>` (BN
                       running statistics), the optimizer state `new:<param>.<state>`
                       (momentum_buffer, square_avg, exp_avg, exp_avg_sq), `new:optimizer.step`
                       (AdamW), `new:<name>.ema` (--ema-decay) and `new:<param>.grad_acc`
                       (zeros, --accum)
The names are kiln's train-step output names (passes/autodiff.h). The optimizers: torch.optim
SGD, RMSprop and AdamW, and timm's RMSpropTF (written out below: timm is not a dependency).
Gradient accumulation is torch's usual loop: K backward passes of loss / K, then one step;
clipping is torch.nn.utils.clip_grad_norm_ before the step; EMA is timm's ModelEmaV2 (every
float state_dict entry, after the step).
"""

import argparse
import os
import shlex
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "align"))
import torch_models  # noqa: E402
from align_common import torch2npz  # noqa: E402


class RMSpropTF(torch.optim.Optimizer):
    """timm.optim.RMSpropTF with its defaults (not centered, weight decay added to the
    gradient, lr_in_momentum=True): square_avg starts at ones, TensorFlow's update order, eps
    inside the square root, the learning rate accumulated in the momentum buffer."""

    def __init__(self, params, lr=1e-2, alpha=0.9, eps=1e-10, weight_decay=0.0, momentum=0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["square_avg"] = torch.ones_like(p)
                    if group["momentum"] > 0:
                        state["momentum_buffer"] = torch.zeros_like(p)
                square_avg = state["square_avg"]
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                square_avg.add_(grad.pow(2) - square_avg, alpha=1.0 - group["alpha"])
                avg = square_avg.add(group["eps"]).sqrt_()
                if group["momentum"] > 0:
                    buf = state["momentum_buffer"]
                    buf.mul_(group["momentum"]).addcdiv_(grad, avg, value=group["lr"])
                    p.add_(-buf)
                else:
                    p.addcdiv_(grad, avg, value=-group["lr"])


def make_optimizer(a, groups):
    if a.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=1.0, momentum=a.momentum, nesterov=a.nesterov)
    if a.optimizer == "rmsproptf":
        return RMSpropTF(groups, lr=1.0, alpha=a.alpha, eps=a.eps, momentum=a.momentum)
    if a.optimizer == "rmsprop":
        return torch.optim.RMSprop(groups, lr=1.0, alpha=a.alpha, eps=a.eps, momentum=a.momentum)
    if a.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=1.0, betas=(a.beta1, a.beta2), eps=a.eps)
    raise SystemExit(f"unknown optimizer {a.optimizer}")


class Tiny(nn.Module):
    """conv-BN-ReLU-maxpool, then a grouped strided conv with bias and hardswish (no BN after
    it: BN would make the bias gradient exactly 0, leaving nothing to compare) added to an
    average-pooled shortcut, global pooling and a linear classifier (the C++ test builds the
    same net with the DSL)."""

    def __init__(self, classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4, bias=True)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        y = F.hardswish(self.conv2(x)) + F.avg_pool2d(x, 2)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class TinyMBConv(nn.Module):
    """A stem conv-BN-SiLU and one EfficientNet MBConv block (1x1 expand, depthwise 3x3,
    squeeze-excitation with SiLU and sigmoid, 1x1 project, residual add behind stochastic
    depth), global pooling, dropout and a linear classifier. Dropout and stochastic depth
    have p = 0: their masks are random."""

    def __init__(self, classes=5):
        super().__init__()
        import torchvision
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(8)
        self.expand = nn.Conv2d(8, 16, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, stride=1, padding=1, groups=16, bias=False)
        self.dw_bn = nn.BatchNorm2d(16)
        self.se = torchvision.ops.SqueezeExcitation(16, 4, activation=nn.SiLU)
        self.project = nn.Conv2d(16, 8, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(8)
        self.drop_path = torchvision.ops.StochasticDepth(0.0, "row")
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = F.silu(self.stem_bn(self.stem(x)))
        y = F.silu(self.expand_bn(self.expand(x)))
        y = self.se(F.silu(self.dw_bn(self.dw(y))))
        x = x + self.drop_path(self.project_bn(self.project(y)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(F.dropout(x, 0.0, self.training))


def build(name, seed):
    """The model, its input channels and classes. Dropout and stochastic depth are set to 0
    (their masks are random), so the comparison is deterministic."""
    if name in ("tiny", "tiny_mbconv"):
        torch.manual_seed(seed)
        model = Tiny() if name == "tiny" else TinyMBConv()
        torch2npz.randomize_batchnorm(model, torch.Generator().manual_seed(seed + 1))
        return model, 3, 5
    if name == "resnet20":
        return torch_models.build_model(name, seed, None), 1, 10
    import torchvision
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(num_classes=10)
    torch2npz.randomize_batchnorm(model, torch.Generator().manual_seed(seed + 1))
    for m in model.modules():
        if isinstance(m, (nn.Dropout, torchvision.ops.StochasticDepth)):
            m.p = 0.0
    return model, 3, 10


def run_case(argv, outdir):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("--model", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--resolution", type=int, default=8)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--no-bias-decay", action="store_true")
    p.add_argument("--soft-targets", action="store_true")
    p.add_argument("--optimizer", default="sgd")
    p.add_argument("--alpha", type=float, default=0.9)
    p.add_argument("--eps", type=float, default=1e-3)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--clip-grad-norm", type=float, default=0.0)
    p.add_argument("--ema-decay", type=float, default=0.0)
    p.add_argument("--accum", type=int, default=1)
    p.add_argument("--lrs", default="0.1,0.05")
    a = p.parse_args(argv)
    a.out = os.path.join(outdir, a.name)
    os.makedirs(a.out, exist_ok=True)

    model, channels, classes = build(a.model, a.seed)
    torch2npz.save_npz(model.state_dict(), os.path.join(a.out, "weights.npz"))
    model = model.double().train()
    names = {id(p): n for n, p in model.named_parameters()}
    decay = [p for p in model.parameters() if not (a.no_bias_decay and p.dim() == 1)]
    no_decay = [p for p in model.parameters() if a.no_bias_decay and p.dim() == 1]
    groups = [{"params": decay, "weight_decay": a.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    opt = make_optimizer(a, groups)
    state_names = [n for n, t in model.state_dict().items()
                   if t.is_floating_point()]
    ema = {n: t.detach().clone() for n, t in model.state_dict().items() if n in state_names}

    g = torch.Generator().manual_seed(a.seed + 2)
    for step, lr in enumerate(float(v) for v in a.lrs.split(",")):
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        for k in range(a.accum):
            x = torch.randn(a.batch, channels, a.resolution, a.resolution, generator=g)
            if a.soft_targets:
                labels = F.softmax(torch.randn(a.batch, classes, generator=g) * 2, dim=1)
            else:
                labels = torch.randint(0, classes, (a.batch,), generator=g)
            suffix = f"{step}_{k}" if a.accum > 1 else f"{step}"
            np.save(os.path.join(a.out, f"x{suffix}.npy"), x.numpy())
            np.save(os.path.join(a.out, f"labels{suffix}.npy"), labels.numpy())
            target = labels.double() if a.soft_targets else labels
            loss = F.cross_entropy(model(x.double()), target, label_smoothing=a.label_smoothing)
            (loss / a.accum if a.accum > 1 else loss).backward()
        out = {"loss": loss.detach()}
        if a.accum == 1:
            for p in model.parameters():
                out["grad:" + names[id(p)]] = p.grad.detach().clone()
        if a.clip_grad_norm > 0:
            out["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip_grad_norm)
        opt.step()
        for n, t in model.state_dict().items():
            if not n.endswith("num_batches_tracked"):
                out["new:" + n] = t.detach().clone()
        for p in model.parameters():
            st = opt.state[p]
            for key in ("momentum_buffer", "square_avg", "exp_avg", "exp_avg_sq"):
                if key in st and st[key] is not None:
                    out["new:" + names[id(p)] + "." + key] = st[key].detach().clone()
            if a.optimizer == "adamw":
                out["new:optimizer.step"] = torch.as_tensor(st["step"], dtype=torch.float64)
            if a.accum > 1:
                out["new:" + names[id(p)] + ".grad_acc"] = torch.zeros_like(p)
        if a.ema_decay > 0:
            sd = model.state_dict()
            for n in state_names:
                ema[n] = a.ema_decay * ema[n] + (1.0 - a.ema_decay) * sd[n].detach()
                out["new:" + n + ".ema"] = ema[n].clone()
        np.savez(os.path.join(a.out, f"expected{step}.npz"),
                 **{k: v.numpy().astype(np.float64) for k, v in out.items()})


def main():
    if len(sys.argv) < 4 or sys.argv[1] != "--out":
        print(__doc__, file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    for case in sys.argv[3:]:
        run_case(shlex.split(case), sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
