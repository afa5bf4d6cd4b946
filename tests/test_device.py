import importlib

import pytest
from click.testing import CliRunner

import minitorch_cl as mt

device_mod = importlib.import_module("minitorch_cl.device")
from minitorch_cl.cli import main


def test_spec_forms_pick_the_same_device(dev):
    assert mt.device(dev.spec) == dev
    assert mt.device(f"cl:{dev.ordinal}") == dev
    assert mt.device(f"{dev.platform_index}:{dev.device_index}") == dev
    assert mt.device(dev.type_name.lower()).type_name == dev.type_name
    fragment = dev.name.split()[0].lower()
    assert mt.device(f"cl:{fragment}").name == dev.name
    assert mt.device(dev) is dev


def test_unknown_spec_lists_devices(dev):
    with pytest.raises(mt.DeviceError) as err:
        mt.device("cl:nosuchvendor")
    assert "nosuchvendor" in str(err.value) and dev.spec in str(err.value) and dev.name in str(err.value)
    with pytest.raises(mt.DeviceError):
        mt.device("cl:99")
    with pytest.raises(mt.DeviceError):
        mt.device("cl:0:99")


def test_environment_variable_sets_default(dev, monkeypatch):
    monkeypatch.setenv("MINITORCH_CL_DEVICE", dev.spec)
    assert mt.device() == dev
    monkeypatch.setenv("MINITORCH_CL_DEVICE", "cl:nosuchvendor")
    with pytest.raises(mt.DeviceError):
        mt.device()


def test_no_platform_explains_how_to_install(monkeypatch):
    monkeypatch.setattr(device_mod, "_DEVICES", [])
    with pytest.raises(mt.DeviceError, match=r"pocl"):
        mt.device()


def test_devices_command_prints_table(dev):
    result = CliRunner().invoke(main, ["devices"])
    assert result.exit_code == 0, result.output
    assert dev.spec in result.output and dev.name in result.output and dev.platform_version in result.output
    assert "max WG" in result.output


def test_info_and_unknown_device_in_cli(dev):
    ok = CliRunner().invoke(main, ["info", "--device", dev.spec])
    assert ok.exit_code == 0 and dev.name in ok.output
    bad = CliRunner().invoke(main, ["info", "--device", "cl:nosuchvendor"])
    assert bad.exit_code != 0 and "nosuchvendor" in bad.output


class _FakeDevice:
    """Just what the spec matcher reads: two PoCL builds share a platform name."""

    def __init__(self, ordinal, p, d, version, name, kind):
        self.ordinal, self.platform_index, self.device_index = ordinal, p, d
        self.platform_name, self.platform_version, self.name, self.type_name = \
            "Portable Computing Language", version, name, kind
        self.spec = f"cl:{p}:{d}"


def test_same_named_platforms_are_told_apart_by_version_and_index():
    devs = [_FakeDevice(0, 0, 0, "OpenCL 3.0 PoCL 3.0-rc2", "pthread-AMD EPYC", "CPU"),
            _FakeDevice(1, 1, 0, "OpenCL 3.0 PoCL 3.1+debian", "cpu-haswell-AMD EPYC", "CPU")]
    assert device_mod._match("cl:pocl", devs) is devs[0]
    assert device_mod._match("cl:3.1", devs) is devs[1]
    assert device_mod._match("cl:1:0", devs) is devs[1]
    assert device_mod._match("cl:1", devs) is devs[1]
    assert device_mod._match("cl:haswell", devs) is devs[1]
    assert device_mod._match("gpu", devs) is None


def test_tensors_without_device_land_on_the_device_under_test(dev):
    """So MINITORCH_CL_DEVICE=all also moves modules built before .to(dev) and the library's own defaults."""
    assert mt.device() == dev and mt.zeros(1).device == dev
