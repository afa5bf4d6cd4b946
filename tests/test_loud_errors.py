"""Loud errors (GitHub issue 13, items 1, 2, 7, 8): a bad index raises IndexError at the next wait on
the device (never a crash, never a host sync per op), anomaly mode names the Function and the user's
line, running out of memory raises OutOfMemoryError (never an abort in the runtime) and the process
goes on, and mt.save killed half-way leaves the old checkpoint whole.

Whatever could crash the process (a kernel reading through a bad index, the runtime aborting on a
failed host allocation, a kill) runs in a subprocess, so a crash shows as its exit status."""
import gc
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minitorch_cl as mt
import minitorch_cl.launch
import minitorch_cl.nn.functional as F
from minitorch_cl import nn, optim
from minitorch_cl.device import Device, _size

ROOT = Path(__file__).resolve().parent.parent


def _env(dev):
    env = dict(os.environ, MINITORCH_CL_DEVICE=dev.spec, PYTHONPATH=str(ROOT) + os.pathsep +
               os.environ.get("PYTHONPATH", ""))
    return env


def _start(dev, code, **kw):
    return subprocess.Popen([sys.executable, "-c", code], env=_env(dev), cwd=str(ROOT), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def _reports(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return proc.returncode, {r.pop("event"): r for r in lines}, err


# ---- 1. bad indices ---------------------------------------------------------------------------
# Each case defines bad() (the op with a bad index), sync(out) (a wait on the device), good() ->
# (result, NumPy reference) for the same op with valid indices, run right after the error.
PRELUDE = r'''
import json
import numpy as np
import minitorch_cl as mt
import minitorch_cl.nn.functional as F
from minitorch_cl.device import Device

waits = [0]
_download, _finish = Device.download, Device.synchronize
def download(self, *a, **k):
    waits[0] += 1
    return _download(self, *a, **k)
def synchronize(self):
    waits[0] += 1
    return _finish(self)
Device.download, Device.synchronize = download, synchronize

def report(event, **kw):
    print(json.dumps(dict(kw, event=event)), flush=True)

rng = np.random.default_rng(0)
report("anomaly", enabled=mt.autograd.is_anomaly_enabled())  # off unless asked for
def ce_ref(x, y, ignore=-100):
    keep = y != ignore
    lse = np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) + x.max(1)
    return np.mean((lse - x[np.arange(len(y)), np.where(keep, y, 0)])[keep])
'''

EPILOGUE = r'''
before = waits[0]
out = bad()
report("returned", waits=waits[0] - before)
try:
    sync(out)
    report("no error")
except IndexError as e:
    report("raised", message=str(e))
mt.device().synchronize()  # the error was reported once: nothing is left in the error buffer
got, want = good()
report("next", ok=bool(np.allclose(got, want, rtol=1e-5, atol=1e-6)), got=np.asarray(got).tolist(),
       want=np.asarray(want).tolist())
'''

CASES = {
    # label >= C; surfaces at the end of backward()
    "cross_entropy_label_ge_C": (r'''
xn = rng.standard_normal((7, 5)).astype(np.float32)
x = mt.tensor(xn, requires_grad=True)
def bad():
    return F.cross_entropy(x, mt.tensor([0, 1, 5, 2, 4, 3, 0]))
def sync(out):
    out.backward()
def good():
    y = np.array([0, 1, 4, 2, 4, 3, 0])
    return F.cross_entropy(x, mt.tensor(y)).item(), ce_ref(xn.astype(np.float64), y)
''', ["Target 5", "cross_entropy", "5 classes"]),
    # a label far out of range: a kernel that read through it would crash the process
    "cross_entropy_label_huge": (r'''
xn = rng.standard_normal((33, 7)).astype(np.float32)
x = mt.tensor(xn)
def bad():
    return F.cross_entropy(x, mt.tensor([1000000000] + [1] * 32))
def sync(out):
    out.item()
def good():
    y = rng.integers(0, 7, 33)
    return F.cross_entropy(x, mt.tensor(y)).item(), ce_ref(xn.astype(np.float64), y)
''', ["Target 1000000000", "cross_entropy"]),
    # negative, and not ignore_index (-100): an error; ignore_index itself stays valid after it
    "cross_entropy_label_negative": (r'''
xn = rng.standard_normal((4, 3)).astype(np.float32)
x = mt.tensor(xn)
def bad():
    return F.cross_entropy(x, mt.tensor([0, -3, 1, 2]), reduction="none")
def sync(out):
    out.numpy()
def good():
    y = np.array([0, -100, 1, 2])
    return F.cross_entropy(x, mt.tensor(y)).item(), ce_ref(xn.astype(np.float64), y)
''', ["Target -3", "cross_entropy", "3 classes"]),
    "nll_loss": (r'''
xn = np.log(rng.uniform(0.1, 1, (5, 4))).astype(np.float32)
x = mt.tensor(xn)
def bad():
    return F.nll_loss(x, mt.tensor([0, 1, 7, 2, 3]))
def sync(out):
    out.item()
def good():
    y = np.array([0, 1, 3, 2, 3])
    return F.nll_loss(x, mt.tensor(y)).item(), -np.mean(xn.astype(np.float64)[np.arange(5), y])
''', ["Target 7", "nll_loss", "4 classes"]),
    "embedding_index_ge_num": (r'''
emb = mt.nn.Embedding(10, 3)
w = emb.weight.detach().numpy()
def bad():
    return emb(mt.tensor([[1, 10], [2, 3]]))
def sync(out):
    out.detach().numpy()
def good():
    i = np.array([[1, 9], [2, 0]])
    return emb(mt.tensor(i)).detach().numpy(), w[i]
''', ["Embedding", "index 10", "num_embeddings = 10"]),
    # a huge index, found at the end of the backward pass that scatters into the weight's rows
    "embedding_index_huge_backward": (r'''
emb = mt.nn.Embedding(65, 7)
w = emb.weight.detach().numpy()
def bad():
    return emb(mt.tensor([3, 2**40, 5])).sum()
def sync(out):
    out.backward()
def good():
    emb.weight.grad = None
    i = np.array([3, 64, 3])
    emb(mt.tensor(i)).sum().backward()
    want = np.zeros_like(w)
    np.add.at(want, i, 1.0)
    return emb.weight.grad.numpy(), want
''', ["Embedding", f"index {2**40}", "num_embeddings = 65"]),
    "index_select_out_of_range": (r'''
xn = rng.standard_normal((3, 5, 2)).astype(np.float32)
x = mt.tensor(xn)
def bad():
    return mt.index_select(x, 1, mt.tensor([0, 5, 1]))
def sync(out):
    mt.cuda.synchronize()
def good():
    i = np.array([4, 0, 4])
    return mt.index_select(x, 1, mt.tensor(i)).numpy(), xn[:, i]
''', ["index_select", "index 5", "size 5"]),
    # index_select takes no negative indices (torch neither)
    "index_select_negative": (r'''
xn = rng.standard_normal((5, 3)).astype(np.float32)
x = mt.tensor(xn)
def bad():
    return x.index_select(0, mt.tensor([-1]))
def sync(out):
    out.tolist()
def good():
    return x.index_select(0, mt.tensor([4])).numpy(), xn[[4]]
''', ["index_select", "index -1", "size 5"]),
    # x[t]: negative indices wrap, past either end is an error
    "tensor_index_out_of_range": (r'''
xn = rng.standard_normal((4, 3)).astype(np.float32)
x = mt.tensor(xn)
def bad():
    return x[mt.tensor([0, 4])]
def sync(out):
    out.tolist()
def good():
    return x[mt.tensor([-4, 3, -1])].numpy(), xn[[-4, 3, -1]]
''', ["index 4", "out of bounds", "size 4"]),
    "tensor_index_negative_past_start": (r'''
xn = rng.standard_normal((2, 7)).astype(np.float32)
x = mt.tensor(xn)
def bad():
    return x[:, mt.tensor([1, -8])]
def sync(out):
    repr(out)
def good():
    return x[:, mt.tensor([-7, 6])].numpy(), xn[:, [-7, 6]]
''', ["index -8", "out of bounds", "size 7"]),
}

# gather / scatter (not on main yet): their cases run, in a process of their own, once they exist
GATHER_CASES = {
    "gather_out_of_range": (r'''
xn = rng.standard_normal((3, 5)).astype(np.float32)
x = mt.tensor(xn)
def bad():
    return mt.gather(x, 1, mt.tensor([[0, 5], [1, 1], [2, 2]]))
def sync(out):
    out.numpy()
def good():
    i = np.array([[0, 4], [1, 1], [2, 3]])
    return mt.gather(x, 1, mt.tensor(i)).numpy(), np.take_along_axis(xn, i, 1)
''', ["index 5", "size 5"]),
    "scatter_out_of_range": (r'''
x = mt.zeros(3, 5)
def bad():
    return x.scatter(1, mt.tensor([[0], [7], [1]]), mt.ones(3, 1))
def sync(out):
    out.numpy()
def good():
    want = np.zeros((3, 5), np.float32)
    want[[0, 1, 2], [0, 4, 1]] = 1
    return x.scatter(1, mt.tensor([[0], [4], [1]]), mt.ones(3, 1)).numpy(), want
''', ["index 7", "size 5"]),
}
HAVE_GATHER = hasattr(mt, "gather") and hasattr(mt.Tensor, "scatter")
if HAVE_GATHER:
    CASES.update(GATHER_CASES)


# The cases run in three processes (one per kernel family, started together), each case in a fresh
# namespace after the last: a crash ends its process, and every case from there on fails with it.
GROUPS = [[n for n in CASES if n.startswith(("cross_entropy", "nll"))], [n for n in CASES if n.startswith("embedding")],
          [n for n in CASES if n.startswith(("index_select", "tensor_index"))]] + \
    ([list(GATHER_CASES)] if HAVE_GATHER else [])


def _group_script(names):
    return PRELUDE + "".join(f"report('case', name={n!r})\nexec({CASES[n][0] + EPILOGUE!r}, dict(globals()))\n"
                             for n in names)


@pytest.fixture(scope="module")
def index_runs(dev):
    """The bad-index scripts' reports per case: (exit status, {event: report}, stderr)."""
    assert sorted(sum(GROUPS, [])) == sorted(CASES)
    procs = [(names, _start(dev, _group_script(names))) for names in GROUPS]
    runs = {}
    for names, proc in procs:
        out, err = proc.communicate(timeout=300)
        case = "_prelude"
        runs[case] = (0, {}, err)
        for line in out.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                if r["event"] == "case":
                    case = r["name"]
                    runs[case] = (0, {}, err)
                else:
                    runs[case][1][r.pop("event")] = r
        for n in names:  # the case that was running when the process died, and those after it
            if "next" not in runs.get(n, (0, {}))[1]:
                runs[n] = (proc.returncode or "no result", runs.get(n, (0, {}))[1], err)
    return runs


@pytest.mark.parametrize("name", list(CASES))
def test_bad_index_raises_at_next_sync(index_runs, name):
    rc, rep, err = index_runs[name]
    assert rc == 0, f"{name}: the process died (exit status {rc}):\n{err[-3000:]}"
    assert rep["returned"]["waits"] == 0, f"{name}: the op itself waited on the device"
    assert "raised" in rep, f"{name}: no IndexError at the sync: {rep}"
    msg = rep["raised"]["message"]
    for part in CASES[name][1]:
        assert part in msg, f"{name}: {part!r} missing from {msg!r}"
    assert rep["next"]["ok"], f"{name}: the next op is wrong: {rep['next']}"


def test_torch_raises_the_same_error_type():
    """PyTorch (CPU) raises IndexError for the same bad indices, and says so eagerly."""
    torch = pytest.importorskip("torch")
    x = torch.randn(7, 5)
    bad = {
        "cross_entropy": lambda: torch.nn.functional.cross_entropy(x, torch.tensor([0, 1, 5, 2, 4, 3, 0])),
        "cross_entropy_negative": lambda: torch.nn.functional.cross_entropy(x, torch.tensor([0, -3, 1, 2, 4, 3, 0])),
        "nll_loss": lambda: torch.nn.functional.nll_loss(x, torch.tensor([0, 1, 7, 2, 4, 3, 0])),
        "embedding": lambda: torch.nn.Embedding(10, 3)(torch.tensor([1, 10])),
        # (along dim 0: along another dim torch 2.13's CPU kernel raises a RuntimeError instead)
        "index_select": lambda: torch.index_select(x, 0, torch.tensor([0, 7])),
        "index_select_negative": lambda: torch.index_select(x, 0, torch.tensor([-1])),
        "indexing": lambda: x[torch.tensor([0, 7])],
        "indexing_negative": lambda: x[:, torch.tensor([1, -6])],
    }
    for name, fn in bad.items():
        with pytest.raises(IndexError):
            fn()
    assert "index 7 is out of bounds for dimension 0 with size 7" in _message(lambda: x[torch.tensor([7])])
    torch.nn.functional.cross_entropy(x, torch.tensor([0, -100, 1, 2, 4, 3, 0]))  # ignore_index is fine


def _message(fn):
    try:
        fn()
    except Exception as e:
        return str(e)
    return ""


def test_ignore_index_is_not_an_error(dev):
    xn = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    x = mt.tensor(xn, device=dev, requires_grad=True)
    loss = F.cross_entropy(x, mt.tensor([-100, 2, 1, -100], device=dev))
    loss.backward()
    x64 = xn.astype(np.float64)
    lse = np.log(np.exp(x64).sum(1))
    assert loss.item() == pytest.approx(np.mean([lse[1] - x64[1, 2], lse[2] - x64[2, 1]]), rel=1e-5)
    g = x.grad.numpy()
    np.testing.assert_array_equal(g[[0, 3]], 0.0)
    loss = F.nll_loss(x.detach(), mt.tensor([5, 2, 1, 5], device=dev), ignore_index=5)
    assert loss.item() == pytest.approx(-(xn[1, 2] + xn[2, 1]) / 2, rel=1e-6)


def test_first_bad_index_wins_and_is_reported_once(dev):
    x = mt.tensor(np.arange(12, dtype=np.float32).reshape(4, 3), device=dev)
    a = mt.index_select(x, 0, mt.tensor([9], device=dev))
    b = x[mt.tensor([7], device=dev)]
    with pytest.raises(IndexError, match="index_select.*index 9"):
        b.numpy()
    a.numpy()  # already reported: the buffer was reset
    np.testing.assert_array_equal(x[mt.tensor([-1], device=dev)].numpy(), [[9, 10, 11]])


# ---- 2. anomaly mode --------------------------------------------------------------------------
def _line_of(marker):
    """The line of this file holding `marker` (a comment at the end of that line)."""
    lines = Path(__file__).read_text().splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if line.rstrip().endswith(f"# {marker}")]
    assert len(hits) == 1
    return hits[0]


def test_anomaly_forward_names_function_and_user_line(dev):
    assert not mt.autograd.is_anomaly_enabled()
    x = mt.tensor([-1.0, 2.0, 3.0], device=dev, requires_grad=True)
    with mt.autograd.detect_anomaly():
        assert mt.autograd.is_anomaly_enabled()
        with pytest.raises(RuntimeError) as info:
            mt.log(x)  # anomaly: forward log
    assert not mt.autograd.is_anomaly_enabled()
    msg = str(info.value)
    assert "Function 'Log'" in msg and "forward" in msg
    assert f'{Path(__file__).name}", line {_line_of("anomaly: forward log")}' in msg, msg
    assert "minitorch_cl" + os.sep not in msg.split("created in forward at:")[-1]  # the user's frames only


def test_anomaly_backward_names_backward_function_and_forward_line(dev):
    x = mt.tensor([0.0, 1.0, 4.0], device=dev, requires_grad=True)
    mt.autograd.set_detect_anomaly(True)
    try:
        y = mt.sqrt(x)  # anomaly: sqrt at 0
        assert np.isfinite(y.detach().numpy()).all()  # forward is fine: only the gradient is inf
        with pytest.raises(RuntimeError) as info:
            y.sum().backward()
    finally:
        mt.autograd.set_detect_anomaly(False)
    msg = str(info.value)
    assert "Function 'SqrtBackward'" in msg, msg
    assert f'{Path(__file__).name}", line {_line_of("anomaly: sqrt at 0")}' in msg, msg
    # the same graph with anomaly mode off: no error, torch's inf gradient
    x.grad = None
    mt.sqrt(x).sum().backward()
    assert x.grad.numpy()[0] == np.inf and x.grad.numpy()[2] == pytest.approx(0.25)


def test_anomaly_finite_graph_passes_and_matches(dev):
    rng = np.random.default_rng(5)
    xn = rng.uniform(0.5, 2, (7, 33)).astype(np.float32)
    with mt.autograd.detect_anomaly():
        x = mt.tensor(xn, device=dev, requires_grad=True)
        loss = (mt.log(x) * x.T.T).sum()
        loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), np.log(xn) + 1, rtol=1e-5)


