"""Element-wise math, bitwise and logical ops: values and gradients against NumPy float64, then
against PyTorch, with edge values (NaN, +-inf, -0.0, rounding ties) and integer dtypes."""
import math

import numpy as np
import pytest

import minitorch_cl as mt
from helpers import check

torch = pytest.importorskip("torch")

_erf = np.vectorize(math.erf, otypes=[float])


def _erfinv(y):
    return np.vectorize(lambda v: _newton_erfinv(v), otypes=[float])(y)


def _newton_erfinv(y):
    x = 0.0
    for _ in range(60):
        x -= (math.erf(x) - y) / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


# name: (mt fn, NumPy float64 reference, domain of the random input)
UNARY = {
    "log2": (mt.log2, np.log2, "pos"), "log10": (mt.log10, np.log10, "pos"), "log1p": (mt.log1p, np.log1p, "pos"),
    "expm1": (mt.expm1, np.expm1, None), "exp2": (mt.exp2, np.exp2, None), "erf": (mt.erf, _erf, None),
    "erfinv": (mt.erfinv, _erfinv, "unit"), "tan": (mt.tan, np.tan, "unit"), "asin": (mt.asin, np.arcsin, "unit"),
    "acos": (mt.acos, np.arccos, "unit"), "atan": (mt.atan, np.arctan, None), "sinh": (mt.sinh, np.sinh, None),
    "cosh": (mt.cosh, np.cosh, None), "asinh": (mt.asinh, np.arcsinh, None),
    "acosh": (mt.acosh, np.arccosh, "gt1"), "atanh": (mt.atanh, np.arctanh, "unit"),
    "reciprocal": (mt.reciprocal, lambda a: 1 / a, "pos"), "square": (mt.square, np.square, None),
    "frac": (mt.frac, lambda a: a - np.trunc(a), None), "floor": (mt.floor, np.floor, None),
    "ceil": (mt.ceil, np.ceil, None), "trunc": (mt.trunc, np.trunc, None), "round": (mt.round, np.round, None),
    "round_dec": (lambda t: mt.round(t, decimals=2), lambda a: np.round(a, 2), None),
}


def _domain(a, domain):
    if domain == "pos":
        return np.abs(a) + 0.5
    if domain == "unit":
        return np.clip(a, -0.9, 0.9) * 0.95
    if domain == "gt1":
        return np.abs(a) + 1.2
    return a


def _away_from_steps(a):
    """Keep finite differences off the jumps of floor/round/frac (every half-integer and integer)."""
    frac = a * 4 - np.floor(a * 4)
    return np.where(np.abs(frac - 0.5) > 0.3, a + 0.12, a) * 1.0


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", [(7,), (33, 3)])
def test_unary(dev, rng, name, shape):
    fn, ref, domain = UNARY[name]
    a = _domain(rng.standard_normal(shape), domain)
    if name in ("floor", "ceil", "trunc", "round", "round_dec", "frac"):
        a = _away_from_steps(a)
    check(dev, fn, ref, a, noncontig=len(shape) > 1, rtol=2e-5, atol=2e-5)


UNARY_NAMES = ["log2", "log10", "log1p", "expm1", "exp2", "erf", "erfinv", "tan", "asin", "acos", "atan", "sinh",
               "cosh", "asinh", "acosh", "atanh", "reciprocal", "square", "floor", "ceil", "trunc", "round"]


def test_unary_empty(dev):
    for name in UNARY_NAMES:
        out = getattr(mt, name)(mt.zeros(2, 0, 3, device=dev))
        assert out.shape == (2, 0, 3)


@pytest.mark.parametrize("name", UNARY_NAMES)
def test_unary_dtypes_like_torch(dev, name):
    """Integer inputs give float32 (or keep their dtype: square, floor, ...); float64 stays float64."""
    ints = np.array([0, 1, 2, -3, 5], dtype=np.int64)
    got, want = getattr(mt, name)(mt.tensor(ints, device=dev)), getattr(torch, name)(torch.tensor(ints))
    assert got.dtype.name == str(want.dtype).replace("torch.", "")
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=2e-6, atol=1e-6)
    if dev.profile.fp64:
        x = np.array([-0.9, -0.3, 0.0, 0.45, 0.7, 1.5, 2.5, 3.25], dtype=np.float64)
        got, want = getattr(mt, name)(mt.from_numpy(x, device=dev)), getattr(torch, name)(torch.tensor(x))
        assert got.dtype is mt.float64
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-13, atol=1e-15)


