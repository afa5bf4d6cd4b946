"""Data parallelism: MPI collectives and DistributedDataParallel under `mpiexec -n 2` (one job runs
every check, see distributed_worker.py), DistributedSampler, autograd's hooks, and DataParallel
over two OpenCL devices in one process."""
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn
from minitorch_cl.data import DataLoader, DistributedSampler, TensorDataset
from minitorch_cl.nn import functional as F
from minitorch_cl.optim import SGD

import distributed_worker as worker

WORKER = Path(__file__).with_name("distributed_worker.py")
ROOT = Path(__file__).resolve().parents[1]


def _mpiexec():
    return shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")


needs_mpi = pytest.mark.skipif(not (mt.distributed.is_available() and _mpiexec()),
                               reason="mpi4py or mpiexec not installed (pip install 'minitorch_cl[mpi]')")


def _run(mode, out_dir, ranks=2, timeout=240):
    cmd = [sys.executable, str(WORKER), mode, str(out_dir)]
    if ranks:
        cmd = [_mpiexec(), "-n", str(ranks)] + cmd
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """One `mpiexec -n 2` run of every check (collectives, no_sync, all training cases)."""
    out = tmp_path_factory.mktemp("ddp")
    result = _run("all", out)
    assert result.returncode == 0, f"mpiexec failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@needs_mpi
def test_collectives_match_numpy_on_every_rank(job):
    _, reports = job
    for rep in reports:
        assert rep["world"] == 2
        assert rep["failures"] == [], f"rank {rep['rank']}:\n" + "\n".join(rep["failures"])


@needs_mpi
@pytest.mark.parametrize("case", list(worker.CASES))
def test_two_ranks_train_like_one_process(job, case):
    """2 ranks x batch B/2 (DistributedSampler shards, rank 1 starting from other weights) end
    where one process with batch B ends."""
    out, _ = job
    ref = worker.train(case)
    for r in range(2):
        got = np.load(out / f"rank{r}_{case}.npz")
        assert sorted(got.files) == sorted(ref)
        for k, v in ref.items():
            np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-6, err_msg=f"rank {r}, {case}: {k}")


@needs_mpi
def test_no_sync_communicates_nothing(job):
    _, reports = job
    for rep in reports:
        assert rep["no_sync_all_reduce_calls"] == 0
        assert rep["no_sync_grads_differ"], "inside no_sync() the ranks' gradients were made equal"


@needs_mpi
def test_buckets_start_during_backward(job):
    _, reports = job
    for rep in reports:
        assert rep["buckets"] >= 3
        assert rep["launched_before_walk_end"] >= rep["buckets"] - 1  # only the last may wait for the end
        assert rep["bytes"] == rep["param_bytes"]
        assert rep["keys_prefixed"]


@needs_mpi
def test_without_mpiexec_a_world_of_one(tmp_path):
    result = _run("single", tmp_path, ranks=0, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "rank0.json").read_text())["world"] == 1
    got, ref = np.load(tmp_path / "rank0_convnet_sgd.npz"), worker.train("convnet_sgd")
    for k, v in ref.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-6, atol=1e-7, err_msg=k)


@needs_mpi
def test_a_failing_rank_aborts_the_job(tmp_path):
    start = time.perf_counter()
    result = _run("crash", tmp_path, timeout=60)
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "rank 1 fails on purpose" in result.stderr, (result.returncode, result.stdout, result.stderr)
    assert time.perf_counter() - start < 60


