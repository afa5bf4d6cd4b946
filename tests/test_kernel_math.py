"""elementwise.cl's own math functions (it avoids PoCL's slow generic builtins): the random draws against
a float64 NumPy reimplementation of its counter hash, every value, so the kernel's log, cos and sqrt
(and its Box-Muller) are checked, not just the moments; float32 erf (erf, GELU) on a dense grid."""
import math

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import backend


def _mix32(x):
    x = x ^ (x >> 16); x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> 15); x = x * np.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _uniform24(seed, counter):
    with np.errstate(over="ignore"):
        s = _mix32(np.full_like(counter, seed))
        return _mix32((counter * np.uint32(0x9E3779B9)) ^ s) >> 8


def _reference(n, mode, seed, lo, hi):
    i = np.arange(n, dtype=np.uint32)
    u = (_uniform24(seed, 2 * i).astype(np.float64) + 0.5) / 2 ** 24
    u = u.astype(np.float32).astype(np.float64)  # the kernel's u is a float
    if mode == backend.RANDOM_UNIFORM:
        return lo + (hi - lo) * u
    if mode == backend.RANDOM_NORMAL:
        v = (_uniform24(seed, 2 * i + 1).astype(np.float64) + 0.5) / 2 ** 24
        return lo + hi * np.sqrt(-2.0 * np.log(u)) * np.cos(2 * np.pi * v)
    return np.where(u < lo, hi, 0.0)


@pytest.mark.parametrize("mode", [backend.RANDOM_UNIFORM, backend.RANDOM_NORMAL, backend.RANDOM_KEEP_MASK])
@pytest.mark.parametrize("n, seed", [(1, 0), (257, 12345), (1 << 20, 0xDEADBEEF)])
def test_random_fill_matches_the_hash(dev, mode, n, seed):
    lo, hi = {backend.RANDOM_UNIFORM: (-2.0, 3.0), backend.RANDOM_NORMAL: (0.5, 2.0),
              backend.RANDOM_KEEP_MASK: (0.7, 1 / 0.7)}[mode]
    out = backend.random_fill(mt.empty(n, device=dev), mode, seed, lo, hi).numpy().astype(np.float64)
    want = _reference(n, mode, seed, lo, hi)
    if mode == backend.RANDOM_KEEP_MASK:
        np.testing.assert_allclose(out, want, rtol=1e-7)
        return
    # float32 rounding of a few operations: a few ulp of the larger of the value and its scale
    tol = 4e-7 * (np.abs(want) + np.abs(lo) + hi)
    assert np.all(np.abs(out - want) <= tol), f"max excess {np.max(np.abs(out - want) - tol)}"


def test_normal_tails_and_moments(dev):
    """The extreme draws (u near 0: log's small-argument range; u near 1: sqrt of tiny values) stay finite."""
    out = backend.random_fill(mt.empty(1 << 21, device=dev), backend.RANDOM_NORMAL, 99, 0.0, 1.0).numpy()
    assert np.isfinite(out).all()
    assert abs(out.mean()) < 3e-3 and abs(out.std() - 1) < 3e-3
    assert np.abs(out).max() < 6.0  # sqrt(-2 log 2^-25) = 5.9: the largest a 24-bit uniform allows


def test_inplace_fills_take_one_pass_and_keep_autograd_rules(dev):
    w = mt.empty(33, 7, device=dev)
    assert w.normal_(1.0, 0.0).numpy().tolist() == np.ones((33, 7)).tolist()
    base = mt.zeros(6, 5, device=dev)
    base[2:4].normal_(3.0, 0.5)  # a contiguous view at an offset: filled in place, its neighbours untouched
    b = base.numpy()
    assert not b[:2].any() and not b[4:].any() and (np.abs(b[2:4] - 3.0) < 3.0).all() and b[2:4].std() > 0
    v = mt.zeros(8, 9, device=dev)[:, ::2]  # a strided view: filled through copy_
    v.uniform_(2.0, 3.0)
    assert ((v.numpy() >= 2) & (v.numpy() < 3)).all()
    p = mt.zeros(4, device=dev, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        p.normal_()
    with mt.no_grad():
        p.uniform_(-1, 1)
    assert p.requires_grad and (np.abs(p.detach().numpy()) <= 1).all()


def test_float32_erf_and_gelu_on_a_dense_grid(dev):
    """Every region of erf_f32 ([0, 1], [1, 2.5], [2.5, 4], beyond) and its edges, against math.erf."""
    x = np.concatenate([np.linspace(-6, 6, 240_001), np.nextafter(np.float32([1, 2.5, 4]), 0), [1, 2.5, 4],
                        [1e-30, -1e-30, 1e-8, 0.0]]).astype(np.float32)
    x64 = x.astype(np.float64)
    ref = np.array([math.erf(v) for v in x64])
    got = mt.erf(mt.tensor(x, device=dev)).numpy().astype(np.float64)
    assert np.abs(got - ref).max() <= 1.2e-7
    small = (np.abs(x) < 1) & (x != 0)
    assert (np.abs(got - ref)[small] / np.abs(ref[small])).max() <= 2e-7
    gelu = mt.nn.functional.gelu(mt.tensor(x, device=dev)).numpy().astype(np.float64)
    gref = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x64])
    assert (np.abs(gelu - gref) <= 1.5e-7 * np.maximum(np.abs(gref), 1) + 1e-30).all()


def test_float32_erf_special_values(dev):
    x = np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, 10.0, -10.0])
    got = mt.erf(mt.tensor(x, device=dev)).numpy()
    np.testing.assert_array_equal(got[[0, 2, 3, 5, 6]], [0, 1, -1, 1, -1])
    assert np.signbit(got[1]) and not np.signbit(got[0]) and np.isnan(got[4])
