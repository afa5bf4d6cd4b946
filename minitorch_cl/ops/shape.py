"""Views (reshape, permute, expand, slicing), copies (contiguous, cast, device moves), gathers,
cat and stack."""
import numpy as np

from .. import backend, dtypes, layout
from ..autograd import Function
from ..launch import At, launch
from ..shared_constants import ERR_INDEX_SELECT, ERR_INDEXING
from ..tensor import Tensor, empty, tensor, zeros
from .elementwise import where


def _view(x, shape, strides, offset=None):
    return Tensor(x.buffer, shape, strides, x.offset if offset is None else offset, x.dtype, x.device)


# ---- reshape ---------------------------------------------------------------------------------
class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape, copy_ok):
        ctx.in_shape = x.shape
        strides = layout.view_strides(x.shape, x.strides, shape)
        if strides is None:
            if not copy_ok:
                raise RuntimeError(f"view size {shape} is not compatible with input of shape {x.shape} and "
                                   f"strides {x.strides}; use .reshape(...) instead")
            x = backend.map1("OP_COPY", x)
            strides = layout.contiguous_strides(shape)
        return _view(x, shape, strides)

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.in_shape), None, None


def _size_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x, *shape):
    shape = layout.infer_shape(_size_args(shape), x.numel())
    return x if shape == x.shape else Reshape.apply(x, shape, True)


def view(x, *shape):
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int)):
        return x.to(dtype=shape[0])  # view(dtype) is not a reinterpret here; rarely used
    shape = layout.infer_shape(_size_args(shape), x.numel())
    return x if shape == x.shape else Reshape.apply(x, shape, False)


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return x.reshape(1)
    s, e = layout.normalize_dim(start_dim, x.ndim), layout.normalize_dim(end_dim, x.ndim)
    return x.reshape(x.shape[:s] + (layout.numel(x.shape[s:e + 1]),) + x.shape[e + 1:])


def unflatten(x, dim, sizes):
    d = layout.normalize_dim(dim, x.ndim)
    sizes = layout.infer_shape(sizes, x.shape[d])
    return x.reshape(x.shape[:d] + tuple(sizes) + x.shape[d + 1:])


def unsqueeze(x, dim):
    d = layout.normalize_dim(dim, x.ndim + 1)
    return x.reshape(x.shape[:d] + (1,) + x.shape[d:])


def squeeze(x, dim=None):
    if dim is None:
        return x.reshape(tuple(n for n in x.shape if n != 1))
    dims = layout.normalize_dims(dim, x.ndim) if x.ndim else ()
    return x.reshape(tuple(n for d, n in enumerate(x.shape) if not (d in dims and n == 1)))


def view_as(x, other):
    return view(x, other.shape)


def reshape_as(x, other):
    return reshape(x, other.shape)


# ---- permute / expand ------------------------------------------------------------------------
class Permute(Function):
    @staticmethod
    def forward(ctx, x, order):
        ctx.inverse = tuple(sorted(range(len(order)), key=order.__getitem__))
        return _view(x, tuple(x.shape[d] for d in order), tuple(x.strides[d] for d in order))

    @staticmethod
    def backward(ctx, g):
        return g.permute(*ctx.inverse), None


def permute(x, *order):
    order = _size_args(order)
    if len(order) != x.ndim or sorted(layout.normalize_dim(d, x.ndim) for d in order) != list(range(x.ndim)):
        raise ValueError(f"permute order {order} does not match a tensor of {x.ndim} dims")
    order = tuple(layout.normalize_dim(d, x.ndim) for d in order)
    return x if order == tuple(range(x.ndim)) else Permute.apply(x, order)


def transpose(x, dim0, dim1):
    order = list(range(x.ndim))
    a, b = layout.normalize_dim(dim0, x.ndim), layout.normalize_dim(dim1, x.ndim)
    order[a], order[b] = order[b], order[a]
    return permute(x, *order)


def t(x):
    return x if x.ndim < 2 else transpose(x, 0, 1)


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        return _view(x, shape, layout.broadcast_strides(x.shape, x.strides, shape))

    @staticmethod
    def backward(ctx, g):
        return g, None  # the engine sums a broadcast gradient back to the input's shape


