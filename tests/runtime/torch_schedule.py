# Learning rates per iteration from torch.optim.lr_scheduler for tests/runtime/schedule_test.cpp:
# LambdaLR with kiln's closed forms (runtime/schedule.cpp, the same double operations) and,
# where torch has one, the native scheduler (StepLR, MultiStepLR, CosineAnnealingLR, LinearLR).
# Usage: torch_schedule.py '[{"kind": "cosine", "base": 0.1, "warmup": 0, "total": 50, ...}, ...]'
# prints one {"lambda": [...], "native": [...] or null} per spec, as a JSON list.
import bisect
import json
import math
import sys

import torch


def rates(spec):
    kind, base, warmup, total = spec["kind"], spec["base"], spec["warmup"], spec["total"]
    step_size, gamma, milestones = spec.get("step", 1), spec.get("gamma", 0.1), spec.get("milestones", [])
    iters = spec.get("iters", total)

    def lam(it):
        if it < warmup:
            return (it + 1) / warmup
        t = it - warmup
        if kind == "constant":
            return 1.0
        if kind == "step":
            return gamma ** (t // step_size)
        if kind == "multistep":
            return gamma ** bisect.bisect_right(milestones, t)
        length = max(1, total - warmup)
        if t >= length:
            return 0.0
        return 0.5 * (1.0 + math.cos(math.pi * t / length))

    def run(make):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=base)
        sched = make(opt)
        out = []
        for _ in range(iters):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out


    S = torch.optim.lr_scheduler
    native = None
    if warmup == 0 and kind == "step":
        native = run(lambda o: S.StepLR(o, step_size, gamma))
    elif warmup == 0 and kind == "multistep":
        native = run(lambda o: S.MultiStepLR(o, milestones, gamma))
    elif warmup == 0 and kind == "cosine":
        native = run(lambda o: S.CosineAnnealingLR(o, T_max=total))
    elif warmup > 1 and kind == "constant":
        # lr = base * (it + 1) / warmup during warmup: LinearLR from 1/warmup over warmup - 1 steps.
        native = run(lambda o: S.LinearLR(o, start_factor=1 / warmup, end_factor=1.0,
                                          total_iters=warmup - 1))
    return {"lambda": run(lambda o: S.LambdaLR(o, lam)), "native": native}


print(json.dumps([rates(s) for s in json.loads(sys.argv[1])]))
