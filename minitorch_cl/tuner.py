"""The per-device autotuner behind `minitorch-cl tune`: GEMM's register blocks and tiles.

For the path the device takes (CPU: gemm_packed's MR x NV float8 block, `gemm_cpu_block`; GPU:
gemm_tiled's TM/TN/TK/WM/WN, `gemm_tiles`) it tries candidates on the shapes the models use, checks
every candidate's products against NumPy before timing it (a wrong or unbuildable candidate is
rejected, never chosen), scores each by the geometric mean of its time over the default's, and stores
the best in the tuning cache (tuned_profile), which Device.profile applies in every later run.
The device's profile is left as it was.
"""
import contextlib
import math
import statistics
import time

import numpy as np
import pyopencl as cl

from . import gemm as gemm_mod, tuned_profile
from .kernels import KernelBuildError
from .tensor import tensor


class Shape:
    """One product C[z] = A[z] @ op(B[z]), z < batch; A shared by the batch (a conv's weight) or not."""

    def __init__(self, label, M, N, K, batch=1, trans_b=False, shared_a=False):
        self.label, self.M, self.N, self.K = label, M, N, K
        self.batch, self.trans_b, self.shared_a = batch, trans_b, shared_a

    @property
    def flops(self):
        return 2.0 * self.M * self.N * self.K * self.batch


# The products of the repository's models (bench/): the ConvNet at batch 64, the LSTM at
# (T 100, B 64, I 512, H 256), and square sizes.
MODEL_SHAPES = (
    Shape("conv1 W@col", 32, 1024, 27, batch=64, shared_a=True),
    Shape("conv2 W@col", 64, 256, 288, batch=64, shared_a=True),
    Shape("fc1 x@W.T", 64, 512, 4096, trans_b=True),
    Shape("fc2 x@W.T", 64, 10, 512, trans_b=True),
    Shape("lstm x@W_ih.T", 6400, 1024, 512, trans_b=True),
    Shape("lstm h@W_hh.T", 64, 1024, 256, trans_b=True),
    Shape("square 256", 256, 256, 256),
    Shape("square 512", 512, 512, 512),
    Shape("square 1024", 1024, 1024, 1024),
)

# Ordered so that a short budget tries the likelier ones first; the profile's own entry goes first.
CPU_BLOCKS = [dict(MR=mr, NV=nv) for mr, nv in ((6, 2), (4, 2), (8, 2), (4, 3), (5, 2), (3, 3), (7, 2),
                                                 (5, 3), (8, 1), (6, 1), (2, 3), (4, 1))]
GPU_TILES = [dict(TM=tm, TN=tn, TK=tk, WM=wm, WN=wn) for tm, tn, tk, wm, wn in (
    (64, 64, 16, 4, 4), (64, 64, 8, 4, 4), (64, 64, 32, 4, 4), (128, 64, 16, 8, 4), (64, 128, 16, 4, 8),
    (128, 128, 16, 8, 8), (128, 128, 8, 8, 8), (64, 64, 16, 8, 8), (128, 128, 32, 8, 8), (32, 32, 16, 2, 2),
    (32, 32, 16, 4, 4), (32, 32, 32, 4, 4))]
FINALISTS = 3  # the baseline and the best two are timed again, in turns, before one is chosen
MARGIN = 0.98  # a candidate replaces the baseline only when its score is below this (noise)
REL_TOL = 2e-4  # max |C - C_ref| / max |C_ref| that a candidate may reach (float32 sums run ~1e-6)


