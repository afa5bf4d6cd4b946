"""Tensor dtypes: PyTorch's promotion lattice (tensors, 0-d tensors, Python numbers), conversions,
float64 where the device has cl_khr_fp64, and the dtypes NumPy arrays keep."""
import numpy as np
import pytest

import minitorch_cl as mt
from helpers import check

torch = pytest.importorskip("torch")

PAIRS = [(mt.bool, torch.bool), (mt.uint8, torch.uint8), (mt.int8, torch.int8), (mt.int16, torch.int16),
         (mt.int32, torch.int32), (mt.int64, torch.int64), (mt.float16, torch.float16),
         (mt.float32, torch.float32), (mt.float64, torch.float64)]
TORCH_OF = {m.name: t for m, t in PAIRS}


def _name(tdt):
    return str(tdt).replace("torch.", "")


@pytest.mark.parametrize("a,ta", PAIRS)
@pytest.mark.parametrize("b,tb", PAIRS)
def test_promote_types_is_torchs(a, ta, b, tb):
    assert mt.promote_types(a, b).name == _name(torch.promote_types(ta, tb))


NP_OF = {"bool": np.bool_, "uint8": np.uint8, "int8": np.int8, "int16": np.int16, "int32": np.int32,
         "int64": np.int64, "float32": np.float32, "float64": np.float64}
OPERAND_DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float32", "float64"]


def _pair(name, ndim, dev, value=1):
    arr = np.full((3,) * ndim, value).astype(NP_OF[name])
    return mt.from_numpy(arr, device=dev), torch.from_numpy(arr)


# every category crossing, the uint8/int8 corner, widths within a category (the lattice itself is
# checked for all 81 pairs above; each pair here builds kernels, so the list is kept short)
KERNEL_PAIRS = [("uint8", "int8"), ("int8", "uint8"), ("bool", "int16"), ("int16", "float32"), ("int32", "int64"),
                ("float32", "float64"), ("bool", "float64"), ("uint8", "float32"), ("int64", "bool"),
                ("float64", "int8")]


@pytest.mark.parametrize("da,db", KERNEL_PAIRS)
@pytest.mark.parametrize("ndims", [(1, 1), (1, 0), (0, 1)])
def test_binary_result_dtype_with_0d(dev, da, db, ndims):
    (ma, ta), (mb, tb) = _pair(da, ndims[0], dev), _pair(db, ndims[1], dev, 2)
    want = torch.result_type(ta, tb)
    for op in (lambda x, y: x * y, lambda x, y: mt.maximum(x, y) if isinstance(x, mt.Tensor) else torch.maximum(x, y)):
        got = op(ma, mb)
        assert got.dtype.name == _name(op(ta, tb).dtype) == _name(want)
        np.testing.assert_array_equal(got.numpy(), op(ta, tb).numpy())
    assert (ma < mb).dtype is mt.bool
    np.testing.assert_array_equal((ma < mb).numpy(), (ta < tb).numpy())


@pytest.mark.parametrize("da", OPERAND_DTYPES)
@pytest.mark.parametrize("scalar", [True, 3, -2.5])
def test_python_scalar_rules(dev, da, scalar):
    ma, ta = _pair(da, 1, dev)
    for op in (lambda x: x + scalar, lambda x: scalar * x, lambda x: x - scalar if da != "bool" and scalar is not True else x * scalar,
               lambda x: x == scalar, lambda x: x > scalar):
        got, want = op(ma), op(ta)
        assert got.dtype.name == _name(want.dtype), (da, scalar)
        np.testing.assert_allclose(got.numpy(), want.numpy())


def test_true_division_of_ints_is_float(dev):
    for name in ("uint8", "int8", "int16", "int32", "int64", "bool"):
        ma, ta = _pair(name, 1, dev, 3)
        got = ma / (ma + 1)
        assert got.dtype is mt.float32
        np.testing.assert_allclose(got.numpy(), (ta / (ta + 1)).numpy(), rtol=1e-6)


