"""A kernel profiler in torch.profiler's shape: profile(), key_averages().table(), export_chrome_trace().

    with mt.profiler.profile() as prof:
        loss = model(x).sum(); loss.backward()
    print(prof.key_averages().table(sort_by="device_time_total", row_limit=20))
    prof.export_chrome_trace("trace.json")

While a profile is open every device's queue is one with OpenCL event profiling (Device.set_profiling
swaps it in and back; normal runs use a plain queue and pay nothing), launch.observers and
device.transfer_observers record each kernel launch and each host<->device copy, and the events'
timestamps are read when the profile closes. Each launch carries the host time spent since the previous
launch or copy (the Python that produced it), and the autograd Function that launched it (the innermost
Function.apply on the stack, inside which Function's backward). MINITORCH_CL_PROFILE=1 profiles a whole
run and prints the table at exit (=PATH.json also writes the trace there).
"""
import atexit
import collections
import json
import os
import sys
import tempfile
import time

import pyopencl as cl

from . import kernels
from .device import devices, transfer_observers
from .launch import observers

ENV_VAR = "MINITORCH_CL_PROFILE"
_COMPLETE = cl.command_execution_status.COMPLETE
_HARVEST_EVERY = 4096  # read finished events' timestamps this often, so a long run holds few events
_ranges = []  # the open record_function names, innermost last
_open = []  # open profiles, innermost last


class Launch:
    """One kernel launch or transfer as recorded: what ran, on which device, its device interval (ns)."""
    __slots__ = ("kind", "file", "kernel", "variant", "op", "device", "grid", "local", "flops", "nbytes",
                 "host_ns", "copy_ns", "start_ns", "end_ns", "event")

    def __init__(self, kind, file, kernel, variant, op, device, grid, local, flops, nbytes, host_ns, copy_ns,
                 event):
        self.kind, self.file, self.kernel, self.variant, self.op = kind, file, kernel, variant, op
        self.device, self.grid, self.local, self.flops, self.nbytes = device, grid, local, flops, nbytes
        self.host_ns = host_ns  # Python since the previous launch or transfer
        self.copy_ns = copy_ns  # a transfer's own host time (a download waits for the queue)
        self.event = event
        self.start_ns = self.end_ns = None

    @property
    def name(self):
        return f"{self.file}:{self.kernel}" if self.kind == "kernel" else self.kind

    @property
    def device_ns(self):
        return self.end_ns - self.start_ns if self.start_ns is not None else 0

    def resolve(self):
        """Read the event's timestamps (it has completed) and let the event go."""
        if self.event is not None:
            try:
                self.start_ns, self.end_ns = self.event.profile.start, self.event.profile.end
            except cl.Error:  # a queue without profiling (a device made before the profile opened)
                pass
            self.event = None


_AUTOGRAD_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "autograd.py")


def _op_name():
    """'Fn' for a launch inside Fn.forward (the innermost Function.apply), 'Outer.backward/Fn' inside the
    backward of Outer (the node that the autograd engine is running); prefixed by the innermost
    record_function range."""
    frame = sys._getframe(3)
    inner = outer = None
    depth = 0
    while frame is not None and depth < 64:
        code = frame.f_code
        if code.co_filename == _AUTOGRAD_FILE:
            if inner is None and code.co_name == "apply":  # Function.apply, the only one there
                inner = frame.f_locals["cls"].__name__
            else:
                node = frame.f_locals.get("node")
                if node is not None and hasattr(node, "fn"):
                    outer = node.fn.__name__ + ".backward"
                    break
        frame = frame.f_back
        depth += 1
    name = "/".join(n for n in (outer, inner) if n) or "-"
    return f"{_ranges[-1]}/{name}" if _ranges else name


