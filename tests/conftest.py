import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import minitorch_cl as mt
import oclgrind  # tests/oclgrind.py

ENV = "MINITORCH_CL_DEVICE"
# MINITORCH_CL_DEVICE=all runs every test that takes `dev` once per OpenCL device present
ALL = [d.spec for d in mt.devices()] if os.environ.get(ENV, "").strip().lower() == "all" else None
if ALL:
    os.environ[ENV] = ALL[0]  # the default for tests that take no device; `dev` switches it per device


def pytest_generate_tests(metafunc):
    if ALL and "dev" in metafunc.fixturenames:
        metafunc.parametrize("dev", ALL, ids=ALL, indirect=True, scope="session")


@pytest.fixture(scope="session")
def dev(request):
    """The device under test: MINITORCH_CL_DEVICE, else the default (mt.device()'s rule);
    with MINITORCH_CL_DEVICE=all, each device in turn, and tensors made without device= land on it too."""
    spec = getattr(request, "param", None)
    if spec is None:
        yield mt.device(os.environ.get(ENV))
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV, spec)
        yield mt.device(spec)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def example():
    """example("lstm_charlm"): examples/lstm_charlm.py imported once per session."""
    loaded = {}

    def load(name):
        if name not in loaded:
            spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent.parent / "examples" /
                                                          f"{name}.py")
            loaded[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(loaded[name])
        return loaded[name]

    return load
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