def _t(x, dev, dtype=None):
    return mt.tensor(x, device=dev, dtype=dtype)


EDGES = [float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 0.5, 1.5, 2.5, -0.5, -2.5, 1e-30, -1.0, 1.0, 3.0]


@pytest.mark.parametrize("name", ["log2", "log10", "log1p", "expm1", "exp2", "erf", "erfinv", "tan", "asin", "acos",
                                  "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "reciprocal", "square", "frac",
                                  "floor", "ceil", "trunc", "round", "sign", "signbit", "isnan", "isinf", "isfinite",
                                  "nan_to_num", "isposinf", "isneginf"])
def test_unary_edges_like_torch(dev, name):
    x = np.array(EDGES, dtype=np.float32)
    got = getattr(mt, name)(_t(x, dev)).numpy()
    want = getattr(torch, name)(torch.tensor(x)).numpy()
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
    keep = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[keep]), np.signbit(want[keep]))  # -0.0 and 0.0


def test_round_half_even_and_decimals(dev):
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1.25, 1.35, 125.0, 135.0, -2.675], dtype=np.float32)
    for d in (0, 1, 2, -1, -2):
        np.testing.assert_allclose(mt.round(_t(x, dev), decimals=d).numpy(),
                                   torch.round(torch.tensor(x), decimals=d).numpy(), rtol=1e-6)
    assert mt.round(_t([3, -4], dev)).tolist() == [3, -4]
    assert _t([3, 4], dev).floor().dtype is mt.int64


def test_nan_to_num_arguments(dev):
    x = np.array([float("nan"), float("inf"), -float("inf"), 1.0], dtype=np.float32)
    got = mt.nan_to_num(_t(x, dev), nan=2.0, posinf=9.0, neginf=-9.0).numpy()
    np.testing.assert_array_equal(got, [2.0, 9.0, -9.0, 1.0])
    np.testing.assert_array_equal(_t(x, dev).nan_to_num().numpy(), torch.tensor(x).nan_to_num().numpy())


