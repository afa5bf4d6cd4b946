"""sort.cl: sort / argsort / topk / kthvalue / median against NumPy and torch: values, indices
(ties, NaN), gradients, views, empty dims, dtypes, bad arguments; host-side unique."""
import numpy as np
import pytest

import minitorch_cl as mt
from helpers import check

torch = pytest.importorskip("torch")

@pytest.fixture(params=[True, False], ids=["serial", "network"])
def path(request, dev):
    """Run both sort.cl variants on the device under test: a work-item merge-sorting each row (the
    CPU one) and the bitonic network in local memory plus global stages (the GPU one)."""
    old = dev.profile.sort_serial
    dev.profile.update(sort_serial=request.param)
    yield request.param
    dev.profile.update(sort_serial=old)


SHAPES_DIMS = [((1,), 0), ((7,), 0), ((33,), -1), ((257,), 0), ((7, 65), 1), ((7, 33), 0), ((3, 5, 4), 1)]


def _ties(rng, shape):
    a = rng.integers(0, 5, shape).astype(np.float32)  # many ties
    a.reshape(-1)[::7] = np.nan
    return a


@pytest.mark.parametrize("shape,dim", SHAPES_DIMS)
@pytest.mark.parametrize("descending", [False, True])
def test_sort_matches_torch_stable_with_ties_and_nan(dev, rng, path, shape, dim, descending):
    a = _ties(rng, shape)
    got = mt.sort(mt.tensor(a, device=dev), dim, descending)
    ref = torch.sort(torch.tensor(a), dim=dim, descending=descending, stable=True)
    np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())
    idx = mt.argsort(mt.tensor(a, device=dev), dim, descending=descending, stable=True)
    np.testing.assert_array_equal(idx.numpy(), ref.indices.numpy())
    if not descending:
        np.testing.assert_array_equal(got.indices.numpy(), np.argsort(a, axis=dim, kind="stable"))


@pytest.mark.parametrize("shape,dim", SHAPES_DIMS[1:5])
def test_sort_gradient_and_views(dev, rng, path, shape, dim):
    a = rng.standard_normal(shape)
    grad = a.size <= 100
    check(dev, lambda t: t.sort(dim).values, lambda x: np.sort(x, dim), a, noncontig=True, grad=grad)
    check(dev, lambda t: t.sort(dim, descending=True)[0], lambda x: -np.sort(-x, dim), a, grad=grad)


@pytest.mark.parametrize("dt,tdt", [("int64", torch.int64), ("int32", torch.int32), ("bool", torch.bool)])
def test_sort_integer_and_bool(dev, rng, path, dt, tdt):
    a = rng.integers(-3, 4, (5, 33))
    if dt == "bool":
        a = a > 0
    got = mt.tensor(a, dtype=getattr(mt, dt), device=dev).sort(1, descending=True)
    ref = torch.tensor(a, dtype=tdt).sort(dim=1, descending=True, stable=True)
    assert got.values.dtype is getattr(mt, dt)
    np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())


@pytest.mark.parametrize("shape,dim,k", [((33,), 0, 5), ((7, 65), 1, 1), ((7, 65), 1, 65), ((9, 4), 0, 3)])
@pytest.mark.parametrize("largest", [True, False])
def test_topk(dev, rng, shape, dim, k, largest):
    a = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float32)  # distinct: indices are unique
    got = mt.topk(mt.tensor(a, device=dev), k, dim, largest)
    ref = torch.topk(torch.tensor(a), k, dim, largest)
    np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())
    b = rng.standard_normal(shape)
    check(dev, lambda t: t.topk(k, dim, largest)[0],
          lambda x: (-np.sort(-x, dim) if largest else np.sort(x, dim)).take(range(k), axis=dim), b,
          grad=b.size <= 100, noncontig=True)


def test_topk_nan_is_largest_and_bad_k(dev):
    a = np.array([1.0, np.nan, 3.0, 2.0], dtype=np.float32)
    got, ref = mt.topk(mt.tensor(a, device=dev), 2), torch.topk(torch.tensor(a), 2)
    np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())
    with pytest.raises(RuntimeError):
        mt.topk(mt.tensor(a, device=dev), 5)
    with pytest.raises(RuntimeError):
        mt.kthvalue(mt.tensor(a, device=dev), 0)
    with pytest.raises(IndexError):
        mt.sort(mt.tensor(a, device=dev), 1)


