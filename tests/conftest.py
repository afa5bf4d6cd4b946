import os
import sys

import numpy as np
import pytest

import minitorch_cl as mt

import oclgrind  # tests/oclgrind.py


@pytest.fixture(scope="session")
def dev():
    """The device under test: MINITORCH_CL_DEVICE, else the default (mt.device()'s rule)."""
    return mt.device(os.environ.get("MINITORCH_CL_DEVICE"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


_CAPTURING = {"capsys", "capfd", "capsysbinary", "capfdbinary"}


@pytest.fixture(autouse=True)
def _oclgrind_reports_fail(request):
    """On Oclgrind (MINITORCH_CL_DEVICE=oclgrind), a test during which it reported an invalid access,
    a data race or an API error fails; its stderr is captured at the file-descriptor level."""
    if "oclgrind" not in os.environ.get("MINITORCH_CL_DEVICE", "").lower() or _CAPTURING & set(request.fixturenames):
        yield
        return
    capfd = request.getfixturevalue("capfd")
    yield
    mt.device().queue.finish()
    out, err = capfd.readouterr()
    sys.stdout.write(out)
    sys.stderr.write(err)
    found = oclgrind.reports(err)
    if found:
        pytest.fail(f"Oclgrind reported:\n{found[:6000]}")