def expand(x, *sizes):
    sizes = _size_args(sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"cannot expand a tensor of shape {x.shape} to {sizes}: fewer dims")
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    for i, n in enumerate(x.shape):
        if n != 1 and n != shape[lead + i]:
            raise ValueError(f"cannot expand a tensor of shape {x.shape} to {sizes}")
    return x if shape == x.shape else Expand.apply(x, shape)


def expand_as(x, other):
    return expand(x, *other.shape)


def repeat(x, *sizes):
    sizes = _size_args(sizes)
    if len(sizes) < x.ndim:
        raise RuntimeError(f"Number of dimensions of repeat dims {len(sizes)} can not be smaller than number of "
                           f"dimensions of tensor {x.ndim}")
    lead = (1,) * (len(sizes) - x.ndim) + x.shape
    tiled = x.reshape(tuple(v for n in lead for v in (1, n)))
    tiled = tiled.expand(*[v for s, n in zip(sizes, lead) for v in (s, n)])
    return tiled.reshape(tuple(s * n for s, n in zip(sizes, lead)))


# ---- copies --------------------------------------------------------------------------------
class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return backend.map1("OP_COPY", x)

    @staticmethod
    def backward(ctx, g):
        return g


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return backend.map1("OP_COPY", x, out_dtype=dtype)

    @staticmethod
    def backward(ctx, g):
        return (g.to(dtype=ctx.in_dtype) if ctx.in_dtype.is_floating else None), None


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, dev):
        ctx.src = x.device
        return tensor(x._to_host(), dtype=x.dtype, device=dev)

    @staticmethod
    def backward(ctx, g):
        return g.to(ctx.src), None


