"""Creation and shape manipulation: eye, tril/triu, diag/diagonal, meshgrid, flip/roll/rot90, tile,
repeat_interleave, movedim, Tensor.unfold, F.unfold/F.fold (conv.cl's im2col/col2im) and F.pad.
Views where torch makes views (diagonal, unfold, movedim, meshgrid); the rest are copy kernels,
index_select gathers (whose gradient is index_add) or where() masks."""
import numbers

import numpy as np

from .. import backend, dtypes, layout
from ..autograd import Function
from ..tensor import arange, full, tensor, zeros
from .conv import _pair, col2im, im2col, output_size as conv_output_size
from .elementwise import where
from .shape import _view, cat, index_select, narrow, permute
from .precision import SAME, float32_kernels


# ---- movedim ---------------------------------------------------------------------------------
def movedim(x, source, destination):
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    if len(src) != len(dst):
        raise ValueError(f"movedim: source {tuple(src)} and destination {tuple(dst)} need the same length")
    nd = x.ndim
    src = [layout.normalize_dim(d, nd) for d in src]
    dst = [layout.normalize_dim(d, nd) for d in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in source {tuple(src)} or destination {tuple(dst)}")
    order = [None] * nd
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(d for d in range(nd) if d not in src)
    order = [o if o is not None else next(rest) for o in order]
    return permute(x, *order) if nd else x


moveaxis = movedim


# ---- diagonals -------------------------------------------------------------------------------
def _diag_view(x, offset, d1, d2):
    """(shape, strides, offset) of the diagonal view: the other dims, then the diagonal last."""
    n1, n2 = x.shape[d1], x.shape[d2]
    n = max(min(n1, n2 - offset), 0) if offset >= 0 else max(min(n1 + offset, n2), 0)
    start = x.offset + (offset * x.strides[d2] if offset >= 0 else -offset * x.strides[d1]) if n else x.offset
    keep = [d for d in range(x.ndim) if d not in (d1, d2)]
    shape = tuple(x.shape[d] for d in keep) + (n,)
    strides = tuple(x.strides[d] for d in keep) + (x.strides[d1] + x.strides[d2],)
    return shape, strides, start


class Diagonal(Function):
    @staticmethod
    def forward(ctx, x, offset, d1, d2):
        ctx.meta = (x.shape, offset, d1, d2)
        return _view(x, *_diag_view(x, offset, d1, d2))

    @staticmethod
    def backward(ctx, g):
        shape, offset, d1, d2 = ctx.meta
        gx = zeros(shape, dtype=g.dtype, device=g.device)
        backend.copy_(_view(gx, *_diag_view(gx, offset, d1, d2)), g)
        return gx, None, None, None


def diagonal(x, offset=0, dim1=0, dim2=1):
    d1, d2 = layout.normalize_dim(dim1, x.ndim), layout.normalize_dim(dim2, x.ndim)
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return Diagonal.apply(x, offset, d1, d2)


class DiagEmbed(Function):
    """A 1-D x on the offset-th diagonal of a square zero matrix."""

    @staticmethod
    def forward(ctx, x, offset):
        n = x.shape[0] + abs(offset)
        out = zeros((n, n), dtype=x.dtype, device=x.device)
        backend.copy_(_view(out, *_diag_view(out, offset, 0, 1)), x)
        ctx.offset = offset
        return out

    @staticmethod
    def backward(ctx, g):
        return _view(g, *_diag_view(g, ctx.offset, 0, 1)), None


def diag(x, diagonal=0):
    if x.ndim == 1:
        return DiagEmbed.apply(x, diagonal)
    if x.ndim == 2:
        return Diagonal.apply(x, diagonal, 0, 1).contiguous()
    raise RuntimeError(f"diag(): supports 1-D and 2-D tensors, got {x.ndim}-D of shape {tuple(x.shape)}")


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    m = n if m is None else m
    if n < 0 or m < 0:
        raise RuntimeError(f"eye: n and m must be greater or equal to 0, got {n}, {m}")
    out = zeros((n, m), dtype=dtype or dtypes.float32, device=device)
    if n and m:
        backend.fill_(_view(out, *_diag_view(out, 0, 0, 1)), 1)
    return out.requires_grad_(requires_grad) if requires_grad else out


def _tri(x, diagonal, lower):
    if x.ndim < 2:
        raise RuntimeError(f"{'tril' if lower else 'triu'}: input tensor must have at least 2 dimensions, "
                           f"got shape {tuple(x.shape)}")
    R, C = x.shape[-2:]
    rows = arange(R, device=x.device).reshape(R, 1)
    cols = arange(C, device=x.device).reshape(1, C)
    keep = (cols - rows <= diagonal) if lower else (cols - rows >= diagonal)
    return where(keep, x, zeros((), dtype=x.dtype, device=x.device))


def tril(x, diagonal=0):
    return _tri(x, diagonal, True)


def triu(x, diagonal=0):
    return _tri(x, diagonal, False)


# ---- grids, flips, rolls -----------------------------------------------------------------------
def meshgrid(*tensors, indexing="ij"):
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"meshgrid: indexing must be one of 'xy' or 'ij', but received: {indexing!r}")
    for t in tensors:
        if t.ndim > 1:
            raise RuntimeError(f"meshgrid expects 0-D or 1-D tensors, got shape {tuple(t.shape)}")
    ts = [t.reshape(-1) for t in tensors]
    swap = indexing == "xy" and len(ts) >= 2
    if swap:
        ts[0], ts[1] = ts[1], ts[0]
    shape = tuple(t.shape[0] for t in ts)
    out = [t.reshape(tuple(-1 if i == k else 1 for i in range(len(ts)))).expand(*shape) for k, t in enumerate(ts)]
    if swap:
        out[0], out[1] = out[1], out[0]
    return tuple(out)


