"""Dropout: a counter-based random keep-mask generated on the device, scaled by 1/(1-p)."""
from .. import backend
from ..autograd import Function
from ..random import next_seed
from ..tensor import empty

__all__ = ["dropout"]


class Dropout(Function):
    @staticmethod
    def forward(ctx, x, p):
        mask = empty(x.shape, device=x.device)
        backend.random_fill(mask, backend.RANDOM_KEEP_MASK, next_seed(), 1.0 - p, 1.0 / (1.0 - p))
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g * mask, None


def dropout(x, p=0.5, training=True, inplace=False):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return Dropout.apply(x, p)
