#!/usr/bin/env python3
"""The PyTorch peer of `kiln bench --compare torch`: a persistent process that speaks JSON
lines on stdin/stdout (one request, one reply; see tools/peers.h):

  (on start)                                         -> {"ok":true,"peer":"torch","version":…}
  {"cmd":"load","model":"m.pt","input":"x.npy","threads":2}
                                                     -> {"ok":true,"load_ms":…}
  {"cmd":"run","iters":10}                           -> {"ok":true,"ms":[…]}
  {"cmd":"rss"}                                      -> {"ok":true,"peak_bytes":…,"rss_bytes":…}
  {"cmd":"output","input":"x.npy"}                   -> {"ok":true,"shape":[…],"data":[…]}
  {"cmd":"load_train","model":"resnet20","weights":"w.npz","input":"x.npy",
   "labels":"labels.npy","in_channels":1,"num_classes":10,"threads":2,
   "channels_last":false,"lr":0.01,"momentum":0.9,"weight_decay":1e-4}
                                                     -> {"ok":true,"load_ms":…}
  {"cmd":"train_loss"}                               -> {"ok":true,"loss":…} (one step)
  {"cmd":"quit"}                                     -> {"ok":true}, then exit
Failures answer {"ok":false,"error":"…"} and the process keeps serving; end of input exits.

load = torch.jit.load of export.py's trace, torch.jit.freeze, torch.jit.optimize_for_inference,
with torch.set_num_threads(threads); "run" times forward() on the load input under
torch.inference_mode (each iteration separately, in this process, so no pipe time is counted).
load_train builds the eager module of kiln's registry model (bench/peers/export.py's build,
kiln's weights by name) in training mode, optionally channels_last, with torch.optim.SGD;
after it "run" times whole train steps (zero_grad, forward, cross_entropy, backward, step).
Debian's torch does its linear layers in whatever libblas.so.3 it finds: kiln starts this with
LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp (scripts/setup-bench.sh installs it).
Only stdout carries the protocol; anything torch prints goes to stderr.
Run with the python that has torch (/usr/bin/python3).
"""

import json
import os
import sys
import time

PROTOCOL = sys.stdout
sys.stdout = sys.stderr  # stray prints must not corrupt the protocol


def reply(obj):
    PROTOCOL.write(json.dumps(obj, separators=(",", ":")) + "\n")
    PROTOCOL.flush()


def read_status(field):
    """A /proc/self/status field in bytes (VmHWM: peak resident set)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def blas_library():
    """The libblas.so.3 this process mapped (to tell reference BLAS from OpenBLAS)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "libblas.so" in line or "libopenblas" in line:
                    return line.split()[-1]
    except OSError:
        pass
    return "unknown"


class Peer:
    def __init__(self, torch, np):
        self.torch, self.np = torch, np
        self.module = None
        self.input = None
        self.train = None  # (model, optimizer, x, labels) after load_train

    def read_input(self, path):
        a = self.np.load(path)
        if a.dtype != self.np.float32:
            raise ValueError(f"{path}: expected float32, got {a.dtype}")
        return self.torch.from_numpy(self.np.ascontiguousarray(a))

    def load(self, req):
        torch = self.torch
        threads = int(req.get("threads", 1))
        if threads < 1:
            raise ValueError("threads must be >= 1")
        torch.set_num_threads(threads)
        start = time.perf_counter()
        module = torch.jit.load(req["model"], map_location="cpu").eval()
        module = torch.jit.freeze(module)
        module = torch.jit.optimize_for_inference(module)
        load_ms = (time.perf_counter() - start) * 1e3
        self.module = module
        self.input = self.read_input(req["input"])
        return {"load_ms": load_ms, "threads": torch.get_num_threads(), "blas": blas_library()}

    def load_train(self, req):
        torch, np = self.torch, self.np
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import export  # noqa: E402 — bench/peers/export.py: the models by kiln name

        threads = int(req.get("threads", 1))
        if threads < 1:
            raise ValueError("threads must be >= 1")
        torch.set_num_threads(threads)
        start = time.perf_counter()
        model = export.build(req["model"], int(req["in_channels"]), int(req["num_classes"]))
        export.load_weights(model, req["weights"])
        model.train()
        x = self.read_input(req["input"])
        labels = torch.from_numpy(np.load(req["labels"]).astype(np.int64))
        if req.get("channels_last"):
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=float(req["lr"]),
                              momentum=float(req["momentum"]),
                              weight_decay=float(req["weight_decay"]))
        self.train = (model, opt, x, labels)
        self.module = None
        load_ms = (time.perf_counter() - start) * 1e3
        return {"load_ms": load_ms, "threads": torch.get_num_threads(), "blas": blas_library()}

    def train_step(self):
        model, opt, x, labels = self.train
        opt.zero_grad(set_to_none=True)
        loss = self.torch.nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        return loss

    def train_loss(self, _):
        if self.train is None:
            raise ValueError("no train step: send load_train first")
        return {"loss": float(self.train_step().item())}

    def forward(self, x):
        if self.module is None:
            raise ValueError("no model: send load first")
        with self.torch.inference_mode():
            return self.module(x)

    def run(self, req):
        iters = int(req.get("iters", 1))
        if iters < 1:
            raise ValueError("iters must be >= 1")
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            if self.train is not None:
                self.train_step()
            else:
                self.forward(self.input)
            times.append((time.perf_counter() - start) * 1e3)
        return {"ms": times}

    def output(self, req):
        x = self.read_input(req["input"]) if "input" in req else self.input
        y = self.forward(x).detach().float().contiguous()
        return {"shape": list(y.shape), "data": y.flatten().tolist()}

    def rss(self, _):
        return {"peak_bytes": read_status("VmHWM"), "rss_bytes": read_status("VmRSS")}


def main():
    try:
        import numpy as np
        import torch
    except Exception as e:  # noqa: BLE001 — any import failure makes the peer unavailable
        reply({"ok": False, "error": f"{sys.executable} cannot import torch and numpy ({e})"})
        return 1
    peer = Peer(torch, np)
    reply({"ok": True, "peer": "torch", "version": torch.__version__, "pid": os.getpid()})
    handlers = {"load": peer.load, "run": peer.run, "output": peer.output, "rss": peer.rss,
                "load_train": peer.load_train, "train_loss": peer.train_loss}
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            cmd = req.get("cmd") if isinstance(req, dict) else None
        except json.JSONDecodeError as e:
            reply({"ok": False, "error": f"bad JSON: {e}"})
            continue
        if cmd == "quit":
            reply({"ok": True})
            return 0
        if cmd not in handlers:
            reply({"ok": False, "error": f"unknown cmd {cmd!r} (known: quit, "
                                         f"{', '.join(handlers)})"})
            continue
        try:
            result = handlers[cmd](req)
        except KeyError as e:
            reply({"ok": False, "error": f"{cmd}: missing field {e}"})
            continue
        except Exception as e:  # noqa: BLE001 — report, keep serving
            reply({"ok": False, "error": f"{cmd}: {type(e).__name__}: {e}"})
            continue
        reply({"ok": True, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
