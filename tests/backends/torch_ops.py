#!/usr/bin/python3
"""Writes single-op test cases with PyTorch (or numpy, for ONNX slice) reference outputs.

Usage: torch_ops.py OUTDIR

OUTDIR/manifest.txt lists the cases, one block each:
    case NAME
    op SPELLING            (ir/ops.def spelling)
    dtype f32|f64          (element type of the tensor files, unless itype/otype says)
    exact 0|1              (1: compare bit-exactly, for pure data movement)
    attr NAME TOKENS...    (one per non-default attribute; lists as several tokens)
    input FILE LAYOUT DIMS...
    output FILE LAYOUT DIMS...
    itype INDEX DTYPE      (input INDEX has another element type, e.g. i64 class ids)
    otype INDEX DTYPE      (the same for an output)
    end
Tensor files are raw little-endian arrays in the memory order of LAYOUT (logical dims are
always given in canonical order, e.g. N,C,H,W for nhwc). reference_torch_test.cpp reads
them, builds a one-node graph per case and compares the reference backend with them.
"""

import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

gen = torch.Generator().manual_seed(1234)


def randn(*shape, scale=1.0, dtype=torch.float32):
    return (torch.randn(tuple(shape), generator=gen, dtype=torch.float64) * scale).to(dtype)


def rand(*shape, lo=0.0, hi=1.0, dtype=torch.float32):
    return (torch.rand(tuple(shape), generator=gen, dtype=torch.float64) * (hi - lo) + lo).to(dtype)


