"""batch_norm and group_norm on one fused kernel per direction (clkernels/batchnorm.cl): statistics,
normalisation, affine map and the running-statistics update in one launch; dx, dw, db in one more.
group_norm is the same kernel over a (1, N*G, C/G*S) view, so each group is one 'channel'."""
from .. import dtypes, layout
from ..autocast_state import autocast_dtype
from ..autograd import Function
from ..grad_mode import no_grad
from ..launch import At, launch
from ..tensor import Tensor, empty
from .precision import FLOAT32, float32_kernels

__all__ = ["batch_norm", "group_norm"]


def _ncs(t):
    """t (N, C, *spatial) and its (N, C, S) element strides; copied only if the spatial dims are not
    one strided run (channels-last views and (N, C) inputs are read in place)."""
    spatial, [st] = layout.coalesce(t.shape[2:], [t.strides[2:]])
    if len(spatial) > 1:
        t = t.contiguous()
        st = (1,)
    return t, (t.strides[0], t.strides[1], st[0])


def _vec(p):
    return p if p is None else p.contiguous()


def _or(t, other):
    """t, or other in the argument slot of an absent optional tensor (the kernel never reads it)."""
    return other if t is None else t


class BatchNormFn(Function):
    """x (N, C, *spatial) -> y; running_mean / running_var (C,) and the int64 counter nbt are
    updated in place when given with use_batch."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, nbt, use_batch, momentum, eps):
        dev = x.device
        N, C = x.shape[:2]
        S = layout.numel(x.shape[2:])
        x, sx = _ncs(x)
        wg = dev.profile.batchnorm_wg
        y = empty(x.shape, device=dev)
        mean, rstd = empty(C, device=dev), empty(C, device=dev)
        update = use_batch and running_mean is not None
        launch(dev, "batchnorm.cl", "batchnorm_fwd", (wg, C), N, C, S, *sx, eps, momentum, use_batch, update,
               weight is not None, bias is not None, x, _or(weight, x), _or(bias, x), nbt if nbt is not None else At(x.buffer, 0), y, mean, rstd,
               _or(running_mean, mean), _or(running_var, rstd), local=(wg, 1),
               defines={"WG": wg, "UNIT": int(sx[2] == 1)})
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.use_batch = use_batch
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, rstd = ctx.saved_tensors
        need = ctx.needs_input_grad
        dev = x.device
        N, C = x.shape[:2]
        S = layout.numel(x.shape[2:])
        g, sg = _ncs(g)
        wg = dev.profile.batchnorm_wg
        dx = empty(x.shape, device=dev) if need[0] else None
        dw, db = empty(C, device=dev), empty(C, device=dev)
        sx = _ncs(x)[1]
        launch(dev, "batchnorm.cl", "batchnorm_bwd", (wg, C), N, C, S, *sx, *sg, ctx.use_batch,
               weight is not None, need[0], x, _or(weight, x), g, mean, rstd, _or(dx, dw), dw, db,
               local=(wg, 1), defines={"WG": wg, "UNIT": int(sx[2] == 1 and sg[2] == 1)})
        return (dx, dw if need[1] else None, db if need[2] else None) + (None,) * 6


def _check(name, x, *tensors):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} expects a tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{name} expects an input of shape (N, C, ...), got {x.shape}")
    for t in (x,) + tensors:
        if t is None:
            continue
        if t.device != x.device:
            raise RuntimeError(f"{name}: input on {x.device.spec} but a tensor of shape {t.shape} on {t.device.spec}")
        if t.dtype is not dtypes.float32 and t.ndim:
            raise TypeError(f"{name} supports float32, got {t.dtype!r} for a tensor of shape {t.shape}")


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5, num_batches_tracked=None):
    """torch.nn.functional.batch_norm over dim 1 of (N, C, ...). With training (or no running
    statistics) the batch's are used, and folded into running_mean / running_var (unbiased
    variance) with `momentum`; momentum=None means 1/num_batches_tracked (a cumulative average).
    float16 tensors (a model.half()) are computed in float32; half running statistics are updated
    through float32 copies written back, so the module's own buffers change."""
    tensors = (input, running_mean, running_var, weight, bias)
    other = (dtypes.float16, dtypes.float64)  # computed through float32 copies
    if any(t is not None and t.dtype in other for t in tensors):
        wide = [t.float() if t is not None and t.dtype in other else t for t in tensors]
        out = batch_norm(*wide[:3], *wide[3:], training=training, momentum=momentum, eps=eps,
                         num_batches_tracked=num_batches_tracked)
        with no_grad():
            for stat, wide_stat in ((running_mean, wide[1]), (running_var, wide[2])):
                if stat is not None and stat is not wide_stat:
                    stat.copy_(wide_stat)
        return out if input.dtype not in other or autocast_dtype() is not None else out.to(dtype=input.dtype)
    _check("batch_norm", input, running_mean, running_var, weight, bias)
    N, C = input.shape[:2]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"batch_norm: {name} of shape {t.shape} does not match the {C} channels of "
                             f"input {input.shape}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm needs both running_mean and running_var, or neither")
    use_batch = training or running_mean is None
    if use_batch and input.numel() // max(C, 1) <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
    update = use_batch and running_mean is not None
    if update and momentum is None and (num_batches_tracked is None or num_batches_tracked.dtype is not dtypes.int64):
        raise ValueError("batch_norm with momentum=None needs num_batches_tracked, an int64 tensor")
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        if update and (not t.is_contiguous() or t.requires_grad):
            raise ValueError(f"batch_norm updates {name} in place: it must be a contiguous tensor without grad")
    m = -1.0 if momentum is None else float(momentum)
    return BatchNormFn.apply(input, _vec(weight), _vec(bias), running_mean, running_var, num_batches_tracked,
                            bool(use_batch), m, float(eps))


@float32_kernels(FLOAT32)
def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """torch.nn.functional.group_norm: statistics over each group of C/num_groups channels (and all
    spatial positions) per sample, then a per-channel affine map."""
    _check("group_norm", input, weight, bias)
    N, C = input.shape[:2]
    if num_groups < 1 or C % num_groups:
        raise ValueError(f"group_norm: {C} channels do not split into {num_groups} groups")
    y = BatchNormFn.apply(input.reshape(1, N * num_groups, -1), None, None, None, None, None, True, 0.0,
                         float(eps)).reshape(input.shape)
    per_channel = (1, C) + (1,) * (input.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(per_channel)
    if bias is not None:
        y = y + bias.reshape(per_channel)
    return y
