import os

import numpy as np
import pytest

import minitorch_cl as mt


@pytest.fixture(scope="session")
def dev():
    """The device under test: MINITORCH_CL_DEVICE, else the default (mt.device()'s rule)."""
    return mt.device(os.environ.get("MINITORCH_CL_DEVICE"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
