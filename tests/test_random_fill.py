"""The device's random draws against a float64 NumPy reimplementation of elementwise.cl's counter
hash: every value, so the kernel's own log, cos and sqrt (and its Box-Muller) are checked, not just
the moments."""
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
    v = mt.zeros(8, 9, device=dev)[:, ::2]  # a strided view: filled through copy_
    v.uniform_(2.0, 3.0)
    assert ((v.numpy() >= 2) & (v.numpy() < 3)).all()
    p = mt.zeros(4, device=dev, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        p.normal_()
    with mt.no_grad():
        p.uniform_(-1, 1)
    assert p.requires_grad and (np.abs(p.detach().numpy()) <= 1).all()
