"""OpenCL C 1.2, checked: every program is built with -cl-std=CL1.2, and every (file, -D variant)
the code builds compiles on each PoCL build present (PyPI's and Debian's pocl-opencl-icd).

The variants are not listed by hand: they are recorded from Device.program while
tests/kernel_workload.py runs every kernel family under each device profile the code chooses
between (CPU; GPU; a GPU with a 64-item work-group limit, which takes the 32x32 GEMM tiles and
64-wide norms), plus gemm_tiled under the CPU profile (what test_gemm_kernel runs). Then each
variant is built on every PoCL device (the recording builds but never enqueues a kernel: the GPU
variants are Oclgrind's to run, tests/test_oclgrind.py); pyopencl's cache makes later runs fast."""
import contextlib
import gc
import re
from unittest import mock

import numpy as np
import pyopencl as cl
import pytest

import minitorch_cl as mt
from minitorch_cl import gemm, kernels, launch

import kernel_workload

SETTINGS = [("CPU", {}), ("GPU", {}), ("GPU", {"max_work_group_size": 64})]


@contextlib.contextmanager
def build_options():
    """Every cl.Program.build's options while in the block."""
    seen, real_build = [], cl.Program.build

    def build(self, *args, **kwargs):
        seen.append(list(kwargs.get("options") or (args[0] if args else [])))
        return real_build(self, *args, **kwargs)

    with mock.patch.object(cl.Program, "build", build):
        yield seen


@pytest.fixture(scope="module")
def recorded():
    """({(file, defines)} launched by the workload on the default device, the options of its builds)."""
    dev = mt.device()
    variants = set()

    def observe(device, key, event, grid, local, work):
        variants.add((key[0], key[2]))

    def run(family):
        try:
            family(dev, np.random.default_rng(0))
        except mt.KernelBuildError:
            raise
        except Exception:  # no kernel ran: values (a nonzero count, a check) are garbage from here on
            pass

    launch.observers.append(observe)
    try:  # every launch is recorded and its kernel built, but not enqueued: a GPU variant on a CPU runtime
        with build_options() as options, mock.patch.object(launch.cl, "enqueue_nd_range_kernel", lambda *a, **k: None), \
                mock.patch.object(kernel_workload, "_close", lambda *a, **k: None):
            for type_name, limits in SETTINGS:
                with kernel_workload.forced_profile(dev, type_name, **limits):
                    for family in kernel_workload.FAMILIES.values():
                        run(family)
            with kernel_workload.forced_profile(dev, "CPU"), mock.patch.object(gemm, "PACKED_MIN_WORK", 1 << 62):
                run(kernel_workload.gemm_family)
            dev.synchronize()
    finally:
        launch.observers.remove(observe)
        # Sizes read back from buffers that no kernel wrote are garbage, and the pool would keep the
        # (untouched, virtual) blocks allocated for them: gigabytes that make every later fork()
        # (DataLoader workers) fail with ENOMEM. Hand them back.
        gc.collect()
        mt.cuda.empty_cache(dev)
    variants.add(("probe.cl", ()))  # Device.build_problem's, built outside any launch
    return variants, options


def test_every_build_is_opencl_c_1_2(recorded):
    _, options = recorded
    with build_options() as more:
        kernels.build(mt.device().context, mt.device().cl_device, "reduce.cl", {})
    for opts in options + more:
        assert "-cl-std=CL1.2" in opts, opts


def test_only_kernels_py_creates_programs():
    root = kernels.kernel_dir().parent / "minitorch_cl"
    if not root.is_dir():
        root = kernels.kernel_dir().parent
    for path in root.rglob("*.py"):
        if path.name != "kernels.py":
            assert not re.search(r"\bProgram\(", path.read_text()), f"{path} builds a program itself"


def test_the_recorded_variants_cover_every_file_and_both_paths(recorded):
    variants, _ = recorded
    files = {f for f, _ in variants}
    assert files == {p.name for p in kernels.kernel_dir().glob("*.cl")}, files
    matmul = [dict(d) for f, d in variants if f == "matmul.cl"]
    assert {m["TM"] for m in matmul} == {32, 64} and any("MR" in m for m in matmul)
    attention = [dict(d) for f, d in variants if f == "attention.cl"]
    assert {(a["AW"], a["USE_LOCAL"]) for a in attention} == {(8, 0), (16, 0), (8, 1)}  # both CPU widths
    assert len(variants) > 60


def _pocl_devices():
    return [d for d in mt.devices() if "portable computing language" in d.platform_name.lower()]


@pytest.mark.parametrize("which", ["pip", "debian"])
def test_every_variant_builds_on_each_pocl(recorded, which):
    variants, _ = recorded
    found = [d for d in _pocl_devices() if d.bundled == (which == "pip")]
    if not found:
        pytest.skip(f"no {which} PoCL here" + (" (apt-get install pocl-opencl-icd)" if which == "debian" else ""))
    dev = found[0]
    if dev.build_problem is not None:  # its compiler builds nothing here, so no variant can be judged
        pytest.skip(f"{which} PoCL ({dev.short_version}) builds no kernel on this machine: {dev.build_problem}")
    failures = []
    with build_options() as options:
        for filename, defines in sorted(variants):
            try:  # a fresh build, not the device's program cache (pyopencl's on-disk cache still helps)
                kernels.build(dev.context, dev.cl_device, filename, dict(defines))
            except mt.KernelBuildError as err:
                failures.append(f"{filename} {kernels.short_defines(defines)}: {str(err)[-800:]}")
    assert not failures, "\n\n".join(failures)
    assert len(options) == len(variants) and all("-cl-std=CL1.2" in o for o in options)
