"""Run under `mpiexec -n 2` by test_distributed.py (and imported by it for the one-process
references): `python distributed_worker.py MODE OUT_DIR`. Each rank writes rank<r>.json with
its checks and rank<r>_<case>.npz with the weights it trained; pytest compares them."""
import contextlib
import json
import os
import sys

import numpy as np

import minitorch_cl as mt
from minitorch_cl import distributed as dist, nn
from minitorch_cl.data import DistributedSampler
from minitorch_cl.nn import functional as F
from minitorch_cl.nn.parallel import DistributedDataParallel
from minitorch_cl.optim import SGD, Adam

B, STEPS = 8, 3  # global batch, optimizer steps
SIZES = (0, 1, 7, 1 << 20)


class SmallConvNet(nn.Module):
    """(N, 3, 8, 8) -> (N, 5): the ConvNet's layer types at a tiny size."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc = nn.Linear(6 * 2 * 2, 5)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        return self.fc(mt.flatten(x, 1))


class SmallLSTM(nn.Module):
    """(N, 4, 3) -> (N, 5) from the last step's hidden state."""

    def __init__(self):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(3, 6, batch_first=True), nn.Linear(6, 5)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class SmallTransformer(nn.Module):
    """(N, 4, 8) -> (N, 5): one encoder layer, mean over the sequence. Without biases: the key
    projection's bias has an exactly zero gradient (softmax ignores a shift), and Adam would turn
    its rounding noise into lr-sized steps that differ between any two summation orders."""

    def __init__(self):
        super().__init__()
        self.enc = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True, bias=False)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.enc(x).mean(1))


MODELS = {"convnet": (SmallConvNet, (3, 8, 8)), "lstm": (SmallLSTM, (4, 3)), "transformer": (SmallTransformer, (4, 8))}
CASES = {f"{m}_{o}": (m, o, 1) for m in MODELS for o in ("sgd", "adam")}
CASES["convnet_sgd_no_sync"] = ("convnet", "sgd", 2)  # two micro-batches per step, the first in no_sync()


def case_data(model):
    rng = np.random.default_rng(7)
    shape = MODELS[model][1]
    return rng.standard_normal((STEPS * B, *shape)).astype(np.float32), rng.integers(0, 5, STEPS * B)


def train(case, world=1, rank=0, ddp=False, seed=1):
    """Weights after STEPS steps; with ddp, this rank's share of each (micro-)batch."""
    model_name, opt_name, micro = CASES[case]
    x, y = case_data(model_name)
    mt.manual_seed(seed)
    model = MODELS[model_name][0]()
    net = DistributedDataParallel(model, bucket_cap_mb=0.0002) if ddp else model  # small buckets: several
    params = list(model.parameters())
    opt = SGD(params, lr=0.1, momentum=0.9) if opt_name == "sgd" else Adam(params, lr=0.01)
    m = B // micro
    shard = list(DistributedSampler(range(m), num_replicas=world, rank=rank, shuffle=False))
    for step in range(STEPS):
        opt.zero_grad()
        for k in range(micro):
            idx = step * B + k * m + np.asarray(shard)
            sync = not ddp or k == micro - 1
            with net.no_sync() if not sync else contextlib.nullcontext():
                loss = F.cross_entropy(net(mt.tensor(x[idx])), mt.tensor(y[idx]))
                loss.backward()
        opt.step()
    return {k: v.numpy() for k, v in model.state_dict().items()}


# ---- checks run on every rank ------------------------------------------------------------------
def rank_data(size, dtype, rank):
    rng = np.random.default_rng(1000 * size + rank)
    if dtype == "int64":
        return rng.integers(-1000, 1000, size)
    return rng.standard_normal(size).astype(np.float32)