def _count(fn):
    """(kernel launches, host waits) while fn runs."""
    launches, waits = [0], [0]
    download = Device.download

    def observe(*args):
        launches[0] += 1

    def counted(self, *a, **k):
        waits[0] += 1
        return download(self, *a, **k)

    minitorch_cl.launch.observers.append(observe)
    Device.download = counted
    try:
        fn()
    finally:
        minitorch_cl.launch.observers.remove(observe)
        Device.download = download
    return launches[0], waits[0]


@pytest.mark.parametrize("name", list(GATHER_CASES))
def test_gather_scatter_bad_index(index_runs, name):
    if not HAVE_GATHER:
        pytest.skip("mt.gather / Tensor.scatter are not implemented yet")
    test_bad_index_raises_at_next_sync(index_runs, name)


def test_anomaly_off_by_default_and_free_when_off(dev, index_runs):
    assert index_runs["_prelude"][1]["anomaly"] == {"enabled": False}  # in a fresh process
    rng = np.random.default_rng(6)
    model = nn.Sequential(nn.Linear(7, 33), nn.ReLU(), nn.Linear(33, 1)).to(dev)
    xb = mt.tensor(rng.standard_normal((5, 7)).astype(np.float32), device=dev)

    def step():
        model.zero_grad()
        (model(xb) ** 2).mean().backward()

    step()  # builds the kernels
    off = _count(step)
    with mt.autograd.detect_anomaly():
        on = _count(step)
    off_again = _count(step)
    # a NaN goes through unnoticed (PyTorch's default), without a wait
    nan_ops = _count(lambda: mt.log(mt.tensor([-1.0], device=dev)))
    # off: only backward()'s one read of the error buffer at its end; on: a read per Function
    assert off[1] <= 1 and off_again == off and nan_ops[1] == 0, (off, off_again, nan_ops)
    assert on[0] >= off[0] and on[1] > off[1] + 5, (on, off)


