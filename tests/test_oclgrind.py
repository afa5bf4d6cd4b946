"""Every kernel family at tiny sizes on Oclgrind, with out-of-bounds, data-race and API checks on,
under both the CPU and the GPU kernel variants (the simulator checks the GPU variants' barriers and
local memory, which no CPU runtime does). Each family runs in its own process; any report Oclgrind
writes to stderr fails it. Skipped where Oclgrind is not installed (`apt-get install oclgrind`),
except under CI, which installs it.

Oclgrind with its race checks simulates on one thread, so the family processes run as many at a time
as there are cores, started together when the first test here asks for them; each test then waits
for its own."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import kernel_workload
import oclgrind

pytestmark = pytest.mark.oclgrind
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def oclgrind_env(tmp_path_factory):
    library = oclgrind.icd_library()
    if library is None:
        if os.environ.get("CI"):
            pytest.fail("Oclgrind is not installed: .ci/run installs Debian's oclgrind package")
        pytest.skip("Oclgrind is not installed (apt-get install oclgrind)")
    icd = tmp_path_factory.mktemp("oclgrind") / "oclgrind.icd"
    icd.write_text(library + "\n")
    env = oclgrind.environment(icd)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    return env


def _run(env, *args):
    return subprocess.run([sys.executable, str(HERE / "kernel_workload.py"), *args], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def runs(request, oclgrind_env):
    """{name: future of its finished process} for the families (and the canary) this session's
    selected tests ask for, one process per core at a time."""
    here = [item for item in request.session.items if item.module is request.module]
    names = [getattr(item, "callspec", None) and item.callspec.params.get("family") for item in here]
    names = [n for n in names if n] + (["canary_out_of_bounds"] if any(
        item.originalname == test_an_out_of_bounds_write_is_reported.__name__ for item in here) else [])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=cores) as pool:
        futures = {name: pool.submit(_run, oclgrind_env, name) for name in names}
        yield futures
        for f in futures.values():
            f.cancel()  # a test that failed early leaves no queued run behind


@pytest.mark.parametrize("family", list(kernel_workload.FAMILIES))
def test_family_is_clean_on_oclgrind(runs, family):
    done = runs[family].result()
    assert done.returncode == 0, done.stderr[-4000:]
    assert "on cl:" in done.stderr and "(Oclgrind Simulator)" in done.stderr, done.stderr[-2000:]
    assert done.stdout.strip().endswith("workload ok")
    found = oclgrind.reports(done.stderr)
    assert not found, f"Oclgrind reported, in the {family} family:\n{found[:6000]}"


def test_an_out_of_bounds_write_is_reported(runs):
    """The check itself: a kernel launched past its buffer's end must show up as a report."""
    done = runs["canary_out_of_bounds"].result()
    assert "Invalid write" in oclgrind.reports(done.stderr), done.stderr[-3000:]


def test_reports_filter():
    noise = ("Oclgrind - OpenCL runtime error detected\n\tFunction: clGetDeviceInfo\n\tError:    CL_INVALID_VALUE\n"
             "\tFor argument 'param_name'\n\n== gemm CPU on cl:0:0 (Oclgrind Simulator)\n")
    assert oclgrind.reports(noise) == ""
    race = "\nRead-write data race at global memory address 0x1000000000040\n\tKernel: gemm_tiled\n"
    assert oclgrind.reports(noise + race + noise).startswith("Read-write data race")
