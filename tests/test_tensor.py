import numpy as np
import pytest

import minitorch_cl as mt


def test_creation_and_metadata(dev):
    t = mt.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=dev)
    assert t.shape == (2, 3) and t.size() == (2, 3) and t.size(1) == 3 and t.ndim == 2 and t.numel() == 6
    assert t.dtype is mt.float32 and t.device == dev
    assert mt.tensor([1, 2], device=dev).dtype is mt.int64
    assert mt.tensor([True], device=dev).dtype is mt.bool
    assert mt.tensor(np.arange(3, dtype=np.int32), device=dev).dtype is mt.int32
    assert mt.tensor(2.5, device=dev).item() == 2.5
    assert t.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert "tensor([[1., 2., 3.]," in repr(t) and f"device='{dev}'" in repr(t)


@pytest.mark.parametrize("make,expected", [
    (lambda d: mt.zeros(2, 3, device=d), np.zeros((2, 3))),
    (lambda d: mt.ones((4,), device=d), np.ones(4)),
    (lambda d: mt.full((2, 2), 7.5, device=d), np.full((2, 2), 7.5)),
    (lambda d: mt.arange(5, device=d), np.arange(5)),
    (lambda d: mt.arange(1.0, 2.0, 0.25, device=d), np.arange(1.0, 2.0, 0.25)),
    (lambda d: mt.zeros_like(mt.ones(3, device=d)), np.zeros(3)),
    (lambda d: mt.ones_like(mt.zeros(2, 1, device=d)), np.ones((2, 1))),
    (lambda d: mt.zeros(0, 3, device=d), np.zeros((0, 3))),
])
def test_factories(dev, make, expected):
    t = make(dev)
    np.testing.assert_array_equal(t.numpy(), expected)
    assert t.shape == expected.shape


def test_empty_has_shape(dev):
    assert mt.empty(3, 4, device=dev).shape == (3, 4)


def test_manual_seed_reproduces_rand(dev):
    mt.manual_seed(7)
    a = mt.rand(5, device=dev).numpy()
    mt.manual_seed(7)
    np.testing.assert_array_equal(mt.rand(5, device=dev).numpy(), a)
    assert not np.array_equal(mt.rand(5, device=dev).numpy(), a)


def test_item_needs_one_element(dev):
    with pytest.raises(ValueError, match=r"\(2,\)"):
        mt.zeros(2, device=dev).item()


def test_numpy_of_grad_tensor_needs_detach(dev):
    t = mt.ones(2, device=dev, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        t.numpy()
    assert t.detach().numpy().tolist() == [1.0, 1.0]


def test_to_device_and_dtype(dev):
    t = mt.tensor([1.5, 2.5], device=dev)
    assert t.to(dev) is t
    assert t.to(mt.int32).dtype is mt.int32
    assert t.to("int64").tolist() == [1, 2]
    assert t.to(dev.spec, dtype=mt.float32).tolist() == [1.5, 2.5]


def test_half_on_every_device(dev):
    h = mt.tensor([1.0, 2.0], device=dev).half()
    assert h.dtype is mt.float16 and (h * 2).float().tolist() == [2.0, 4.0]


def test_tensors_on_two_devices_are_refused(dev):
    other = mt.Device(dev.cl_device, dev.platform_index, dev.device_index, ordinal=10_000)  # own context
    a = mt.ones(3, device=dev)
    b = mt.ones(3, device=other)
    with pytest.raises(RuntimeError, match=r"cl:.*cl:"):
        a + b
    with pytest.raises(RuntimeError, match="different devices"):
        mt.ones(2, 2, device=dev) @ mt.ones(2, 2, device=other)
    np.testing.assert_array_equal((a + b.to(dev)).numpy(), [2, 2, 2])


def test_bad_data_is_a_clear_error(dev):
    with pytest.raises((TypeError, ValueError)):
        mt.tensor([[1, 2], [3]], device=dev)
    with pytest.raises(ValueError, match="non-negative"):
        mt.zeros(-1, device=dev)
