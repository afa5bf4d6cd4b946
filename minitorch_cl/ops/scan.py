"""Scans (cumsum, cumprod, cummax, cummin, logcumsumexp) and prod, on scan.cl and reduce.cl."""
from collections import namedtuple

from .. import backend, dtypes, layout
from ..autograd import Function
from ..launch import At, launch
from ..tensor import empty

CumResult = namedtuple("CumResult", ["values", "indices"])  # torch.return_types.cummax / cummin

_OPS = {"sum": "SCAN_SUM", "prod": "SCAN_PROD", "max": "SCAN_MAX", "min": "SCAN_MIN", "lse": "SCAN_LSE"}


def _rows(x, d):
    """x as a contiguous (outer, L, inner) block around dim d: (x, outer, L, inner)."""
    if x.ndim == 0:
        return x.contiguous(), 1, 1, 1
    x = x.contiguous()
    return x, layout.numel(x.shape[:d]), x.shape[d], layout.numel(x.shape[d + 1:])


def _acc(dt):
    acc = dtypes.compute_dtype(dt)
    return dtypes.int64 if acc is dtypes.bool_ else acc


def scan(op, x, d, out_dtype=None, reverse=False, exclusive=False):
    """The raw scan launcher: (values, indices or None)."""
    x, outer, L, inner = _rows(x, d)
    odt = out_dtype or x.dtype
    y = empty(x.shape, dtype=odt, device=x.device)
    # only max/min write indices; the others get y's buffer in that (unused) slot
    idx = empty(x.shape, dtype=dtypes.int64, device=x.device) if op in ("max", "min") else At(y.buffer, y.offset)
    if x.numel():
        dev = x.device
        wg = dev.profile.reduce_wg
        defines = dict(OP=_OPS[op], REVERSE=int(reverse), EXCLUSIVE=int(exclusive), WG=wg,
                       **dtypes.cl_defines(dev, T=x.dtype, ACC=_acc(x.dtype), TO=odt))
        rows = outer * inner
        if rows >= 4 * wg or L <= 4 * wg:  # many rows, or short ones: a work-item per row
            launch(dev, "scan.cl", "scan_fwd", (rows,), outer, L, inner, x, y, idx, defines=defines)
        else:  # few long rows: a work-group per row
            launch(dev, "scan.cl", "scan_group", (rows * wg,), outer, L, inner, x, y, idx, local=(wg,),
                   defines=defines)
    return y, (idx if op in ("max", "min") else None)


def _dim(x, dim):
    return layout.normalize_dim(dim, x.ndim) if x.ndim else (0 if dim in (0, -1) else layout.normalize_dim(dim, 1))


def _int_result(x, dtype):
    if dtype is not None:
        return dtypes.as_dtype(dtype)
    return x.dtype if x.dtype.is_floating else dtypes.int64  # torch: integral cumsum/cumprod is int64


class CumSum(Function):
    @staticmethod
    def forward(ctx, x, d, odt):
        ctx.d = d
        return scan("sum", x.to(dtype=odt), d)[0]

    @staticmethod
    def backward(ctx, g):
        return scan("sum", g, ctx.d, reverse=True)[0], None, None


def cumsum(x, dim, dtype=None):
    return CumSum.apply(x, _dim(x, dim), _int_result(x, dtype))


class CumProd(Function):
    @staticmethod
    def forward(ctx, x, d, odt):
        x = x.to(dtype=odt)
        y = scan("prod", x, d)[0]
        ctx.save_for_backward(x, y)
        ctx.d = d
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        x, outer, L, inner = _rows(x, ctx.d)
        g = g.contiguous()
        gx = empty(x.shape, dtype=g.dtype, device=g.device)
        if x.numel():
            launch(x.device, "scan.cl", "cumprod_bwd", (outer * inner,), outer, L, inner, x, y.contiguous(), g, gx,
                   defines=dtypes.cl_defines(x.device, T=g.dtype, ACC=dtypes.float32))
        return gx, None, None


def cumprod(x, dim, dtype=None):
    return CumProd.apply(x, _dim(x, dim), _int_result(x, dtype))


class CumExtreme(Function):
    @staticmethod
    def forward(ctx, x, d, op):
        y, idx = scan(op, x, d)
        ctx.save_for_backward(idx)
        ctx.d = d
        return y, idx

    @staticmethod
    def backward(ctx, g, _gi):
        (idx,) = ctx.saved_tensors
        _, outer, L, inner = _rows(idx, ctx.d)
        g = g.contiguous()
        gx = empty(g.shape, dtype=g.dtype, device=g.device)
        if g.numel():
            launch(g.device, "scan.cl", "scan_index_bwd", (outer * inner,), outer, L, inner, g, idx, gx,
                   defines=dtypes.cl_defines(g.device, T=g.dtype, ACC=dtypes.float32))
        return gx, None, None


def _cum_extreme(x, dim, op):
    if x.ndim == 0:
        values, indices = CumExtreme.apply(x.reshape(1), 0, op)
        return CumResult(values.reshape(()), indices.reshape(()))
    return CumResult(*CumExtreme.apply(x, _dim(x, dim), op))


def cummax(x, dim):
    return _cum_extreme(x, dim, "max")


def cummin(x, dim):
    return _cum_extreme(x, dim, "min")


class LogCumSumExp(Function):
    @staticmethod
    def forward(ctx, x, d):
        y = scan("lse", x, d)[0]
        ctx.save_for_backward(x, y)
        ctx.d = d
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        x, outer, L, inner = _rows(x, ctx.d)
        g = g.contiguous()
        gx = empty(x.shape, dtype=g.dtype, device=g.device)
        if x.numel():
            launch(x.device, "scan.cl", "logcumsumexp_bwd", (outer * inner,), outer, L, inner, x, y.contiguous(), g,
                   gx, defines=dtypes.cl_defines(x.device, T=g.dtype, ACC=dtypes.float32))
        return gx, None


def logcumsumexp(x, dim):
    if not x.dtype.is_floating:
        raise NotImplementedError(f"logcumsumexp(): not implemented for {x.dtype!r}; use a floating point input")
    return LogCumSumExp.apply(x, _dim(x, dim))


class Prod(Function):
    """prod over one dim (d) or all (d None); the gradient is g * (product of every other element),
    from an exclusive cumprod each way, so zeros get their exact gradient."""

    @staticmethod
    def forward(ctx, x, d, keepdim):
        ctx.save_for_backward(x)
        ctx.d, ctx.keepdim = d, keepdim
        dims = tuple(range(x.ndim)) if d is None else (d,)
        return backend.reduce("RED_PROD", x, dims, keepdim=keepdim)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        flat = x.reshape(-1) if ctx.d is None else x
        d = 0 if ctx.d is None else ctx.d
        others = scan("prod", flat, d, exclusive=True)[0] * scan("prod", flat, d, reverse=True, exclusive=True)[0]
        if ctx.d is None:
            return others.reshape(x.shape) * g.reshape(()), None, None
        if not ctx.keepdim:
            g = g.unsqueeze(d)
        return others * g, None, None


def prod(x, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = x.to(dtype=dtype)
    elif not x.dtype.is_floating:
        x = x.to(dtype=dtypes.int64)  # torch: integral prod is int64
    if dim is None:
        return Prod.apply(x, None, False)
    return Prod.apply(x, _dim(x, dim), keepdim)
