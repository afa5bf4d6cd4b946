import numpy as np
import pytest

import minitorch_cl as mt
from helpers import check

UNARY = {
    "neg": (lambda t: -t, lambda a: -a, None),
    "exp": (mt.exp, np.exp, None),
    "log": (mt.log, np.log, "pos"),
    "sqrt": (mt.sqrt, np.sqrt, "pos"),
    "tanh": (mt.tanh, np.tanh, None),
    "sigmoid": (mt.sigmoid, lambda a: 1 / (1 + np.exp(-a)), None),
    "relu": (mt.relu, lambda a: np.maximum(a, 0), None),
    "abs": (mt.abs, np.abs, None),
    "gelu": (mt.gelu, None, None),
    "clamp": (lambda t: t.clamp(-0.5, 0.7), lambda a: np.clip(a, -0.5, 0.7), None),
    "square": (lambda t: t ** 2, lambda a: a ** 2, None),
    "pow_frac": (lambda t: t ** 1.5, lambda a: a ** 1.5, "pos"),
    "rsub": (lambda t: 3 - t, lambda a: 3 - a, None),
    "rdiv": (lambda t: 2 / t, lambda a: 2 / a, "pos"),
    "div_s": (lambda t: t / 4, lambda a: a / 4, None),
    "rpow": (lambda t: 2 ** t, lambda a: 2 ** a, None),
}


def _gelu_ref(a):
    from math import erf
    return 0.5 * a * (1 + np.vectorize(erf, otypes=[float])(a / np.sqrt(2)))


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", [(7,), (33, 3), (2, 0, 3)])
def test_unary(dev, rng, name, shape):
    fn, ref, domain = UNARY[name]
    ref = ref or _gelu_ref
    a = rng.standard_normal(shape)
    if domain == "pos":
        a = np.abs(a) + 0.5
    else:  # keep clear of kinks (relu, abs, clamp) where finite differences are meaningless
        a = np.where(np.abs(a) < 1e-2, 0.1, a)
        a = np.where(np.abs(a - 0.7) < 1e-2, 0.6, a)
        a = np.where(np.abs(a + 0.5) < 1e-2, -0.4, a)
    check(dev, fn, ref, a, noncontig=len(shape) > 1)


BINARY = {
    "add": (lambda a, b: a + b, None),
    "sub": (lambda a, b: a - b, None),
    "mul": (lambda a, b: a * b, None),
    "div": (lambda a, b: a / b, "pos_b"),
    "pow": (lambda a, b: a ** b, "pos_a"),
    "maximum": (mt.maximum, np.maximum),
    "minimum": (mt.minimum, np.minimum),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", [((7,), (7,)), ((65, 1), (1, 33)), ((2, 3, 5), (5,)), ((1,), (4, 1, 2)),
                                    ((3, 0), (1,))])
def test_binary_broadcast(dev, rng, name, shapes):
    fn, ref_or_domain = BINARY[name]
    ref = ref_or_domain if callable(ref_or_domain) else fn
    a = rng.standard_normal(shapes[0])
    b = rng.standard_normal(shapes[1])
    if ref_or_domain == "pos_b":
        b = np.abs(b) + 0.5
    if ref_or_domain == "pos_a":
        a = np.abs(a) + 0.5
    check(dev, fn, ref, a, b)


def test_binary_noncontiguous(dev, rng):
    a, b = rng.standard_normal((5, 6)), rng.standard_normal((5, 6))
    check(dev, lambda x, y: x * y + x, lambda x, y: x * y + x, a, b, noncontig=True)


