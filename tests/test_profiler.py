"""The kernel profiler: what it records, its table and trace, and that a normal run pays nothing."""
import collections
import json
import os
import subprocess
import sys

import numpy as np
import pyopencl as cl
import pytest

import minitorch_cl as mt
from minitorch_cl import launch, nn

PROFILING = cl.command_queue_properties.PROFILING_ENABLE


@pytest.fixture
def launches():
    """Every kernel launch as (file:kernel, variant), counted by an observer of its own."""
    seen = []

    def observe(device, key, event, grid, local, work):
        seen.append(key)

    launch.observers.append(observe)
    yield seen
    launch.observers.remove(observe)


def _step(dev):
    mt.manual_seed(0)
    model = nn.Sequential(nn.Linear(33, 17), nn.ReLU(), nn.Linear(17, 5)).to(dev)
    x = mt.tensor(np.random.default_rng(0).standard_normal((9, 33)).astype(np.float32), device=dev)

    def step():
        model.zero_grad()
        model(x).sum().backward()
    step()  # builds every program outside the profile
    return step


def test_profile_lists_every_launch_with_its_calls_and_times(dev, launches):
    step = _step(dev)
    launches.clear()
    with mt.profiler.profile() as prof:
        step()
    want = collections.Counter((f"{f}:{k}", d) for f, k, d in launches)
    rows = prof.key_averages()
    got = {(r.name, r.variant): r.count for r in rows if r.kind == "kernel"}
    assert got == {(n, mt.kernels.short_defines(d)): c for (n, d), c in want.items()}
    assert "matmul.cl:gemm_packed" in {n for n, _ in got} or "matmul.cl:gemm_tiled" in {n for n, _ in got}
    kernels = [e for e in prof.events if e.kind == "kernel"]
    assert len(kernels) == len(launches)
    assert all(e.start_ns is not None and e.device_ns >= 0 and e.host_ns >= 0 for e in kernels)
    total = sum(r.device_time_total for r in rows) * 1e3  # ns
    assert total == pytest.approx(prof.total_device_ns, rel=1e-9)
    # an in-order queue: the kernels' intervals do not overlap, so they fit in the span they cover
    span = max(e.end_ns for e in prof.events) - min(e.start_ns for e in prof.events)
    assert 0 < total <= span * 1.0001
    gemm = [r for r in rows if r.name.startswith("matmul.cl:gemm_packed") or r.name == "matmul.cl:gemm_tiled"]
    assert all(r.gflops and r.gflops > 0 for r in gemm)


def test_table_names_kernels_and_ops(dev):
    step = _step(dev)
    with mt.profiler.profile() as prof:
        with mt.profiler.record_function("train"):
            step()
    table = prof.key_averages().table(sort_by="device_time_total", row_limit=5)
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["kernel", "variant", "calls", "device"]
    assert len(lines) == 2 + 5 + 1 and "launches" in lines[-1]
    by_op = prof.key_averages(group_by_op=True)
    ops = {r.op for r in by_op}
    assert all(op.startswith("train/") for op in ops if op != "-")
    assert any(op.endswith(".backward/" + op.split("/")[-1]) or ".backward" in op for op in ops)
    device_ms = [float(line.split()[-6]) for line in lines[2:-1]]
    assert device_ms == sorted(device_ms, reverse=True)


def test_chrome_trace_has_one_event_per_launch(dev, launches, tmp_path):
    step = _step(dev)
    launches.clear()
    with mt.profiler.profile() as prof:
        step()
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(path)
    trace = json.loads(path.read_text())
    kernels = [e for e in trace["traceEvents"] if e["cat"] == "kernel"]
    assert len(kernels) == len(launches)
    for e in kernels:
        assert e["ph"] == "X" and e["ts"] >= 0 and e["dur"] >= 0 and e["pid"] == dev.spec
        assert {"name", "tid", "args"} <= set(e)
    assert os.listdir(tmp_path) == ["trace.json"]  # no temporary file left behind


def test_transfers_are_recorded(dev):
    host = np.arange(1000, dtype=np.float32)
    with mt.profiler.profile() as prof:
        t = mt.tensor(host, device=dev)
        back = t.numpy()
    np.testing.assert_array_equal(back, host)
    rows = {r.name: r for r in prof.key_averages() if r.kind != "kernel"}
    assert rows["upload"].nbytes == 4000 and rows["download"].nbytes == 4000
    assert rows["download"].host_time_total > 0


def test_profiling_off_changes_nothing(dev, launches):
    step = _step(dev)
    launches.clear()
    step()
    plain = list(launches)
    launches.clear()
    with mt.profiler.profile():
        assert dev.queue.properties & PROFILING
        step()
    assert launches == plain  # the profiler launches nothing of its own
    assert not dev.queue.properties & PROFILING  # the plain queue is back
    assert len(launch.observers) == 1  # only this test's counter is left


def test_environment_variable_profiles_a_whole_run(dev, tmp_path):
    trace = tmp_path / "run.json"
    code = ("import minitorch_cl as mt\n"
            f"x = mt.ones(100, device={dev.spec!r})\n"
            "print((x * 2).sum().item())\n")
    env = dict(os.environ, MINITORCH_CL_PROFILE=str(trace))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "200.0" in out.stdout
    assert "elementwise.cl:map1" in out.stderr and "reduce.cl:reduce" in out.stderr and "launches" in out.stderr
    names = {e["name"] for e in json.loads(trace.read_text())["traceEvents"]}
    assert "elementwise.cl:map1_flat" in names  # x * 2 on a contiguous x: the loop-free map


def test_bench_profile_table_profiles_the_modules_step(dev):
    from minitorch_cl.bench import PROFILE_STEPS, profile_table

    def profile_step(d):
        """two small products"""
        a = mt.ones(40, 30, device=d)
        return lambda: (a @ a.T).sum()

    text = profile_table(dev, profile_step)
    assert f"{PROFILE_STEPS} x two small products" in text
    assert "matmul.cl:gemm" in text and "reduce.cl:" in text


def test_a_long_profile_reads_finished_events_as_it_goes(dev, monkeypatch):
    monkeypatch.setattr(mt.profiler, "_HARVEST_EVERY", 4)
    x = mt.ones(64, device=dev)
    with mt.profiler.profile() as prof:
        for _ in range(3):
            x = x + 1.0
        dev.synchronize()
        for _ in range(3):
            x = x + 1.0
        assert prof.events[0].event is None and prof.events[0].start_ns is not None  # read, released
    kernels = [e for e in prof.events if e.kind == "kernel"]  # (synchronize may also read the error buffer)
    assert len(kernels) == 6 and all(e.event is None and e.end_ns >= e.start_ns for e in prof.events)
    np.testing.assert_array_equal(x.numpy(), np.full(64, 7.0, np.float32))
