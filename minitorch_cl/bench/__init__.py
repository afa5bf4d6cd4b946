"""Benchmarks behind `minitorch-cl bench NAME`: each module has run(dev) -> list of row dicts,
timing minitorch_cl next to NumPy (and PyTorch when installed) in the same run."""
import ctypes
import ctypes.util
import statistics
import time

NAMES = ("gemm", "convnet", "lstm", "gru", "attention", "transformer", "ddp", "models")


def median_time(fn, repeats=5, warmup=1, sync=None):
    """Median wall time of fn() in seconds; sync() (if given) waits for the device each time."""
    for _ in range(warmup):
        _timed(fn, sync)
    return statistics.median(_timed(fn, sync) for _ in range(repeats))


GAP = 0.02  # idle seconds before each paired call: either side's idle threads spin a while after it


def paired_times(ours, theirs=None, repeats=5, warmup=1, sync=None):
    """(our median s, their median s, their ratio) of ours() and theirs() timed alternately, call
    by call, so that both medians come from the same minutes of a shared machine's load (timed one
    after the other, a drift in the load moved the ratio by 30%). theirs None: (median, None, None)."""
    if theirs is None:
        return median_time(ours, repeats, warmup, sync), None, None

    def pair():
        time.sleep(GAP)
        mine = _timed(ours, sync)
        time.sleep(GAP)
        return mine, _timed(theirs, None)
    for _ in range(warmup):
        pair()
    pairs = [pair() for _ in range(repeats)]
    mine, other = (statistics.median(t) for t in zip(*pairs))
    return mine, other, mine / other


def _timed(fn, sync):
    start = time.perf_counter()
    fn()
    if sync:
        sync()
    return time.perf_counter() - start


def our_step_peak_mib(dev, step):
    """Peak device memory over one call of step (after a warm-up call), above what was in use before
    it: the memory pool's high-water mark of bytes in tensors, torch.cuda.max_memory_allocated's sense."""
    from .. import cuda
    step()
    dev.synchronize()
    cuda.reset_peak_memory_stats(dev)
    before = cuda.memory_allocated(dev)
    step()
    dev.synchronize()
    return (cuda.max_memory_allocated(dev) - before) / 2 ** 20


def torch_step_peak_rss_mib(step):
    """PyTorch's peak resident-set growth over one call of step (after a warm-up call): VmHWM after it
    minus VmRSS before, the high-water mark reset by writing 5 to /proc/self/clear_refs (Linux);
    None where /proc cannot do that. malloc_trim first hands the warm-up's freed heap back to the
    system, or its pages would still be resident and the step would seem to need no memory."""
    step()
    try:
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass  # not glibc: the growth may then read low
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _proc_status_kib("VmRSS")
        step()
        return (_proc_status_kib("VmHWM") - before) / 1024
    except OSError:
        return None


def _proc_status_kib(field):
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(field + ":")).split()[1])


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
    cols = list(dict.fromkeys(k for r in rows for k in r))  # every row's columns, first seen first
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
