"""softmax / log_softmax over a dim, and the losses: cross_entropy and nll_loss (one fused kernel
each way, clkernels/softmax.cl) and mse_loss (written with the engine's own ops)."""
from .. import dtypes, layout
from ..autograd import Function
from ..launch import At, launch
from ..tensor import Tensor, empty
from .precision import FLOAT32, float32_kernels

__all__ = ["softmax", "log_softmax", "cross_entropy", "nll_loss", "mse_loss"]

_REDUCTIONS = {"none": 0, "sum": 1, "mean": 2}
CE_WG = 256  # work-group of the single-group loss reduction (clkernels/softmax.cl WG)


def _rows(shape, dim):
    """(rows, D, inner) for reducing a contiguous tensor of shape over dim."""
    D = shape[dim]
    inner = layout.numel(shape[dim + 1:])
    return layout.numel(shape) // max(D, 1) if D else 0, D, inner


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim, is_log):
        x = x.contiguous()
        rows, D, inner = _rows(x.shape, dim)
        dev = x.device
        y = empty(*x.shape, device=dev)
        if D:
            launch(dev, "softmax.cl", "softmax_fwd", (rows,), rows, D, inner, is_log, x, y)
        ctx.save_for_backward(y)
        ctx.geom = (rows, D, inner, is_log)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        rows, D, inner, is_log = ctx.geom
        g = g.contiguous()
        dev = g.device
        dx = empty(*y.shape, device=dev)
        if D:
            launch(dev, "softmax.cl", "softmax_bwd", (rows,), rows, D, inner, is_log, y, g, dx)
        return dx, None, None


def _softmax(x, dim, is_log, dtype, name):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} needs a tensor")
    if dtype is not None:
        x = x.to(dtype=dtype)
    if not x.dtype.is_floating:
        raise TypeError(f"{name} needs a floating point tensor, got {x.dtype!r}")
    if dim is None:  # PyTorch's legacy implicit dim
        dim = 0 if x.ndim in (0, 1, 3) else 1
    if x.ndim == 0:
        return Softmax.apply(x.reshape(1), 0, is_log).reshape(())
    dim = layout.normalize_dim(dim, x.ndim)
    if x.dtype is not dtypes.float32:
        return Softmax.apply(x.float(), dim, is_log).to(dtype=x.dtype)
    return Softmax.apply(x, dim, is_log)


@float32_kernels(FLOAT32)
def softmax(input, dim=None, dtype=None):
    """exp(x - max) / sum(exp(x - max)) along dim."""
    return _softmax(input, dim, 0, dtype, "softmax")


@float32_kernels(FLOAT32)
def log_softmax(input, dim=None, dtype=None):
    """x - logsumexp(x) along dim."""
    return _softmax(input, dim, 1, dtype, "log_softmax")


class CrossEntropy(Function):
    """Row losses of logits (or log-probabilities when is_logp) x (B, C) against labels (B,)."""

    @staticmethod
    def forward(ctx, x, labels, ignore_index, eps, is_logp, mode):
        B, C = x.shape
        dev = x.device
        row_loss, lse = empty(B, device=dev), empty(B, 2, device=dev)  # lse: (max, log-sum) per row
        stats, total = empty(2, device=dev), empty((), device=dev)
        launch(dev, "softmax.cl", "cross_entropy_fwd", (CE_WG,), B, C, ignore_index, eps, is_logp, mode, x, labels,
               row_loss, lse, stats, total, At(dev.error_buffer, 0), local=(CE_WG,), defines={"WG": CE_WG})
        ctx.save_for_backward(x, labels, lse, stats)
        ctx.args = (ignore_index, eps, is_logp, mode)
        return row_loss if mode == 0 else total

    @staticmethod
    def backward(ctx, g):
        x, labels, lse, stats = ctx.saved_tensors
        ignore_index, eps, is_logp, mode = ctx.args
        B, C = x.shape
        g = g.contiguous()
        dev = x.device
        dx = empty(B, C, device=dev)
        launch(dev, "softmax.cl", "cross_entropy_bwd", (B * C,), B, C, ignore_index, eps, is_logp, mode, x, labels,
               lse, stats, g, dx, defines={"WG": CE_WG})
        return dx, None, None, None, None, None


def _class_loss(input, target, weight, ignore_index, reduction, label_smoothing, is_logp, name):
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{name} needs tensors for input and target")
    if weight is not None:
        raise NotImplementedError(f"{name}: class weights are not implemented")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if target.dtype.is_floating:
        raise NotImplementedError(f"{name}: class-probability targets are not implemented; pass int64 labels "
                                  f"(got target of dtype {target.dtype!r})")
    if input.device != target.device:
        raise RuntimeError(f"{name}: input on {input.device.spec} and target on {target.device.spec}")
    if input.dtype is not dtypes.float32:
        raise TypeError(f"{name} supports float32 input, got {input.dtype!r}")
    if input.ndim == 1:  # (C,) with a 0-d target
        x, extra = input.unsqueeze(0), ()
        if target.ndim != 0:
            raise ValueError(f"{name}: input of shape {input.shape} needs a 0-d target, got {target.shape}")
        target = target.reshape(1)
    elif input.ndim >= 2:  # (N, C, d1, ...) -> (N * d1 * ..., C)
        extra = tuple(input.shape[2:])
        if tuple(target.shape) != (input.shape[0],) + extra:
            raise ValueError(f"{name}: input of shape {input.shape} needs a target of shape "
                             f"{(input.shape[0],) + extra}, got {target.shape}")
        x = input.permute(0, *range(2, input.ndim), 1).reshape(-1, input.shape[1]) if extra else input
        target = target.reshape(-1)
    else:
        raise ValueError(f"{name}: input must have a class dim, got shape {input.shape}")
    x = x.contiguous()
    if target.dtype is not dtypes.int64:
        target = target.long()
    target = target.contiguous()
    mode = _REDUCTIONS[reduction]
    out = CrossEntropy.apply(x, target, int(ignore_index), float(label_smoothing), is_logp, mode)
    if mode == 0:
        out = out.reshape((input.shape[0],) + extra) if input.ndim >= 2 else out.reshape(())
    return out


@float32_kernels(FLOAT32)
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """torch.nn.functional.cross_entropy from logits (N, C[, d...]) and int labels, in one fused kernel."""
    return _class_loss(input, target, weight, ignore_index, reduction, label_smoothing, 0, "cross_entropy")


@float32_kernels(FLOAT32)
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """torch.nn.functional.nll_loss from log-probabilities (N, C[, d...]) and int labels."""
    return _class_loss(input, target, weight, ignore_index, reduction, 0.0, 1, "nll_loss")


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """torch.nn.functional.mse_loss: mean (or sum, or none) of (input - target)**2."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"mse_loss: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if tuple(input.shape) != tuple(target.shape):
        layout.broadcast_shapes(input.shape, target.shape)  # raises naming both shapes if incompatible
    diff = input - target
    sq = diff * diff
    return sq if reduction == "none" else (sq.sum() if reduction == "sum" else sq.mean())