# ---- 3. memory ----------------------------------------------------------------------------------
def test_allocation_larger_than_device_raises_oom(dev):
    with pytest.raises(mt.OutOfMemoryError) as info:
        mt.zeros(10**12, device=dev)
    assert isinstance(info.value, RuntimeError) and isinstance(info.value, MemoryError)
    assert mt.cuda.OutOfMemoryError is mt.OutOfMemoryError
    msg = str(info.value)
    assert "cannot allocate 3.64 TiB" in msg, msg  # 4e12 bytes asked for
    assert "limit" in msg
    np.testing.assert_array_equal((mt.ones(7, device=dev) * 2).numpy(), 2)


def test_memory_fraction_caps_activations_and_the_process_recovers(dev):
    rng = np.random.default_rng(7)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 3)).to(dev)
    w1, b1, w2, b2 = (p.detach().numpy().astype(np.float64) for p in model.parameters())
    big = rng.standard_normal((8192, 64)).astype(np.float32)  # 2 MiB in, 8 MiB of hidden activations
    xb = mt.tensor(big, device=dev)
    mt.cuda.empty_cache(dev)

    def ref(x):
        return np.maximum(x.astype(np.float64) @ w1.T + b1, 0) @ w2.T + b2

    try:
        cap = mt.cuda.memory_allocated(dev) + (4 << 20)
        mt.cuda.set_per_process_memory_fraction(cap / dev.cl_device.global_mem_size, dev)
        with pytest.raises(mt.OutOfMemoryError) as info:
            model(xb).sum().backward()
        msg = str(info.value)
        assert "cannot allocate" in msg and f"limit of {_size(dev.memory_limit)}" in msg, msg
        assert "in use" in msg
        # freed to below the cap: a small batch works under it
        del xb, info
        gc.collect()
        small = big[:7]
        np.testing.assert_allclose(model(mt.tensor(small, device=dev)).detach().numpy(), ref(small),
                                   rtol=1e-4, atol=1e-5)
    finally:
        mt.cuda.set_per_process_memory_fraction(1.0, dev)
    np.testing.assert_allclose(model(mt.tensor(big, device=dev)).detach().numpy(), ref(big), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError):
        mt.cuda.set_per_process_memory_fraction(0.0, dev)


