"""Scans (scan.cl) and prod / var_mean / std_mean / norms / count_nonzero: NumPy float64, torch, grads."""
import numpy as np
import pytest

import minitorch_cl as mt
from helpers import check

torch = pytest.importorskip("torch")

SHAPES_DIMS = [((1,), 0), ((7,), 0), ((257,), -1), ((7, 33), 0), ((7, 33), 1), ((3, 5, 4), 1)]


def _np_lcse(x, axis):
    return np.logaddexp.accumulate(x, axis=axis)


@pytest.mark.parametrize("shape,dim", SHAPES_DIMS)
@pytest.mark.parametrize("noncontig", [False, True])
def test_cumsum_cumprod_logcumsumexp(dev, rng, shape, dim, noncontig):
    a = rng.standard_normal(shape)
    grad = a.size <= 100
    check(dev, lambda t: mt.cumsum(t, dim), lambda x: np.cumsum(x, dim), a, rtol=1e-4, atol=1e-4, grad=grad,
          noncontig=noncontig)
    b = rng.uniform(0.5, 1.5, shape)  # products stay O(1)
    check(dev, lambda t: t.cumprod(dim), lambda x: np.cumprod(x, dim), b, rtol=1e-4, atol=1e-5, grad=grad,
          noncontig=noncontig)
    check(dev, lambda t: mt.logcumsumexp(t, dim), lambda x: _np_lcse(x, dim), a, rtol=1e-4, atol=1e-5, grad=grad,
          noncontig=noncontig)


def test_cumprod_gradient_with_zeros(dev):
    a = np.array([[2.0, 0.0, 3.0, 0.0, 5.0], [0.0, 1.5, 2.0, -1.0, 0.5], [1.0, 2.0, 0.0, 4.0, 0.5]])
    check(dev, lambda t: t.cumprod(1), lambda x: np.cumprod(x, 1), a)
    x = torch.tensor(a, requires_grad=True)
    x.cumprod(1).sum().backward()
    t = mt.tensor(a, requires_grad=True)
    t.cumprod(1).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), x.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("fn", ["cummax", "cummin"])
def test_cummax_cummin_ties_nan_like_torch(dev, rng, fn):
    a = np.array([[1, 3, 2, 3, np.nan, 1, np.nan, 5], [0, 2, 0, 3, 4, 4, -1, 4], [2, 2, 2, 2, 2, 2, 2, 2]],
                 dtype=np.float32)
    got = getattr(mt, fn)(mt.tensor(a, device=dev), 1)
    ref = getattr(torch, fn)(torch.tensor(a), 1)
    np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())
    ints = rng.integers(-3, 3, (7, 33))
    for dt, tdt in [(mt.int64, torch.int64), (mt.int32, torch.int32)]:
        got = getattr(mt, fn)(mt.tensor(ints, dtype=dt, device=dev), 0)
        ref = getattr(torch, fn)(torch.tensor(ints, dtype=tdt), 0)
        assert got.values.dtype is dt
        np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
        np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())


@pytest.mark.parametrize("fn", ["cummax", "cummin"])
def test_cummax_gradient(dev, rng, fn):
    a = rng.standard_normal((5, 9))
    npf = np.maximum.accumulate if fn == "cummax" else np.minimum.accumulate
    check(dev, lambda t: getattr(t, fn)(1).values, lambda x: npf(x, 1), a, noncontig=True)
    check(dev, lambda t: getattr(mt, fn)(t, 0)[0], lambda x: npf(x, 0), a)