def check_collectives(rank, world):
    failures = []

    def expect(name, got, want, exact):
        try:
            if exact:
                np.testing.assert_array_equal(got, want)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        except AssertionError as err:
            failures.append(f"{name}: {str(err)[:300]}")

    reducers = {"sum": np.sum, "avg": np.mean, "max": np.max, "min": np.min}
    for size in SIZES:
        for dtype in ("float32", "int64"):
            everyone = np.stack([rank_data(size, dtype, r) for r in range(world)]).astype(np.float64)
            mine = rank_data(size, dtype, rank)
            exact = dtype == "int64"
            for op, ref in reducers.items():
                if op == "avg" and exact:
                    continue
                for async_op in (False, True):
                    t = mt.tensor(mine)
                    work = dist.all_reduce(t, op, async_op=async_op)
                    if async_op:
                        work.wait()
                    expect(f"all_reduce {op} {dtype}[{size}] async={async_op}", t.numpy(), ref(everyone, 0), exact)
            t = mt.tensor(mine)
            dist.broadcast(t, src=world - 1)
            expect(f"broadcast {dtype}[{size}]", t.numpy(), everyone[-1], exact)
            outs = [mt.zeros(size, dtype=mt.tensor(mine).dtype) for _ in range(world)]
            dist.all_gather(outs, mt.tensor(mine), async_op=True).wait()
            for r, o in enumerate(outs):
                expect(f"all_gather {dtype}[{size}] from {r}", o.numpy(), everyone[r], exact)
            inputs = [mt.tensor(rank_data(size, dtype, 10 + world * rank + r)) for r in range(world)]
            out = mt.zeros(size, dtype=inputs[0].dtype)
            dist.reduce_scatter(out, inputs)
            want = sum(rank_data(size, dtype, 10 + world * r + rank).astype(np.float64) for r in range(world))
            expect(f"reduce_scatter {dtype}[{size}]", out.numpy(), want, exact)
    # several handles in flight at once, completed in reverse order; a strided (transposed) view
    ts = [mt.full((5,), float(rank + i)) for i in range(3)]
    works = [dist.all_reduce(t, async_op=True) for t in ts]
    for w in reversed(works):
        w.wait()
    for i, t in enumerate(ts):
        expect(f"async handle {i}", t.numpy(), np.full(5, sum(r + i for r in range(world))), True)
    base = mt.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) * (rank + 1))
    view = base.T
    dist.all_reduce(view, dist.ReduceOp.MAX)
    expect("all_reduce of a transposed view", base.numpy(), np.arange(6).reshape(2, 3) * world, True)
    try:
        dist.all_reduce(mt.tensor([1, 2]), dist.ReduceOp.AVG)
        failures.append("AVG of an int64 tensor was accepted")
    except ValueError as err:
        if "int64" not in str(err):
            failures.append(f"AVG refusal does not name the dtype: {err}")
    return failures


def check_ddp(rank, world):
    """Inside no_sync() no collective is issued and each rank keeps its own gradient; outside it,
    the first bucket's all-reduce starts before the backward walk ends."""
    calls = []
    real = dist.all_reduce
    dist.all_reduce = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        mt.manual_seed(1)
        model = DistributedDataParallel(SmallConvNet())
        x, y = case_data("convnet")
        with model.no_sync():
            F.cross_entropy(model(mt.tensor(x[rank::world])), mt.tensor(y[rank::world])).backward()
    finally:
        dist.all_reduce = real
    g = model.module.fc.weight.grad.reshape(-1)
    outs = [mt.zeros(g.shape) for _ in range(world)]
    dist.all_gather(outs, g)
    differ = not np.allclose(outs[0].numpy(), outs[-1].numpy())
    small = DistributedDataParallel(SmallConvNet(), bucket_cap_mb=0.0002)
    F.cross_entropy(small(mt.tensor(x[rank::world])), mt.tensor(y[rank::world])).backward()
    step = small.last_step
    keys = list(small.state_dict())
    return {"no_sync_all_reduce_calls": len(calls), "no_sync_grads_differ": differ,
            "buckets": len(small._buckets), "launched_before_walk_end": sum(t < step["backward_done"]
                                                                            for t in step["launched"]),
            "bytes": step["bytes"], "param_bytes": 4 * sum(p.numel() for p in small.module.parameters()),
            "keys_prefixed": keys == ["module." + k for k in small.module.state_dict()] and bool(keys)}


def main(mode, out_dir):
    dist.init_process_group("mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    report = {"rank": rank, "world": world}
    if mode == "crash":
        if rank == world - 1:
            raise RuntimeError(f"rank {rank} fails on purpose")
        dist.barrier()  # the other ranks wait here until the abort ends them
        return
    cases = ["convnet_sgd"] if mode == "single" else list(CASES)
    if mode == "all":
        report["failures"] = check_collectives(rank, world)
        report.update(check_ddp(rank, world))
    for case in cases:
        np.savez(os.path.join(out_dir, f"rank{rank}_{case}.npz"),
                 **train(case, world, rank, ddp=True, seed=1 + rank))  # rank 1's own init is overwritten
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
