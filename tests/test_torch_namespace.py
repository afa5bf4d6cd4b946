"""The torch-shaped device names: torch.device("cuda"/"cpu"), torch.cuda, x.cuda() / x.cpu()."""
import pytest

import minitorch_cl as mt


def test_cpu_device_prints_and_compares_like_torch():
    cpus = [d for d in mt.devices() if d.type_name == "CPU"]
    if not cpus:
        pytest.skip("no OpenCL CPU device")
    d = mt.device("cpu")
    assert d.type == "cpu" and str(d) == "cpu" and repr(d) == "device(type='cpu')"
    assert mt.device(str(d)) == d and mt.device("cpu:0") == d
    assert mt.ones(2, device="cpu").cpu().device == d


def test_every_device_round_trips_through_its_name():
    for d in mt.devices():
        assert mt.device(str(d)) == d
        assert mt.device(d.spec) == d


def test_cuda_is_the_gpu_alias():
    gpus = [d for d in mt.devices() if d.type_name == "GPU"]
    assert mt.cuda.is_available() == bool(gpus) and mt.cuda.device_count() == len(gpus)
    if gpus:
        assert mt.device("cuda") == gpus[0] or mt.device("cuda").type == "cuda"
        assert mt.ones(1).cuda().device.type == "cuda"
        assert mt.device("cuda", 0) == mt.device("cuda:0")
    else:
        with pytest.raises(mt.DeviceError, match="no OpenCL GPU"):
            mt.device("cuda")
        with pytest.raises(mt.DeviceError, match="no OpenCL GPU"):
            mt.ones(1).cuda()


def test_more_devices_than_there_are_is_a_clear_error():
    n = sum(d.type_name == "CPU" for d in mt.devices())
    with pytest.raises(mt.DeviceError, match=f"cpu:{n}"):
        mt.device(f"cpu:{n}")