@pytest.mark.parametrize("shape", [(3, 300, 1, 1), (5, 7, 49, 1), (2, 3, 37, 5), (517, 3, 1, 1), (2, 2, 3, 5)])
def test_broadcast_and_sliced_maps(dev, rng, shape):
    """The 2-D/3-D grid kernels (map1_grid, map2_grid) and the 4-D fallback: a per-channel factor
    broadcast over rows longer and shorter than a work-group (squeeze-excitation's scale), a
    channel slice of a wider tensor (a concat's copy) and a transposed operand, against NumPy."""
    n, c, h, w = shape
    a = rng.standard_normal((n, c, h * w + 3))
    b = rng.standard_normal((n, c, 1))
    at = mt.tensor(a, device=dev)
    bt = mt.tensor(b, device=dev)
    sliced = at[:, :, 2:h * w + 2]  # rows of h*w inside rows of h*w+3: a 2-D iteration
    np.testing.assert_allclose((sliced * bt).numpy(), a[:, :, 2:h * w + 2] * b, rtol=1e-6)
    np.testing.assert_allclose(sliced.relu().numpy(), np.maximum(a[:, :, 2:h * w + 2], 0), rtol=1e-6)
    out = mt.zeros(n, 2 * c, h * w, device=dev)
    out[:, c:] = sliced  # a copy into a channel slice
    expect = np.zeros((n, 2 * c, h * w))
    expect[:, c:] = a[:, :, 2:h * w + 2]
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-6)
    x = rng.standard_normal(shape)
    xt = mt.tensor(x, device=dev)
    np.testing.assert_allclose((xt.permute(0, 2, 1, 3) - xt.permute(0, 2, 1, 3).relu()).numpy(),
                               x.transpose(0, 2, 1, 3) - np.maximum(x.transpose(0, 2, 1, 3), 0), rtol=1e-6)


def test_transposed_operand(dev, rng):
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((5, 7))
    check(dev, lambda x, y: x.T + y, lambda x, y: x.T + y, a, b)


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparisons(dev, rng, op):
    a = rng.integers(-3, 3, (7, 9)).astype(np.float32)
    b = rng.integers(-3, 3, (9,)).astype(np.float32)
    ta, tb = mt.tensor(a, device=dev), mt.tensor(b, device=dev)
    pyop = {"eq": "__eq__", "ne": "__ne__", "lt": "__lt__", "le": "__le__", "gt": "__gt__", "ge": "__ge__"}[op]
    got = getattr(ta, pyop)(tb)
    assert got.dtype is mt.bool
    np.testing.assert_array_equal(got.numpy(), getattr(a, pyop)(b))
    np.testing.assert_array_equal(getattr(ta, pyop)(1.0).numpy(), getattr(a, pyop)(1.0))


def test_where(dev, rng):
    cond = rng.random((6, 7)) > 0.5
    a, b = rng.standard_normal((6, 7)), rng.standard_normal((7,))
    c = mt.tensor(cond, device=dev)
    check(dev, lambda x, y: mt.where(c, x, y), lambda x, y: np.where(cond, x, y), a, b)
    got = mt.where(c, mt.tensor(a, device=dev), 0.0).numpy()
    np.testing.assert_allclose(got, np.where(cond, a, 0.0), rtol=1e-6)


def test_scalar_on_both_sides(dev):
    t = mt.tensor([1.0, 2.0, 4.0], device=dev)
    np.testing.assert_allclose((2 + t).numpy(), [3, 4, 6])
    np.testing.assert_allclose((2 - t).numpy(), [1, 0, -2])
    np.testing.assert_allclose((2 * t).numpy(), [2, 4, 8])
    np.testing.assert_allclose((2 / t).numpy(), [2, 1, 0.5])
    np.testing.assert_allclose((2 ** t).numpy(), [2, 4, 16])
    np.testing.assert_allclose((t / 0).numpy(), [np.inf] * 3)


def test_integer_arithmetic_and_promotion(dev):
    i = mt.tensor([1, 2, 3], device=dev)
    assert i.dtype is mt.int64
    assert (i + 1).dtype is mt.int64
    assert (i * 2).tolist() == [2, 4, 6]
    assert (i + 0.5).dtype is mt.float32
    assert (i / 2).dtype is mt.float32
    np.testing.assert_allclose((i / 2).numpy(), [0.5, 1.0, 1.5])
    f = mt.tensor([1.5, 2.5, 3.5], device=dev)
    assert (i + f).dtype is mt.float32
    np.testing.assert_allclose((i + f).numpy(), [2.5, 4.5, 6.5])


def test_mismatched_shapes_name_both(dev):
    a, b = mt.zeros(3, 4, device=dev), mt.zeros(5, device=dev)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5,\)"):
        a + b


def test_random_is_seeded_and_distributed(dev):
    mt.manual_seed(3)
    a = mt.randn(20000, device=dev).numpy()
    mt.manual_seed(3)
    b = mt.randn(20000, device=dev).numpy()
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean()) < 0.03 and abs(a.std() - 1) < 0.03
    u = mt.rand(20000, device=dev).numpy()
    assert u.min() > 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
