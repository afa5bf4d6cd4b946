"""Random numbers: the global seed, and the factories that draw on the device (rand, randn) or
from a NumPy generator seeded by it (randint, randperm)."""
import numpy as np

from . import backend, dtypes
from .tensor import _shape_args, empty, tensor


class _Seed:
    value = 0x5EED
    counter = 0


def manual_seed(seed):
    """Seed every random op (rand, randn, dropout, initialisation, shuffling)."""
    _Seed.value, _Seed.counter = int(seed), 0


def next_seed():
    """A fresh 32-bit seed for one random launch, derived from manual_seed's value."""
    _Seed.counter += 1
    return int(np.random.SeedSequence([_Seed.value & 0xFFFFFFFF, _Seed.counter]).generate_state(1)[0])


def _random(size, mode, lo, hi, dtype, device, requires_grad):
    t = empty(*_shape_args(size), dtype=dtypes.float32, device=device)
    backend.random_fill(t, mode, next_seed(), lo, hi)
    dt = dtypes.as_dtype(dtype) or dtypes.float32
    if dt is not dtypes.float32:
        t = t.to(dtype=dt)
    return t.requires_grad_(requires_grad) if requires_grad else t


def rand(*size, dtype=None, device=None, requires_grad=False):
    return _random(size, backend.RANDOM_UNIFORM, 0.0, 1.0, dtype, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    return _random(size, backend.RANDOM_NORMAL, 0.0, 1.0, dtype, device, requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None):
    if high is None:
        low, high = 0, low
    rng = np.random.default_rng(next_seed())
    return tensor(rng.integers(low, high, size=size), dtype=dtype or dtypes.int64, device=device)


def randperm(n, dtype=None, device=None):
    rng = np.random.default_rng(next_seed())
    return tensor(rng.permutation(n), dtype=dtype or dtypes.int64, device=device)