@pytest.mark.parametrize("shape,dim,k", [((33,), 0, 1), ((33,), 0, 17), ((7, 65), 1, 65), ((9, 4), 0, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_kthvalue(dev, rng, shape, dim, k, keepdim):
    a = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float32)
    got = mt.kthvalue(mt.tensor(a, device=dev), k, dim, keepdim)
    ref = torch.kthvalue(torch.tensor(a), k, dim, keepdim)
    np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())
    b = rng.standard_normal(shape)
    check(dev, lambda t: t.kthvalue(k, dim, keepdim).values,
          lambda x: np.take(np.sort(x, dim), [k - 1] if keepdim else k - 1, axis=dim), b, grad=b.size <= 100)


@pytest.mark.parametrize("shape,dim", [((7,), 0), ((8,), 0), ((7, 65), 1), ((8, 6), 0), ((3, 5, 4), 2)])
def test_median_lower_like_torch(dev, rng, shape, dim):
    a = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float32)
    t, r = mt.tensor(a, device=dev), torch.tensor(a)
    got, ref = mt.median(t, dim), torch.median(r, dim)
    np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())
    assert mt.median(t).item() == torch.median(r).item()
    assert mt.median(t, dim, keepdim=True).values.shape == tuple(torch.median(r, dim, keepdim=True).values.shape)
    n = shape[dim]
    check(dev, lambda x: x.median(dim).values, lambda x: np.take(np.sort(x, dim), (n - 1) // 2, axis=dim),
          rng.standard_normal(shape), grad=a.size <= 100, noncontig=True)


def test_median_nan_and_ints(dev):
    a = np.array([[1.0, np.nan, 3.0, np.nan], [4.0, 2.0, 3.0, 1.0]], dtype=np.float32)
    got, ref = mt.median(mt.tensor(a, device=dev), 1), torch.median(torch.tensor(a), 1)
    np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())
    assert np.isnan(mt.median(mt.tensor(a, device=dev)).item())
    ints = np.array([[5, 1, 4, 2], [9, 8, 7, 6]])
    got, ref = mt.median(mt.tensor(ints, device=dev), 1), torch.median(torch.tensor(ints), 1)
    np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())


def test_sort_empty_and_scalar(dev, path):
    e = mt.zeros(3, 0, device=dev)
    assert mt.sort(e, 1).values.shape == (3, 0) and mt.sort(e, 0).indices.shape == (3, 0)
    s = mt.sort(mt.tensor(4.0, device=dev))
    assert s.values.item() == 4.0 and s.indices.item() == 0


def test_sort_long_row_straddles_powers_of_two(dev, rng, path):
    a = rng.standard_normal((2, 1025)).astype(np.float32)
    got = mt.sort(mt.tensor(a, device=dev), 1, descending=True)
    np.testing.assert_array_equal(got.values.numpy(), -np.sort(-a, 1))
    np.testing.assert_array_equal(got.indices.numpy(), np.argsort(-a, 1, kind="stable"))


def test_unique(dev, rng):
    a = rng.integers(0, 6, (5, 7))
    t, r = mt.tensor(a, device=dev), torch.tensor(a)
    got = mt.unique(t, return_inverse=True, return_counts=True)
    ref = torch.unique(r, return_inverse=True, return_counts=True)
    for g, e in zip(got, ref):
        np.testing.assert_array_equal(g.numpy(), e.numpy())
    np.testing.assert_array_equal(t.unique().numpy(), r.unique().numpy())
    np.testing.assert_array_equal(t.unique(sorted=False).numpy(), r.unique(sorted=False).numpy())
    rows = rng.integers(0, 2, (6, 3))  # repeated rows and columns
    for dim in (0, 1, -1):
        got = mt.unique(mt.tensor(rows, device=dev), dim=dim, return_inverse=True, return_counts=True)
        ref = torch.unique(torch.tensor(rows), dim=dim, return_inverse=True, return_counts=True)
        for g, e in zip(got, ref):
            np.testing.assert_array_equal(g.numpy(), e.numpy())
    f = np.array([2.0, np.nan, 1.0, np.nan, 2.0], dtype=np.float32)
    got = mt.unique(mt.tensor(f, device=dev), return_inverse=True, return_counts=True)
    ref = torch.unique(torch.tensor(f), return_inverse=True, return_counts=True)
    for g, e in zip(got, ref):
        np.testing.assert_array_equal(g.numpy(), e.numpy())
    b = mt.unique(mt.tensor(np.array([True, False, True]), device=dev))
    assert b.dtype is mt.bool and b.tolist() == [False, True]