def test_oom_in_backward_leaves_autograd_usable(dev):
    rng = np.random.default_rng(9)
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 3)).to(dev)
    xn = rng.standard_normal((4096, 64)).astype(np.float32)
    x = mt.tensor(xn, device=dev)
    mt.cuda.empty_cache(dev)
    out = model(x).sum()
    ran = []
    try:  # the forward fits; its backward's (4096, 256) gradient does not
        cap = mt.cuda.memory_allocated(dev) + (3 << 20)
        mt.cuda.set_per_process_memory_fraction(cap / dev.cl_device.global_mem_size, dev)
        out.register_hook(lambda g: mt.autograd.queue_callback(lambda: ran.append(1)))
        with pytest.raises(mt.OutOfMemoryError, match="cannot allocate 4.00 MiB"):
            out.backward()
    finally:
        mt.cuda.set_per_process_memory_fraction(1.0, dev)
    assert not ran  # the failed pass's callbacks never run ...
    with pytest.raises(RuntimeError, match="during a backward pass"):
        mt.autograd.queue_callback(lambda: None)  # ... and no pass is in progress any more
    for p in model.parameters():
        p.grad = None
    model(x).sum().backward()
    h = xn.astype(np.float64) @ model[0].weight.detach().numpy().astype(np.float64).T + \
        model[0].bias.detach().numpy()
    np.testing.assert_allclose(model[2].weight.grad.numpy(), np.tile(np.maximum(h, 0).sum(0), (3, 1)), rtol=1e-4)