class Flip(Function):
    @staticmethod
    def forward(ctx, x, dims):
        ctx.dims = dims
        offset, strides = x.offset, list(x.strides)
        for d in dims:
            if x.shape[d]:
                offset += (x.shape[d] - 1) * strides[d]
            strides[d] = -strides[d]
        return backend.map1("OP_COPY", _view(x, x.shape, tuple(strides), offset))  # torch's flip copies too

    @staticmethod
    def backward(ctx, g):
        return Flip.apply(g, ctx.dims), None


def flip(x, dims):
    dims = layout.normalize_dims(dims, x.ndim) if x.ndim else ()
    return Flip.apply(x, tuple(dims))


def fliplr(x):
    if x.ndim < 2:
        raise RuntimeError(f"fliplr: input must be >= 2-d, got shape {tuple(x.shape)}")
    return flip(x, (1,))


def flipud(x):
    if x.ndim < 1:
        raise RuntimeError("flipud: input must be >= 1-d")
    return flip(x, (0,))


def roll(x, shifts, dims=None):
    if dims is None:
        return roll(x.reshape(-1), shifts, 0).reshape(x.shape)
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"roll: shifts {tuple(shifts)} and dims {tuple(dims)} must align")
    for s, dim in zip(shifts, dims):
        d = layout.normalize_dim(dim, x.ndim)
        n = x.shape[d]
        s = s % n if n else 0
        if s:
            x = cat([narrow(x, d, n - s, s), narrow(x, d, 0, n - s)], d)
    return x


def rot90(x, k=1, dims=(0, 1)):
    if len(dims) != 2:
        raise RuntimeError(f"rot90: expected 2 dims, got {len(dims)}")
    d0, d1 = (layout.normalize_dim(d, x.ndim) for d in dims)
    if d0 == d1:
        raise RuntimeError(f"rot90: rotation dims must differ, got {tuple(dims)}")
    k %= 4
    if k == 1:
        return flip(x, (d1,)).transpose(d0, d1)
    if k == 2:
        return flip(x, (d0, d1))
    if k == 3:
        return flip(x, (d0,)).transpose(d0, d1)
    return x.clone()


# ---- repeats ---------------------------------------------------------------------------------
def tile(x, dims):
    dims = tuple(dims)
    if len(dims) < x.ndim:
        dims = (1,) * (x.ndim - len(dims)) + dims
    return x.repeat(*dims)