def test_scan_nan_and_dtypes_like_torch(dev, rng):
    a = np.array([1.0, np.nan, 2.0, -np.inf, np.inf], dtype=np.float32)
    for fn in ("cumsum", "cumprod", "logcumsumexp"):
        np.testing.assert_array_equal(getattr(mt, fn)(mt.tensor(a, device=dev), 0).numpy(),
                                      getattr(torch, fn)(torch.tensor(a), 0).numpy())
    neg = np.array([-np.inf, -np.inf, 0.0, -np.inf], dtype=np.float32)
    np.testing.assert_allclose(mt.logcumsumexp(mt.tensor(neg, device=dev), 0).numpy(),
                               torch.logcumsumexp(torch.tensor(neg), 0).numpy())
    ints = rng.integers(-3, 4, (4, 6))
    for dt, tdt in [(mt.int32, torch.int32), (mt.int64, torch.int64), (mt.bool, torch.bool)]:
        src = ints > 0 if dt is mt.bool else ints
        t, r = mt.tensor(src, dtype=dt, device=dev), torch.tensor(src, dtype=tdt)
        for fn in ("cumsum", "cumprod"):
            got, ref = getattr(t, fn)(1), getattr(r, fn)(1)
            assert got.dtype is mt.int64 and ref.dtype == torch.int64
            np.testing.assert_array_equal(got.numpy(), ref.numpy())
        assert t.cumsum(0, dtype=mt.float32).dtype is mt.float32
    with pytest.raises(NotImplementedError):
        mt.logcumsumexp(mt.tensor(ints, device=dev), 0)
    with pytest.raises(IndexError):
        mt.cumsum(mt.tensor(ints, device=dev), 2)


def test_scan_empty_and_scalar(dev):
    e = mt.zeros(3, 0, device=dev)
    assert mt.cumsum(e, 1).shape == (3, 0) and mt.cummax(e, 1).indices.shape == (3, 0)
    s = mt.tensor(2.5, device=dev)
    assert mt.cumsum(s, 0).item() == 2.5 and mt.cummax(s, 0).indices.item() == 0


@pytest.mark.parametrize("shape,dim", [((7,), None), ((7, 33), 1), ((7, 33), 0), ((3, 5, 4), -1), ((65,), 0)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_prod(dev, rng, shape, dim, keepdim):
    a = rng.uniform(0.5, 1.5, shape)
    kd = keepdim if dim is not None else False
    check(dev, lambda t: t.prod(dim, keepdim=kd) if dim is not None else t.prod(),
          lambda x: np.prod(x, dim, keepdims=kd), a, rtol=1e-4, atol=1e-5, grad=a.size <= 100)


def test_prod_zeros_gradient_dtypes_empty(dev):
    a = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 2.0], [1.0, 2.0, 3.0]])
    for dim in (None, 0, 1):
        x, t = torch.tensor(a, requires_grad=True), mt.tensor(a, requires_grad=True)
        (x.prod() if dim is None else x.prod(dim)).sum().backward()
        (t.prod() if dim is None else t.prod(dim)).sum().backward()
        np.testing.assert_allclose(t.grad.numpy(), x.grad.numpy())
    ints = np.array([[1, 2, 3], [4, -5, 6]])
    assert mt.tensor(ints, dtype=mt.int32).prod(1).dtype is mt.int64
    np.testing.assert_array_equal(mt.tensor(ints).prod(1).numpy(), torch.tensor(ints).prod(1).numpy())
    assert mt.tensor(np.array([True, False])).prod().item() == 0
    np.testing.assert_array_equal(mt.zeros(2, 0).prod(1).numpy(), [1.0, 1.0])
    assert np.isnan(mt.tensor([1.0, np.nan]).prod().item())


@pytest.mark.parametrize("dim,correction", [(None, 1), (1, 0), (0, 2), ((0, 1), 1)])
def test_var_mean_std_mean(dev, rng, dim, correction):
    a = rng.standard_normal((7, 33)).astype(np.float32)
    t, r = mt.tensor(a, device=dev), torch.tensor(a)
    for fn in ("var_mean", "std_mean"):
        got = getattr(mt, fn)(t, dim, correction=correction, keepdim=True)
        ref = getattr(torch, fn)(r, dim, correction=correction, keepdim=True)
        for g, e in zip(got, ref):
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-6)
    got = mt.std(t, 1, unbiased=False)
    np.testing.assert_allclose(got.numpy(), torch.std(r, 1, unbiased=False).numpy(), rtol=1e-5)
    check(dev, lambda x: mt.var_mean(x, 1)[0], lambda x: x.var(1, ddof=1), a.astype(np.float64), rtol=1e-4)


