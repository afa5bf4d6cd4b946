"""Reductions: sum, mean, max, min over one dim, several dims or all; argmax/argmin."""
import builtins
from collections import namedtuple

from .. import backend, dtypes, layout
from ..autograd import Function
from ..tensor import Tensor
from .elementwise import maximum, minimum, where

MaxResult = namedtuple("MaxResult", ["values", "indices"])


def _dims(x, dim):
    if dim is None or dim == ():
        return tuple(range(x.ndim))
    return layout.normalize_dims(dim, x.ndim)


def _keepdim_shape(shape, dims):
    return tuple(1 if d in dims else n for d, n in enumerate(shape))


class Sum(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim, scale):
        ctx.shape, ctx.dims, ctx.scale = x.shape, dims, scale
        out_dtype = None if x.dtype.is_floating or scale == 1.0 else dtypes.float32
        if out_dtype is not None:
            x = x.to(dtype=out_dtype)
        return backend.reduce("RED_SUM", x, dims, keepdim, scale=scale)

    @staticmethod
    def backward(ctx, g):
        g = g.reshape(_keepdim_shape(ctx.shape, ctx.dims))
        if ctx.scale != 1.0:
            g = g * ctx.scale
        return g.expand(*ctx.shape), None, None, None


def sum(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = x.to(dtype=dtype)
    return Sum.apply(x, _dims(x, dim), keepdim, 1.0)


def mean(x, dim=None, keepdim=False):
    if not x.dtype.is_floating:
        raise TypeError(f"mean() needs a floating point tensor, got {x.dtype!r}; use .float() first")
    dims = _dims(x, dim)
    count = layout.numel([x.shape[d] for d in dims])
    return Sum.apply(x, dims, keepdim, 1.0 / count if count else float("nan"))


def var(x, dim=None, unbiased=True, keepdim=False, correction=None):
    dims = _dims(x, dim)
    count = layout.numel([x.shape[d] for d in dims])
    ddof = (1 if unbiased else 0) if correction is None else correction
    centered = x - mean(x, dims, keepdim=True)
    return sum(centered * centered, dims, keepdim=keepdim) / builtins.max(count - ddof, 0)


def std(x, dim=None, unbiased=True, keepdim=False, correction=None):
    return var(x, dim, unbiased, keepdim, correction).sqrt()


class Extreme(Function):
    """max or min over dims; the gradient goes to the elements equal to the result."""

    @staticmethod
    def forward(ctx, x, dims, keepdim, op):
        out = backend.reduce(op, x, dims, keepdim=True)
        ctx.save_for_backward(x, out)
        ctx.dims = dims
        return out if keepdim else out.reshape(tuple(n for d, n in enumerate(x.shape) if d not in dims))

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        mask = (x == out).to(dtype=g.dtype)
        g = g.reshape(out.shape)
        return g * mask / mask.sum(dim=ctx.dims, keepdim=True), None, None, None


def _extreme(x, dim, keepdim, op, arg_op):
    if isinstance(dim, Tensor):
        return maximum(x, dim) if op == "RED_MAX" else minimum(x, dim)
    if dim is None:
        if x.numel() == 0:
            raise RuntimeError(f"{op[4:].lower()}() of an empty tensor of shape {x.shape}")
        return Extreme.apply(x, tuple(range(x.ndim)), False, op)
    values = Extreme.apply(x, _dims(x, dim), keepdim, op)
    indices = argext(x, dim, keepdim, arg_op)
    return MaxResult(values, indices)


def max(x, dim=None, keepdim=False):
    """max(x) -> value; max(x, dim) -> (values, indices); max(x, other) -> maximum."""
    return _extreme(x, dim, keepdim, "RED_MAX", "RED_ARGMAX")


def min(x, dim=None, keepdim=False):
    return _extreme(x, dim, keepdim, "RED_MIN", "RED_ARGMIN")


def amax(x, dim=None, keepdim=False):
    return Extreme.apply(x, _dims(x, dim), keepdim, "RED_MAX")


def amin(x, dim=None, keepdim=False):
    return Extreme.apply(x, _dims(x, dim), keepdim, "RED_MIN")


def argext(x, dim, keepdim, op):
    if dim is None:
        return backend.reduce(op, x.reshape(-1), (0,), keepdim=False).reshape(())
    d = layout.normalize_dim(dim, x.ndim)
    if x.ndim == 0:
        return backend.reduce(op, x.reshape(1), (0,), keepdim=False).reshape(())
    return backend.reduce(op, x, (d,), keepdim=keepdim)


def argmax(x, dim=None, keepdim=False):
    return argext(x, dim, keepdim, "RED_ARGMAX")


def argmin(x, dim=None, keepdim=False):
    return argext(x, dim, keepdim, "RED_ARGMIN")


def all(x, dim=None, keepdim=False):
    return sum((x == 0).to(dtype=dtypes.int32), dim, keepdim) == 0


def any(x, dim=None, keepdim=False):
    return sum((x != 0).to(dtype=dtypes.int32), dim, keepdim) > 0


def logsumexp(x, dim, keepdim=False):
    m = amax(x, dim, keepdim=True).detach()
    out = (x - m).exp().sum(dim, keepdim=True).log() + m
    return out if keepdim else out.squeeze(dim)


# ---- var_mean / std_mean, norms, count_nonzero ------------------------------------------------
def var_mean(x, dim=None, unbiased=True, keepdim=False, correction=None):
    return var(x, dim, unbiased, keepdim, correction), mean(x, _dims(x, dim), keepdim)


def std_mean(x, dim=None, unbiased=True, keepdim=False, correction=None):
    return std(x, dim, unbiased, keepdim, correction), mean(x, _dims(x, dim), keepdim)


def count_nonzero(x, dim=None):
    return sum(x != 0, dim)


def vector_norm(x, ord=2, dim=None, keepdim=False, dtype=None):
    """torch.linalg.vector_norm: sum(|x|^ord)^(1/ord); inf/-inf: max/min |x|; 0: count of nonzeros."""
    if not x.dtype.is_floating:
        raise RuntimeError(f"linalg.vector_norm: expected a floating point input, got {x.dtype!r}")
    if dtype is not None:
        x = x.to(dtype=dtype)
    dims = _dims(x, dim)
    a = x.abs()
    if ord == float("inf"):
        return amax(a, dims, keepdim)
    if ord == float("-inf"):
        return amin(a, dims, keepdim)
    if ord == 0:
        return sum((x != 0).to(dtype=x.dtype), dims, keepdim)
    if ord == 1:
        return sum(a, dims, keepdim)
    return PNorm.apply(x, dims, keepdim, float(ord))


class PNorm(Function):
    """sum(|x|^p)^(1/p); the gradient sign(x) (|x| / norm)^(p-1) is 0 where x or the norm is 0, as torch."""

    @staticmethod
    def forward(ctx, x, dims, keepdim, p):
        out = (sum(x * x, dims, True).sqrt() if p == 2 else sum(x.abs() ** p, dims, True) ** (1.0 / p))
        ctx.save_for_backward(x, out)
        ctx.p, ctx.dims = p, dims
        return out if keepdim else out.reshape(tuple(n for d, n in enumerate(x.shape) if d not in dims))

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        g = g.reshape(out.shape)
        zero = (out == 0) | (x == 0)
        if ctx.p == 2:
            grad = x / out * g
        else:
            grad = x.sign() * (x.abs() / out) ** (ctx.p - 1) * g
        return where(zero, 0.0, grad), None, None, None


def norm(x, p="fro", dim=None, keepdim=False, dtype=None):
    """torch.norm: 'fro' (and None) is the 2-norm over dim (all elements by default)."""
    if p in ("fro", None):
        p = 2
    if p == "nuc":
        raise NotImplementedError("norm(p='nuc') needs an SVD")
    return vector_norm(x, p, dim, keepdim, dtype)