BINARY = {
    "atan2": (mt.atan2, np.arctan2, None), "fmod": (mt.fmod, np.fmod, "away"),
    "remainder": (mt.remainder, np.remainder, "away"), "copysign": (mt.copysign, np.copysign, None),
    "hypot": (mt.hypot, np.hypot, None), "logaddexp": (mt.logaddexp, np.logaddexp, None),
    "logaddexp2": (mt.logaddexp2, np.logaddexp2, None),
    "xlogy": (mt.xlogy, lambda a, b: a * np.log(b), "pos_b"),
    "mod_op": (lambda a, b: a % b, np.remainder, "away"),
    "lerp": (lambda a, b: mt.lerp(a, b, 0.3), lambda a, b: a + 0.3 * (b - a), None),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("shapes", [((7,), (7,)), ((65, 1), (1, 3)), ((2, 3, 5), (5,))])
def test_binary(dev, rng, name, shapes):
    fn, ref, domain = BINARY[name]
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    if domain == "pos_b":
        b = np.abs(b) + 0.5
    if domain == "away":  # keep a / b off integers, where remainder jumps
        b = np.sign(b) * (np.abs(b) + 0.5)
        q = a / b
        a = np.where(np.abs(q - np.round(q)) < 0.1, a + 0.3 * b, a)
    if name == "copysign":
        a = np.where(np.abs(a) < 1e-2, 0.5, a)
    check(dev, fn, ref, a, b, noncontig=len(shapes[0]) > 1, rtol=2e-5, atol=2e-5)


def test_lerp_tensor_weight_and_grad(dev, rng):
    a, b, w = (rng.standard_normal((33,)) for _ in range(3))
    check(dev, mt.lerp, lambda a, b, w: a + w * (b - a), a, b, w)
    got = _t(a, dev, mt.float32).lerp(_t(b, dev, mt.float32), 0.75).numpy()
    np.testing.assert_allclose(got, torch.lerp(torch.tensor(a, dtype=torch.float32),
                                               torch.tensor(b, dtype=torch.float32), 0.75).numpy(), rtol=1e-6)


BINARY_EDGES = [(x, y) for x in (float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 5.0, -7.0, 7.5)
                for y in (float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 2.0, -2.0, 0.5)]


@pytest.mark.parametrize("name", ["atan2", "fmod", "remainder", "floor_divide", "copysign", "hypot", "logaddexp",
                                  "logaddexp2", "xlogy", "maximum", "minimum"])
def test_binary_edges_like_torch(dev, name):
    x, y = (np.array(v, dtype=np.float32) for v in zip(*BINARY_EDGES))
    got = getattr(mt, name)(_t(x, dev), _t(y, dev)).numpy()
    want = getattr(torch, name)(torch.tensor(x), torch.tensor(y)).numpy()
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(np.signbit(got[~np.isnan(want)]), np.signbit(want[~np.isnan(want)]))


INT_DTYPES = [(mt.uint8, torch.uint8), (mt.int8, torch.int8), (mt.int16, torch.int16), (mt.int32, torch.int32),
              (mt.int64, torch.int64)]


@pytest.mark.parametrize("dt,tdt", INT_DTYPES)
@pytest.mark.parametrize("op", ["floordiv", "mod", "fmod", "div", "truncdiv", "and", "or", "xor", "lshift", "rshift",
                                "invert", "add", "mul", "sub", "square", "abs", "neg"])
def test_integer_ops_like_torch(dev, rng, dt, tdt, op):
    lo = 0 if dt is mt.uint8 else -100
    a = rng.integers(lo, 100, 65)
    b = rng.integers(1, 9, 65) * (1 if dt is mt.uint8 else rng.choice([-1, 1], 65))
    if op in ("lshift", "rshift"):
        b = rng.integers(0, 12, 65)
    fns = {"floordiv": lambda x, y: x // y, "mod": lambda x, y: x % y, "fmod": lambda x, y: x.fmod(y),
           "div": lambda x, y: x / y, "truncdiv": lambda x, y: x.div(y, rounding_mode="trunc"),
           "and": lambda x, y: x & y, "or": lambda x, y: x | y, "xor": lambda x, y: x ^ y,
           "lshift": lambda x, y: x << y, "rshift": lambda x, y: x >> y, "invert": lambda x, y: ~x,
           "add": lambda x, y: x * 3 + y, "mul": lambda x, y: x * y * 7, "sub": lambda x, y: x - y - 100,
           "square": lambda x, y: x.square(), "abs": lambda x, y: x.abs(), "neg": lambda x, y: -x}
    fn = fns[op]
    got = fn(_t(a, dev, dt), _t(b, dev, dt))
    want = fn(torch.tensor(a, dtype=tdt), torch.tensor(b, dtype=tdt))
    assert got.dtype.name == str(want.dtype).replace("torch.", "")
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_integer_overflow_wraps(dev):
    assert (_t([127], dev, mt.int8) + 1).tolist() == [-128]
    assert (_t([250], dev, mt.uint8) + _t([10], dev, mt.uint8)).tolist() == [4]
    assert (_t([2 ** 31 - 1], dev, mt.int32) + 1).tolist() == [-2 ** 31]
    assert (_t([-2 ** 63], dev, mt.int64) // -1).tolist() == [-2 ** 63]  # wraps, no trap


def test_integer_division_by_zero_raises(dev):
    for fn in (lambda x, y: x // y, lambda x, y: x % y, lambda x, y: x.fmod(y)):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            fn(_t([1, 2], dev), _t([1, 0], dev))
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            fn(torch.tensor([1, 2]), torch.tensor([1, 0]))


def test_floor_divide_and_mod_with_numbers(dev):
    x = np.array([-7.5, -7.0, -0.5, 0.0, 3.0, 7.0], dtype=np.float32)
    tx = torch.tensor(x)
    for f in (lambda t: t // 2, lambda t: t % 2, lambda t: t % -2, lambda t: 5 // t, lambda t: 5 % t,
              lambda t: t // -0.75):
        np.testing.assert_allclose(f(_t(x, dev)).numpy(), f(tx).numpy(), rtol=1e-6)
    assert (_t([-7, 7], dev) // 2).tolist() == [-4, 3]
    assert (_t([-7, 7], dev) % 3).tolist() == [2, 1]
    assert (_t([7], dev) / 2).dtype is mt.float32


def test_shift_out_of_range_like_torch(dev):
    a = np.array([-8, 8, 1], dtype=np.int8)
    for s in (0, 7, 8, 10, 30):
        for f in (lambda x: x << s, lambda x: x >> s):
            assert f(_t(a, dev, mt.int8)).tolist() == f(torch.tensor(a)).tolist()


def test_bool_bitwise_and_logical(dev):
    p, q = [True, True, False, False], [True, False, True, False]
    tp, tq = torch.tensor(p), torch.tensor(q)
    for f in (lambda x, y: x & y, lambda x, y: x | y, lambda x, y: x ^ y, lambda x, y: ~x, lambda x, y: x & True,
              lambda x, y: False | x, lambda x, y: x.logical_xor(y), lambda x, y: x.logical_not()):
        got, want = f(_t(p, dev), _t(q, dev)), f(tp, tq)
        assert got.dtype is mt.bool and got.tolist() == want.tolist()
    x = np.array([0.0, -0.5, float("nan"), 2.0], dtype=np.float32)
    y = np.array([1.0, 0.0, 0.0, 3.0], dtype=np.float32)
    for name in ("logical_and", "logical_or", "logical_xor"):
        got = getattr(mt, name)(_t(x, dev), _t(y, dev))
        assert got.dtype is mt.bool
        assert got.tolist() == getattr(torch, name)(torch.tensor(x), torch.tensor(y)).tolist()
    assert mt.logical_not(_t(x, dev)).tolist() == torch.logical_not(torch.tensor(x)).tolist()


def test_inplace_dunders(dev):
    a = _t([5, -6, 7], dev)
    a //= 2
    a %= 3
    a <<= 2
    a |= 1
    a ^= 3
    a &= 6
    a >>= 1
    t = torch.tensor([5, -6, 7])
    t //= 2
    t %= 3
    t <<= 2
    t |= 1
    t ^= 3
    t &= 6
    t >>= 1
    assert a.tolist() == t.tolist()
    with pytest.raises(RuntimeError, match="can't be cast"):
        a.floor_divide_(2.5)


def test_bad_dtypes_refused(dev):
    f = _t([1.0, 2.0], dev)
    with pytest.raises(TypeError, match="invert"):
        ~f
    for g in (lambda: f & f, lambda: f | 1, lambda: f << 1, lambda: f >> f):
        with pytest.raises(NotImplementedError, match="not implemented for 'float32'"):
            g()
    with pytest.raises(NotImplementedError, match="frac"):
        mt.frac(_t([1], dev))
    with pytest.raises(ValueError, match="rounding_mode"):
        f.div(f, rounding_mode="nearest")


def test_clamp_tensor_bounds(dev, rng):
    a = rng.standard_normal((7, 5))
    lo = rng.standard_normal((5,)) - 0.5
    hi = lo + np.abs(rng.standard_normal((7, 1))) + 0.2
    a = np.where(np.abs(a - lo) < 1e-2, a + 0.05, a)
    a = np.where(np.abs(a - hi) < 1e-2, a + 0.05, a)
    check(dev, lambda x, l, h: mt.clamp(x, l, h), lambda x, l, h: np.minimum(np.maximum(x, l), h), a, lo, hi,
          noncontig=True)
    check(dev, lambda x, l: x.clamp(min=l), lambda x, l: np.maximum(x, l), a, lo)
    nan = np.array([float("nan"), 0.5, -3.0], dtype=np.float32)
    got = mt.clamp(_t(nan, dev), min=_t([0.0], dev), max=1.0).numpy()
    np.testing.assert_array_equal(got, torch.clamp(torch.tensor(nan), min=torch.tensor([0.0]), max=torch.tensor(1.0)).numpy())
    with pytest.raises(RuntimeError, match="At least one"):
        mt.clamp(_t([1.0], dev))


def test_nan_propagation_of_extremes(dev):
    x = np.array([float("nan"), 1.0, -1.0, float("nan")], dtype=np.float32)
    y = np.array([0.0, float("nan"), 2.0, float("nan")], dtype=np.float32)
    tx, ty = torch.tensor(x), torch.tensor(y)
    for f in (lambda a, b: a.clamp(-0.5, 0.5), lambda a, b: a.clamp(min=0.0), mt.relu if False else None):
        if f is None:
            continue
        np.testing.assert_array_equal(f(_t(x, dev), None).numpy(), f(tx, None).numpy())
    np.testing.assert_array_equal(mt.relu(_t(x, dev)).numpy(), torch.relu(tx).numpy())
    np.testing.assert_array_equal(mt.maximum(_t(x, dev), _t(y, dev)).numpy(), torch.maximum(tx, ty).numpy())
    np.testing.assert_array_equal(mt.minimum(_t(x, dev), _t(y, dev)).numpy(), torch.minimum(tx, ty).numpy())
    np.testing.assert_array_equal(_t(x, dev).max().numpy(), tx.max().numpy())
    np.testing.assert_array_equal(_t(y, dev).min().numpy(), ty.min().numpy())
    img = torch.tensor(np.array([[[[1.0, float("nan")], [0.0, 2.0]]]], dtype=np.float32))
    got = mt.nn.functional.max_pool2d(_t(img.numpy(), dev), 2).numpy()
    np.testing.assert_array_equal(got, torch.nn.functional.max_pool2d(img, 2).numpy())


def test_isclose_allclose(dev):
    a = np.array([1.0, float("nan"), float("inf"), -float("inf"), 1.0, 0.0], dtype=np.float32)
    b = np.array([1.0 + 1e-6, float("nan"), float("inf"), float("inf"), 1.1, 1e-9], dtype=np.float32)
    for kw in ({}, {"equal_nan": True}, {"rtol": 0.2}, {"atol": 0.0, "rtol": 0.0}):
        assert mt.isclose(_t(a, dev), _t(b, dev), **kw).tolist() == torch.isclose(torch.tensor(a), torch.tensor(b),
                                                                                  **kw).tolist()
        assert mt.allclose(_t(a[:1], dev), _t(b[:1], dev), **kw) == torch.allclose(torch.tensor(a[:1]),
                                                                                 torch.tensor(b[:1]), **kw)
    assert _t([1, 2], dev).isclose(_t([1, 3], dev)).tolist() == [True, False]
    for kw in ({"rtol": 0.0, "atol": 1.0}, {"rtol": 0.5, "atol": 0.0}, {}):
        ia, ib = [1, 2, 200, 7], [2, 4, 100, 7]
        assert mt.isclose(_t(ia, dev, mt.uint8), _t(ib, dev, mt.uint8), **kw).tolist() == \
            torch.isclose(torch.tensor(ia, dtype=torch.uint8), torch.tensor(ib, dtype=torch.uint8), **kw).tolist()


def test_methods_and_inplace_forms(dev):
    x = _t([0.25, 0.5, 0.75], dev)
    y = x.clone()
    y.log2_()
    np.testing.assert_allclose(y.numpy(), np.log2([0.25, 0.5, 0.75]), rtol=1e-6)
    np.testing.assert_allclose(x.atan2(x + 1).numpy(), np.arctan2([0.25, 0.5, 0.75], [1.25, 1.5, 1.75]), rtol=1e-6)
    assert x.signbit().dtype is mt.bool and x.isfinite().all().item()
