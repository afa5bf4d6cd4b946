"""`minitorch-cl doctor`: what the OpenCL setup is made of, and whether each device computes right.

The ICD loader in use and the vendor files it reads, every platform and device (and devices that
share a name), fp16/fp64 and the work-group and local-memory limits, whether the kernel caches are
writable, and a short self-test per device (a GEMM, a convolution, a softmax and an attention against
NumPy). `run()` returns whether every device passed."""
import glob
import os
import sys
import time

import numpy as np
import pyopencl as cl

from .tensor import tensor as make_tensor
from .dtypes import float32
from .device import devices as all_devices, icd_file
from .ops.attention import scaled_dot_product_attention
from .ops.conv import conv2d
from .ops.matmul import matmul
from .ops.softmax import softmax

TIMED_S = 0.25  # each check is timed over repeats for at least this long
TOLERANCE = 1e-3  # max |ours - NumPy's float64| relative to max |NumPy's|, for float32 kernels


def loader_library():
    """The libOpenCL this process has mapped (pyopencl's bundled ocl-icd or the system's)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6}
    except OSError:
        return ""
    return next((p for p in sorted(paths) if os.path.basename(p).startswith("libOpenCL")), "")


def vendor_files():
    """[(source, .icd path, library it names, whether that library exists)] the loader may read."""
    env = os.environ.get("OCL_ICD_VENDORS", "")
    sources = []
    if env:
        sources.append(("OCL_ICD_VENDORS", [env] if os.path.isfile(env) else sorted(glob.glob(os.path.join(env, "*.icd")))))
    sources.append(("/etc/OpenCL/vendors" + (" (not read: OCL_ICD_VENDORS is set)" if env else ""),
                    sorted(glob.glob("/etc/OpenCL/vendors/*.icd"))))
    sources.append(("pyopencl's bundled loader", sorted(glob.glob(os.path.join(os.path.dirname(cl.__file__), ".libs", "*.icd")))))
    found = []
    for source, paths in sources:
        for path in paths:
            try:
                with open(path) as f:
                    library = f.read().strip()
            except OSError as err:
                library = f"unreadable ({err.strerror})"
            exists = os.path.isabs(library) and os.path.isfile(library) or not os.path.isabs(library)
            found.append((source, path, library, exists))
    return found


def _writable(path):
    """'writable' / 'not writable' / 'will be created' for a cache folder."""
    if os.path.isdir(path):
        return "writable" if os.access(path, os.W_OK | os.X_OK) else "NOT WRITABLE"
    parent = path
    while parent and not os.path.isdir(parent):
        parent = os.path.dirname(parent)
    return "will be created" if parent and os.access(parent, os.W_OK | os.X_OK) else "NOT WRITABLE"


def cache_dirs():
    """[(name, folder, state)] of pyopencl's compiler cache and PoCL's kernel cache."""
    home_cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    pyopencl_dir = os.path.join(home_cache, "pyopencl")
    if os.environ.get("PYOPENCL_NO_CACHE", "").lower() in ("1", "true", "yes"):
        pyopencl_state = "off (PYOPENCL_NO_CACHE)"
    else:
        pyopencl_state = _writable(pyopencl_dir)
    pocl_dir = os.environ.get("POCL_CACHE_DIR") or os.path.join(home_cache, "pocl")
    return [("pyopencl", pyopencl_dir, pyopencl_state), ("PoCL", pocl_dir, _writable(pocl_dir))]


# ---- the self-test: each check uploads its inputs and returns (run, NumPy's float64 result, flops),
# run() enqueueing the op under test and returning its output --------------------------------------------
def _up(dev, *arrays):
    return [make_tensor(a, device=dev, dtype=float32) for a in arrays]


def _gemm(dev, rng, n=256):
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    ta, tb = _up(dev, a, b)
    return (lambda: matmul(ta, tb)), a @ b, 2 * n ** 3


def _conv(dev, rng):
    N, C, H, W, OC, K = 2, 8, 17, 17, 16, 3
    x, w = rng.standard_normal((N, C, H, W)), rng.standard_normal((OC, C, K, K))
    tx, tw = _up(dev, x, w)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (K, K),
                                                       axis=(2, 3))  # (N, C, H, W, K, K)
    want = np.einsum("nchwij,ocij->nohw", windows, w)
    return (lambda: conv2d(tx, tw, padding=1)), want, 2 * N * OC * H * W * C * K * K


def _softmax(dev, rng):
    x = rng.standard_normal((64, 1000)) * 4
    e = np.exp(x - x.max(1, keepdims=True))
    (tx,) = _up(dev, x)
    return (lambda: softmax(tx, dim=1)), e / e.sum(1, keepdims=True), 5 * x.size


def _attention(dev, rng):
    B, Hd, L, D = 2, 2, 65, 32
    q, k, v = (rng.standard_normal((B, Hd, L, D)) for _ in range(3))
    t = _up(dev, q, k, v)
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(D)
    s = np.where(np.tril(np.ones((L, L), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    want = (p / p.sum(-1, keepdims=True)) @ v
    return (lambda: scaled_dot_product_attention(*t, is_causal=True)), want, 2 * B * Hd * L * L * D


SELF_TESTS = {"gemm 256x256x256": _gemm, "conv2d 2x8x17x17, 16 3x3 filters": _conv,
              "softmax 64x1000": _softmax, "causal attention 2x2x65x32": _attention}


def self_test(dev, echo):
    """Run SELF_TESTS on dev (once to build, once timed); echo a PASS/FAIL line each; True if all passed."""
    ok = True
    for name, check in SELF_TESTS.items():
        rng = np.random.default_rng(0)
        try:
            enqueue, want, flops = check(dev, rng)
            got = enqueue().numpy()  # the first run builds the kernels (it may compile)
            reps, start = 0, time.perf_counter()
            while reps < 3 or time.perf_counter() - start < TIMED_S:  # then the device alone, timed
                enqueue()
                dev.synchronize()
                reps += 1
            seconds = (time.perf_counter() - start) / reps
            err = float(np.max(np.abs(got - want)) / max(1.0, float(np.max(np.abs(want))))) \
                if got.shape == want.shape else float("inf")
            passed = bool(np.isfinite(err) and err <= TOLERANCE)
            line = f"max error {err:.1e}, {seconds * 1e3:.1f} ms, {flops / seconds / 1e9:.2f} GFLOP/s"
        except Exception as exc:  # a build error or a runtime failure is a failed check, reported
            passed, line = False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ok &= passed
        echo(f"    {'PASS' if passed else 'FAIL'}  {name:34s} {line}")
    return ok


def run(echo=print, only=None, self_tests=True):
    """Print the report; True when every self-tested device passed (or none was tested)."""
    echo(f"Python {sys.version.split()[0]} ({sys.executable}), pyopencl {cl.VERSION_TEXT}")
    echo("\nICD loader")
    echo(f"  library:  {loader_library() or 'not found in this process'}")
    echo(f"  OCL_ICD_VENDORS: {os.environ.get('OCL_ICD_VENDORS') or '(unset)'}")
    echo("\nVendor files")
    files = vendor_files()
    for source, path, library, exists in files:
        echo(f"  {path} -> {library}{'' if exists else '  (MISSING)'}   [{source}]")
    if not files:
        echo("  none")
    devs = all_devices()
    echo("\nPlatforms and devices")
    if not devs:
        echo("  no OpenCL device found")
    names = [d.name for d in devs]
    for d in devs:
        cd = d.cl_device
        same = [o.spec for o in devs if o.name == d.name and o != d]
        echo(f"  {d.spec} (cl:{d.ordinal})  {d.name} [{d.type_name}]  {d.platform_name}, {d.short_version}"
             + (f"  (same name as {', '.join(same)})" if same else ""))
        echo(f"      library {d.origin or 'unknown'}, ICD file {icd_file(d.origin) or 'none found'}")
        echo(f"      fp16 {'yes' if d.has_fp16 else 'no'}, fp64 {'yes' if d.has_fp64 else 'no'}, "
             f"local memory {cd.local_mem_size // 1024} KiB, max work-group {cd.max_work_group_size}, "
             f"max work-item sizes {tuple(cd.max_work_item_sizes)}, compute units {cd.max_compute_units}")
    if len(set(names)) < len(names):
        echo("  devices that share a name are told apart by their cl:P:D spec")
    echo("\nKernel caches")
    for name, path, state in cache_dirs():
        echo(f"  {name:9s} {path}: {state}")
    if not self_tests:
        return True
    echo("\nSelf-test (each check against NumPy in float64)")
    ok = True
    for d in devs if only is None else [only]:
        echo(f"  {d.spec} {d.name}")
        if d.build_problem is not None:  # its compiler may abort this process: report, do not run
            echo(f"    FAIL  compiler check                     {d.build_problem}")
            ok = False
            continue
        ok &= self_test(d, echo)
    echo("\n" + ("all devices passed" if ok else "a device FAILED its self-test"))
    return ok