@pytest.mark.parametrize("p", [1, 2, 3, 0.5, 0, float("inf"), float("-inf"), "fro"])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (1, False), (0, True), ((0, 1), False)])
def test_norm_like_torch(dev, rng, p, dim, keepdim):
    a = rng.standard_normal((7, 33)).astype(np.float32)
    a[0, :3] = 0
    got = mt.norm(mt.tensor(a, device=dev), p, dim, keepdim)
    ref = torch.norm(torch.tensor(a), p, dim, keepdim)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)
    if p != "fro":
        got = mt.linalg.vector_norm(mt.tensor(a, device=dev), p, dim, keepdim)
        ref = torch.linalg.vector_norm(torch.tensor(a), p, dim, keepdim)
        np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("p", [1, 2, 3, float("inf")])
def test_norm_gradient(dev, rng, p):
    a = rng.standard_normal((5, 6))
    check(dev, lambda t: mt.linalg.vector_norm(t, p, 1), lambda x: np.linalg.norm(x, p, axis=1), a, noncontig=True)


def test_count_nonzero(dev, rng):
    a = rng.integers(-1, 2, (7, 33))
    for dt in (mt.int64, mt.int32, mt.float32, mt.bool):
        t = mt.tensor(a, device=dev).to(dtype=dt)
        for dim in (None, 0, 1, (0, 1)):
            got = mt.count_nonzero(t, dim)
            ref = torch.count_nonzero(torch.tensor(a), dim)
            assert got.dtype is mt.int64
            np.testing.assert_array_equal(got.numpy(), ref.numpy())
    with pytest.raises(RuntimeError):
        mt.linalg.vector_norm(mt.tensor(a, device=dev))


@pytest.mark.parametrize("p", [1, 2, 3, 0.5, float("inf"), float("-inf")])
def test_norm_gradient_at_zeros_like_torch(dev, p):
    a = np.array([[1.0, -3.0, 3.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    x, t = torch.tensor(a, requires_grad=True), mt.tensor(a, requires_grad=True, device=dev)
    torch.linalg.vector_norm(x, p, 1).sum().backward()
    mt.linalg.vector_norm(t, p, 1).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), x.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape,dim", [((3000,), 0), ((2, 1000), 1), ((1000, 3), 0)])
def test_long_rows_take_the_work_group_scan(dev, rng, shape, dim):
    """Few rows longer than 4 work-groups: scan_group (chunks + a prefix scan in local memory)."""
    a = rng.standard_normal(shape).astype(np.float32)
    t, r = mt.tensor(a, device=dev), torch.tensor(a.astype(np.float64))
    np.testing.assert_allclose(mt.cumsum(t, dim).numpy(), torch.cumsum(r, dim).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mt.logcumsumexp(t, dim).numpy(), torch.logcumsumexp(r, dim).numpy(), rtol=1e-5)
    b = rng.uniform(0.999, 1.001, shape)
    np.testing.assert_allclose(mt.cumprod(mt.tensor(b, device=dev), dim).numpy(), np.cumprod(b, dim), rtol=1e-5)
    ties = rng.integers(0, 50, shape).astype(np.float32)
    ties.reshape(-1)[[5, 700, 1500]] = np.nan
    for fn in ("cummax", "cummin"):
        got, ref = getattr(mt, fn)(mt.tensor(ties, device=dev), dim), getattr(torch, fn)(torch.tensor(ties), dim)
        np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
        np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())
    x = mt.tensor(b, device=dev, requires_grad=True)  # prod's exclusive scans, both directions
    x.prod(dim).sum().backward()
    xr = torch.tensor(b, requires_grad=True)
    xr.prod(dim).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xr.grad.numpy(), rtol=1e-4)
    x = mt.tensor(a, device=dev, requires_grad=True)  # cumsum's gradient: a reversed scan
    (mt.cumsum(x, dim) * mt.tensor(b, device=dev)).sum().backward()
    xr = torch.tensor(a.astype(np.float64), requires_grad=True)
    (torch.cumsum(xr, dim) * torch.tensor(b)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xr.grad.numpy(), rtol=1e-4, atol=1e-4)