def test_numpy_arrays_keep_their_dtype(dev):
    for name in OPERAND_DTYPES:
        arr = np.arange(4).astype(NP_OF[name])
        assert mt.from_numpy(arr, device=dev).dtype.name == name
        assert mt.tensor(arr, device=dev).dtype.name == name  # float64 too, as in torch (PoCL has cl_khr_fp64)
    assert mt.tensor([1.5, 2], device=dev).dtype is mt.float32  # Python floats give float32
    assert mt.tensor(np.float64(2.5), device=dev).dtype is mt.float64
    assert mt.tensor([1, 2], device=dev).dtype is mt.int64
    assert mt.tensor([True], device=dev).dtype is mt.bool
    assert mt.tensor(np.ones(2), dtype=mt.float64, device=dev).dtype is mt.float64
    for bad in (np.uint16, np.uint32, np.uint64):
        with pytest.raises(TypeError, match="unsupported dtype"):
            mt.from_numpy(np.ones(2, dtype=bad), device=dev)


def test_exports():
    assert mt.double is mt.float64 and mt.short is mt.int16 and mt.long is mt.int64 and mt.int is mt.int32
    assert mt.uint8.name == "uint8" and mt.int8.itemsize == 1 and mt.float64.itemsize == 8


CONVERSIONS = ["float", "double", "long", "int", "short", "byte", "char", "bool", "half"]


@pytest.mark.parametrize("method", CONVERSIONS)
def test_conversions_like_torch(dev, method):
    x = np.array([-3.7, -0.5, 0.0, -0.0, 0.3, 2.5, 100.9, float("nan")], dtype=np.float32)
    if method not in ("float", "double", "bool", "half"):
        x = x[:-1]  # NaN to an integer is undefined in both
        if method in ("byte",):
            x = np.abs(x)  # negative floats to uint8 are undefined behaviour
    got, want = getattr(mt.tensor(x, device=dev), method)(), getattr(torch.tensor(x), method)()
    assert got.dtype.name == _name(want.dtype)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_bool_is_nonzero(dev):
    x = mt.tensor([-0.5, 0.3, 0.0, -0.0, float("nan"), float("inf")], device=dev)
    assert x.bool().tolist() == [True, True, False, False, True, True]
    assert x.to(mt.bool).tolist() == x.type(mt.bool).tolist() == x.bool().tolist()
    assert mt.tensor([0, 7, -1], device=dev).bool().tolist() == [False, True, True]
    y = mt.zeros(3, dtype=mt.bool, device=dev)
    y.copy_(mt.tensor([0.0, 0.25, float("nan")], device=dev))
    assert y.tolist() == [False, True, True]


def test_int_conversions_wrap(dev):
    x = mt.tensor([300, -129, 65535, 2 ** 40 + 5], device=dev)
    t = torch.tensor([300, -129, 65535, 2 ** 40 + 5])
    for m in ("byte", "char", "short", "int"):
        assert getattr(x, m)().tolist() == getattr(t, m)().tolist()


def test_float64_precision_and_gradient(dev, rng):
    if not dev.profile.fp64:
        pytest.skip("device has no cl_khr_fp64")
    a = mt.tensor([1.0], dtype=mt.float64, device=dev)
    assert ((a + 1e-12) - a).item() == pytest.approx(1e-12, rel=1e-3)
    x = rng.standard_normal(33)
    t = mt.from_numpy(x, device=dev).requires_grad_()
    out = (mt.exp(t) * t).sum()
    out.backward()
    np.testing.assert_allclose(out.item(), np.sum(np.exp(x) * x), rtol=1e-12)
    np.testing.assert_allclose(t.grad.numpy(), np.exp(x) * (1 + x), rtol=1e-12)
    assert t.grad.dtype is mt.float64
    assert mt.tensor(x, device=dev).double().sum().dtype is mt.float64
    np.testing.assert_allclose(mt.from_numpy(x, device=dev).max().item(), x.max())


def test_float64_refused_without_fp64(dev):
    saved = dev.profile.fp64
    dev.profile.update(fp64=False)
    try:
        for make in (lambda: mt.zeros(2, dtype=mt.float64, device=dev), lambda: mt.ones(2, device=dev).double(),
                     lambda: mt.from_numpy(np.ones(2), device=dev)):
            with pytest.raises(TypeError, match=r"float64 .*cl_khr_fp64.*\.float\(\)"):
                make()
    finally:
        dev.profile.update(fp64=saved)


def test_cast_gradient_and_int_inputs(dev, rng):
    check(dev, lambda t: t.double().exp().float() * 2, lambda a: np.exp(a) * 2, rng.standard_normal((7, 3)),
          noncontig=True)
    with pytest.raises(RuntimeError, match="floating point"):
        mt.tensor([1, 2], device=dev).requires_grad_()