def to_memory(x, layout):
    """The logical tensor x laid out in memory as `layout`."""
    if layout in ("-", "nchw", "oihw", "nc", "oi", "x", "ncw", "ncdhw", ""):
        return x.contiguous()
    if layout in ("nhwc", "ohwi"):
        return x.permute(0, 2, 3, 1).contiguous()
    if layout == "hwio":
        return x.permute(2, 3, 1, 0).contiguous()
    if layout.startswith("nChw") and layout.endswith("c"):
        b = int(layout[4:-1])
        n, c, h, w = x.shape
        return x.reshape(n, c // b, b, h, w).permute(0, 1, 3, 4, 2).contiguous()
    raise ValueError(f"unknown layout {layout}")


class Writer:
    def __init__(self, outdir):
        self.outdir = outdir
        self.lines = []
        self.count = 0
        self.names = set()

    def tensor_line(self, kind, index, x, layout, dtype):
        fname = f"c{self.count}_{kind}{index}.bin"
        x = x.detach()
        data = to_memory(x, layout)
        data = (data.to(dtype) if data.is_floating_point() else data).numpy()
        data.astype(data.dtype.newbyteorder("<")).tofile(os.path.join(self.outdir, fname))
        dims = " ".join(str(d) for d in x.shape)
        return f"{kind} {fname} {layout} {dims}".rstrip()

    def case(self, name, op, inputs, outputs, attrs=None, exact=False, in_layouts=None,
             out_layouts=None, dtype=torch.float32):
        assert name not in self.names, name
        self.names.add(name)
        tname = {torch.float32: "f32", torch.float64: "f64"}[dtype]
        lines = [f"case {name}", f"op {op}", f"dtype {tname}", f"exact {int(exact)}"]
        for key, value in (attrs or {}).items():
            lines.append(f"attr {key} {format_attr(value)}".rstrip())
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        for i, x in enumerate(inputs):
            lines.append(self.tensor_line("input", i, x, (in_layouts or {}).get(i, "-"), dtype))
            if x.dtype == torch.int64:
                lines.append(f"itype {i} i64")
        for i, y in enumerate(outputs):
            lines.append(self.tensor_line("output", i, y, (out_layouts or {}).get(i, "-"), dtype))
            if y.dtype == torch.int64:
                lines.append(f"otype {i} i64")
        lines.append("end")
        self.lines.extend(lines)
        self.count += 1

    def finish(self):
        with open(os.path.join(self.outdir, "manifest.txt"), "w") as f:
            f.write("\n".join(self.lines) + "\n")


def format_attr(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (list, tuple)):
        return " ".join(format_attr(e) for e in v)
    if isinstance(v, float):
        return repr(v)
    return str(v)


def pad_lrtb(pad):
    """kiln pad [top, left, bottom, right] -> F.pad's (left, right, top, bottom)."""
    t, l, b, r = pad
    return (l, r, t, b)


def conv_cases(w):
    specs = [
        # name, N, C, H, W, O, k, stride, pad(t,l,b,r), dilation, groups, bias
        ("3x3_pad1", 2, 3, 8, 7, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
        ("7x7_s2_p3", 1, 3, 20, 19, 8, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1, True),
        ("1x1_nobias", 2, 8, 5, 5, 6, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, False),
        ("asym_pad_stride2", 1, 4, 9, 10, 5, (3, 3), (2, 2), (0, 1, 1, 0), (1, 1), 1, True),
        ("asym_pad_big", 1, 2, 6, 6, 3, (3, 2), (1, 1), (2, 0, 1, 3), (1, 1), 1, False),
        ("dilation2", 1, 3, 11, 9, 4, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 1, True),
        ("dilation_rect", 1, 2, 12, 10, 3, (3, 2), (2, 1), (1, 0, 1, 0), (3, 2), 1, True),
        ("groups2", 2, 6, 7, 7, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, True),
        ("groups3_stride", 1, 6, 9, 8, 9, (3, 3), (2, 1), (1, 1, 1, 1), (1, 1), 3, False),
        ("depthwise", 2, 8, 10, 10, 8, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 8, True),
        ("depthwise_mult2", 1, 4, 6, 6, 8, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 4, True),
        ("rect_stride", 1, 3, 10, 13, 4, (1, 3), (3, 2), (0, 1, 0, 1), (1, 1), 1, True),
        ("wide", 1, 64, 14, 14, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    ]
    for name, n, c, h, wd, o, k, s, p, d, g, bias in specs:
        x = randn(n, c, h, wd)
        fan_in = (c // g) * k[0] * k[1]
        wt = randn(o, c // g, k[0], k[1], scale=1 / math.sqrt(fan_in))
        b = randn(o) if bias else None
        y = F.conv2d(F.pad(x, pad_lrtb(p)), wt, b, stride=s, dilation=d, groups=g)
        w.case(f"conv2d_{name}", "conv2d", [x, wt] + ([b] if bias else []), y,
               {"stride": s, "pad": p, "dilation": d, "groups": g})
    x = randn(1, 4, 6, 5, dtype=torch.float64)
    wt = randn(3, 4, 3, 3, dtype=torch.float64)
    y = F.conv2d(x, wt, None, stride=(2, 1), padding=1)
    w.case("conv2d_f64", "conv2d", [x, wt], y, {"stride": (2, 1), "pad": (1, 1, 1, 1)},
           dtype=torch.float64)


def norm_cases(w):
    for name, shape, eps in [("4d", (2, 5, 4, 3), 1e-5), ("2d", (6, 4), 1e-3), ("3d", (2, 3, 7), 0.1)]:
        c = shape[1]
        x = randn(*shape, scale=2.0)
        weight, bias, mean = randn(c), randn(c), randn(c)
        var = rand(c, lo=0.2, hi=2.0)
        y = F.batch_norm(x, mean, var, weight, bias, training=False, eps=eps)
        w.case(f"batch_norm_{name}", "batch_norm", [x, weight, bias, mean, var], y, {"epsilon": eps})


def elementwise_cases(w):
    x = randn(2, 3, 4, 5, scale=4.0)
    unary = {
        "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "swish": F.silu,
        "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid, "tanh": torch.tanh,
    }
    for op, fn in unary.items():
        w.case(f"{op}_4d", op, [x], fn(x))
        big = torch.tensor([-120.0, -30.0, -6.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 6.0, 30.0, 120.0])
        w.case(f"{op}_edges", op, [big], fn(big))
    v = randn(7, 9, dtype=torch.float64)
    w.case("sigmoid_f64", "sigmoid", [v], torch.sigmoid(v), dtype=torch.float64)
    for alpha, beta in [(0.2, 0.5), (0.5, 0.1)]:
        w.case(f"hardsigmoid_a{alpha}_b{beta}", "hardsigmoid", [x],
               torch.clamp(alpha * x + beta, 0, 1), {"alpha": alpha, "beta": beta})
    for lo, hi in [(-1.0, 1.0), (0.0, 6.0), (-math.inf, 0.5), (-2.0, math.inf)]:
        w.case(f"clip_{lo}_{hi}", "clip", [x], torch.clamp(x, lo, hi), {"min": lo, "max": hi})

    shapes = [
        ("same", (2, 3, 4, 5), (2, 3, 4, 5)),
        ("channel", (2, 3, 4, 5), (3, 1, 1)),
        ("row", (4, 5), (5,)),
        ("both", (4, 1, 5), (3, 1)),
        ("scalar_left", (), (2, 3)),
        ("scalar_right", (3, 2), ()),
        ("one", (1,), (3, 4)),
        ("nc11", (2, 3, 1, 1), (2, 3, 4, 5)),
        ("rank5", (2, 1, 3, 1, 2), (4, 1, 2, 1)),
    ]
    ops = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
    for op, fn in ops.items():
        for name, sa, sb in shapes:
            a = randn(*sa)
            b = randn(*sb)
            if op == "div":  # keep denominators away from 0
                b = torch.sign(b) * (b.abs() + 0.5)
                b[b == 0] = 1.0
            w.case(f"{op}_{name}", op, [a, b], fn(a, b))
    a, b = randn(3, 4, dtype=torch.float64), randn(4, dtype=torch.float64)
    w.case("mul_f64", "mul", [a, b], a * b, dtype=torch.float64)

    xs = randn(2, 3, 4, 5)
    for name, s in [("per_sample", randn(2, 3, 1, 1)), ("shared", randn(1, 3, 1, 1))]:
        w.case(f"channel_scale_{name}", "channel_scale", [xs, s], xs * s)


def dense_cases(w):
    for name, sa, sb in [
        ("2d", (5, 7), (7, 3)),
        ("batched", (4, 5, 6), (4, 6, 2)),
        ("broadcast_b", (2, 3, 5, 4), (4, 6)),
        ("broadcast_both", (2, 1, 3, 4), (5, 4, 2)),
        ("broadcast_a", (3, 4), (2, 4, 3)),
    ]:
        a, b = randn(*sa), randn(*sb)
        w.case(f"matmul_{name}", "matmul", [a, b], torch.matmul(a, b))
    a, b = randn(2, 3, 4, dtype=torch.float64), randn(4, 5, dtype=torch.float64)
    w.case("matmul_f64", "matmul", [a, b], a @ b, dtype=torch.float64)
    for name, sx, (o, i), bias in [
        ("bias", (4, 16), (10, 16), True),
        ("nobias", (3, 7), (5, 7), False),
        ("3d", (2, 3, 8), (6, 8), True),
        ("fc512", (2, 512), (100, 512), True),
    ]:
        x = randn(*sx)
        wt = randn(o, i, scale=1 / math.sqrt(i))
        b = randn(o) if bias else None
        w.case(f"linear_{name}", "linear", [x, wt] + ([b] if bias else []), F.linear(x, wt, b))


def pool_cases(w):
    max_specs = [
        # name, H, W, kernel, stride, pad(t,l,b,r), dilation, ceil
        ("k3s2p1", 9, 9, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),
        ("k3s2p1_ceil", 8, 8, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), True),
        ("k2s2_ceil_odd", 7, 5, (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), True),
        ("k3s3_ceil_drop", 10, 10, (3, 3), (3, 3), (1, 1, 1, 1), (1, 1), True),
        ("k2s2_ceil_lastwin", 6, 6, (2, 2), (2, 2), (1, 1, 1, 1), (1, 1), True),
        # the ceil_mode window that would start in the right padding is dropped
        ("k2s2p1_ceil_dropped", 5, 7, (2, 2), (2, 2), (1, 1, 1, 1), (1, 1), True),
        ("dilation2", 11, 10, (3, 2), (1, 2), (1, 1, 1, 1), (2, 2), False),
        ("dilation_ceil", 12, 11, (3, 3), (2, 2), (1, 1, 1, 1), (2, 1), True),
        ("rect", 8, 12, (2, 4), (1, 3), (1, 2, 1, 2), (1, 1), False),
    ]
    for name, h, wd, k, s, p, d, ceil in max_specs:
        x = randn(2, 3, h, wd)
        y = F.max_pool2d(x, k, s, (p[0], p[1]), d, ceil_mode=ceil)
        w.case(f"max_pool2d_{name}", "max_pool2d", [x], y,
               {"kernel": k, "stride": s, "pad": p, "dilation": d, "ceil_mode": ceil})
    x = randn(1, 2, 7, 8)
    p = (0, 1, 2, 1)
    y = F.max_pool2d(F.pad(x, pad_lrtb(p), value=-math.inf), (3, 3), (2, 2))
    w.case("max_pool2d_asym_pad", "max_pool2d", [x], y,
           {"kernel": (3, 3), "stride": (2, 2), "pad": p})

    avg_specs = [
        ("k3s2p1", 9, 9, (3, 3), (2, 2), (1, 1), False),
        ("k3s2p1_ceil", 8, 8, (3, 3), (2, 2), (1, 1), True),
        ("k2s2_ceil_odd", 7, 5, (2, 2), (2, 2), (0, 0), True),
        ("k3s3_ceil", 10, 10, (3, 3), (3, 3), (1, 1), True),
        ("k2s2_ceil_lastwin", 6, 6, (2, 2), (2, 2), (1, 1), True),
        ("k2s2p1_ceil_dropped", 5, 7, (2, 2), (2, 2), (1, 1), True),
        ("rect_ceil", 9, 12, (2, 4), (2, 3), (1, 2), True),
        ("k5s1p2", 6, 7, (5, 5), (1, 1), (2, 2), False),
    ]
    for name, h, wd, k, s, p, ceil in avg_specs:
        x = randn(2, 3, h, wd)
        for cip in (True, False):
            y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip)
            w.case(f"avg_pool2d_{name}_cip{int(cip)}", "avg_pool2d", [x], y,
                   {"kernel": k, "stride": s, "pad": (p[0], p[1], p[0], p[1]), "ceil_mode": ceil,
                    "count_include_pad": cip})
    x = randn(1, 2, 7, 8)
    p = (1, 0, 0, 2)
    y = F.avg_pool2d(F.pad(x, pad_lrtb(p)), (3, 3), (2, 2))
    w.case("avg_pool2d_asym_pad", "avg_pool2d", [x], y,
           {"kernel": (3, 3), "stride": (2, 2), "pad": p, "count_include_pad": True})
    x = randn(1, 3, 9, 9, dtype=torch.float64)
    y = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    w.case("avg_pool2d_f64", "avg_pool2d", [x], y,
           {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1, 1, 1), "ceil_mode": True,
            "count_include_pad": False}, dtype=torch.float64)

    for name, shape in [("7x7", (2, 8, 7, 7)), ("rect", (1, 3, 5, 9)), ("1x1", (3, 4, 1, 1))]:
        x = randn(*shape)
        w.case(f"global_avg_pool_{name}", "global_avg_pool", [x], x.mean((2, 3), keepdim=True))
    for name, hw, out in [("to1", (7, 7), (1, 1)), ("7to3", (7, 7), (3, 3)), ("5x7to2x3", (5, 7), (2, 3)),
                          ("10to4", (10, 10), (4, 4)), ("up5to8", (5, 5), (8, 8)),
                          ("same", (6, 6), (6, 6))]:
        x = randn(2, 3, *hw)
        w.case(f"adaptive_avg_pool2d_{name}", "adaptive_avg_pool2d", [x],
               F.adaptive_avg_pool2d(x, out), {"output_size": out})


def data_cases(w):
    a, b, c = randn(2, 3, 4), randn(2, 5, 4), randn(2, 1, 4)
    w.case("concat_axis1", "concat", [a, b, c], torch.cat([a, b, c], 1), {"axis": 1}, exact=True)
    d, e = randn(3, 4), randn(2, 4)
    w.case("concat_axis0", "concat", [d, e], torch.cat([d, e], 0), {"axis": 0}, exact=True)
    f, g = randn(2, 3, 2), randn(2, 3, 5)
    w.case("concat_axis_neg1", "concat", [f, g], torch.cat([f, g], -1), {"axis": -1}, exact=True)
    w.case("concat_single", "concat", [f], f, {"axis": 1}, exact=True)

    x = randn(2, 6, 3, 4)
    w.case("split_axis1", "split", [x], list(torch.split(x, [2, 4], 1)),
           {"axis": 1, "sizes": [2, 4]}, exact=True)
    w.case("split_axis_neg1", "split", [x], list(torch.split(x, [1, 1, 2], -1)),
           {"axis": -1, "sizes": [1, 1, 2]}, exact=True)
    w.case("split_axis0", "split", [x], list(torch.split(x, [1, 1], 0)),
           {"axis": 0, "sizes": [1, 1]}, exact=True)

    x = randn(4, 5, 6)
    slices = [
        ("basic", [1], [1], [4], [1]),
        ("multi", [0, 2], [1, -5], [3, 100], [1, 2]),
        ("neg_step", [2], [-1], [INT64_MIN], [-1]),
        ("neg_step2", [1, 2], [4, 5], [0, 1], [-2, -3]),
        ("clamped", [0], [-100], [INT64_MAX], [1]),
        ("default_axes", [], [1, 0], [3, 5], [1, 2]),
        ("empty", [2], [4], [2], [1]),
    ]
    for name, axes, starts, ends, steps in slices:
        index = [slice(None)] * 3
        for i, st in enumerate(starts):
            ax = axes[i] if axes else i
            index[ax] = slice(st, ends[i], steps[i])
        y = torch.from_numpy(np.ascontiguousarray(x.numpy()[tuple(index)]))
        attrs = {"starts": starts, "ends": ends, "steps": steps}
        if axes:
            attrs["axes"] = axes
        w.case(f"slice_{name}", "slice", [x], y, attrs, exact=True)

    x = randn(2, 3, 4, 5)
    for name, shape, torch_shape in [("copy_infer", [0, -1], (2, 60)), ("split_dims", [2, 3, 2, 2, 5], None),
                                     ("infer_mid", [2, -1, 5], (2, 12, 5)), ("flat", [-1], (120,))]:
        y = x.reshape(torch_shape if torch_shape else shape)
        w.case(f"reshape_{name}", "reshape", [x], y, {"shape": shape}, exact=True)
    for axis in (0, 1, 2, -1, 4):
        outer = int(np.prod(x.shape[:axis]))
        w.case(f"flatten_axis{axis}", "flatten", [x], x.reshape(outer, -1), {"axis": axis}, exact=True)
    for perm in ([0, 2, 3, 1], [3, 2, 1, 0], [1, 0, 2, 3], [0, 1, 2, 3]):
        w.case(f"transpose_{''.join(map(str, perm))}", "transpose", [x], x.permute(*perm).contiguous(),
               {"perm": perm}, exact=True)
    m = randn(3, 7)
    w.case("transpose_2d", "transpose", [m], m.t().contiguous(), {"perm": [1, 0]}, exact=True)

    for name, pads, value in [("spatial", [0, 0, 1, 2, 0, 0, 3, 0], 0.0),
                              ("all_dims", [1, 2, 0, 1, 0, 1, 2, 1], -1.5),
                              ("none", [0] * 8, 7.0)]:
        r = 4
        torch_pad = []
        for d in reversed(range(r)):
            torch_pad += [pads[d], pads[d + r]]
        w.case(f"pad_{name}", "pad", [x], F.pad(x, torch_pad, value=value),
               {"pads": pads, "value": value}, exact=True)

    x = randn(2, 16, 3, 5)
    wt = randn(8, 4, 3, 2)
    for name, t, src, dst in [("nchw_nhwc", x, "nchw", "nhwc"), ("nhwc_nchw", x, "nhwc", "nchw"),
                              ("nchw_nChw8c", x, "nchw", "nChw8c"), ("nChw16c_nhwc", x, "nChw16c", "nhwc"),
                              ("oihw_hwio", wt, "oihw", "hwio"), ("oihw_ohwi", wt, "oihw", "ohwi"),
                              ("hwio_oihw", wt, "hwio", "oihw"), ("hwio_ohwi", wt, "hwio", "ohwi")]:
        w.case(f"reorder_{name}", "reorder", [t], t, {"layout": dst}, exact=True,
               in_layouts={0: src}, out_layouts={0: dst})


def softmax_cases(w):
    x = randn(2, 3, 4, 5, scale=3.0)
    for op, fn in (("softmax", F.softmax), ("log_softmax", F.log_softmax)):
        for axis in (1, -1, 0, 2):
            w.case(f"{op}_axis{axis}", op, [x], fn(x, dim=axis), {"axis": axis})
        big = randn(3, 10, scale=50.0) + 1000.0
        w.case(f"{op}_large_logits", op, [big], fn(big, dim=1), {"axis": 1})
        d = randn(4, 6, dtype=torch.float64)
        w.case(f"{op}_f64", op, [d], fn(d, dim=-1), {"axis": -1}, dtype=torch.float64)


def misc_cases(w):
    x = randn(3, 4, 5)
    for p in (0.0, 0.3, 0.9):
        w.case(f"dropout_eval_p{p}", "dropout", [x], x, {"p": p}, exact=True)
    w.case("constant_scalar", "constant", [], torch.tensor(0.25),
           {"value": [0.25], "shape": [], "dtype": "f32"}, exact=True)
    w.case("constant_broadcast", "constant", [], torch.full((2, 3), -1.5),
           {"value": [-1.5], "shape": [2, 3], "dtype": "f32"}, exact=True)
    vals = [0.1 * i for i in range(6)]
    w.case("constant_exact", "constant", [], torch.tensor(vals, dtype=torch.float32).reshape(3, 2),
           {"value": vals, "shape": [3, 2], "dtype": "f32"}, exact=True)
    w.case("constant_f64", "constant", [], torch.tensor(vals, dtype=torch.float64),
           {"value": vals, "shape": [6], "dtype": "f64"}, exact=True, dtype=torch.float64)


def grads(fn, inputs, wrt, dy):
    """d<fn(*inputs), dy>/d inputs[i] for i in wrt, by autograd."""
    xs = [x.clone().requires_grad_(i in wrt) for i, x in enumerate(inputs)]
    y = fn(*xs)
    y.backward(dy)
    return [xs[i].grad for i in wrt]


def train_cases(w):
    # batch_norm_train: y, batch mean, biased batch variance, updated running statistics
    for name, shape, eps, momentum in [("4d", (3, 4, 5, 2), 1e-5, 0.1), ("2d", (6, 3), 1e-3, 0.3)]:
        c = shape[1]
        dims = [d for d in range(len(shape)) if d != 1]
        x = randn(*shape, scale=2.0) + 0.5
        weight, bias, rm = randn(c), randn(c), randn(c)
        rv = rand(c, lo=0.2, hi=2.0)
        new_rm, new_rv = rm.clone(), rv.clone()
        y = F.batch_norm(x, new_rm, new_rv, weight, bias, training=True, momentum=momentum, eps=eps)
        w.case(f"batch_norm_train_{name}", "batch_norm_train", [x, weight, bias, rm, rv],
               [y, x.mean(dims), x.var(dims, unbiased=False), new_rm, new_rv],
               {"epsilon": eps, "momentum": momentum})
        dy = randn(*shape)
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        gx, gw, gb = grads(lambda x_, w_, b_: F.batch_norm(x_, None, None, w_, b_, training=True, eps=eps),
                           [x, weight, bias], [0, 1, 2], dy)
        w.case(f"batch_norm_backward_{name}", "batch_norm_backward", [dy, x, weight, mean, var],
               [gx, gw, gb], {"epsilon": eps})

    x = randn(4, 3, 2, 2)
    seed = torch.tensor(5, dtype=torch.int64)
    w.case("drop_path_eval", "drop_path", [x], x, {"p": 0.5}, exact=True)
    w.case("drop_path_p0_training", "drop_path", [x, seed], x, {"p": 0.0, "training": True}, exact=True)
    w.case("dropout_p0_training_seeded", "dropout", [x, seed], x, {"p": 0.0, "training": True},
           exact=True)

    x = randn(2, 3, 4, 5)
    for name, axes, keep in [("bias", [0, 2, 3], False), ("keep", [1], True), ("neg", [-1, 0], True),
                             ("all", [], False)]:
        y = x.sum(axes if axes else list(range(4)), keepdim=keep)
        w.case(f"reduce_sum_{name}", "reduce_sum", [x], y, {"axes": axes, "keepdims": keep})

    conv_specs = [
        # name, N, C, H, W, O, k, stride, pad(t,l,b,r), dilation, groups
        ("3x3_pad1", 2, 3, 6, 5, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
        ("stride2_asym", 1, 2, 9, 8, 3, (3, 2), (2, 2), (0, 1, 2, 0), (1, 1), 1),
        ("dilation", 1, 2, 9, 9, 2, (3, 3), (1, 2), (2, 1, 2, 1), (2, 2), 1),
        ("groups2", 2, 4, 5, 5, 6, (3, 3), (2, 1), (1, 1, 1, 1), (1, 1), 2),
        ("depthwise", 2, 3, 7, 7, 3, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 3),
    ]
    for name, n, c, h, wd, o, k, s, p, d, g in conv_specs:
        x = randn(n, c, h, wd)
        wt = randn(o, c // g, k[0], k[1])

        def fwd(x_, w_, p=p, s=s, d=d, g=g):
            return F.conv2d(F.pad(x_, pad_lrtb(p)), w_, None, stride=s, dilation=d, groups=g)

        dy = randn(*fwd(x, wt).shape)
        gx, gw = grads(fwd, [x, wt], [0, 1], dy)
        attrs = {"stride": s, "pad": p, "dilation": d, "groups": g}
        w.case(f"conv2d_backward_data_{name}", "conv2d_backward_data", [dy, wt], gx,
               dict(attrs, input_size=(h, wd)))
        w.case(f"conv2d_backward_weight_{name}", "conv2d_backward_weight", [x, dy], gw,
               dict(attrs, kernel=k), out_layouts={0: "oihw"})

    for name, h, wd, k, s, p, d, ceil in [("k3s2p1", 9, 9, (3, 3), (2, 2), (1, 1), (1, 1), False),
                                          ("ceil_dilation", 8, 7, (2, 3), (2, 1), (1, 1), (2, 1), True),
                                          ("overlap", 5, 6, (3, 3), (1, 1), (0, 0), (1, 1), False)]:
        x = randn(2, 3, h, wd)
        fwd = lambda x_: F.max_pool2d(x_, k, s, p, d, ceil_mode=ceil)
        dy = randn(*fwd(x).shape)
        w.case(f"max_pool2d_backward_{name}", "max_pool2d_backward", [dy, x], grads(fwd, [x], [0], dy),
               {"kernel": k, "stride": s, "pad": (p[0], p[1], p[0], p[1]), "dilation": d, "ceil_mode": ceil})
    # ties: the first maximum of a window takes the gradient
    x = torch.tensor([[[[1.0, 1.0, 0.0], [1.0, 2.0, 2.0], [0.0, 2.0, 2.0]]]])
    fwd = lambda x_: F.max_pool2d(x_, 2, 1)
    dy = randn(1, 1, 2, 2)
    w.case("max_pool2d_backward_ties", "max_pool2d_backward", [dy, x], grads(fwd, [x], [0], dy),
           {"kernel": (2, 2), "stride": (1, 1)})
    for name, h, wd, k, s, p, ceil, cip in [("k3s2p1_cip", 9, 8, (3, 3), (2, 2), (1, 1), False, True),
                                            ("ceil_nocip", 7, 7, (3, 2), (2, 2), (1, 1), True, False),
                                            ("k2s2", 4, 6, (2, 2), (2, 2), (0, 0), False, True)]:
        x = randn(2, 3, h, wd)
        fwd = lambda x_: F.avg_pool2d(x_, k, s, p, ceil_mode=ceil, count_include_pad=cip)
        dy = randn(*fwd(x).shape)
        w.case(f"avg_pool2d_backward_{name}", "avg_pool2d_backward", [dy], grads(fwd, [x], [0], dy),
               {"kernel": k, "stride": s, "pad": (p[0], p[1], p[0], p[1]), "ceil_mode": ceil,
                "count_include_pad": cip, "input_size": (h, wd)})

    # activation gradients, including the kinks (PyTorch's subgradients)
    x = torch.cat([randn(40, scale=4.0),
                   torch.tensor([-6.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 6.0, -0.5, 1.25])]).reshape(7, 7)
    dy = randn(7, 7)
    for op, fn, attrs in [("relu_backward", F.relu, {}),
                          ("clip_backward", lambda v: F.hardtanh(v, 0.0, 6.0), {"min": 0.0, "max": 6.0}),
                          ("clip_backward", lambda v: F.hardtanh(v, -0.5, 1.25), {"min": -0.5, "max": 1.25}),
                          ("swish_backward", F.silu, {}),
                          ("hardswish_backward", F.hardswish, {}),
                          ("hardsigmoid_backward", F.hardsigmoid, {})]:
        name = f"{op}_{len([l for l in w.names if l.startswith(op)])}"
        w.case(name, op, [dy, x], grads(fn, [x], [0], dy), attrs)
    xa = randn(5, 6, scale=3.0)
    dya = randn(5, 6)
    w.case("hardsigmoid_backward_onnx", "hardsigmoid_backward", [dya, xa],
           grads(lambda v: torch.clamp(0.2 * v + 0.5, 0, 1), [xa], [0], dya), {"alpha": 0.2, "beta": 0.5})
    d = randn(4, 5, dtype=torch.float64)
    dd = randn(4, 5, dtype=torch.float64)
    w.case("swish_backward_f64", "swish_backward", [dd, d], grads(F.silu, [d], [0], dd),
           dtype=torch.float64)

    # loss: class ids and probabilities, with label smoothing; backward with a dloss
    ids = torch.randint(0, 7, (5,), generator=gen)
    probs = F.softmax(randn(5, 7, scale=2.0), dim=1)
    for name, target in [("ids", ids), ("soft", probs)]:
        for s in (0.0, 0.1):
            z = randn(5, 7, scale=3.0)
            loss = F.cross_entropy(z, target, label_smoothing=s)
            w.case(f"softmax_cross_entropy_{name}_ls{s}", "softmax_cross_entropy", [z, target], loss,
                   {"label_smoothing": s})
            dl = torch.tensor(1.7)
            gz, = grads(lambda z_: F.cross_entropy(z_, target, label_smoothing=s), [z], [0], dl)
            w.case(f"softmax_cross_entropy_backward_{name}_ls{s}", "softmax_cross_entropy_backward",
                   [dl, z, target], gz, {"label_smoothing": s})
    z = randn(6, 4)
    ids = torch.randint(0, 4, (6,), generator=gen)
    w.case("count_correct_ids", "count_correct", [z, ids], (z.argmax(1) == ids).sum(), exact=True)
    soft = F.softmax(randn(6, 4, scale=2.0), 1)
    w.case("count_correct_soft", "count_correct", [z, soft], (z.argmax(1) == soft.argmax(1)).sum(),
           exact=True)

    # sgd_update: torch.optim.SGD, one step from a given momentum buffer
    for name, momentum, wd, nesterov in [("plain", 0.0, 0.0, False), ("wd", 0.0, 1e-2, False),
                                         ("momentum", 0.9, 1e-3, False), ("nesterov", 0.8, 5e-2, True)]:
        p = randn(4, 3, 2, 2)
        g = randn(4, 3, 2, 2)
        buf = randn(4, 3, 2, 2)
        lr = torch.tensor(0.05)
        param = torch.nn.Parameter(p.clone())
        opt = torch.optim.SGD([param], lr=lr.item(), momentum=momentum, weight_decay=wd,
                              nesterov=nesterov)
        param.grad = g.clone()
        if momentum:
            opt.state[param]["momentum_buffer"] = buf.clone()
        opt.step()
        inputs = [p, g, lr] + ([buf] if momentum else [])
        outputs = [param.detach()] + ([opt.state[param]["momentum_buffer"]] if momentum else [])
        w.case(f"sgd_update_{name}", "sgd_update", inputs, outputs,
               {"momentum": momentum, "weight_decay": wd, "nesterov": nesterov})

    # rmsprop_update: torch.optim.RMSprop from a given state, and timm's RMSpropTF step
    # (lr_in_momentum, eps inside the root) written out as timm does it
    for name, tf, alpha, eps, momentum, wd in [("torch", False, 0.99, 1e-8, 0.0, 0.0),
                                               ("torch_momentum", False, 0.9, 1e-3, 0.9, 1e-2),
                                               ("tf", True, 0.9, 1e-3, 0.0, 1e-2),
                                               ("tf_momentum", True, 0.9, 1e-3, 0.9, 0.0)]:
        p = randn(4, 3, 2, 2)
        g = randn(4, 3, 2, 2)
        sq = randn(4, 3, 2, 2).abs() + 0.1
        buf = randn(4, 3, 2, 2)
        lr = torch.tensor(0.05)
        if tf:
            grad = g + wd * p if wd else g
            new_sq = sq + (1 - alpha) * (grad * grad - sq)
            avg = (new_sq + eps).sqrt()
            if momentum:
                new_buf = momentum * buf + lr * grad / avg
                new_p = p - new_buf
            else:
                new_p = p - lr * grad / avg
            outputs = [new_p, new_sq] + ([new_buf] if momentum else [])
        else:
            param = torch.nn.Parameter(p.clone())
            opt = torch.optim.RMSprop([param], lr=lr.item(), alpha=alpha, eps=eps,
                                      momentum=momentum, weight_decay=wd)
            param.grad = g.clone()
            opt.state[param] = {"step": torch.tensor(3.0), "square_avg": sq.clone()}
            if momentum:
                opt.state[param]["momentum_buffer"] = buf.clone()
            opt.step()
            st = opt.state[param]
            outputs = [param.detach(), st["square_avg"]] + ([st["momentum_buffer"]] if momentum else [])
        inputs = [p, g, lr, sq] + ([buf] if momentum else [])
        w.case(f"rmsprop_update_{name}", "rmsprop_update", inputs, outputs,
               {"alpha": alpha, "eps": eps, "momentum": momentum, "weight_decay": wd, "tf": tf})

    # adamw_update: torch.optim.AdamW from a given state after 4 steps (bias correction 5)
    for name, wd in [("plain", 0.0), ("wd", 0.05)]:
        p = randn(4, 3, 2, 2)
        g = randn(4, 3, 2, 2)
        m = randn(4, 3, 2, 2, scale=0.3)
        v = randn(4, 3, 2, 2).abs() * 0.1
        lr = torch.tensor(0.01)
        param = torch.nn.Parameter(p.clone())
        opt = torch.optim.AdamW([param], lr=lr.item(), betas=(0.8, 0.99), eps=1e-8, weight_decay=wd)
        param.grad = g.clone()
        opt.state[param] = {"step": torch.tensor(4.0), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
        opt.step()
        st = opt.state[param]
        w.case(f"adamw_update_{name}", "adamw_update", [p, g, lr, m, v, torch.tensor(4.0)],
               [param.detach(), st["exp_avg"], st["exp_avg_sq"]],
               {"beta1": 0.8, "beta2": 0.99, "eps": 1e-8, "weight_decay": wd})

    # ema_update: timm ModelEmaV2's decay * ema + (1 - decay) * model
    e, x = randn(5, 3), randn(5, 3)
    w.case("ema_update", "ema_update", [e, x], 0.9 * e + (1 - 0.9) * x, {"decay": 0.9})

    # global_norm: clip_grad_norm_'s total norm (the norm of the per-tensor norms)
    gs = [randn(2, 3, 4, 4), randn(6), randn(3, 2)]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in gs]))
    w.case("global_norm", "global_norm", gs, total)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    w = Writer(sys.argv[1])
    for fn in (conv_cases, norm_cases, elementwise_cases, dense_cases, pool_cases, data_cases,
               softmax_cases, misc_cases, train_cases):
        fn(w)
    w.finish()
    print(f"wrote {w.count} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
