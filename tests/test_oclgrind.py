"""Every kernel family at tiny sizes on Oclgrind, with out-of-bounds, data-race and API checks on,
under both the CPU and the GPU kernel variants (the simulator checks the GPU variants' barriers and
local memory, which no CPU runtime does). Each family runs in its own process; any report Oclgrind
writes to stderr fails it. Skipped where Oclgrind is not installed (`apt-get install oclgrind`),
except under CI, which installs it."""
import os
import subprocess
import sys
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


@pytest.mark.parametrize("family", list(kernel_workload.FAMILIES))
def test_family_is_clean_on_oclgrind(oclgrind_env, family):
    done = _run(oclgrind_env, family)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "on cl:" in done.stderr and "(Oclgrind Simulator)" in done.stderr, done.stderr[-2000:]
    assert done.stdout.strip().endswith("workload ok")
    found = oclgrind.reports(done.stderr)
    assert not found, f"Oclgrind reported, in the {family} family:\n{found[:6000]}"


def test_an_out_of_bounds_write_is_reported(oclgrind_env):
    """The check itself: a kernel launched past its buffer's end must show up as a report."""
    done = _run(oclgrind_env, "canary_out_of_bounds")
    assert "Invalid write" in oclgrind.reports(done.stderr), done.stderr[-3000:]


def test_reports_filter():
    noise = ("Oclgrind - OpenCL runtime error detected\n\tFunction: clGetDeviceInfo\n\tError:    CL_INVALID_VALUE\n"
             "\tFor argument 'param_name'\n\n== gemm CPU on cl:0:0 (Oclgrind Simulator)\n")
    assert oclgrind.reports(noise) == ""
    race = "\nRead-write data race at global memory address 0x1000000000040\n\tKernel: gemm_tiled\n"
    assert oclgrind.reports(noise + race + noise).startswith("Read-write data race")
