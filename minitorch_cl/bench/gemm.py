"""Square float32 GEMM: minitorch_cl's matmul against NumPy's (its BLAS) in the same run.

The two are timed alternately, repeat by repeat, so that load from other processes on a shared
machine hits both alike; the table gives medians and their ratio.
"""
import statistics
import time

import numpy as np

import minitorch_cl as mt

# Idle time before each timed call: OpenBLAS's threads spin for a while after a call, and would
# otherwise eat into whichever call is timed next.
PAUSE = 0.02
NOTE = "GFLOP/s = 2*n^3 / median time; ratio = minitorch_cl / NumPy (higher is better for us)."


def run(dev, sizes=(256, 512, 1024, 2048), repeats=7, quick=False):
    """One row per size: median GFLOP/s of mt.matmul and of np.matmul, and their ratio."""
    if quick:
        sizes, repeats = tuple(s for s in sizes if s <= 1024), min(repeats, 3)
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        a_host = rng.standard_normal((n, n), dtype=np.float32)
        b_host = rng.standard_normal((n, n), dtype=np.float32)
        a, b = mt.tensor(a_host, device=dev), mt.tensor(b_host, device=dev)

        def ours():
            (a @ b)
            dev.synchronize()

        got = (a @ b).numpy()  # also keeps the build and first-launch compile out of the timings
        want = a_host.astype(np.float64) @ b_host
        err = float(np.abs(got - want).max() / np.abs(want).max())
        reps = max(3, repeats if n <= 1024 else (repeats + 1) // 2)
        t_ours, t_np = [], []
        for _ in range(reps):
            for fn, times in ((ours, t_ours), (lambda: np.matmul(a_host, b_host), t_np)):
                time.sleep(PAUSE)
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
        g_ours = 2.0 * n ** 3 / statistics.median(t_ours) / 1e9
        g_np = 2.0 * n ** 3 / statistics.median(t_np) / 1e9
        rows.append({"size": n, "minitorch_cl GFLOP/s": g_ours, "NumPy GFLOP/s": g_np,
                     "ratio": g_ours / g_np, "max rel err": err})
    return rows