def search_space(dev):
    """(profile entry, candidates) for the GEMM path this device takes, the built-in default first."""
    prof = dev.profile
    if prof.gemm_packed:
        entry, space = "gemm_cpu_block", CPU_BLOCKS
    else:
        wg, lmem = dev.max_work_group_size, dev.local_mem_size
        entry = "gemm_tiles"
        space = [t for t in GPU_TILES if (t["TM"] // t["WM"]) * (t["TN"] // t["WN"]) <= wg and
                 4 * t["TK"] * (t["TM"] + t["TN"]) <= lmem]
    default = dict(getattr(dev.default_profile(), entry))
    return entry, [default] + [c for c in space if c != default]


@contextlib.contextmanager
def profile_entries(dev, **entries):
    """Run the body with these device profile entries, then put the previous ones back."""
    prof = dev.profile
    saved = {k: getattr(prof, k) for k in entries}
    prof.update(**entries)
    try:
        yield prof
    finally:
        prof.update(**saved)


class _Operands:
    """A shape's host inputs, their float64 reference product, and device tensors for them."""

    def __init__(self, dev, shape, rng):
        s = shape
        self.a = rng.standard_normal((1 if s.shared_a else s.batch, s.M, s.K), dtype=np.float32)
        self.b = rng.standard_normal((s.batch, s.N, s.K) if s.trans_b else (s.batch, s.K, s.N), dtype=np.float32)
        bt = np.swapaxes(self.b, 1, 2) if s.trans_b else self.b
        self.ref = np.matmul(self.a.astype(np.float64), bt.astype(np.float64))
        self.ta, self.tb = tensor(self.a, device=dev), tensor(self.b, device=dev)
        self.tc = tensor(np.zeros((s.batch, s.M, s.N), np.float32), device=dev)


def _run(dev, shape, ops):
    s = shape
    gemm_mod.gemm(dev, s.M, s.N, s.K, ops.ta.buffer, ops.tb.buffer, ops.tc.buffer, trans_b=s.trans_b,
                  lda=s.K, ldb=s.K if s.trans_b else s.N, ldc=s.N, batch=s.batch,
                  batch_a=0 if s.shared_a else s.M * s.K, batch_b=s.K * s.N, batch_c=s.M * s.N)


def _product(dev, shape, ops):
    """C computed with the profile's current entries, on the host."""
    _run(dev, shape, ops)
    return ops.tc.numpy()


def _time_shape(dev, shape, ops, repeats):
    """Median seconds of one product (the device waited for)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _run(dev, shape, ops)
        dev.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _rel_error(got, ref):
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30))


def tune(dev, budget=60.0, shapes=MODEL_SHAPES, candidates=None, repeats=3, rounds=2, store=True, log=print):
    """Search the device's GEMM entry, store the winner (store=True) and return the record.

    budget: seconds after which no new candidate is started (the first is always measured).
    candidates: entry dicts to try instead of search_space's; the first correct one is the baseline
    that scores are relative to (search_space puts the built-in default first). rounds: how many
    more times the finalists are timed in turns (each shape keeps its fastest time)."""
    entry, space = search_space(dev)
    if candidates is not None:
        space = [dict(c) for c in candidates]
    rng = np.random.default_rng(0)
    operands = [_Operands(dev, s, rng) for s in shapes]
    start = time.perf_counter()
    results, base = [], None
    for cfg in space:
        if results and time.perf_counter() - start > budget:
            results.append(dict(config=cfg, status="not tried (budget)"))
            continue
        with profile_entries(dev, **{entry: dict(cfg)}):
            res = _measure(dev, shapes, operands, repeats)
        res["config"] = cfg
        if res["status"] == "ok":
            if base is None:
                base = res["times"]
            res["score"] = math.exp(statistics.fmean(math.log(t / b) for t, b in zip(res["times"], base)))
        results.append(res)
        if log:
            log(f"  {_cfg_text(cfg):30s} " + (f"{res['score']:.3f} x baseline time" if "score" in res
                                               else res["status"]))
    ok = [r for r in results if "score" in r]
    if not ok:
        raise RuntimeError(f"tune: no {entry} candidate computed correct products on {dev.name}")
    finalists = [ok[0]] + sorted(ok[1:], key=lambda r: r["score"])[:FINALISTS - 1]
    for _ in range(rounds if len(finalists) > 1 else 0):
        for r in finalists:
            with profile_entries(dev, **{entry: dict(r["config"])}):
                again = [_time_shape(dev, s, ops, repeats) for s, ops in zip(shapes, operands)]
            r["times"] = [min(t, u) for t, u in zip(r["times"], again)]
    base = ok[0]["times"]
    for r in finalists:
        r["score"] = math.exp(statistics.fmean(math.log(t / b) for t, b in zip(r["times"], base)))
    best = min(finalists, key=lambda r: r["score"])
    if best["score"] > MARGIN:
        best = ok[0]
    if log and len(finalists) > 1:
        log("  finalists, timed again: " + ", ".join(f"{_cfg_text(r['config'])} {r['score']:.3f}" for r in finalists))
    shapes_out = [dict(label=s.label, M=s.M, N=s.N, K=s.K, batch=s.batch, default_gflops=s.flops / b / 1e9,
                       tuned_gflops=s.flops / t / 1e9) for s, b, t in zip(shapes, base, best["times"])]
    record = dict(device=dev.name, entries={entry: best["config"]}, budget_s=budget,
                  tuned_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), speedup=1.0 / best["score"],
                  shapes=shapes_out, candidates=[{k: v for k, v in r.items() if k != "times"} for r in results])
    if store:
        record = tuned_profile.store(dev.tuning_key, record.pop("entries"), **record)
    return record


def _measure(dev, shapes, operands, repeats):
    """Validate the current entries on every shape, then time them: {'status', 'times'}."""
    try:
        for s, ops in zip(shapes, operands):
            err = _rel_error(_product(dev, s, ops), ops.ref)
            if not err <= REL_TOL:
                return dict(status=f"wrong result ({s.label}: rel. error {err:.2g})")
    except (KernelBuildError, cl.Error) as exc:
        return dict(status=f"failed ({str(exc).splitlines()[0]})")
    return dict(status="ok", times=[_time_shape(dev, s, ops, repeats) for s, ops in zip(shapes, operands)])


def _cfg_text(cfg):
    return " ".join(f"{k}={v}" for k, v in cfg.items())


def show(records=None):
    """The stored records as text lines, one block per device."""
    records = tuned_profile.read_all() if records is None else records
    if not records:
        return [f"no tuning records in {tuned_profile.cache_path()}"]
    lines = [f"tuning records in {tuned_profile.cache_path()}:"]
    for key, rec in records.items():
        state = "current" if tuned_profile.is_current(rec) else "stale (kernels or schema changed; ignored)"
        entries = "; ".join(f"{k}: {_cfg_text(v) if isinstance(v, dict) else v}"
                            for k, v in rec.get("entries", {}).items())
        lines.append(f"- {key}\n    {entries}  [{state}, tuned {rec.get('tuned_at', '?')}, "
                     f"{rec.get('speedup', float('nan')):.2f}x the defaults over its shapes]")
        for s in rec.get("shapes", []):
            lines.append(f"    {s['label']:16s} {s['default_gflops']:8.1f} -> {s['tuned_gflops']:8.1f} GFLOP/s")
    return lines
