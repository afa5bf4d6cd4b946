"""softmax / log_softmax over a dim, and the losses: cross_entropy and nll_loss (one fused kernel
each way, clkernels/softmax.cl) and mse_loss (written with the engine's own ops). Class weights and
class-probability targets are composed on top: the fused kernel's per-row losses (which check the
labels on the device) times the gathered weights, with PyTorch's weighted mean."""
from .. import dtypes, layout
from ..autograd import Function
from ..launch import At, launch
from ..tensor import Tensor, empty
from .elementwise import masked_fill
from .precision import FLOAT32, float32_kernels
from .shape import index_select

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
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if input.device != target.device:
        raise RuntimeError(f"{name}: input on {input.device.spec} and target on {target.device.spec}")
    C = input.shape[0 if input.ndim == 1 else 1] if input.ndim else 0
    if weight is not None:
        if not isinstance(weight, Tensor) or tuple(weight.shape) != (C,):
            raise RuntimeError(f"{name}: weight tensor should be defined either for all {C} classes or no "
                               f"classes but got weight tensor of shape: {getattr(weight, 'shape', weight)}")
        if weight.device != input.device:
            raise RuntimeError(f"{name}: weight on {weight.device.spec} and input on {input.device.spec}")
    if target.dtype.is_floating:
        if is_logp:
            raise RuntimeError(f"{name}: expected an integer target, got {target.dtype!r} of shape {target.shape}")
        return _prob_target(input, target, weight, reduction, label_smoothing, name)
    if weight is not None:
        return _weighted(input, target, weight, ignore_index, reduction, label_smoothing, is_logp, name)
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


def _class_view(weight, ndim):
    """weight (C,) shaped to broadcast over a class dim (dim 1, or 0 for an unbatched (C,) input)."""
    return weight.reshape((-1,) + (1,) * (ndim - 2)) if ndim >= 2 else weight


def _weighted(input, target, weight, ignore_index, reduction, eps, is_logp, name):
    """PyTorch's weighted NLL: sum of w[t] * loss over kept rows, 'mean' divided by the sum of those w[t];
    label smoothing adds eps/C * sum_c w_c * -logp_c, normalised the same way."""
    rows = _class_loss(input, target, None, ignore_index, "none", 0.0, is_logp, name)  # -logp[t], 0 if ignored
    keep = target != ignore_index
    safe = masked_fill(target.long(), keep.logical_not(), 0)
    wt = index_select(weight, 0, safe.reshape(-1)).reshape(tuple(safe.shape)) * keep.float()
    loss = rows * wt
    C = input.shape[0 if input.ndim == 1 else 1]
    if eps > 0:
        logp = input if is_logp else log_softmax(input, 0 if input.ndim == 1 else 1)
        smooth = -(logp * _class_view(weight, input.ndim)).sum(0 if input.ndim == 1 else 1) * keep.float()
        loss = loss * (1 - eps) + smooth * (eps / C)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / wt.sum()


def _prob_target(input, target, weight, reduction, eps, name):
    """Class probabilities as target: -sum_c w_c * t_c * log_softmax(x)_c per row; 'mean' over rows."""
    if tuple(target.shape) != tuple(input.shape):
        raise RuntimeError(f"{name}: a class-probability target must have the input's shape {input.shape}, "
                           f"got {target.shape}")
    if input.dtype is not dtypes.float32 or target.dtype is not dtypes.float32:
        raise TypeError(f"{name} supports float32, got input {input.dtype!r} and target {target.dtype!r}")
    dim = 0 if input.ndim == 1 else 1
    C = input.shape[dim]
    if eps > 0:
        target = target * (1 - eps) + eps / C
    prod = log_softmax(input, dim) * target
    if weight is not None:
        prod = prod * _class_view(weight, input.ndim)
    loss = -prod.sum(dim)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / max(input.numel() // max(C, 1), 1)


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
