"""Random numbers: the global seed, and the factories that draw on the device (rand, randn) or
from a NumPy generator seeded by it (randint, randperm)."""
import numpy as np

from . import backend, dtypes, layout
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


# ---- torch.normal / torch.bernoulli (draws on the device, no host round trip) ------------------
def normal(mean=0.0, std=1.0, size=None, dtype=None, device=None, requires_grad=False):
    """normal(mean, std, size) with numbers, or mean/std tensors (broadcast; the draw has their shape)."""
    tensors = [t for t in (mean, std) if hasattr(t, "shape")]
    if not tensors:
        if size is None:
            raise TypeError("normal() with number mean and std needs a size")
        t = empty(*_shape_args((size,) if isinstance(size, int) else (tuple(size),)), device=device)
        backend.random_fill(t, backend.RANDOM_NORMAL, next_seed(), float(mean), float(std))
        return _finish(t, dtype, requires_grad)
    from_shape = tensors[0].shape if len(tensors) == 1 else None
    shape = from_shape if from_shape is not None else layout.broadcast_shapes(mean.shape, std.shape)
    z = empty(*shape, device=tensors[0].device)
    backend.random_fill(z, backend.RANDOM_NORMAL, next_seed(), 0.0, 1.0)
    z = backend.map2("OP_MUL", z, std) if hasattr(std, "shape") else backend.map1("OP_MUL_S", z, alpha=std)
    z = backend.map2("OP_ADD", z, mean) if hasattr(mean, "shape") else backend.map1("OP_ADD_S", z, alpha=mean)
    return _finish(z, dtype or tensors[0].dtype, requires_grad)


def bernoulli(input, p=None, generator=None):
    """1 with probability input (or p), else 0, with input's shape and dtype."""
    u = empty(*input.shape, device=input.device)
    backend.random_fill(u, backend.RANDOM_UNIFORM, next_seed(), 0.0, 1.0)
    if p is not None:
        return backend.map1("OP_LT_S", u, out_dtype=input.dtype, alpha=float(p))
    return backend.map2("OP_LT", u, input, out_dtype=input.dtype, compute_dtype=dtypes.float32)


def _finish(t, dtype, requires_grad):
    dt = dtypes.as_dtype(dtype) or dtypes.float32
    if dt is not t.dtype:
        t = backend.map1("OP_COPY", t, out_dtype=dt)
    return t.requires_grad_(requires_grad) if requires_grad else t
