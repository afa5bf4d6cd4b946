import pytest

import minitorch_cl as mt
from minitorch_cl import kernels


def test_every_kernel_file_builds(dev):
    for path in sorted(kernels.kernel_dir().glob("*.cl")):
        dev.program(path.name)  # each file compiles alone with its #ifndef defaults


def test_syntax_error_carries_file_options_and_log(dev, tmp_path):
    (tmp_path / "common.h").write_text("")
    (tmp_path / "broken.cl").write_text("__kernel void f(__global float *x) { x[0] = ; }\n")
    with pytest.raises(mt.KernelBuildError) as err:
        kernels.build(dev.context, dev.cl_device, "broken.cl", {"FOO": 3}, directory=tmp_path)
    text = str(err.value)
    assert "broken.cl" in text and "-DFOO=3" in text and "expected expression" in text.lower()


def test_programs_are_cached_per_defines(dev):
    a = dev.program("elementwise.cl", {"OP": "OP_EXP"})
    assert dev.program("elementwise.cl", {"OP": "OP_EXP"}) is a
    assert dev.program("elementwise.cl", {"OP": "OP_LOG"}) is not a
