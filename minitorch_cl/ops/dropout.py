"""Dropout: a counter-based random keep-mask drawn on the device, scaled by 1/(1-p). Element-wise
dropout stores no mask: its backward draws the same factors again from the saved seed."""
import warnings

from .. import backend
from ..autograd import Function
from ..random import next_seed
from ..tensor import empty

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d"]


class Dropout(Function):
    @staticmethod
    def forward(ctx, x, p):
        ctx.factors = (1.0 - p, 1.0 / (1.0 - p), next_seed())
        return backend.dropout_apply(x, *ctx.factors)

    @staticmethod
    def backward(ctx, g):
        return backend.dropout_apply(g, *ctx.factors), None


def dropout(x, p=0.5, training=True, inplace=False):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return Dropout.apply(x, p)


def _feature_dropout(x, p, training, spatial, name):
    """Zero whole channels: one keep/scale draw per (N, C) (or per C unbatched), broadcast over the
    `spatial` trailing dims. The mask is a constant, so autograd's multiply gives the gradient."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if x.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(f"{name} expects a {spatial + 1}-D (unbatched) or {spatial + 2}-D input, got {x.shape}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    lead = x.shape[:x.ndim - spatial]
    mask = empty(lead, device=x.device)
    backend.random_fill(mask, 2, next_seed(), 1.0 - p, 1.0 / (1.0 - p))
    return x * mask.reshape(lead + (1,) * spatial)


def dropout1d(x, p=0.5, training=True, inplace=False):
    """Channel-wise dropout of (N, C, L) or (C, L)."""
    return _feature_dropout(x, p, training, 1, "dropout1d")


def dropout2d(x, p=0.5, training=True, inplace=False):
    """Channel-wise dropout of (N, C, H, W); a 3-D input is read as (N, C, L), as torch 2 does."""
    if x.ndim == 3:
        warnings.warn("dropout2d: a 3-D input is read as (N, C, L), as PyTorch does; use dropout1d for that",
                      UserWarning, stacklevel=2)
        return _feature_dropout(x, p, training, 1, "dropout2d")
    return _feature_dropout(x, p, training, 2, "dropout2d")


def dropout3d(x, p=0.5, training=True, inplace=False):
    """Channel-wise dropout of (N, C, D, H, W) or (C, D, H, W)."""
    return _feature_dropout(x, p, training, 3, "dropout3d")
