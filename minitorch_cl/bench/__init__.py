"""Benchmarks behind `minitorch-cl bench NAME`: each module has run(dev) -> list of row dicts,
timing minitorch_cl next to NumPy (and PyTorch when installed) in the same run."""
import statistics
import time

NAMES = ("gemm", "convnet", "lstm", "gru", "attention", "transformer", "ddp")


def median_time(fn, repeats=5, warmup=1, sync=None):
    """Median wall time of fn() in seconds; sync() (if given) waits for the device each time."""
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


PROFILE_STEPS = 5


def profile_table(dev, step=None, prof=None):
    """`bench NAME --profile`: the profiler's table of PROFILE_STEPS calls of the module's
    profile_step (after one warm-up), or of `prof`, a profile of the whole run."""
    from .. import profiler
    title = "the whole run (PyTorch's part counts as host time)"
    if step is not None:
        fn = step(dev)
        fn()
        dev.synchronize()
        with profiler.profile() as prof:
            for _ in range(PROFILE_STEPS):
                fn()
        title = f"{PROFILE_STEPS} x {step.__doc__.strip()} (after one warm-up)"
    return f"\n# kernel profile of {title}\n" + prof.key_averages().table(sort_by="device_time_total", row_limit=20)


def torch_or_none():
    try:
        import torch
        return torch
    except ImportError:
        return None


def format_table(rows):
    if not rows:
        return "(no rows)"
    cols = list(rows[0].keys())
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "| " + " | ".join(v.rjust(w) for v, w in zip(vals, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cols), sep] + [line(r) for r in cells])


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)