def repeat_interleave(x, repeats, dim=None, output_size=None):
    if dim is None:
        x, d = x.reshape(-1), 0
    else:
        d = layout.normalize_dim(dim, x.ndim)
    n = x.shape[d]
    if isinstance(repeats, numbers.Integral):
        counts = np.full(n, int(repeats), dtype=np.int64)
    else:  # a tensor of counts: its values set the output's size, so they are read here (torch syncs too)
        counts = repeats._to_host().astype(np.int64).reshape(-1) if hasattr(repeats, "_to_host") \
            else np.asarray(repeats, dtype=np.int64).reshape(-1)
        if counts.size == 1:
            counts = np.full(n, int(counts[0]), dtype=np.int64)
    if counts.size != n:
        raise RuntimeError(f"repeat_interleave: repeats must have the same size as input along dim {d}, "
                           f"got {counts.size} and {n}")
    if (counts < 0).any():
        raise RuntimeError("repeat_interleave: repeats can not be negative")
    index = tensor(np.repeat(np.arange(n, dtype=np.int64), counts), device=x.device)
    return index_select(x, d, index)


# ---- sliding windows -------------------------------------------------------------------------
class UnfoldView(Function):
    """Tensor.unfold(dim, size, step): windows as a new last dim, a view."""

    @staticmethod
    def forward(ctx, x, d, size, step):
        n = (x.shape[d] - size) // step + 1
        shape = x.shape[:d] + (n,) + x.shape[d + 1:] + (size,)
        strides = x.strides[:d] + (x.strides[d] * step,) + x.strides[d + 1:] + (x.strides[d],)
        ctx.meta = (x.shape, d, size, step, n)
        return _view(x, shape, strides)

    @staticmethod
    def backward(ctx, g):
        shape, d, size, step, n = ctx.meta
        gx = zeros(shape, dtype=g.dtype, device=g.device)
        # windows overlap when step < size: add one window tap (a strided view) at a time
        for k in range(size):
            tap = _view(gx, shape[:d] + (n,) + shape[d + 1:],
                        gx.strides[:d] + (gx.strides[d] * step,) + gx.strides[d + 1:], k * gx.strides[d])
            backend.map2("OP_ADD", tap, g[(Ellipsis, k)], out=tap)
        return gx, None, None, None


def unfold_view(x, dimension, size, step):
    d = layout.normalize_dim(dimension, max(x.ndim, 1))
    n = x.shape[d] if x.ndim else 1
    if size > n:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {n} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    if x.ndim == 0:
        return x.reshape(1).unsqueeze(-1) if size == 1 else x
    return UnfoldView.apply(x, d, size, step)


def _geometry(kernel_size, dilation, padding, stride):
    return _pair(kernel_size, "kernel_size"), _pair(dilation, "dilation"), _pair(padding, "padding"), \
        _pair(stride, "stride")


class Im2Col(Function):
    @staticmethod
    def forward(ctx, x, k, dil, pad, st):
        OH, OW = (conv_output_size(x.shape[2 + i], k[i], st[i], pad[i], dil[i]) for i in range(2))
        ctx.meta = (x.shape, k, dil, pad, st, OH, OW)
        return im2col(x, k[0], k[1], st, pad, dil, OH, OW)

    @staticmethod
    def backward(ctx, g):
        shape, k, dil, pad, st, OH, OW = ctx.meta
        return col2im(g.contiguous(), shape, k[0], k[1], st, pad, dil, OH, OW), None, None, None, None


class Col2Im(Function):
    @staticmethod
    def forward(ctx, col, shape, k, dil, pad, st, OH, OW):
        ctx.meta = (k, dil, pad, st, OH, OW)
        return col2im(col.contiguous(), shape, k[0], k[1], st, pad, dil, OH, OW)

    @staticmethod
    def backward(ctx, g):
        k, dil, pad, st, OH, OW = ctx.meta
        return (im2col(g, k[0], k[1], st, pad, dil, OH, OW),) + (None,) * 7


@float32_kernels(SAME)
def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """F.unfold (im2col): (N, C, H, W) -> (N, C*KH*KW, L)."""
    if input.ndim == 3:
        return unfold(input.unsqueeze(0), kernel_size, dilation, padding, stride).squeeze(0)
    if input.ndim != 4 or input.dtype is not dtypes.float32:
        raise RuntimeError(f"unfold: expected a 3-D or 4-D float32 input, got shape {tuple(input.shape)} "
                           f"and {input.dtype!r}")
    return Im2Col.apply(input, *_geometry(kernel_size, dilation, padding, stride))


