"""Square float32 GEMM: minitorch_cl's matmul against NumPy's (its BLAS) in the same run.

Ours is timed at every size first, then NumPy's (see run); the table gives medians and their ratio.
Each timed sample is as many calls back to back as fill SAMPLE_S (one at 1024 and up), so a small
product is timed as a stream of them, as timeit does, not as one call after an idle pause: after
PAUSE idle, PoCL's worker threads are asleep and waking them cost ~0.45 ms here, longer than the
whole 256 product.

Two figures for ours: "synced" waits for each product before the next call (its latency, as NumPy's
call returns a finished result), "streamed" waits once at the end of a sample of back-to-back calls
(the throughput a model's queue of products sees, the way device benchmarks time kernels). At 256 the
two differ by the wake-up of PoCL's threads after each wait.
"""
import statistics
import time

import numpy as np

import minitorch_cl as mt
from minitorch_cl.tuner import profile_entries

# Idle time before each timed sample, and the least length of one.
PAUSE = 0.02
SAMPLE_S = 0.02
NOTE = ("GFLOP/s = 2*n^3 / median time of a call, each sample a stream of back-to-back calls of at least 20 ms; "
        "ours waits for each product (synced) or once per sample (streamed); "
        "ratio = minitorch_cl / NumPy (higher is better for us). On a device whose tuned GEMM entry (minitorch-cl "
        "tune) differs from the built-in one, both are timed in the same run.")


def run(dev, sizes=(256, 512, 1024, 2048), repeats=7, quick=False):
    """One row per size: median GFLOP/s of mt.matmul and of np.matmul, and their ratio."""
    if quick:
        sizes, repeats = tuple(s for s in sizes if s <= 1024), min(repeats, 3)
    rng = np.random.default_rng(0)
    hosts = {n: (rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32))
             for n in sizes}
    reps = {n: max(3, repeats if n <= 1024 else (repeats + 1) // 2) for n in sizes}
    # Every size of ours first, then NumPy's: after a multi-threaded OpenBLAS call its idle threads
    # keep spinning for over a second and halve the speed of whatever runs next on 2 cores, so
    # timing the two alternately measured us at ~0.5x of our own speed.
    ours, streamed, got, default = {}, {}, {}, {}
    builtin = dev.default_profile()  # the tuned GEMM entries that differ from the built-in ones
    defaults = {k: getattr(builtin, k) for k in dev.tuned
                if k.startswith("gemm_") and getattr(builtin, k) != getattr(dev.profile, k)}
    for n in sizes:
        a, b = (mt.tensor(x, device=dev) for x in hosts[n])
        got[n] = (a @ b).numpy()  # also keeps the build and first-launch compile out of the timings
        ours[n] = _median(lambda: ((a @ b), dev.synchronize()), reps[n])
        streamed[n] = _median(lambda: a @ b, reps[n], end=dev.synchronize)
        if defaults:
            with profile_entries(dev, **defaults):
                (a @ b).numpy()
                default[n] = _median(lambda: ((a @ b), dev.synchronize()), reps[n])
    rows = []
    for n in sizes:
        a_host, b_host = hosts[n]
        t_np = _median(lambda: np.matmul(a_host, b_host), reps[n])
        want = a_host.astype(np.float64) @ b_host
        err = float(np.abs(got[n] - want).max() / np.abs(want).max())
        g_ours, g_np = 2.0 * n ** 3 / ours[n] / 1e9, 2.0 * n ** 3 / t_np / 1e9
        row = {"size": n}
        if defaults:
            row.update({"default GFLOP/s": 2.0 * n ** 3 / default[n] / 1e9, "tuned GFLOP/s": g_ours,
                        "tuned/default": default[n] / ours[n]})
        else:
            row["minitorch_cl GFLOP/s"] = g_ours
        g_streamed = 2.0 * n ** 3 / streamed[n] / 1e9
        row.update({"streamed GFLOP/s": g_streamed, "NumPy GFLOP/s": g_np, "ratio": g_ours / g_np,
                    "streamed ratio": g_streamed / g_np, "max rel err": err})
        rows.append(row)
    return rows


def profile_step(dev):
    """one square 1024 matmul"""
    a, b = (mt.randn(1024, 1024, device=dev) for _ in range(2))
    return lambda: a @ b


def _median(fn, reps, end=lambda: None):
    """The median time of one call of fn over reps samples, each of `calls` back-to-back calls
    followed by one call of end (the wait for a device's queue)."""
    start = time.perf_counter()
    fn()
    end()
    calls = max(1, int(SAMPLE_S / max(time.perf_counter() - start, 1e-6)))
    times = []
    for _ in range(reps):
        time.sleep(PAUSE)
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        end()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)
