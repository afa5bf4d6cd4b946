"""DistributedDataParallel training of the CIFAR-10 ConvNet on 1 and 2 MPI ranks: images/s over
the job, how much of backward an all-reduce was in flight, and the bytes reduced per step.
run() starts `mpiexec -n N python -m minitorch_cl.bench.ddp` itself."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import minitorch_cl as mt
from minitorch_cl import distributed as dist, nn
from minitorch_cl.nn import functional as F
from minitorch_cl.nn.parallel import DistributedDataParallel
from minitorch_cl.optim import SGD

NOTE = ("ConvNet of `bench convnet`, SGD(momentum=0.9), batch per rank as shown, DDP buckets as PyTorch's "
        "(1 MiB first, then 25 MiB). Backward ends (on the device) when the last bucket's gradients are "
        "ready, i.e. when its all-reduce starts; 'overlap' = share of backward (from the backward() call) "
        "during which an all-reduce was in flight; 'tail ms' = from the end of backward until every "
        "all-reduce has completed (the communication left exposed). On one machine with 2 cores, 2 ranks "
        "share the cores with each other and with MPI's polling: a correctness check, not a speed claim.")

BATCH = 32


class Net(nn.Module):
    """The article's CIFAR-10 ConvNet: (B, 3, 32, 32) -> (B, 10)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1, self.fc2 = nn.Linear(64 * 8 * 8, 512), nn.Linear(512, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        return self.fc2(F.relu(self.fc1(mt.flatten(x, 1))))


def _worker(out_path, steps, warmup, wrap):
    """One rank's timed training steps; rank 0 writes the medians to out_path. Without wrap: no DDP."""
    dist.init_process_group("mpi")
    dev = mt.device()
    mt.manual_seed(0)
    model = DistributedDataParallel(Net().to(dev)) if wrap else Net().to(dev)
    opt = SGD(model.parameters(), lr=0.001, momentum=0.9)
    rng = np.random.default_rng(dist.get_rank())
    x = mt.tensor(rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32), device=dev)
    y = mt.tensor(rng.integers(0, 10, BATCH), device=dev)
    steps_s, overlap, tail = [], [], []
    for i in range(warmup + steps):
        dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        tb = time.perf_counter()
        loss.backward()
        opt.step()
        dev.synchronize()
        t1 = time.perf_counter()
        s = getattr(model, "last_step", None)
        if i >= warmup:
            steps_s.append(t1 - t0)
        if i >= warmup and s:
            end = s["mpi"][-1][0]
            overlap.append(_covered([(a, min(b, end)) for a, b in s["mpi"]]) / (end - tb))
            tail.append(s["reduced"] - end)
    if dist.get_rank() == 0:
        with open(out_path, "w") as f:
            json.dump({"world": dist.get_world_size(), "step": statistics.median(steps_s),
                       "overlap": statistics.median(overlap) if wrap else None,
                       "tail": statistics.median(tail) if wrap else None,
                       "bytes": model.last_step["bytes"] if wrap else 0,
                       "buckets": len(model._buckets) if wrap else 0}, f)
    dist.destroy_process_group()


def _covered(intervals):
    """Length of the union of (start, end) intervals."""
    total, reach = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > max(a, reach):
            total += b - max(a, reach)
            reach = b
    return total


def _mpiexec():
    return shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")


def run(dev, quick=False):
    if not (dist.is_available() and _mpiexec()):
        raise RuntimeError("bench ddp needs mpi4py and mpiexec: pip install 'minitorch_cl[mpi]'")
    steps, warmup = (4, 2) if quick else (15, 3)
    rows = []
    for n, wrap in ((1, False), (1, True), (2, True)):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "ddp.json")
            env = dict(os.environ, MINITORCH_CL_DEVICE=dev.spec)
            cmd = [_mpiexec(), "-n", str(n), sys.executable, "-m", "minitorch_cl.bench.ddp", out, str(steps),
                   str(warmup), "ddp" if wrap else "plain"]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
            with open(out) as f:
                r = json.load(f)
        rows.append({"ranks": n if wrap else "1, no DDP", "batch/rank": BATCH, "step ms": 1e3 * r["step"],
                     "img/s (job)": n * BATCH / r["step"], "overlap": r["overlap"],
                     "tail ms": 1e3 * r["tail"] if wrap else None,
                     "MB reduced/step": r["bytes"] / 1e6, "buckets": r["buckets"]})
    return rows


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "ddp")