class profile:
    """Record every kernel launch and host<->device transfer while open; torch.profiler.profile's shape.

    record_ops: name the autograd Function behind each launch (a walk up the Python stack per launch)."""

    def __init__(self, record_ops=True):
        self.record_ops = record_ops
        self.events = []
        self._pending = 0  # events[_pending:] may still hold unresolved OpenCL events
        self._harvest_at = _HARVEST_EVERY
        self._devices = ()

    def __enter__(self):
        self._devices = devices()
        if not _open:
            for d in self._devices:
                d.set_profiling(True)
        _open.append(self)
        self.start_ns = self._last = time.perf_counter_ns()
        observers.append(self._on_launch)
        transfer_observers.append(self._on_transfer)
        return self

    def __exit__(self, *exc):
        observers.remove(self._on_launch)
        transfer_observers.remove(self._on_transfer)
        for d in {e.device for e in self.events}:
            d.synchronize()
        self.end_ns = time.perf_counter_ns()
        for e in self.events:
            e.resolve()
        _open.remove(self)
        if not _open:
            for d in self._devices:
                d.set_profiling(False)
        return False

    # ---- the hooks ----------------------------------------------------------------------------
    def _on_launch(self, device, key, event, grid, local, work):
        now = time.perf_counter_ns()
        file, name, defines = key
        self._record(Launch("kernel", file, name, kernels.short_defines(defines),
                            _op_name() if self.record_ops else "-", device, grid, local, work[0], work[1],
                            now - self._last, 0, event))
        self._last = now

    def _on_transfer(self, device, kind, nbytes, event, host_seconds):
        now = time.perf_counter_ns()
        took = int(host_seconds * 1e9)
        self._record(Launch(kind, "", kind, "", _op_name() if self.record_ops else "-", device, (), (), None,
                            nbytes, max(now - took - self._last, 0), took, event))
        self._last = now

    def _record(self, e):
        self.events.append(e)
        if len(self.events) >= self._harvest_at:  # resolve the completed prefix, then wait a while
            events, i = self.events, self._pending
            while i < len(events) and events[i].event is not None and \
                    events[i].event.command_execution_status == _COMPLETE:
                events[i].resolve()
                i += 1
            self._pending, self._harvest_at = i, len(events) + _HARVEST_EVERY

    # ---- results ------------------------------------------------------------------------------
    @property
    def total_device_ns(self):
        return sum(e.device_ns for e in self.events)

    def key_averages(self, group_by_op=False):
        """One row per kernel variant (and per transfer kind): calls, device and host time, rates."""
        groups = collections.OrderedDict()
        for e in self.events:
            key = (e.kind, e.name, e.variant, e.op if group_by_op else None)
            groups.setdefault(key, []).append(e)
        return KeyAverages([KernelAverage(k, v) for k, v in groups.items()], self, group_by_op)

    def export_chrome_trace(self, path):
        """Chrome-trace JSON (chrome://tracing, Perfetto): one complete ('X') event per launch and
        transfer on its device's timeline; written to a temporary file and renamed."""
        timed = [e for e in self.events if e.start_ns is not None]
        t0 = min((e.start_ns for e in timed), default=0)
        trace = []
        for e in timed:
            args = {"variant": e.variant, "op": e.op, "grid": list(e.grid), "local": list(e.local),
                    "host_us": (e.host_ns + e.copy_ns) / 1e3}
            if e.flops:
                args["flops"] = e.flops
            if e.nbytes:
                args["bytes"] = e.nbytes
            trace.append({"name": e.name, "cat": "kernel" if e.kind == "kernel" else "memcpy", "ph": "X",
                          "ts": (e.start_ns - t0) / 1e3, "dur": e.device_ns / 1e3, "pid": e.device.spec,
                          "tid": "queue", "args": args})
        _write_atomically(path, json.dumps({"traceEvents": trace, "displayTimeUnit": "ms"}))


class KernelAverage:
    """The launches of one kernel variant (or one transfer kind) summed; times in microseconds as torch's."""

    def __init__(self, key, events):
        self.kind, self.name, self.variant, self.op = key
        self.count = len(events)
        self.device_time_total = sum(e.device_ns for e in events) / 1e3
        self.host_time_total = sum(e.host_ns + e.copy_ns for e in events) / 1e3
        self.python_time_total = sum(e.host_ns for e in events) / 1e3
        self.flops = sum(e.flops for e in events) if all(e.flops for e in events) else None
        self.nbytes = sum(e.nbytes for e in events) if all(e.nbytes for e in events) else None

    @property
    def key(self):
        return self.name

    @property
    def device_time(self):
        return self.device_time_total / self.count

    @property
    def gflops(self):
        return self.flops / self.device_time_total / 1e3 if self.flops and self.device_time_total else None

    @property
    def gbps(self):
        return self.nbytes / self.device_time_total / 1e3 if self.nbytes and self.device_time_total else None


