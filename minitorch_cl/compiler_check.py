"""Whether a device's OpenCL C compiler works, judged in a child process, because some compilers abort
the whole process instead of failing a build (pip's PoCL 3.0 on an AVX-512 CPU that its LLVM 14 does not
know: "LLVM ERROR: Do not know how to scalarize this operator's operand!" at the first launch of a
float16 kernel). The child builds clkernels/probe.cl, runs it and checks its result against NumPy.
Verdicts are cached per device key and probe.cl's hash in the user's cache folder, so a machine pays
the child's second or so once per device.

The child runs child(PLATFORM, DEVICE): it prints `judging`, then `ok` or the problem, and exits 0; a
crash shows as a signal or a nonzero status with no verdict printed. A child that never printed
`judging` (it could not import this package) gives no verdict, and none is kept."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pyopencl as cl

from . import kernels, user_cache

FILENAME = "compiler_checks.json"
TIMEOUT_S = 30  # a cold build of the probe takes about a second; a broken compiler may spin for minutes
N = 64  # floats the probe transforms: four float16 work items
STARTED = "judging"  # the child's first line: its imports worked and it is at the device
CHILD = "import sys; from minitorch_cl.compiler_check import child; child(int(sys.argv[1]), int(sys.argv[2]))"


def problem(dev):
    """None when dev's compiler builds and runs the probe correctly, else one line saying what went wrong."""
    key = _key(dev)
    records = _read()
    if key not in records:
        judged, found = _run_child(dev.platform_index, dev.device_index)
        if not judged:  # the child never reached the device: no verdict, and none kept
            return None
        records = {**_read(), key: found}  # keeping what other processes wrote meanwhile
        try:
            user_cache.write_json(FILENAME, records)
        except OSError:
            pass  # a read-only home: judge again next time
    return records[key]


def known_problem(dev):
    """What an earlier check on this machine found wrong with dev's compiler; None if it passed or was
    never judged (no child is started)."""
    return _read().get(_key(dev))


def _key(dev):
    return f"{dev.tuning_key} | probe {_probe_hash()}"


def _probe_hash():
    return hashlib.sha256((kernels.kernel_dir() / "probe.cl").read_bytes()).hexdigest()[:16]


def _read():
    try:
        with open(user_cache.cache_path(FILENAME)) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # missing or corrupt: the checks are cheap to redo


def _run_child(platform_index, device_index):
    cmd = [sys.executable, "-c", CHILD, str(platform_index), str(device_index)]
    # The child names its device, so nothing in it asks for the default (and so for this check);
    # and it profiles nothing.
    # It imports this package from where this process found it.
    env = {k: v for k, v in os.environ.items() if k != "MINITORCH_CL_PROFILE"}
    env["MINITORCH_CL_DEVICE"] = f"cl:{platform_index}:{device_index}"
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired as err:
        said = err.stdout or b""  # bytes, whatever text= said
        said = said.decode(errors="replace") if isinstance(said, bytes) else said
        return STARTED in said, f"building and running a trivial kernel took over {TIMEOUT_S} s"
    except OSError:
        return False, None  # no child at all (no interpreter to start): nothing judged
    return STARTED in done.stdout, verdict(done.returncode, done.stdout, done.stderr)


def verdict(returncode, stdout, stderr):
    """None for a child that printed ok and exited cleanly, else the problem: its printed verdict, or
    how it died."""
    said = [line for line in stdout.strip().splitlines() if line != STARTED]
    if said and said[-1] != "ok":
        return said[-1]  # what the child found, whether or not it then died on the way out
    if said and returncode == 0:
        return None
    how = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    last = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in last if "error" in line.lower() and "warning" not in line.lower()]
    return f"its compiler crashed the process ({how}): {(errors or last or ['no output'])[-1]}"


def child(platform_index, device_index):
    """The child process's work: say it started (its imports worked), then print its verdict on the
    device, `ok` or what went wrong."""
    print(STARTED, flush=True)
    print(_judge(platform_index, device_index), flush=True)


def _judge(platform_index, device_index):
    cl_device = cl.get_platforms()[platform_index].get_devices()[device_index]
    ctx = cl.Context([cl_device])
    queue = cl.CommandQueue(ctx)
    try:
        program = kernels.build(ctx, cl_device, "probe.cl", {})
    except (kernels.KernelBuildError, cl.Error) as err:
        return kernels.first_error(getattr(err, "log", str(err)))
    x = np.linspace(-2.0, 2.0, N, dtype=np.float32)
    buf = cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=x)
    try:
        program.probe(queue, (N // 16,), None, buf, np.int32(0))
        y = np.empty_like(x)
        cl.enqueue_copy(queue, y, buf)
    except AttributeError:  # pyopencl's word for a program without the kernel
        return "its build succeeded but produced no kernel"
    except cl.Error as err:
        return f"the probe kernel failed to run: {err}"
    x64 = x.astype(np.float64)
    error = float(np.max(np.abs(y - (x64 * x64 + np.exp(-x64)))))
    return "ok" if error < 1e-4 else f"the probe kernel computed a wrong result (max error {error:.3g})"

