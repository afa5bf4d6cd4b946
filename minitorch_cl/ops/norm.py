"""layer_norm: one fused kernel per direction (clkernels/layernorm.cl), statistics saved for backward."""
from .. import dtypes, layout
from ..autograd import Function
from ..launch import launch
from ..tensor import Tensor, empty
from .precision import FLOAT32, float32_kernels

__all__ = ["layer_norm"]


def _config(dev):
    return dict(WG=dev.profile.layernorm_wg, RPG=1)


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
            w, b = (weight if weight is not None else x), (bias if bias is not None else x)  # unread stand-ins
            launch(dev, "layernorm.cl", "layernorm_fwd", (cfg["WG"], rows), rows, C, eps, weight is not None,
                   bias is not None, x, w, b, y, mean, rstd, local=(cfg["WG"], cfg["RPG"]), defines=cfg)
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
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = empty(x.shape, device=dev)
            if rows and C:
                launch(dev, "layernorm.cl", "layernorm_bwd", (cfg["WG"], rows), rows, C, weight is not None, x,
                       weight if weight is not None else x, g, mean, rstd, dx, local=(cfg["WG"], cfg["RPG"]),
                       defines=cfg)
        if weight is not None and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            dw, db = empty(weight.shape, device=dev), empty(weight.shape, device=dev)
            if rows:
                per_item = 8 if cfg["WG"] == 1 else 1  # layernorm.cl's VEC: columns per work-item
                launch(dev, "layernorm.cl", "layernorm_bwd_params", (-(-C // per_item),), rows, C, x, g, mean, rstd,
                       dw, db, defines=cfg)
            else:
                dw.zero_(), db.zero_()
        elif has_bias and ctx.needs_input_grad[2]:
            db = g.reshape(rows, C).sum(0).reshape(C)
        return dx, dw, (db if has_bias else None), None, None


def _flat(p, C):
    """p as a contiguous (C,) tensor."""
    return p.reshape(C).contiguous()


@float32_kernels(FLOAT32)
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
