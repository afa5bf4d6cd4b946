import numpy as np
import pytest

import minitorch_cl as mt
from helpers import check

SHAPES_DIMS = [((257,), None), ((7, 33), 0), ((7, 33), 1), ((7, 33), -1), ((3, 5, 7), (0, 2)),
               ((3, 5, 7), (1, 2)), ((65, 3), None), ((2, 1, 4), 1), ((1000,), 0), ((3, 4500), 1),
               ((7, 24), 0), ((3, 5, 16), 1), ((2, 9, 3, 8), (1, 2))]  # (columns eight at a time, odd R)


@pytest.mark.parametrize("shape,dim", SHAPES_DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_mean(dev, rng, shape, dim, keepdim):
    a = rng.standard_normal(shape)
    npdim = dim if dim is None or isinstance(dim, int) else tuple(dim)
    check(dev, lambda t: t.sum(dim, keepdim=keepdim), lambda x: x.sum(npdim, keepdims=keepdim), a,
          rtol=1e-4, atol=1e-4, grad=a.size < 400)
    check(dev, lambda t: t.mean(dim, keepdim=keepdim), lambda x: x.mean(npdim, keepdims=keepdim), a,
          rtol=1e-4, atol=1e-5, grad=a.size < 400)


@pytest.mark.parametrize("shape,dim", SHAPES_DIMS)
def test_max_min(dev, rng, shape, dim):
    a = rng.standard_normal(shape)
    npdim = dim if dim is None or isinstance(dim, int) else tuple(dim)
    if dim is None:
        check(dev, lambda t: t.max(), lambda x: x.max(), a, grad=a.size < 400)
        check(dev, lambda t: t.min(), lambda x: x.min(), a, grad=a.size < 400)
    else:
        check(dev, lambda t: t.amax(dim), lambda x: x.max(npdim), a, grad=a.size < 400)
        check(dev, lambda t: t.amin(dim, keepdim=True), lambda x: x.min(npdim, keepdims=True), a, grad=a.size < 400)


@pytest.mark.parametrize("shape,dim", [((257,), 0), ((7, 33), 1), ((7, 33), 0), ((3, 5, 7), 1), ((4, 3000), 1)])
def test_max_with_indices_and_argmax(dev, rng, shape, dim):
    a = rng.standard_normal(shape).astype(np.float32)
    t = mt.tensor(a, device=dev)
    values, indices = t.max(dim)
    np.testing.assert_array_equal(values.numpy(), a.max(dim))
    np.testing.assert_array_equal(indices.numpy(), a.argmax(dim))
    assert indices.dtype is mt.int64
    np.testing.assert_array_equal(t.argmin(dim).numpy(), a.argmin(dim))
    assert t.argmax().item() == a.argmax()
    np.testing.assert_array_equal(t.argmax(dim, keepdim=True).numpy(), np.expand_dims(a.argmax(dim), dim))


def test_argmax_ties_take_first(dev):
    t = mt.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]], device=dev)
    assert t.argmax(1).tolist() == [1, 0]


def test_reduce_noncontiguous_and_empty(dev, rng):
    a = rng.standard_normal((6, 5))
    check(dev, lambda t: t.sum(0), lambda x: x.sum(0), a, noncontig=True)
    check(dev, lambda t: t.T.sum(1), lambda x: x.T.sum(1), a)
    z = mt.zeros(3, 0, device=dev)
    np.testing.assert_array_equal(z.sum(1).numpy(), np.zeros(3))
    assert z.sum(0).shape == (0,)
    with pytest.raises(RuntimeError, match="empty"):
        z.max(1)


def test_integer_and_bool_sums(dev):
    i = mt.tensor([[1, 2], [3, 4]], device=dev)
    assert i.sum().item() == 10 and i.sum().dtype is mt.int64
    b = mt.tensor([True, False, True], device=dev)
    assert b.sum().item() == 2
    assert (i > 1).all().item() is False and (i > 0).all().item() is True


def test_var_std_logsumexp(dev, rng):
    a = rng.standard_normal((5, 9))
    check(dev, lambda t: t.var(1), lambda x: x.var(1, ddof=1), a, rtol=1e-4)
    check(dev, lambda t: t.std(0, unbiased=False), lambda x: x.std(0), a, rtol=1e-4)
    big = a * 1000
    check(dev, lambda t: t.logsumexp(1), lambda x: np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) + x.max(1),
          big, rtol=1e-5, grad=False)


@pytest.mark.parametrize("shape,dim", [((70001,), None), ((3, 7, 4001), (0, 1, 2)), ((65536,), 0)])
def test_long_full_reductions_in_two_passes(dev, rng, shape, dim):
    """One output from 64K elements and more goes in two passes (backend.SPLIT_MIN): equal runs, then
    the runs' partials with the elements left over (70001 and 84021 leave some; 65536 none)."""
    a = rng.standard_normal(shape)
    assert a.size >= mt.backend.SPLIT_MIN
    check(dev, lambda t: t.sum(dim), lambda x: x.sum(dim), a, rtol=1e-5, atol=1e-4, grad=False)
    check(dev, lambda t: t.mean(dim), lambda x: x.mean(dim), a, rtol=1e-5, atol=1e-7, grad=False)
    a.flat[a.size - 3] = 9.5  # the extremes among the elements left over
    a.flat[1] = -9.5
    check(dev, lambda t: t.amax(dim), lambda x: x.max(dim), a, grad=False)
    check(dev, lambda t: t.amin(dim), lambda x: x.min(dim), a, grad=False)
    powers = np.ones(a.size)  # powers of two multiply exactly, in any order: the product is 2 ** (9 - 5 + 1)
    powers[rng.choice(a.size - 3, 14, replace=False)] = [2.0] * 9 + [0.5] * 5
    powers[-1] = 2.0
    check(dev, lambda t: t.prod(), lambda x: x.prod(), powers.reshape(shape), rtol=0, atol=0, grad=False)
    a.flat[a.size // 2] = np.nan
    got = mt.tensor(a.astype(np.float32), device=dev)
    assert np.isnan(float(got.sum())) and np.isnan(float(got.amax(dim)))