def test_memory_statistics(dev):
    gc.collect()
    base = mt.cuda.memory_allocated(dev)
    mt.cuda.reset_peak_memory_stats(dev)
    assert mt.cuda.max_memory_allocated(dev) == base
    nbytes = 257 * 1024 * 4
    t = mt.empty(257, 1024, device=dev)
    grown = mt.cuda.memory_allocated(dev) - base
    assert nbytes <= grown <= 2 * nbytes
    assert mt.cuda.memory_reserved(dev) >= mt.cuda.memory_allocated(dev)
    del t
    gc.collect()
    assert mt.cuda.memory_allocated(dev) == base
    assert mt.cuda.max_memory_allocated(dev) >= base + nbytes
    held = mt.cuda.memory_reserved(dev)
    assert held >= base + nbytes  # the freed block is cached for reuse
    mt.cuda.empty_cache(dev)
    assert mt.cuda.memory_reserved(dev) <= held - nbytes
    assert mt.cuda.memory_reserved(dev) >= mt.cuda.memory_allocated(dev)
    mt.cuda.reset_peak_memory_stats(dev)
    assert mt.cuda.max_memory_allocated(dev) == mt.cuda.memory_allocated(dev) == base
    assert mt.cl.memory_allocated is mt.cuda.memory_allocated


