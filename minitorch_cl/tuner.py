"""The per-device autotuner behind `minitorch-cl tune`: GEMM's register blocks or tiles, attention's rows.

Each Search is one device profile entry: GEMM's for the path the device takes (CPU: gemm_packed's
MR x NV block of LANES-float vectors, `gemm_cpu_block`; GPU: gemm_tiled's TM/TN/TK/WM/WN, `gemm_tiles`) on the
products the models use, and the fused attention kernels' rows per work-item (`attention_bq`) on
forward + backward. Every candidate's results are checked against NumPy (float64) before it is
timed, so a wrong or unbuildable candidate is rejected, never chosen; each is scored by the geometric
mean of its time over the default's, the best few are timed again in turns, and the winners go to the
tuning cache (tuned_profile), which Device.profile applies in every later run. The running profile
is left as it was.
"""
import contextlib
import math
import statistics
import time
from typing import NamedTuple

import numpy as np
import pyopencl as cl

from . import gemm as gemm_mod, tuned_profile
from .kernels import KernelBuildError
from .ops.attention import scaled_dot_product_attention
from .tensor import tensor


class Shape:
    """One GEMM C[z] = A[z] @ op(B[z]), z < batch; A shared by the batch (a conv's weight) or not."""

    def __init__(self, label, M, N, K, batch=1, trans_b=False, shared_a=False):
        self.label, self.M, self.N, self.K = label, M, N, K
        self.batch, self.trans_b, self.shared_a = batch, trans_b, shared_a

    @property
    def flops(self):
        return 2.0 * self.M * self.N * self.K * self.batch

    def prepare(self, dev, rng):
        return _GemmCase(dev, self, rng)


class AttentionShape:
    """One fused attention forward + backward, (B, H, L, D), causal or not."""

    def __init__(self, label, B, H, L, D, causal=False):
        self.label, self.B, self.H, self.L, self.D, self.causal = label, B, H, L, D, causal

    @property
    def flops(self):  # forward 4*B*H*L*L*D (halved when causal), backward counted as 2.5 x forward
        return 3.5 * 4.0 * self.B * self.H * self.L * self.L * self.D * (0.5 if self.causal else 1.0)

    def prepare(self, dev, rng):
        return _AttentionCase(dev, self, rng)


class Search(NamedTuple):
    """One profile entry to tune: its candidates (the baseline first) and the shapes that score them."""
    entry: str
    candidates: list
    shapes: tuple


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
# bench attention's shape at a quarter of its batch and length, and a Transformer layer's
ATTENTION_SHAPES = (
    AttentionShape("attn 2x8x256x64", 2, 8, 256, 64),
    AttentionShape("attn causal 2x8x256x64", 2, 8, 256, 64, causal=True),
    AttentionShape("attn 8x8x128x64", 8, 8, 128, 64),
)

# Ordered so that a short budget tries the likelier ones first; the built-in default goes first.
# (MR, NV) for 8-float vectors (16 AVX2 registers), and for 16-float ones (32 AVX-512 registers: up
# to MR*NV accumulators + NV loads + a broadcast)
CPU_BLOCKS = {8: ((6, 2), (4, 2), (8, 2), (4, 3), (5, 2), (3, 3), (7, 2), (5, 3), (8, 1), (6, 1), (2, 3), (4, 1)),
              16: ((6, 2), (12, 2), (8, 2), (10, 2), (4, 4), (6, 3), (4, 3), (7, 3), (5, 4), (8, 1))}
GPU_TILES = [dict(TM=tm, TN=tn, TK=tk, WM=wm, WN=wn) for tm, tn, tk, wm, wn in (
    (64, 64, 16, 4, 4), (64, 64, 8, 4, 4), (64, 64, 32, 4, 4), (128, 64, 16, 8, 4), (64, 128, 16, 4, 8),
    (128, 128, 16, 8, 8), (128, 128, 8, 8, 8), (64, 64, 16, 8, 8), (128, 128, 32, 8, 8), (32, 32, 16, 2, 2),
    (32, 32, 16, 4, 4), (32, 32, 32, 4, 4))]
