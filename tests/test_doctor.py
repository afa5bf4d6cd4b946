"""`minitorch-cl doctor`: its sections on this machine, a PASS line per check and device, and a
non-zero exit when a device computes wrong."""
import numpy as np
import pytest
from click.testing import CliRunner

import minitorch_cl as mt
from minitorch_cl import cli, doctor


@pytest.fixture(scope="module")
def report(dev):
    result = CliRunner().invoke(cli.main, ["doctor", "--device", dev.spec])
    return result


def test_doctor_reports_every_section(report, dev):
    assert report.exit_code == 0, report.output
    out = report.output
    for section in ("ICD loader", "Vendor files", "Platforms and devices", "Kernel caches", "Self-test"):
        assert f"\n{section}" in out, section
    assert "libOpenCL" in out  # the loader this process mapped
    for d in mt.devices():
        assert f"{d.spec} (cl:{d.ordinal})  {d.name}" in out
    assert "max work-group" in out and "fp64" in out and "pyopencl" in out and "PoCL" in out
    passes = [line for line in out.splitlines() if line.strip().startswith("PASS")]
    assert len(passes) == len(doctor.SELF_TESTS), out
    assert "GFLOP/s" in passes[0] and "all devices passed" in out


def test_vendor_files_name_their_library(dev):
    files = doctor.vendor_files()
    if dev.origin and doctor.icd_file(dev.origin):
        assert any(path == doctor.icd_file(dev.origin) for _, path, _, _ in files)


def test_a_wrong_result_fails_the_device(dev, monkeypatch):
    real = doctor.SELF_TESTS["softmax 64x1000"]

    def wrong(d, rng):
        enqueue, want, flops = real(d, rng)
        return enqueue, want + 0.01, flops  # as if the device's softmax were off by 0.01

    monkeypatch.setitem(doctor.SELF_TESTS, "softmax 64x1000", wrong)
    result = CliRunner().invoke(cli.main, ["doctor", "--device", dev.spec])
    assert result.exit_code == 1, result.output
    assert any(line.strip().startswith("FAIL  softmax") for line in result.output.splitlines())
    assert "FAILED" in result.output


def test_a_failing_kernel_is_a_failed_check(dev, monkeypatch):
    def broken(d, rng):
        raise mt.KernelBuildError("matmul.cl", ["-cl-std=CL1.2"], "error: the compiler gave up")

    monkeypatch.setitem(doctor.SELF_TESTS, "gemm 256x256x256", broken)
    lines = []
    assert doctor.self_test(dev, lines.append) is False
    assert lines[0].strip().startswith("FAIL  gemm") and "KernelBuildError" in lines[0]
    assert all(line.strip().startswith("PASS") for line in lines[1:])


def test_cache_folders(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    monkeypatch.setenv("POCL_CACHE_DIR", str(locked))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh"))
    states = {name: (path, state) for name, path, state in doctor.cache_dirs()}
    assert states["pyopencl"] == (str(tmp_path / "fresh" / "pyopencl"), "will be created")
    import os
    expected = "writable" if os.geteuid() == 0 else "NOT WRITABLE"  # root writes anywhere
    assert states["PoCL"] == (str(locked), expected)