def test_small_int_arithmetic_like_torch(dev, rng):
    for m, tdt in PAIRS[1:6]:
        a = rng.integers(0 if m is mt.uint8 else -50, 50, 65)
        b = rng.integers(1, 50, 65)
        ma, mb = mt.tensor(a, dtype=m, device=dev), mt.tensor(b, dtype=m, device=dev)
        ta, tb = torch.tensor(a, dtype=tdt), torch.tensor(b, dtype=tdt)
        for f in (lambda x, y: x * y + x, lambda x, y: mt.maximum(x, y) if isinstance(x, mt.Tensor) else
                  torch.maximum(x, y), lambda x, y: x.sum() if isinstance(x, mt.Tensor) else x.sum()):
            got, want = f(ma, mb), f(ta, tb)
            assert got.dtype.name == _name(want.dtype)
            np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_result_type_and_dtype_properties(dev):
    for a, b, ta, tb in ((mt.tensor([1], dtype=mt.uint8, device=dev), mt.tensor([1], dtype=mt.int8, device=dev),
                          torch.tensor([1], dtype=torch.uint8), torch.tensor([1], dtype=torch.int8)),
                         (mt.tensor([1], dtype=mt.int32, device=dev), 2.5, torch.tensor([1], dtype=torch.int32), 2.5),
                         (mt.tensor([1], dtype=mt.int32, device=dev), mt.tensor(5, device=dev),
                          torch.tensor([1], dtype=torch.int32), torch.tensor(5)),
                         (True, mt.tensor(1.0, device=dev), True, torch.tensor(1.0))):
        assert mt.result_type(a, b).name == _name(torch.result_type(ta, tb))
    assert mt.float64.is_floating_point and not mt.int8.is_floating_point and not mt.uint8.is_signed
    assert mt.ones(1, device=dev).is_floating_point() and not mt.is_floating_point(mt.tensor([1], device=dev))


def test_finfo_iinfo_like_torch():
    for m, t in PAIRS:
        if m.is_floating:
            for attr in ("bits", "eps", "max", "min", "tiny"):
                assert float(getattr(mt.finfo(m), attr)) == float(getattr(torch.finfo(t), attr))
            with pytest.raises(TypeError):
                mt.iinfo(m)
        elif m is not mt.bool:
            for attr in ("bits", "max", "min"):
                assert getattr(mt.iinfo(m), attr) == getattr(torch.iinfo(t), attr)
            with pytest.raises(TypeError):
                mt.finfo(m)
    assert mt.finfo().eps == torch.finfo().eps


def test_bool_arithmetic_stays_bool_as_in_torch(dev):
    torch = pytest.importorskip("torch")
    a, b = [True, False, True, False], [True, True, False, False]
    x, y = mt.tensor(a, device=dev), mt.tensor(b, device=dev)
    tx, ty = torch.tensor(a), torch.tensor(b)
    for got, want in (((x + y), (tx + ty)), ((x * y), (tx * ty)), ((x + True), (tx + True)), ((x * 3), (tx * 3))):
        assert got.dtype.name == str(want.dtype).replace("torch.", "") and got.tolist() == want.tolist()
    z = x.clone()
    z += y
    assert z.dtype is mt.bool and z.tolist() == (tx + ty).tolist()
    with pytest.raises(RuntimeError, match="Subtraction"):
        x - y


def test_where_promotes_as_torch(dev):
    torch = pytest.importorskip("torch")
    c, tc = mt.tensor([True, False], device=dev), torch.tensor([True, False])
    x, tx = mt.tensor([1.0, 2.0], device=dev), torch.tensor([1.0, 2.0])
    for got, want in ((mt.where(c, x, mt.tensor(3.0, dtype=mt.float64, device=dev)),
                       torch.where(tc, tx, torch.tensor(3.0, dtype=torch.float64))),
                      (mt.where(c, mt.tensor([1, 2], device=dev), 0.5), torch.where(tc, torch.tensor([1, 2]), 0.5)),
                      (mt.where(c, mt.tensor([1, 2], dtype=mt.int32, device=dev), mt.tensor([3, 4], device=dev)),
                       torch.where(tc, torch.tensor([1, 2], dtype=torch.int32), torch.tensor([3, 4])))):
        assert got.dtype.name == str(want.dtype).replace("torch.", "") and got.tolist() == want.tolist()