@float32_kernels(SAME)
def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """F.fold (col2im): (N, C*KH*KW, L) -> (N, C, H, W), summing overlapping taps."""
    if input.ndim == 2:
        return fold(input.unsqueeze(0), output_size, kernel_size, dilation, padding, stride).squeeze(0)
    k, dil, pad, st = _geometry(kernel_size, dilation, padding, stride)
    H, W = _pair(output_size, "output_size")
    OH, OW = (conv_output_size(n, k[i], st[i], pad[i], dil[i]) for i, n in enumerate((H, W)))
    N, K, L = input.shape
    if K % (k[0] * k[1]) or L != OH * OW:
        raise RuntimeError(f"fold: input of shape {tuple(input.shape)} does not match kernel_size {k} and "
                           f"output_size {(H, W)} ({OH * OW} blocks expected)")
    return Col2Im.apply(input, (N, K // (k[0] * k[1]), H, W), k, dil, pad, st, OH, OW)



# ---- padding ---------------------------------------------------------------------------------
def _pad_index(n, lo, hi, mode):
    """Source index along one dim for the (lo, hi)-padded output (negative pads crop)."""
    j = np.arange(-lo, n + hi, dtype=np.int64)
    if mode == "reflect":
        if n < 2 and (lo > 0 or hi > 0):
            raise RuntimeError(f"reflect padding needs an input size of at least 2, got {n}")
        if lo >= n or hi >= n:
            raise RuntimeError(f"padding ({lo}, {hi}) should be smaller than the dimension's size {n} "
                               "for reflect mode")
        period = 2 * (n - 1)
        j = np.abs(j) % period
        j = np.where(j >= n, period - j, j)
    elif mode == "replicate":
        j = np.clip(j, 0, n - 1)
    else:  # circular
        if lo > n or hi > n:
            raise RuntimeError(f"padding ({lo}, {hi}) is larger than the dimension's size {n} for circular mode")
        j = j % n
    return j


def pad(input, pad, mode="constant", value=None):
    """F.pad: pad = (last_lo, last_hi, second_last_lo, ...); negative amounts crop."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise RuntimeError(f"padding length {len(pad)} must be even and at most twice the input's "
                           f"{input.ndim} dims")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(f"padding mode {mode!r}")
    x = input
    pairs = [(x.ndim - 1 - i, pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)]
    for d, lo, hi in pairs:  # negative amounts crop first (narrow views), as torch
        if lo < 0 or hi < 0:
            s, e = max(-lo, 0), x.shape[d] - max(-hi, 0)
            if e < s:
                raise RuntimeError(f"negative padding {(lo, hi)} crops dim {d} of size {x.shape[d]} below 0")
            x = narrow(x, d, s, e - s)
    grow = [(d, max(lo, 0), max(hi, 0)) for d, lo, hi in pairs]
    if mode == "constant":
        return ConstantPad.apply(x, tuple(grow), 0 if value is None else value)
    if value not in (None, 0):
        raise RuntimeError(f"padding mode {mode!r} doesn't take a value argument")
    for d, lo, hi in grow:  # any number of dims: one gather per padded dim (its gradient: index_add)
        if lo or hi:
            x = index_select(x, d, tensor(_pad_index(x.shape[d], lo, hi, mode), device=x.device))
    return x


class ConstantPad(Function):
    @staticmethod
    def forward(ctx, x, grow, value):
        shape = list(x.shape)
        index = [slice(None)] * x.ndim
        for d, lo, hi in grow:
            shape[d] += lo + hi
            index[d] = slice(lo, lo + x.shape[d])
        out = full(tuple(shape), value, dtype=x.dtype, device=x.device)
        ctx.index = tuple(index)
        inner = out[ctx.index]
        if inner.numel():
            backend.copy_(inner, x)
        return out

    @staticmethod
    def backward(ctx, g):
        return g[ctx.index], None, None