RLIMIT_SCRIPT = r'''
import json, resource
import numpy as np
import minitorch_cl as mt
from minitorch_cl import nn, optim

def report(event, **kw):
    print(json.dumps(dict(kw, event=event)), flush=True)

mt.manual_seed(0)
model = nn.Transformer(512, 8, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=512, dropout=0.0)
opt = optim.SGD(model.parameters(), lr=0.01)
first = next(model.parameters())

def step(S, T, B, seed, update):
    g = np.random.default_rng(seed)
    src = mt.tensor(g.standard_normal((S, B, 512)).astype(np.float32)) if S * B < 1000 else mt.randn(S, B, 512)
    tgt = mt.tensor(g.standard_normal((T, B, 512)).astype(np.float32)) if T * B < 1000 else mt.randn(T, B, 512)
    opt.zero_grad()
    loss = (model(src, tgt) ** 2).mean()
    loss.backward()
    grad = first.grad.numpy().copy()
    if update:
        opt.step()
    return loss.item(), grad

loss0, grad0 = step(5, 3, 2, 1, update=False)  # builds the kernels before the limit
with open("/proc/self/statm") as f:
    used = int(f.read().split()[0]) * resource.getpagesize()
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
resource.setrlimit(resource.RLIMIT_AS, (used + (448 << 20), hard))
report("limited", used=used)
try:
    step(512, 128, 64, 2, update=True)  # the article's shape: many GiB of activations
    report("no error")
except mt.OutOfMemoryError as e:
    report("oom", message=str(e))
loss1, grad1 = step(5, 3, 2, 1, update=True)
report("small", loss=[loss0, loss1], same=bool(np.allclose(grad0, grad1, rtol=1e-5, atol=1e-7)))
loss2, _ = step(5, 3, 2, 1, update=False)
report("trained", loss=loss2)
'''