# Query rows a work-item holds in registers, by vector width: a score tile takes BQ accumulators and
# one vector of keys (the broadcast row element is an FMA operand), so 8 floats (16 AVX2 registers)
# fit up to 14 rows, 16 floats (32 AVX-512 registers) up to 30.
ATTENTION_BQ_CPU = {8: (12, 8, 6, 10, 4, 14), 16: (16, 12, 20, 24, 8, 28, 10)}
ATTENTION_BQ_GPU = [1, 2, 4]
FINALISTS = 3  # the baseline and the best two are timed again, in turns, before one is chosen
MARGIN = 0.98  # a candidate replaces the baseline only when its score is below this (noise)
REL_TOL = 2e-4  # max |C - C_ref| / max |C_ref| that a candidate may reach (float32 sums run ~1e-6)


def _default_first(dev, entry, space):
    default = getattr(dev.default_profile(), entry)
    default = dict(default) if isinstance(default, dict) else default
    return [default] + [c for c in space if c != default]


def search_space(dev):
    """The GEMM Search for the path this device takes (CPU: packed blocks, GPU: tiles)."""
    if dev.profile.gemm_packed:
        lanes = dev.default_profile().gemm_cpu_block.get("LANES", 8)
        entry, space = "gemm_cpu_block", [dict(MR=mr, NV=nv, LANES=lanes) for mr, nv in CPU_BLOCKS[lanes]]
    else:
        wg, lmem = dev.max_work_group_size, dev.local_mem_size
        entry = "gemm_tiles"
        space = [t for t in GPU_TILES if (t["TM"] // t["WM"]) * (t["TN"] // t["WN"]) <= wg and
                 4 * t["TK"] * (t["TM"] + t["TN"]) <= lmem]
    return Search(entry, _default_first(dev, entry, space), MODEL_SHAPES)


def attention_space(dev):
    """The Search of the fused attention kernels' rows per work-item (attention_bq)."""
    lanes = dev.default_profile().attention_lanes
    space = ATTENTION_BQ_GPU if dev.profile.attention_local else list(ATTENTION_BQ_CPU[lanes])
    return Search("attention_bq", _default_first(dev, "attention_bq", space), ATTENTION_SHAPES)


def default_searches(dev):
    return [search_space(dev), attention_space(dev)]


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


class _GemmCase:
    """A GEMM shape's inputs on the device and its float64 NumPy product."""

    def __init__(self, dev, shape, rng):
        s = self.shape = shape
        self.dev, self.label, self.flops = dev, s.label, s.flops
        a = rng.standard_normal((1 if s.shared_a else s.batch, s.M, s.K), dtype=np.float32)
        b = rng.standard_normal((s.batch, s.N, s.K) if s.trans_b else (s.batch, s.K, s.N), dtype=np.float32)
        bt = np.swapaxes(b, 1, 2) if s.trans_b else b
        self.ref = [np.matmul(a.astype(np.float64), bt.astype(np.float64))]
        self.ta, self.tb = tensor(a, device=dev), tensor(b, device=dev)
        self.tc = tensor(np.zeros((s.batch, s.M, s.N), np.float32), device=dev)

    def run(self):
        s = self.shape
        gemm_mod.gemm(self.dev, s.M, s.N, s.K, self.ta.buffer, self.tb.buffer, self.tc.buffer, trans_b=s.trans_b,
                      lda=s.K, ldb=s.K if s.trans_b else s.N, ldc=s.N, batch=s.batch,
                      batch_a=0 if s.shared_a else s.M * s.K, batch_b=s.K * s.N, batch_c=s.M * s.N)

    def outputs(self):
        return [self.tc.numpy()]


class _AttentionCase:
    """Attention forward and backward on the device, and NumPy's float64 output and gradients."""

    def __init__(self, dev, shape, rng):
        s = self.shape = shape
        self.dev, self.label, self.flops = dev, s.label, s.flops
        q, k, v, g = (rng.standard_normal((s.B, s.H, s.L, s.D), dtype=np.float32) for _ in range(4))
        self.ref = _attention_reference(q, k, v, g, s.causal)
        self.q, self.k, self.v = (tensor(x, device=dev, requires_grad=True) for x in (q, k, v))
        self.g = tensor(g, device=dev)

    def run(self):
        for t in (self.q, self.k, self.v):
            t.grad = None
        self.out = scaled_dot_product_attention(self.q, self.k, self.v, is_causal=self.shape.causal)
        self.out.backward(self.g)

    def outputs(self):
        return [self.out.detach().numpy()] + [t.grad.numpy() for t in (self.q, self.k, self.v)]


def _attention_reference(q, k, v, g, causal):
    """softmax(Q K^T / sqrt(D)) V and its gradients with respect to Q, K, V, in float64."""
    q, k, v, g = (x.astype(np.float64) for x in (q, k, v, g))
    scale = 1.0 / np.sqrt(q.shape[-1])
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        L = s.shape[-1]
        s = np.where(np.tril(np.ones((L, L), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    dp = g @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True))
    return [p @ v, ds @ k * scale, np.swapaxes(ds, -1, -2) @ q * scale, np.swapaxes(p, -1, -2) @ g]


def _product(dev, case):
    """The case's outputs computed with the profile's current entries, on the host."""
    case.run()
    return case.outputs()


def _time_shape(dev, case, repeats):
    """Median seconds of one run of the case (the device waited for)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        case.run()
        dev.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _rel_error(got, ref):
    return max(float(np.abs(g - r).max() / max(np.abs(r).max(), 1e-30)) for g, r in zip(got, ref))


def tune(dev, budget=120.0, searches=None, repeats=3, rounds=2, store=True, log=print):
    """Tune each Search's entry (default_searches: GEMM, attention), store the winners (store=True)
    as this device's record, replacing any earlier one, and return the record.

    budget: seconds, split evenly over the searches, after which a search starts no new candidate
    (its first is always measured). A Search's first correct candidate is the baseline its scores
    are relative to (the built-in default in default_searches). rounds: how many more times the
    finalists are timed in turns (each shape keeps its fastest time)."""
    searches = default_searches(dev) if searches is None else searches
    entries, shapes_out, tried = {}, [], []
    for search in searches:
        if log:
            log(f"{search.entry}: {len(search.candidates)} candidates on {len(search.shapes)} shapes")
        best, results, base, best_times = _search(dev, search, budget / len(searches), repeats, rounds, log)
        entries[search.entry] = best
        shapes_out += [dict(entry=search.entry, label=s.label, default_gflops=s.flops / b / 1e9,
                            tuned_gflops=s.flops / t / 1e9) for s, b, t in zip(search.shapes, base, best_times)]
        tried += [dict(entry=search.entry, **{k: v for k, v in r.items() if k != "times"}) for r in results]
    speedup = math.exp(statistics.fmean(math.log(s["tuned_gflops"] / s["default_gflops"]) for s in shapes_out))
    record = dict(device=dev.name, entries=entries, budget_s=budget, speedup=speedup, shapes=shapes_out,
                  tuned_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), candidates=tried)
    if store:
        record = tuned_profile.store(dev.tuning_key, record.pop("entries"), **record)
    return record


def _search(dev, search, budget, repeats, rounds, log):
    """(best candidate, every candidate's result, baseline times, best times) of one Search.

    Each candidate is timed in turns with the baseline, shape by shape (on a loaded machine the two
    then see the same load), and keeps its fastest time per shape; so does the baseline over all."""
    entry = search.entry
    rng = np.random.default_rng(0)
    cases = [s.prepare(dev, rng) for s in search.shapes]
    start = time.perf_counter()
    results, base = [], None
    for cfg in search.candidates:
        if base is not None and time.perf_counter() - start > budget:
            results.append(dict(config=cfg, status="not tried (budget)"))
            continue
        res = dict(config=cfg, status=_validate(dev, entry, cfg, cases))
        results.append(res)
        if res["status"] == "ok":
            if base is None:
                base = res
                res["times"], res["score"] = [math.inf] * len(cases), 1.0
            _time_against(dev, entry, base, res, cases, repeats)
        if log:
            log(f"  {_cfg_text(cfg):30s} " + (f"{res['score']:.3f} x baseline time" if "score" in res
                                               else res["status"]))
    if base is None:
        raise RuntimeError(f"tune: no {entry} candidate computed correct results on {dev.name}")
    others = sorted((r for r in results if "score" in r and r is not base), key=lambda r: r["score"])
    finalists = others[:FINALISTS - 1]
    for _ in range(rounds):
        for r in finalists:
            _time_against(dev, entry, base, r, cases, repeats)
    for r in finalists:
        r["score"] = _score(r["times"], base["times"])
    best = min(finalists, key=lambda r: r["score"], default=base)
    if best["score"] > MARGIN:
        best = base
    if log and finalists:
        log("  finalists, timed again: " + ", ".join(f"{_cfg_text(r['config'])} {r['score']:.3f}" for r in finalists))
    return best["config"], results, base["times"], best["times"]


def _validate(dev, entry, cfg, cases):
    """'ok' when every case's outputs with this entry match NumPy's, else why not."""
    try:
        with profile_entries(dev, **{entry: _copy(cfg)}):
            for c in cases:
                err = _rel_error(_product(dev, c), c.ref)
                if not err <= REL_TOL:
                    return f"wrong result ({c.label}: rel. error {err:.2g})"
    except (KernelBuildError, cl.Error) as exc:
        return f"failed ({str(exc).splitlines()[0]})"
    return "ok"


def _time_against(dev, entry, base, res, cases, repeats):
    """Time res's and base's entries in turns on each case; both keep their fastest time per case."""
    res.setdefault("times", [math.inf] * len(cases))
    for i, c in enumerate(cases):
        for r in (base, res) if res is not base else (base,):
            with profile_entries(dev, **{entry: _copy(r["config"])}):
                r["times"][i] = min(r["times"][i], _time_shape(dev, c, repeats))
    res["score"] = _score(res["times"], base["times"])


def _score(times, base):
    """The geometric mean of time over the baseline's, over the shapes."""
    return math.exp(statistics.fmean(math.log(t / b) for t, b in zip(times, base)))


def _copy(cfg):
    return dict(cfg) if isinstance(cfg, dict) else cfg


def _cfg_text(cfg):
    return " ".join(f"{k}={v}" for k, v in cfg.items()) if isinstance(cfg, dict) else str(cfg)


def show(records=None):
    """The stored records as text lines, one block per device."""
    records = tuned_profile.read_all() if records is None else records
    if not records:
        return [f"no tuning records in {tuned_profile.cache_path()}"]
    lines = [f"tuning records in {tuned_profile.cache_path()}:"]
    for key, rec in records.items():
        state = "current" if tuned_profile.is_current(rec) else "stale (kernels or schema changed; ignored)"
        entries = "; ".join(f"{k}: {_cfg_text(v)}"
                            for k, v in rec.get("entries", {}).items())
        lines.append(f"- {key}\n    {entries}  [{state}, tuned {rec.get('tuned_at', '?')}, "
                     f"{rec.get('speedup', float('nan')):.2f}x the defaults over its shapes]")
        for s in rec.get("shapes", []):
            lines.append(f"    {s['label']:24s} {s['default_gflops']:8.1f} -> {s['tuned_gflops']:8.1f} GFLOP/s")
    return lines