_SORT_ALIASES = {"cuda_time_total": "device_time_total", "self_cuda_time_total": "device_time_total",
                 "self_device_time_total": "device_time_total", "cpu_time_total": "host_time_total",
                 "calls": "count", "cuda_time": "device_time"}


class KeyAverages(list):
    """prof.key_averages(): a list of KernelAverage with torch's table()."""

    def __init__(self, rows, prof, group_by_op):
        super().__init__(rows)
        self.prof, self.group_by_op = prof, group_by_op

    def table(self, sort_by="device_time_total", row_limit=20, variant_width=40):
        """The rows as a text table, largest `sort_by` first (device_time_total, device_time, count,
        host_time_total; torch's cuda_* names are accepted)."""
        attr = _SORT_ALIASES.get(sort_by, sort_by)
        rows = sorted(self, key=lambda r: getattr(r, attr), reverse=True)
        total = sum(r.device_time_total for r in self) or 1.0
        head = ["kernel", "variant"] + (["op"] if self.group_by_op else []) + \
            ["calls", "device ms", "mean ms", "% device", "GFLOP/s", "GB/s", "host ms"]
        cells = []
        for r in rows[:row_limit] if row_limit and row_limit > 0 else rows:
            variant = r.variant if len(r.variant) <= variant_width else r.variant[:variant_width - 3] + "..."
            cells.append([r.name, variant or "-"] + ([r.op] if self.group_by_op else []) +
                         [str(r.count), f"{r.device_time_total / 1e3:.3f}", f"{r.device_time / 1e3:.4f}",
                          f"{100 * r.device_time_total / total:.1f}", _rate(r.gflops), _rate(r.gbps),
                          f"{r.host_time_total / 1e3:.3f}"])
        widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(head)]
        left = 3 if self.group_by_op else 2
        fmt = lambda vals: "  ".join(v.ljust(w) if i < left else v.rjust(w)
                                     for i, (v, w) in enumerate(zip(vals, widths)))
        lines = [fmt(head), "-" * (sum(widths) + 2 * (len(widths) - 1))] + [fmt(c) for c in cells]
        kern = [r for r in self if r.kind == "kernel"]
        xfer = [r for r in self if r.kind != "kernel"]
        wall = (getattr(self.prof, "end_ns", time.perf_counter_ns()) - self.prof.start_ns) / 1e6
        python = sum(r.python_time_total for r in self)
        copies = sum(r.host_time_total - r.python_time_total for r in xfer)
        lines.append(f"{sum(r.count for r in kern)} launches, {sum(r.count for r in xfer)} transfers; device "
                     f"{sum(r.device_time_total for r in kern) / 1e3:.3f} ms in kernels, "
                     f"{sum(r.device_time_total for r in xfer) / 1e3:.3f} ms in transfers; host "
                     f"{python / 1e3:.3f} ms in Python between launches, {copies / 1e3:.3f} ms in transfers "
                     f"(a download waits for the queue); wall {wall:.3f} ms")
        return "\n".join(lines)


def _rate(v):
    return "-" if v is None else (f"{v:.1f}" if v < 1000 else f"{v:.0f}")


class record_function:
    """Name a region: launches inside it are attributed to 'name/Function' (torch's record_function)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        _ranges.append(self.name)
        return self

    def __exit__(self, *exc):
        _ranges.pop()
        return False


def _write_atomically(path, text):
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".trace-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _profile_whole_run(value):
    prof = profile().__enter__()

    def report():
        prof.__exit__(None, None, None)
        print(prof.key_averages().table(row_limit=30), file=sys.stderr)
        if value.endswith(".json"):
            prof.export_chrome_trace(value)
            print(f"[minitorch_cl] chrome trace written to {value}", file=sys.stderr)

    atexit.register(report)


if os.environ.get(ENV_VAR, "") not in ("", "0"):
    _profile_whole_run(os.environ[ENV_VAR])