# ---- DistributedSampler ------------------------------------------------------------------------
@pytest.mark.parametrize("n,world,drop_last", [(10, 3, False), (10, 3, True), (2, 5, False), (12, 4, False),
                                               (12, 4, True), (7, 2, True), (0, 2, False)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_distributed_sampler_shards(n, world, drop_last, shuffle):
    shards = [list(DistributedSampler(range(n), world, r, shuffle=shuffle, seed=3, drop_last=drop_last))
              for r in range(world)]
    size = math.ceil((n - world) / world) if drop_last and n % world else math.ceil(n / world)  # torch's rule
    assert all(len(s) == size for s in shards)
    flat = [i for s in shards for i in s]
    if drop_last:
        assert len(set(flat)) == len(flat) == size * world  # disjoint
    else:
        assert set(flat) == set(range(n))  # the union is the data set; padding repeats
        assert len(flat) - len(set(flat)) == size * world - n
    again = [list(DistributedSampler(range(n), world, r, shuffle=shuffle, seed=3, drop_last=drop_last))
             for r in range(world)]
    assert again == shards  # the same on every rank that builds it


@pytest.mark.parametrize("n,world,drop_last", [(10, 3, False), (10, 3, True), (2, 5, False), (9, 3, True)])
def test_distributed_sampler_matches_torch(n, world, drop_last):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DistributedSampler as TorchSampler
    for r in range(world):
        ours = DistributedSampler(range(n), world, r, shuffle=False, drop_last=drop_last)
        theirs = TorchSampler(range(n), world, r, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_distributed_sampler_epochs_and_errors():
    s0, s1 = DistributedSampler(range(20), 2, 0, seed=5), DistributedSampler(range(20), 2, 1, seed=5)
    first = list(s0)
    s0.set_epoch(1)
    s1.set_epoch(1)
    assert list(s0) != first
    assert sorted(list(s0) + list(s1)) == list(range(20))  # still a partition in the new order
    s0.set_epoch(0)
    assert list(s0) == first
    with pytest.raises(ValueError, match="rank 2"):
        DistributedSampler(range(4), 2, 2)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedSampler(range(4))


def test_dataloader_with_sampler(dev):
    data = TensorDataset(np.arange(10, dtype=np.float32))
    loader = DataLoader(data, batch_size=2, sampler=DistributedSampler(data, 3, 1, shuffle=False), device=dev)
    assert len(loader) == 2
    assert [b[0].numpy().tolist() for b in loader] == [[1.0, 4.0], [7.0, 0.0]]
    with pytest.raises(ValueError, match="mutually exclusive"):
        DataLoader(data, sampler=[0, 1], shuffle=True)


# ---- autograd hooks ----------------------------------------------------------------------------
def test_post_accumulate_grad_hook_runs_once_after_the_last_contribution(dev):
    w = mt.tensor([1.0, 2.0], device=dev, requires_grad=True)
    unused = mt.tensor([1.0], device=dev, requires_grad=True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().tolist()))
    handle = unused.register_post_accumulate_grad_hook(lambda t: seen.append("unused"))
    (w * w + w * 3 + unused * 0 * 0).sum().backward()  # w reaches the loss along three edges
    assert seen == [[5.0, 7.0], "unused"] or seen == ["unused", [5.0, 7.0]]
    handle.remove()
    seen.clear()
    (w.sum() + unused.sum()).backward()
    assert seen == [[6.0, 8.0]]  # accumulated onto the earlier .grad, hook after it
    with pytest.raises(RuntimeError, match="non-leaf"):
        (w * 2).register_post_accumulate_grad_hook(print)


def test_queue_callback_runs_after_backward(dev):
    w = mt.tensor([1.0], device=dev, requires_grad=True)
    order = []
    w.register_post_accumulate_grad_hook(lambda t: (order.append("hook"),
                                                    mt.autograd.queue_callback(lambda: order.append("end"))))
    (w * 2).sum().backward()
    assert order == ["hook", "end"]
    with pytest.raises(RuntimeError, match="during a backward"):
        mt.autograd.queue_callback(print)


# ---- several devices in one process --------------------------------------------------------------
def _two_devices():
    """The first two devices whose compilers build (pip's PoCL 3.0 builds nothing on a CPU its LLVM
    does not know), or None."""
    devs = [d for d in mt.devices() if d.build_problem is None]
    return devs[:2] if len(devs) >= 2 else None


@pytest.mark.skipif(_two_devices() is None, reason="needs two OpenCL devices that build kernels (e.g. PoCL from "
                                                   "PyPI and Debian's)")
@pytest.mark.parametrize("batch", [8, 7])
def test_data_parallel_two_devices_match_one(batch):
    d0, d1 = _two_devices()
    x, y = worker.case_data("convnet")

    def run(parallel):
        mt.manual_seed(1)
        model = worker.SmallConvNet().to(d0)
        net = nn.DataParallel(model, device_ids=[d0, d1]) if parallel else model
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
        for step in range(worker.STEPS):
            opt.zero_grad()
            sl = slice(step * batch, (step + 1) * batch)
            out = net(mt.tensor(x[sl], device=d0))
            assert out.device == d0 and out.shape == (batch, 5)
            F.cross_entropy(out, mt.tensor(y[sl], device=d0)).backward()
            opt.step()
        return net, {k: v.numpy() for k, v in model.state_dict().items()}

    net, got = run(True)
    _, ref = run(False)
    assert list(net.state_dict()) == ["module." + k for k in ref]
    assert net._replicas[0].fc.weight.device == d1
    for k, v in ref.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-5, atol=1e-6, err_msg=k)


def test_data_parallel_checks_placement(dev):
    other = next((d for d in mt.devices() if d != dev), None)
    if other is None:
        pytest.skip("needs two OpenCL devices")
    with pytest.raises(ValueError, match="device_ids\\[0\\]"):
        nn.DataParallel(nn.Linear(2, 2).to(dev), device_ids=[other, dev])