@pytest.mark.parametrize("dim,keepdim", [(1, False), (0, True), (-1, True)])
def test_mode_like_torch(dev, rng, dim, keepdim):
    a = rng.integers(0, 4, (6, 9)).astype(np.float32)
    got = mt.mode(mt.tensor(a, device=dev), dim, keepdim)
    ref = torch.mode(torch.tensor(a), dim, keepdim)
    np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())


@pytest.mark.parametrize("block", [2, 8, 64])
def test_sort_with_small_blocks_uses_the_global_stages(dev, rng, block):
    """A small local block makes rows of 7..257 take the sort_step path too; same results."""
    old = dev.profile.sort_block, dev.profile.sort_serial
    dev.profile.update(sort_block=block, sort_serial=False)
    try:
        for shape in [(3, 7), (2, 65), (1, 257)]:
            a = _ties(rng, shape)
            for descending in (False, True):
                got = mt.sort(mt.tensor(a, device=dev), 1, descending)
                ref = torch.sort(torch.tensor(a), dim=1, descending=descending, stable=True)
                np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
                np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())
    finally:
        dev.profile.update(sort_block=old[0], sort_serial=old[1])


def test_selection_indices_on_ties_point_at_the_value(dev, rng):
    """With ties, torch's kthvalue/median/topk index comes from its quickselect; ours is the stable
    (lowest for ascending) one. Both must point at an element holding the value."""
    a = rng.integers(0, 3, (6, 9)).astype(np.float32)
    t = mt.tensor(a, device=dev)
    for res, ref in [(mt.kthvalue(t, 4, 1), torch.kthvalue(torch.tensor(a), 4, 1)),
                     (mt.median(t, 1), torch.median(torch.tensor(a), 1))]:
        np.testing.assert_array_equal(res.values.numpy(), ref.values.numpy())
        np.testing.assert_array_equal(np.take_along_axis(a, res.indices.numpy()[:, None], 1)[:, 0], res.values.numpy())
    top = mt.topk(t, 4, 1)
    np.testing.assert_array_equal(top.values.numpy(), torch.topk(torch.tensor(a), 4, 1).values.numpy())
    np.testing.assert_array_equal(np.take_along_axis(a, top.indices.numpy(), 1), top.values.numpy())
    np.testing.assert_array_equal(top.indices.numpy(), np.argsort(-a, 1, kind="stable")[:, :4])


def test_many_short_rows_share_a_block(dev, rng, path):
    """Rows shorter than a block are sorted several per work-group (and a partial last block)."""
    for shape in [(1001, 3), (37, 8), (5, 2), (300, 1)]:
        a = _ties(rng, shape)
        for descending in (False, True):
            got = mt.sort(mt.tensor(a, device=dev), 1, descending)
            ref = torch.sort(torch.tensor(a), dim=1, descending=descending, stable=True)
            np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
            np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())


def test_float16_storage(dev, rng, path):
    """float16 tensors (storage only, computed in float32) sort, select and scan like torch."""
    a = rng.standard_normal((5, 33)).astype(np.float16)
    a[1, 3] = np.nan
    t, r = mt.tensor(a, dtype=mt.float16, device=dev), torch.tensor(a)
    # rounding to float16 makes ties: indices are compared where torch's choice is defined (stable sort, cummax)
    for f, indices in ((lambda m, x: m.sort(x, dim=1, descending=True, stable=True), True),
                       (lambda m, x: m.topk(x, 4, 1), False), (lambda m, x: m.median(x, 1), False),
                       (lambda m, x: m.cummax(x, 1), True)):
        got, ref = f(mt, t), f(torch, r)
        assert got.values.dtype is mt.float16
        np.testing.assert_array_equal(got.values.numpy(), ref.values.numpy())
        if indices:
            np.testing.assert_array_equal(got.indices.numpy(), ref.indices.numpy())
    for f in (lambda m, x: m.cumsum(x, 1), lambda m, x: m.logcumsumexp(x, 0), lambda m, x: x.prod(0)):
        got, ref = f(mt, t), f(torch, r.float())
        assert got.dtype is mt.float16
        np.testing.assert_allclose(got.numpy().astype(np.float32), ref.numpy(), rtol=2e-3, atol=2e-3)
