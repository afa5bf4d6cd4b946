"""Loads OpenCL C from clkernels/*.cl and builds it with -D options; the only place that compiles."""
import contextlib
import os
import sys
import threading
import time
from pathlib import Path

import pyopencl as cl

from .shared_constants import AS_DEFINES

DEBUG = os.environ.get("MINITORCH_CL_DEBUG", "") not in ("", "0")
SLOW_BUILD_S = 1.0  # a build still running after this long is a compile, not a compiler-cache hit


class KernelBuildError(RuntimeError):
    """A .cl file that failed to build: carries the file, the options and the compiler's log."""

    def __init__(self, path, options, log):
        self.path, self.options, self.log = path, options, log
        super().__init__(f"OpenCL build of {path} failed\noptions: {' '.join(options)}\n"
                         f"compiler log:\n{log}{_hint(log)}")


def _hint(log):
    """What to do about a compiler that cannot build anything on this machine."""
    if "unknown target CPU" not in log:
        return ""
    return ("\nhint: this OpenCL runtime's LLVM does not know this CPU (it is newer than the LLVM the "
            "runtime ships), so it builds no kernel at all. Use another runtime, e.g. Debian's "
            "`apt-get install pocl-opencl-icd`, or a newer pocl-binary-distribution, and select it with "
            "MINITORCH_CL_DEVICE (`minitorch-cl devices` lists them).")


def first_error(log):
    """The compiler log's first line that says 'error', else its first non-empty line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() and "failed" not in line.lower()]
    return (errors or lines or ["no log"])[0]


def kernel_dir():
    """clkernels/ beside the package (source checkout, editable install) or inside it (wheel)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "clkernels", here.parent / "clkernels"):
        if (candidate / "common.h").is_file():
            return candidate
    raise FileNotFoundError(f"clkernels/ not found next to {here}; reinstall minitorch_cl")


def define_options(defines):
    return [f"-D{k}={v}" if v is not None else f"-D{k}" for k, v in sorted(defines.items())]


def build(context, cl_device, filename, defines, directory=None):
    """Build clkernels/<filename> with -D defines for one device."""
    directory = Path(directory) if directory else kernel_dir()
    path = directory / filename
    source = path.read_text()
    options = define_options({**AS_DEFINES, **defines}) + ["-I", str(directory), "-cl-std=CL1.2", "-cl-kernel-arg-info"]
    start = time.perf_counter()
    try:
        program = cl.Program(context, source).build(options=options, devices=[cl_device])
    except cl.RuntimeError as err:  # pyopencl's message carries the full build log
        raise KernelBuildError(path, options, str(err)) from None
    if DEBUG:
        print(f"[minitorch_cl] built {filename} {' '.join(define_options(defines))} "
              f"in {1e3 * (time.perf_counter() - start):.0f} ms", file=sys.stderr)
    return program


@contextlib.contextmanager
def announce_if_slow(callback, after=None):
    """Call callback() (from a timer thread) if the body is still running after `after` seconds."""
    timer = threading.Timer(SLOW_BUILD_S if after is None else after, callback)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def short_defines(defines):
    """A launch variant in short: 'OP=OP_ADD T=float' from {"OP": "OP_ADD", "T": "float"} or its items."""
    items = defines.items() if isinstance(defines, dict) else defines
    return " ".join(f"{k}={v}" if v is not None else k for k, v in sorted(items))
