"""layer_norm: one fused kernel per direction (clkernels/layernorm.cl), statistics saved for backward."""
import numpy as np

from .. import backend, dtypes, layout
from ..autograd import Function
from ..tensor import Tensor, empty

__all__ = ["layer_norm"]


def _config(dev):
    return dict(WG=1, RPG=1) if dev.is_cpu else dict(WG=128, RPG=1)


class _LayerNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, C, eps):
        x = x.contiguous()
        rows = x.numel() // C if C else 0
        dev = x.device
        cfg = _config(dev)
        y = empty(x.shape, device=dev)
        mean, rstd = empty(rows, device=dev), empty(rows, device=dev)
        if rows and C:
            dev.launch(dev.kernel("layernorm.cl", "layernorm_fwd", cfg), (cfg["WG"], rows), (cfg["WG"], cfg["RPG"]),
                       np.int32(rows), np.int32(C), np.float32(eps), np.int32(weight is not None),
                       np.int32(bias is not None), x.buffer, np.int32(x.offset),
                       (weight if weight is not None else x).buffer, (bias if bias is not None else x).buffer,
                       y.buffer, mean.buffer, rstd.buffer)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.sizes = (rows, C, bias is not None)
        return y

    @staticmethod
    def backward(ctx, g):
        x, weight, mean, rstd = ctx.saved_tensors
        rows, C, has_bias = ctx.sizes
        dev = x.device
        cfg = _config(dev)
        g = g.contiguous()
        if g.offset:
            g = g.clone()
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = empty(x.shape, device=dev)
            if rows and C:
                dev.launch(dev.kernel("layernorm.cl", "layernorm_bwd", cfg), (cfg["WG"], rows),
                           (cfg["WG"], cfg["RPG"]), np.int32(rows), np.int32(C), np.int32(weight is not None),
                           x.buffer, np.int32(x.offset), (weight if weight is not None else x).buffer, g.buffer,
                           mean.buffer, rstd.buffer, dx.buffer)
        if weight is not None and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            dw, db = empty(weight.shape, device=dev), empty(weight.shape, device=dev)
            if rows:
                dev.launch(dev.kernel("layernorm.cl", "layernorm_bwd_params", cfg), (C,), (backend.MAP_LOCAL,),
                           np.int32(rows), np.int32(C), x.buffer, np.int32(x.offset), g.buffer, mean.buffer,
                           rstd.buffer, dw.buffer, db.buffer)
            else:
                dw.zero_(), db.zero_()
        elif has_bias and ctx.needs_input_grad[2]:
            db = g.reshape(rows, C).sum(0).reshape(C)
        return dx, dw, (db if has_bias else None), None, None


def _flat(p, C):
    """p as a (C,) tensor at offset 0 (the kernels take parameters without offsets)."""
    p = p.reshape(C)
    return p if p.offset == 0 and p.is_contiguous() else p.clone()


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing normalized_shape dims, then scale by weight and shift by bias."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    if not isinstance(input, Tensor):
        raise TypeError(f"layer_norm expects a tensor, got {type(input).__name__}")
    if input.ndim < len(normalized_shape) or tuple(input.shape[input.ndim - len(normalized_shape):]) != normalized_shape:
        raise ValueError(f"layer_norm: input of shape {input.shape} does not end with "
                         f"normalized_shape {normalized_shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != normalized_shape:
            raise ValueError(f"layer_norm: {name} of shape {p.shape} does not match "
                             f"normalized_shape {normalized_shape}")
        if p is not None and p.device != input.device:
            raise RuntimeError(f"layer_norm: {name} is on {p.device.spec}, input on {input.device.spec}")
    if input.dtype is not dtypes.float32:
        raise TypeError(f"layer_norm supports float32, got {input.dtype!r}")
    C = layout.numel(normalized_shape)
    w = _flat(weight, C) if weight is not None else None
    b = _flat(bias, C) if bias is not None else None
    return _LayerNorm.apply(input, w, b, C, float(eps))