def test_transformer_step_over_rlimit_raises_oom_not_abort(dev):
    if not dev.is_cpu:
        pytest.skip("RLIMIT_AS limits host memory: only a CPU runtime's buffers live there")
    rc, rep, err = _reports(_start(dev, RLIMIT_SCRIPT), timeout=300)
    assert rc == 0, f"exit status {rc} (a negative one is a signal: {-rc}):\n{err[-3000:]}"
    assert "limited" in rep and "oom" in rep, (rep, err[-2000:])
    msg = rep["oom"]["message"]
    assert "cannot allocate" in msg and "the host can map only" in msg, msg
    loss0, loss1 = rep["small"]["loss"]
    assert loss1 == pytest.approx(loss0, rel=1e-5) and rep["small"]["same"], rep["small"]
    assert rep["trained"]["loss"] < loss0  # the SGD step after the error went through


# ---- 4. crash safety ----------------------------------------------------------------------------
SAVER = r'''
import sys
import numpy as np
import minitorch_cl as mt
path = sys.argv[1]
big = np.empty((4 << 20,), np.float32)  # 16 MiB per save
k = 1
while True:
    big.fill(k)
    mt.save({"step": k, "weights": {"w": mt.tensor(big[:1024] * 0 + k), "big": big}}, path)
    print(k, flush=True)
    k += 1
'''


def _check_checkpoint(path):
    state = mt.load(path)
    k = state["step"]
    assert state["weights"]["big"].shape == (4 << 20,)
    assert (state["weights"]["big"] == k).all()
    assert (state["weights"]["w"].numpy() == k).all()
    return k


def test_save_killed_half_way_leaves_old_file(dev, tmp_path):
    """Four savers at once, each overwriting its own checkpoint in a loop, each killed (SIGKILL) at a
    random moment after its first save: every file is still whole (the old one or a newer one)."""
    rand = random.Random(13)
    paths = [tmp_path / f"ckpt{i}.mtcl" for i in range(4)]
    for path in paths:
        mt.save({"step": 0, "weights": {"w": mt.zeros(1024, device=dev), "big": np.zeros(4 << 20, np.float32)}},
                path)
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(path)], env=_env(dev), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for path in paths]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip(), proc.stderr.read()  # one save done: now kill it mid-loop
        for proc in procs:
            time.sleep(rand.uniform(0.0, 0.3))
            proc.send_signal(signal.SIGKILL)
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()
    assert all(proc.returncode == -signal.SIGKILL for proc in procs)
    for path in paths:
        assert _check_checkpoint(path) >= 1  # whole: a save that finished, never half of one
    leftovers = [p.name for p in tmp_path.iterdir() if p not in paths]
    assert all(name.startswith(".tmp-") for name in leftovers), leftovers


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_training_steps_do_not_grow_memory(dev):
    rng = np.random.default_rng(8)
    model = nn.Sequential(nn.Linear(7, 33), nn.Tanh(), nn.Linear(33, 3)).to(dev)
    opt = optim.SGD(model.parameters(), lr=0.05)
    xb = mt.tensor(rng.standard_normal((17, 7)).astype(np.float32), device=dev)
    yb = mt.tensor(rng.integers(0, 3, 17), device=dev)

    def steps(n):
        for _ in range(n):
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        return loss.item()

    first = steps(50)  # warm-up: kernels, pool blocks, optimizer state
    gc.collect()
    rss0, pool0 = _rss(), mt.cuda.memory_allocated(dev)
    last = steps(1000)
    gc.collect()
    rss1, pool1 = _rss(), mt.cuda.memory_allocated(dev)
    assert pool1 == pool0, (pool0, pool1)
    assert rss1 - rss0 < 4 << 20, f"RSS grew by {(rss1 - rss0) / 2**20:.1f} MiB over 1000 steps"
    assert last < first  # and it trained