# ---- slicing and indexing ----------------------------------------------------------------
def _expand_index(x, index):
    if not isinstance(index, tuple):
        index = (index,)
    n_real = sum(1 for i in index if i is not None and i is not Ellipsis)
    if sum(1 for i in index if i is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if n_real > x.ndim:
        raise IndexError(f"too many indices for a tensor of shape {x.shape}: {len(index)} given")
    out = []
    for i in index:
        if i is Ellipsis:
            out.extend([slice(None)] * (x.ndim - n_real))
        else:
            out.append(i)
    if not any(i is Ellipsis for i in index):
        out.extend([slice(None)] * (x.ndim - n_real))
    return out


def _is_advanced(i):
    return isinstance(i, (Tensor, list, np.ndarray))


def _basic_view(x, index):
    """(shape, strides, offset) of x[index] for ints, slices and None."""
    shape, strides, offset, d = [], [], x.offset, 0
    for i in index:
        if i is None:
            shape.append(1)
            strides.append(0)
            continue
        size, stride = x.shape[d], x.strides[d]
        if isinstance(i, slice):
            start, stop, step = i.indices(size)
            if step <= 0:
                raise ValueError("slice steps must be positive")
            n = len(range(start, stop, step))
            offset += start * stride if n else 0
            shape.append(n)
            strides.append(stride * step)
        else:
            k = int(i)
            if not -size <= k < size:
                raise IndexError(f"index {k} is out of bounds for dimension {d} with size {size}")
            offset += (k % size) * stride
        d += 1
    return tuple(shape), tuple(strides), offset


class GetItem(Function):
    @staticmethod
    def forward(ctx, x, index):
        ctx.in_shape, ctx.index = x.shape, index
        shape, strides, offset = _basic_view(x, index)
        return _view(x, shape, strides, offset)

    @staticmethod
    def backward(ctx, g):
        gi = zeros(ctx.in_shape, dtype=g.dtype, device=g.device)
        shape, strides, offset = _basic_view(gi, ctx.index)
        backend.copy_(_view(gi, shape, strides, offset), g)
        return gi, None


def getitem(x, index):
    index = _expand_index(x, index)
    advanced = [k for k, i in enumerate(index) if _is_advanced(i)]
    if not advanced:
        return GetItem.apply(x, tuple(index))
    if len(advanced) > 1:
        raise NotImplementedError("only one tensor index per indexing expression is supported")
    k = advanced[0]
    idx = index[k]
    basic = [slice(None) if j == k else i for j, i in enumerate(index)]
    y = GetItem.apply(x, tuple(basic))
    dim = sum(1 for i in basic[:k] if not isinstance(i, int) or i is None)
    if isinstance(idx, Tensor) and idx.dtype is dtypes.bool_ or \
            (not isinstance(idx, Tensor) and np.asarray(idx).dtype == np.bool_):
        mask = idx._to_host() if isinstance(idx, Tensor) else np.asarray(idx)
        if mask.ndim != 1 or mask.shape[0] != y.shape[dim]:
            raise IndexError(f"boolean mask of shape {mask.shape} does not match dimension {dim} of {y.shape}")
        idx = np.nonzero(mask)[0]
    if not isinstance(idx, Tensor):
        idx = tensor(np.asarray(idx, dtype=np.int64), device=x.device)
    return index_select(y, dim, idx, _op=ERR_INDEXING)


def indexed_view(x, index):
    """x[index] as a plain view for basic indices (ints, slices, None, ...); None when a tensor
    index is involved."""
    index = _expand_index(x, index)
    if any(_is_advanced(i) for i in index):
        return None
    return _view(x, *_basic_view(x, tuple(index)))


class SetItem(Function):
    """x with x[index] = value (a tensor or a number) for basic indices, out of place."""

    @staticmethod
    def forward(ctx, x, value, index):
        out = backend.map1("OP_COPY", x)
        target = _view(out, *_basic_view(out, index))
        if isinstance(value, Tensor):
            backend.copy_(target, value)
        else:
            backend.fill_(target, value)
        ctx.index = index
        return out

    @staticmethod
    def backward(ctx, g):
        gx = backend.map1("OP_COPY", g)
        backend.fill_(_view(gx, *_basic_view(gx, ctx.index)), 0)  # overwritten values get no gradient
        gv = _view(g, *_basic_view(g, ctx.index)) if ctx.needs_input_grad[1] else None
        return gx, gv, None


def setitem(x, index, value):
    """x with x[index] = value, out of place (Tensor.__setitem__ writes it back into x)."""
    if isinstance(value, Tensor) and value.device != x.device:
        raise RuntimeError(f"assigning a tensor on {value.device.spec} into one on {x.device.spec}")
    expanded = _expand_index(x, index)
    if not any(_is_advanced(i) for i in expanded):
        return SetItem.apply(x, value, tuple(expanded))
    mask = index if isinstance(index, Tensor) else None
    if mask is not None and mask.dtype is dtypes.bool_ and tuple(mask.shape) == tuple(x.shape[:mask.ndim]):
        if isinstance(value, Tensor) and value.numel() != 1:
            raise NotImplementedError(f"x[mask] = value with a value of shape {value.shape} (masked_scatter); "
                                      "assign a number or a one-element tensor")
        if isinstance(value, Tensor):
            value = value.reshape(())
        cond = mask.reshape(tuple(mask.shape) + (1,) * (x.ndim - mask.ndim))
        return where(cond, value, x)
    raise NotImplementedError("assignment through an integer tensor index (index_put); use a boolean mask, "
                              "slices or where()")


class IndexSelect(Function):
    @staticmethod
    def forward(ctx, x, dim, idx, op):
        x = x.contiguous()
        idx = idx.to(dtype=dtypes.int64).contiguous()
        outer = layout.numel(x.shape[:dim])
        inner = layout.numel(x.shape[dim + 1:])
        out = empty(x.shape[:dim] + idx.shape + x.shape[dim + 1:], dtype=x.dtype, device=x.device)
        ctx.save_for_backward(idx)
        ctx.meta = (x.shape, dim, outer, inner)
        launch(x.device, "index.cl", "index_select", (out.numel(),), outer, idx.numel(), inner, x.shape[dim], op,
               x, idx, out, At(x.device.error_buffer, 0), defines=dtypes.cl_defines(x.device, T=x.dtype))
        return out

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        shape, dim, outer, inner = ctx.meta
        g = g.contiguous()
        gi = zeros(shape, dtype=g.dtype, device=g.device)
        launch(g.device, "index.cl", "index_add", (g.numel(),), outer, idx.numel(), inner, shape[dim], g, idx, gi)
        return gi, None, None, None


def index_select(x, dim, index, _op=ERR_INDEX_SELECT):
    """x's slices at `index` along dim. _op names the caller in a bad-index error (indexing, Embedding)."""
    if index.dtype.is_floating:
        raise IndexError(f"tensors used as indices must be integer or bool, got {index.dtype!r}")
    if index.device != x.device:
        raise RuntimeError(f"index on {index.device.spec} but tensor on {x.device.spec}")
    return IndexSelect.apply(x, layout.normalize_dim(dim, x.ndim), index, _op)


def narrow(x, dim, start, length):
    d = layout.normalize_dim(dim, x.ndim)
    index = [slice(None)] * x.ndim
    index[d] = slice(start, start + length)
    return getitem(x, tuple(index))


def split(x, split_size, dim=0):
    d = layout.normalize_dim(dim, x.ndim)
    n = x.shape[d]
    sizes = split_size if isinstance(split_size, (list, tuple)) else \
        [min(split_size, n - s) for s in range(0, n, split_size)] or [0]
    if sum(sizes) != n:
        raise ValueError(f"split sizes {sizes} do not add up to dimension {d} of size {n}")
    return Split.apply(x, d, tuple(sizes))


class Split(Function):
    """split/chunk: views of x along d. The backward writes each piece's gradient into its slice of
    one buffer, instead of a zero-filled full-size gradient per piece and their sum (q, k and v
    sliced out of one projection)."""

    @staticmethod
    def forward(ctx, x, d, sizes):
        ctx.shape, ctx.d, ctx.sizes = x.shape, d, sizes
        return tuple(_slice_view(x, d, start, n) for start, n in zip(_starts(sizes), sizes))

    @staticmethod
    def backward(ctx, *grads):
        gi = empty(ctx.shape, dtype=grads[0].dtype, device=grads[0].device)
        for g, start, n in zip(grads, _starts(ctx.sizes), ctx.sizes):
            backend.copy_(_slice_view(gi, ctx.d, start, n), g)
        return gi, None, None


def _starts(sizes):
    return [sum(sizes[:i]) for i in range(len(sizes))]


def _slice_view(x, d, start, n):
    shape = x.shape[:d] + (n,) + x.shape[d + 1:]
    return _view(x, shape, x.strides, x.offset + start * x.strides[d])


def chunk(x, chunks, dim=0):
    n = x.shape[layout.normalize_dim(dim, x.ndim)]
    return split(x, max(-(-n // chunks), 1), dim)


def unbind(x, dim=0):
    d = layout.normalize_dim(dim, x.ndim)
    return tuple(getitem(x, (slice(None),) * d + (i,)) for i in range(x.shape[d]))


# ---- cat / stack -----------------------------------------------------------------------------
class Cat(Function):
    @staticmethod
    def forward(ctx, dim, *xs):
        shape = list(xs[0].shape)
        shape[dim] = sum(x.shape[dim] for x in xs)
        dt = xs[0].dtype
        for x in xs[1:]:
            dt = dtypes.promote(dt, x.dtype)
        out = empty(tuple(shape), dtype=dt, device=xs[0].device)
        ctx.sizes = [x.shape[dim] for x in xs]
        ctx.dim = dim
        start = 0
        for x in xs:
            backend.copy_(narrow(out, dim, start, x.shape[dim]), x)
            start += x.shape[dim]
        return out

    @staticmethod
    def backward(ctx, g):
        return (None,) + split(g, ctx.sizes, ctx.dim)


def cat(tensors, dim=0):
    tensors = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)] or list(tensors)[:1]
    if not tensors:
        raise ValueError("cat() needs at least one tensor")
    ref = tensors[0]
    d = layout.normalize_dim(dim, ref.ndim)
    for t in tensors[1:]:
        if t.device != ref.device:
            raise RuntimeError(f"cat(): tensors on {ref.device.spec} and {t.device.spec}")
        if t.ndim != ref.ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, ref.shape)) if i != d):
            raise ValueError(f"cat(): shapes {ref.shape} and {t.shape} differ outside dimension {d}")
    return Cat.apply(d, *tensors)


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack() needs at least one tensor")
    for t in tensors[1:]:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack(): every tensor needs the same shape, got {tensors[0].shape} and {t.shape}")
    d = layout.normalize_dim(dim, tensors[0].ndim + 1)
    return cat([t.unsqueeze(d) for t in tensors], d)
