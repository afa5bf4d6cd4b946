"""Indexing with several tensors (x[i, j], x[:, i, j], boolean masks) and assignment through it
(index_put), and the gather/scatter family: gather, scatter(_add/_reduce), index_add/copy/fill,
masked_select/scatter, take(_along_dim), nonzero/argwhere/where(cond). Kernels in clkernels/index.cl;
every index read there is bounds-checked on the device and reported as IndexError at the next sync.

Writes through duplicate indices without accumulation (x[idx] = v, index_put, scatter, index_copy)
store one of the duplicates' values, which one is unspecified (PyTorch: undefined). nonzero and
everything built on it (boolean-mask indexing with a non-scalar value, masked_select,
masked_scatter) waits for the device once, to learn the count."""
import numpy as np

from .. import backend, dtypes, layout
from ..autograd import Function
from ..launch import At, launch
from ..shared_constants import (ERR_GATHER, ERR_INDEX_ADD, ERR_INDEX_COPY, ERR_INDEX_FILL, ERR_INDEX_PUT,
                                ERR_INDEXING, ERR_SCATTER, ERR_TAKE, MAXDIM)
from ..tensor import Tensor, empty, full, ones, tensor, zeros
from . import elementwise, shape

_ADD, _MUL, _MAX, _MIN = 1, 2, 3, 4  # index.cl's REDUCE


def _defines(dev, dt, reduce=0):
    if reduce and dt.itemsize == 8 and "cl_khr_int64_base_atomics" not in dev.cl_device.extensions:
        raise RuntimeError(f"accumulating int64 values needs cl_khr_int64_base_atomics, which {dev.name} lacks")
    return dict(dtypes.cl_defines(dev, T=dt), T_BITS=64 if dt.itemsize == 8 else 32, REDUCE=reduce)


def _work_dtype(dt):
    """The type an accumulating kernel runs in: its atomics work on 32- and 64-bit words."""
    return dtypes.float32 if dt is dtypes.float16 else dtypes.int32 if dt is dtypes.bool_ else dt


def _copy(x):
    return backend.map1("OP_COPY", x)


def _check_index_dtype(index, name=None, int32_ok=True):
    if index.dtype is dtypes.int64 or (int32_ok and index.dtype is dtypes.int32):
        return
    if name is None:
        raise IndexError(f"tensors used as indices must be long, int, byte or bool tensors, got {index.dtype!r}")
    raise RuntimeError(f"{name}(): Expected dtype int64 for index, got {index.dtype!r}")


# ---- advanced indexing: plan ------------------------------------------------------------------
def _as_index_tensor(i, dev):
    if isinstance(i, Tensor):
        return i if i.device == dev else i.to(dev)
    a = np.asarray(i)
    if a.dtype == np.bool_:
        return tensor(a, device=dev)
    if a.size == 0:
        a = a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise IndexError(f"tensors used as indices must be long, int, byte or bool tensors, got a list of {a.dtype}")
    return tensor(a.astype(np.int64), device=dev)


def _entries(x, index):
    """index as one entry per x dim (int, slice or int tensor) plus None entries; '...' expanded and
    each boolean mask replaced by its nonzero columns (one per dim it covers). None when it has no
    tensor index."""
    if not isinstance(index, tuple):
        index = (index,)
    items, advanced = [], False
    for i in index:
        if isinstance(i, (Tensor, list, np.ndarray)):
            i, advanced = _as_index_tensor(i, x.device), True
            if i.dtype is not dtypes.bool_:
                _check_index_dtype(i)
        elif isinstance(i, (bool, np.bool_)):
            raise NotImplementedError("Python bool indices: only one, with no tensor index, and not in an assignment")
        elif isinstance(i, (int, np.integer)):
            i = int(i)
        elif not (i is None or i is Ellipsis or isinstance(i, slice)):
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or bool tensors are "
                             f"valid indices, got {type(i).__name__}")
        items.append(i)
    if not advanced:
        return None
    n_ellipsis = sum(1 for i in items if i is Ellipsis)
    if n_ellipsis > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    width = [i.ndim if isinstance(i, Tensor) and i.dtype is dtypes.bool_ else 1 for i in items]
    used = sum(w for i, w in zip(items, width) if i is not None and i is not Ellipsis)
    if used > x.ndim:
        raise IndexError(f"too many indices for a tensor of shape {tuple(x.shape)}: {used} dims indexed")
    if not n_ellipsis:
        items.append(Ellipsis)
    out, d = [], 0
    for i in items:
        if i is Ellipsis:
            out.extend([slice(None)] * (x.ndim - used))
            d += x.ndim - used
        elif isinstance(i, Tensor) and i.dtype is dtypes.bool_:
            if i.ndim == 0:
                raise NotImplementedError("indexing with a 0-dim boolean tensor")
            if tuple(i.shape) != tuple(x.shape[d:d + i.ndim]):
                raise IndexError(f"The shape of the mask {list(i.shape)} at index {d} does not match the shape of "
                                 f"the indexed tensor {list(x.shape)} at index {d}")
            cols = nonzero(i)
            out.extend(cols[:, k] for k in range(i.ndim))
            d += i.ndim
        else:
            out.append(i)
            d += i is not None
    return out


def _plan(entries):
    """(basic index, y dims of the tensor indices, the tensor indices, where their result dims go) for
    x[entries]: y = x[basic] keeps a full dim for each tensor index; the broadcast index dims replace
    them in place when the tensor indices are adjacent, else they move to the front. As in PyTorch
    (not NumPy), int indices are applied first and take no part in that rule: x[0, :, i] is x[0][:, i]."""
    basic, dims, idx, positions, y_dim = [], [], [], [], 0
    for e in entries:
        basic.append(slice(None) if isinstance(e, Tensor) else e)
        if isinstance(e, Tensor):
            dims.append(y_dim)
            idx.append(e)
            positions.append(y_dim)
        y_dim += not isinstance(e, int)
    adjacent = positions == list(range(positions[0], positions[-1] + 1))
    return tuple(basic), tuple(dims), idx, dims[0] if adjacent else 0


def _stack_indices(idx, dev):
    """The index tensors broadcast together and stacked as one contiguous (K, B) int64 tensor."""
    try:
        b_shape = layout.broadcast_shapes(*[tuple(i.shape) for i in idx])
    except ValueError:
        raise IndexError("shape mismatch: indexing tensors could not be broadcast together with shapes " +
                         ", ".join(str(list(i.shape)) for i in idx)) from None
    stacked = empty((len(idx),) + b_shape, dtype=dtypes.int64, device=dev)
    for k, i in enumerate(idx):
        backend.copy_(stacked[k], i)
    return stacked.reshape(len(idx), -1), b_shape


class _Adv:
    """An advanced-indexing layout over a view y: its dims `dims` indexed by the stacked (K, B)
    indices, whose result dims go at `pos` among y's other (rest) dims."""

    def __init__(self, y_shape, dims, b_shape, pos):
        self.y_shape, self.dims, self.b_shape, self.pos = tuple(y_shape), dims, b_shape, pos
        rest = [n for d, n in enumerate(y_shape) if d not in dims]
        self.out_shape = tuple(rest[:pos]) + b_shape + tuple(rest[pos:])
        self.B, self.Q = layout.numel(b_shape), layout.numel(rest[pos:])
        if len(dims) > MAXDIM:
            raise IndexError(f"at most {MAXDIM} tensor indices")

    def args(self, y):
        rest = [d for d in range(y.ndim) if d not in self.dims]
        shape, (st,) = layout.coalesce([y.shape[d] for d in rest], [[y.strides[d] for d in rest]])
        return (layout.numel(self.out_shape), self.B, self.Q, *layout.layout_struct(shape, [st]),
                *layout.layout_struct([y.shape[d] for d in self.dims], [[y.strides[d] for d in self.dims]]))


def _adv_gather(y, adv, idx, op):
    out = empty(adv.out_shape, dtype=y.dtype, device=y.device)
    if out.numel():
        launch(y.device, "index.cl", "adv_gather", (out.numel(),), *adv.args(y), op, y, idx, out,
               At(y.device.error_buffer, 0), defines=_defines(y.device, y.dtype))
    return out


def _adv_put(y, adv, idx, v, op, accumulate):
    """y[indices] (= or +=) v in place; y any view, v broadcast to the indexed shape."""
    n = layout.numel(adv.out_shape)
    if n == 0:
        return
    work = _work_dtype(y.dtype) if accumulate else y.dtype
    target = y if work is y.dtype else y.to(dtype=work)
    v = v.to(dtype=work).expand(*adv.out_shape).contiguous()
    launch(y.device, "index.cl", "adv_put", (n,), *adv.args(target), op, v, idx, target,
           At(y.device.error_buffer, 0), defines=_defines(y.device, work, _ADD if accumulate else 0))
    if target is not y:
        backend.copy_(y, target)


class AdvIndex(Function):
    @staticmethod
    def forward(ctx, y, adv, idx, op):
        ctx.adv = adv
        ctx.save_for_backward(idx)
        return _adv_gather(y, adv, idx, op)

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        gy = zeros(ctx.adv.y_shape, dtype=g.dtype, device=g.device)
        _adv_put(gy, ctx.adv, idx, g, ERR_INDEXING, accumulate=True)
        return gy, None, None, None


def _bool_scalars(x, index):
    """x[..., True, ...] is x[..., None, ...]; False gives that new dim size 0 (views, no tensor index)."""
    out_dims, y_pos, falses = 0, [], []
    used = sum(1 for i in index if i is not None and i is not Ellipsis and not isinstance(i, (bool, np.bool_)))
    for i in index:
        if isinstance(i, (bool, np.bool_)) and not i:
            falses.append(out_dims)
        out_dims += x.ndim - used if i is Ellipsis else 0 if isinstance(i, (int, np.integer)) and \
            not isinstance(i, (bool, np.bool_)) else 1
    y = shape.getitem(x, tuple(None if isinstance(i, (bool, np.bool_)) else i for i in index))
    for d in falses:
        y = shape.narrow(y, d, 0, 0)
    return y


def getitem(x, index):
    """x[index]: basic indices are views; tensor indices (several, broadcast; boolean masks) gather."""
    items = index if isinstance(index, tuple) else (index,)
    if sum(1 for i in items if isinstance(i, (bool, np.bool_))) == 1 and \
            not any(isinstance(i, (Tensor, list, np.ndarray)) for i in items):
        return _bool_scalars(x, items)
    entries = _entries(x, index)
    if entries is None:
        return shape.getitem(x, index)
    basic, dims, idx, pos = _plan(entries)
    y = shape.GetItem.apply(x, basic)
    stacked, b_shape = _stack_indices(idx, x.device)
    return AdvIndex.apply(y, _Adv(y.shape, dims, b_shape, pos), stacked, ERR_INDEXING)


# ---- assignment through tensor indices ----------------------------------------------------------
class IndexPut(Function):
    """x with x[basic][indices] (= or +=) value, out of place."""

    @staticmethod
    def forward(ctx, x, value, basic, adv, idx, accumulate):
        out = _copy(x)
        _adv_put(shape._view(out, *shape._basic_view(out, basic)), adv, idx, value, ERR_INDEX_PUT, accumulate)
        ctx.basic, ctx.adv, ctx.accumulate = basic, adv, accumulate
        ctx.save_for_backward(idx)
        return out

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        gx = gv = None
        if ctx.needs_input_grad[0]:
            gx = g
            if not ctx.accumulate:  # overwritten values get no gradient
                gx = _copy(g)
                _adv_put(shape._view(gx, *shape._basic_view(gx, ctx.basic)), ctx.adv, idx,
                         zeros((), dtype=g.dtype, device=g.device), ERR_INDEX_PUT, False)
        if ctx.needs_input_grad[1]:
            gv = _adv_gather(shape._view(g, *shape._basic_view(g, ctx.basic)), ctx.adv, idx, ERR_INDEX_PUT)
        return gx, gv, None, None, None, None


def _value_tensor(x, value):
    if isinstance(value, Tensor):
        if value.device != x.device:
            raise RuntimeError(f"assigning a tensor on {value.device.spec} into one on {x.device.spec}")
        return value
    return full((), value, dtype=x.dtype, device=x.device)


def _put_plan(x, entries, value):
    """(basic index, layout, stacked indices, value) of x[entries] = value, the value's shape checked."""
    basic, dims, idx, pos = _plan(entries)
    y_shape = shape._basic_view(x, basic)[0]
    stacked, b_shape = _stack_indices(idx, x.device)
    adv = _Adv(y_shape, dims, b_shape, pos)
    value = _value_tensor(x, value)
    while value.ndim > len(adv.out_shape) and value.shape[0] == 1:
        value = value.reshape(value.shape[1:])
    try:
        fits = layout.broadcast_shapes(tuple(value.shape), adv.out_shape) == adv.out_shape
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeError(f"shape mismatch: value tensor of shape {list(value.shape)} cannot be broadcast to "
                           f"indexing result of shape {list(adv.out_shape)}")
    return basic, adv, stacked, value


def _index_put(x, entries, value, accumulate):
    basic, adv, stacked, value = _put_plan(x, entries, value)
    return IndexPut.apply(x, value, basic, adv, stacked, accumulate)


def setitem_(x, index, value):
    """x[index] = value written straight into x, without autograd (Tensor.__setitem__ when there is
    no graph to record); False when index has no tensor index (a plain view serves)."""
    entries = _entries(x, index)
    if entries is None:
        return False
    if _is_where(x, index, value):
        backend.copy_(x, shape.setitem(x, index, value))
        return True
    basic, adv, stacked, value = _put_plan(x, entries, value)
    if value.buffer is x.buffer:  # x[perm] = x: read a copy, not what the kernel is overwriting
        value = _copy(value)
    _adv_put(shape._view(x, *shape._basic_view(x, basic)), adv, stacked, value, ERR_INDEX_PUT, False)
    return True


def setitem(x, index, value):
    """x with x[index] = value, out of place (Tensor.__setitem__ writes it back into x)."""
    entries = _entries(x, index)
    if entries is None or _is_where(x, index, value):
        return shape.setitem(x, index, value)  # views, or where(mask, value, x): no host sync
    return _index_put(x, entries, value, False)


def _is_where(x, index, value):
    """x[mask] = number over x's leading dims: where(mask, value, x), which needs no nonzero."""
    return isinstance(index, Tensor) and index.dtype is dtypes.bool_ and \
        tuple(index.shape) == tuple(x.shape[:index.ndim]) and (not isinstance(value, Tensor) or value.numel() == 1)


def index_put(x, indices, values, accumulate=False):
    """x with x[indices] = values (accumulate: += , duplicates summed), out of place."""
    if not isinstance(indices, (tuple, list)):
        raise TypeError("index_put(): indices must be a tuple of tensors")
    for i in indices:
        if not isinstance(i, Tensor):
            raise TypeError(f"index_put(): indices must be tensors, got {type(i).__name__}")
    entries = _entries(x, tuple(indices))
    if entries is None:
        return x.clone()
    return _index_put(x, entries, values, accumulate)


# ---- gather / scatter along a dim --------------------------------------------------------------
def _dim_struct(index, *tensors):
    """Shape struct of index's shape, and each tensor's strides over it (a 0-dim tensor: 0)."""
    strides = [t.strides if t.ndim else (0,) * index.ndim for t in tensors]
    return layout.layout_struct(index.shape, strides)


def _gather(x, dim, index, op, wrap=0):
    out = empty(index.shape, dtype=x.dtype, device=x.device)
    if out.numel():
        sh, xs, st = _dim_struct(index, x, index)
        launch(x.device, "index.cl", "gather_dim", (out.numel(),), out.numel(), sh, xs, st, dim, x.shape[dim], wrap,
               op, x, index, out, At(x.device.error_buffer, 0), defines=_defines(x.device, x.dtype))
    return out


def _scatter(x, dim, index, src, reduce, op, wrap=0):
    """x[..., index, ...] (= or REDUCE=) src along dim, in place; src a tensor read at index's
    coordinates (a 0-dim one everywhere)."""
    n = index.numel()
    if n == 0:
        return x
    work = _work_dtype(x.dtype) if reduce else x.dtype
    target = x if work is x.dtype else x.to(dtype=work)
    src = src.to(dtype=work)
    sh, xs, st, ss = _dim_struct(index, target, index, src)
    launch(x.device, "index.cl", "scatter_dim", (n,), n, sh, xs, st, ss, dim, x.shape[dim], wrap, op,
           src, index, target, At(x.device.error_buffer, 0), defines=_defines(x.device, work, reduce))
    if target is not x:
        backend.copy_(x, target)
    return x


def _to_src_shape(g, src_shape):
    """A gradient for src from one over index's shape: src's elements past index's extent get 0."""
    if tuple(g.shape) == tuple(src_shape) or not src_shape:
        return g
    out = zeros(src_shape, dtype=g.dtype, device=g.device)
    backend.copy_(shape.getitem(out, tuple(slice(0, n) for n in g.shape)), g)
    return out


class Gather(Function):
    @staticmethod
    def forward(ctx, x, dim, index, op, wrap):
        ctx.meta = (x.shape, dim, op, wrap)
        ctx.save_for_backward(index)
        return _gather(x, dim, index, op, wrap)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        x_shape, dim, op, wrap = ctx.meta
        gx = zeros(x_shape, dtype=g.dtype, device=g.device)
        return _scatter(gx, dim, index, g, _ADD, op, wrap), None, None, None, None


def _check_dim_shapes(name, x, dim, index, src=None):
    """PyTorch's rule: index has x's (and a tensor src's) number of dims and is no larger than src in
    any dim and than x outside dim."""
    has_src = src is not None and src.ndim > 0
    if index.ndim != x.ndim and not (index.ndim <= 1 and x.ndim <= 1):
        raise RuntimeError(f"{name}(): Index tensor must have the same number of dimensions as input tensor "
                           f"(index {list(index.shape)}, input {list(x.shape)})")
    if has_src and src.ndim != index.ndim:
        raise RuntimeError(f"{name}(): Index tensor must have the same number of dimensions as src tensor "
                           f"(index {list(index.shape)}, src {list(src.shape)})")
    for d in range(index.ndim):
        if (d != dim and index.shape[d] > x.shape[d]) or (has_src and index.shape[d] > src.shape[d]):
            also = f" and no larger than src {list(src.shape)}" if has_src else ""
            raise RuntimeError(f"{name}(): Size does not match at dimension {d}: expected index {list(index.shape)} "
                               f"to be no larger than self {list(x.shape)} apart from dimension {dim}{also}")


def _dim_args(name, x, dim, index):
    if not isinstance(index, Tensor):
        raise TypeError(f"{name}(): index must be a tensor, got {type(index).__name__}")
    _check_index_dtype(index, name, int32_ok=False)
    if index.device != x.device:
        raise RuntimeError(f"{name}(): index on {index.device.spec} but input on {x.device.spec}")
    return layout.normalize_dim(dim, max(x.ndim, 1))


def _as_1d(t):
    return t.reshape(1) if t.ndim == 0 else t


def gather(x, dim, index, sparse_grad=False):
    """out[i][j] = x[index[i][j]][j] (dim=0), out[i][j] = x[i][index[i][j]] (dim=1), ..."""
    dim = _dim_args("gather", x, dim, index)
    _check_dim_shapes("gather", x, dim, index)
    out = Gather.apply(_as_1d(x), dim, _as_1d(index), ERR_GATHER, 0)
    return out.reshape(index.shape)


class Scatter(Function):
    """x with x[..., index, ...] = src (or a number) along dim, out of place."""

    @staticmethod
    def forward(ctx, x, src, dim, index):
        ctx.dim, ctx.src_shape = dim, src.shape
        ctx.save_for_backward(index)
        return _scatter(_copy(x), dim, index, src, 0, ERR_SCATTER)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        gx = _scatter(_copy(g), ctx.dim, index, zeros((), dtype=g.dtype, device=g.device), 0, ERR_SCATTER) \
            if ctx.needs_input_grad[0] else None
        gs = _to_src_shape(_gather(g, ctx.dim, index, ERR_SCATTER), ctx.src_shape) if ctx.needs_input_grad[1] else None
        return gx, gs, None, None


def _src_tensor(name, x, src):
    if isinstance(src, Tensor):
        if src.dtype is not x.dtype:
            raise RuntimeError(f"{name}(): Expected self.dtype to be equal to src.dtype, got {x.dtype!r} and "
                               f"{src.dtype!r}")
        return src
    return full((), src, dtype=x.dtype, device=x.device)


def scatter(x, dim, index, src=None, value=None, reduce=None):
    """x with x[..., index[i][j], ...] = src[i][j] (or value) along dim; duplicate indices: one wins."""
    src = value if src is None else src
    if reduce is not None:
        modes = {"add": "sum", "multiply": "prod"}
        if reduce not in modes:
            raise RuntimeError(f"scatter(): reduce argument must be either add or multiply, got {reduce!r}")
        src = src if isinstance(src, Tensor) else full(index.shape, src, dtype=x.dtype, device=x.device)
        return scatter_reduce(x, dim, index, src.expand(*index.shape) if src.ndim == 0 else src, modes[reduce])
    dim = _dim_args("scatter", x, dim, index)
    src = _src_tensor("scatter", x, src)
    _check_dim_shapes("scatter", x, dim, index, src)
    out = Scatter.apply(_as_1d(x), src if src.ndim == 0 else _as_1d(src), dim, _as_1d(index))
    return out.reshape(x.shape)


def scatter_add(x, dim, index, src):
    return scatter_reduce(x, dim, index, src, "sum")


def _identity(reduce, dt):
    """What a reduction starts from where include_self=False."""
    if reduce in ("sum", "mean", "prod"):
        return int(reduce == "prod")
    if dt.is_floating:
        return float("-inf") if reduce == "amax" else float("inf")
    return int(np.iinfo(dt.np).min if reduce == "amax" else np.iinfo(dt.np).max)


def _scatter_reduce_raw(x, dim, index, src, reduce, include_self):
    out = _copy(x)
    if not include_self:
        _scatter(out, dim, index, full((), _identity(reduce, x.dtype), dtype=x.dtype, device=x.device), 0, ERR_SCATTER)
    mode = {"sum": _ADD, "mean": _ADD, "prod": _MUL, "amax": _MAX, "amin": _MIN}[reduce]
    _scatter(out, dim, index, src, mode, ERR_SCATTER)
    if reduce == "mean":
        count = _mean_count(x, dim, index, include_self)
        out = out / count if x.dtype.is_floating else _floor_divide(out, count)
    return out


def _floor_divide(a, count):
    """a // count for an integer a and a float32 count >= 1 holding integers (PyTorch's integer mean):
    the float quotient truncated, then corrected by one either way with integer products."""
    c = count.to(dtype=a.dtype)
    q = (a.to(dtype=dtypes.float32) / count).to(dtype=a.dtype)
    q = q - (q * c > a).to(dtype=a.dtype)
    return q + ((q + 1) * c <= a).to(dtype=a.dtype)


def _mean_count(x, dim, index, include_self):
    """How many values each output of a mean scatter_reduce averages (at least 1: an output nothing
    was scattered to keeps self)."""
    count = (ones if include_self else zeros)(x.shape, dtype=dtypes.float32, device=x.device)
    _scatter(count, dim, index, ones((), dtype=dtypes.float32, device=x.device), _ADD, ERR_SCATTER)
    return elementwise.where(count == 0, 1.0, count)


class ScatterReduce(Function):
    @staticmethod
    def forward(ctx, x, src, dim, index, reduce, include_self):
        out = _scatter_reduce_raw(x, dim, index, src, reduce, include_self)
        ctx.meta = (dim, reduce, include_self)
        ctx.save_for_backward(x, src, index, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, full_src, index, out = ctx.saved_tensors
        dim, reduce, include_self = ctx.meta
        src = shape.getitem(full_src, tuple(slice(0, n) for n in index.shape))  # the part scattered
        if reduce == "sum":
            gx, gs = g, _gather(g, dim, index, ERR_SCATTER)
        elif reduce == "mean":
            gx = g / _mean_count(x, dim, index, include_self)
            gs = _gather(gx, dim, index, ERR_SCATTER)
        elif reduce == "prod":
            gx, gs = _prod_grads(g, x, src, dim, index, out, include_self)
        else:  # amax / amin: shared evenly among the values equal to the result
            picked = _gather(out, dim, index, ERR_SCATTER)
            x_is = (x == out).to(dtype=g.dtype)
            if not include_self:
                x_is = _scatter(_copy(x_is), dim, index, zeros((), dtype=g.dtype, device=g.device), 0, ERR_SCATTER)
            src_is = (src == picked).to(dtype=g.dtype)
            share = g / _scatter(_copy(x_is), dim, index, src_is, _ADD, ERR_SCATTER)
            gx, gs = x_is * share, src_is * _gather(share, dim, index, ERR_SCATTER)
        if not include_self and reduce != "amax" and reduce != "amin":
            gx = _scatter(_copy(gx), dim, index, zeros((), dtype=g.dtype, device=g.device), 0, ERR_SCATTER)
        return gx, _to_src_shape(gs, full_src.shape), None, None, None, None


def _prod_grads(g, x, src, dim, index, out, include_self):
    """PyTorch's scatter_reduce prod gradient, exact where a single factor is 0."""
    masked_x = elementwise.where(x == 0, 1.0, x)
    gx = g * _scatter_reduce_raw(masked_x, dim, index, src, "prod", include_self) / masked_x
    src_zero = src == 0
    zeros_per_slot = _scatter(zeros(x.shape, dtype=g.dtype, device=g.device), dim, index,
                              src_zero.to(dtype=g.dtype), _ADD, ERR_SCATTER)
    single_zero = src_zero & (_gather(zeros_per_slot, dim, index, ERR_SCATTER) == 1)
    masked_src_out = _scatter_reduce_raw(x, dim, index, elementwise.where(single_zero, 1.0, src), "prod", include_self)
    gs = elementwise.where(single_zero, _gather(g * masked_src_out, dim, index, ERR_SCATTER),
                           _gather(g * out, dim, index, ERR_SCATTER) / elementwise.where(src_zero, 1.0, src))
    return gx, gs


def scatter_reduce(x, dim, index, src, reduce, include_self=True):
    """x with src reduced into it along dim at index: reduce = sum, prod, mean, amax or amin."""
    if reduce not in ("sum", "prod", "mean", "amax", "amin"):
        raise RuntimeError(f"scatter_reduce(): reduce argument must be one of sum, prod, mean, amax, amin, "
                           f"got {reduce!r}")
    dim = _dim_args("scatter_reduce", x, dim, index)
    if not isinstance(src, Tensor):
        raise TypeError("scatter_reduce(): src must be a tensor")
    src = _src_tensor("scatter_reduce", x, src)
    _check_dim_shapes("scatter_reduce", x, dim, index, src)
    out = ScatterReduce.apply(_as_1d(x), _as_1d(src), dim, _as_1d(index), reduce, include_self)
    return out.reshape(x.shape)


# ---- index_add / index_copy / index_fill: a 1-D index along dim ----------------------------------
def _along(name, x, dim, index, source_shape=None):
    """dim normalised and index viewed (no copy) as the (source-shaped) index of a scatter along dim."""
    if not isinstance(index, Tensor):
        raise TypeError(f"{name}(): index must be a tensor, got {type(index).__name__}")
    if index.dtype not in (dtypes.int64, dtypes.int32):
        raise RuntimeError(f"{name}(): Expected dtype int32/int64 for index, got {index.dtype!r}")
    if index.ndim > 1:
        raise IndexError(f"{name}(): Index is supposed to be a vector, got shape {list(index.shape)}")
    d = layout.normalize_dim(dim, max(x.ndim, 1))
    xs = tuple(x.shape) or (1,)
    n = index.numel()
    shape_ = xs[:d] + (n,) + xs[d + 1:]
    if source_shape is not None and tuple(source_shape or (1,)) != shape_:
        raise RuntimeError(f"{name}(): source of shape {list(source_shape)} does not match self of shape "
                           f"{list(x.shape)} with dimension {d} of size {n} (the index's length): expected "
                           f"{list(shape_)}")
    idx = index.to(dtype=dtypes.int64).reshape((1,) * d + (n,) + (1,) * (len(xs) - d - 1)).expand(*shape_)
    return d, idx


class IndexAdd(Function):
    @staticmethod
    def forward(ctx, x, source, dim, index, op, alpha):
        ctx.dim, ctx.alpha = dim, alpha
        ctx.save_for_backward(index)
        src = source if alpha == 1 else source * alpha
        return _scatter(_copy(x), dim, index, src, _ADD, op)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        gs = _gather(g, ctx.dim, index, ERR_INDEX_ADD) if ctx.needs_input_grad[1] else None
        return g, (gs if ctx.alpha == 1 or gs is None else gs * ctx.alpha), None, None, None, None


def index_add(x, dim, index, source, alpha=1):
    """x with source's slices added at index along dim (duplicates sum)."""
    source = _src_tensor("index_add", x, source)
    d, idx = _along("index_add", x, dim, index, source.shape)
    return IndexAdd.apply(_as_1d(x), _as_1d(source), d, idx, ERR_INDEX_ADD, alpha).reshape(x.shape)


def index_copy(x, dim, index, source):
    """x with its slices at index along dim replaced by source's (duplicates: one wins)."""
    source = _src_tensor("index_copy", x, source)
    d, idx = _along("index_copy", x, dim, index, source.shape)
    return _ScatterAs.apply(_as_1d(x), _as_1d(source), d, idx, ERR_INDEX_COPY).reshape(x.shape)


class _ScatterAs(Function):
    """Scatter with the caller's error code (index_copy, index_fill)."""

    @staticmethod
    def forward(ctx, x, src, dim, index, op):
        ctx.dim, ctx.op = dim, op
        ctx.save_for_backward(index)
        return _scatter(_copy(x), dim, index, src, 0, op)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved_tensors
        gx = _scatter(_copy(g), ctx.dim, index, zeros((), dtype=g.dtype, device=g.device), 0, ctx.op) \
            if ctx.needs_input_grad[0] else None
        gs = None
        if ctx.needs_input_grad[1]:
            gs = _gather(g, ctx.dim, index, ctx.op)
            if ctx.op == ERR_INDEX_FILL:  # a filled value: the sum over the distinct filled positions
                hit = _scatter(zeros(g.shape, dtype=g.dtype, device=g.device), ctx.dim, index,
                               ones((), dtype=g.dtype, device=g.device), 0, ctx.op)
                gs = (g * hit).sum()
        return gx, gs, None, None, None


def index_fill(x, dim, index, value):
    """x with its slices at index along dim set to value (a number or a 0-dim tensor)."""
    if isinstance(value, Tensor) and value.ndim:
        raise RuntimeError(f"index_fill_(): only supports a 0-dimensional value tensor, got one of shape "
                           f"{list(value.shape)}")
    value = value.to(dtype=x.dtype) if isinstance(value, Tensor) else full((), value, dtype=x.dtype, device=x.device)
    xs = tuple(x.shape) or (1,)
    d = layout.normalize_dim(dim, len(xs))
    d, idx = _along("index_fill", x, d, index)
    return _ScatterAs.apply(_as_1d(x), value, d, idx, ERR_INDEX_FILL).reshape(x.shape)


# ---- flat indices: take, take_along_dim -----------------------------------------------------------
def take(x, index):
    """x viewed as 1-D, read at index (negative indices from the end); the result has index's shape."""
    if not isinstance(index, Tensor) or index.dtype is not dtypes.int64:
        raise RuntimeError(f"take(): Expected a long tensor for index, but got "
                           f"{index.dtype!r}" if isinstance(index, Tensor) else "take(): index must be a tensor")
    out = Gather.apply(x.reshape(-1), 0, index.reshape(-1), ERR_TAKE, 1)
    return out.reshape(index.shape)


def take_along_dim(x, indices, dim=None):
    """x.gather(dim, indices) with x and indices broadcast against each other outside dim."""
    if dim is None:
        return gather(x.reshape(-1), 0, indices.reshape(-1))
    if x.ndim != indices.ndim:
        raise RuntimeError(f"take_along_dim(): input and indices should have the same number of dimensions, "
                           f"but got {x.ndim} dimensions for input {list(x.shape)}, and {indices.ndim} dimensions "
                           f"for indices {list(indices.shape)}")
    d = layout.normalize_dim(dim, x.ndim)
    _check_index_dtype(indices, "take_along_dim", int32_ok=False)
    xs, is_ = list(x.shape), list(indices.shape)
    xs[d] = is_[d] = 1
    try:
        b = list(layout.broadcast_shapes(tuple(xs), tuple(is_)))
    except ValueError:
        raise RuntimeError(f"take_along_dim(): shapes {list(x.shape)} (input) and {list(indices.shape)} (indices) "
                           f"cannot be broadcast outside dimension {d}") from None
    bx, bi = list(b), list(b)
    bx[d], bi[d] = x.shape[d], indices.shape[d]
    return gather(x.expand(*bx), d, indices.expand(*bi))


# ---- masks and nonzero ------------------------------------------------------------------------
def nonzero(x, as_tuple=False):
    """The (count, ndim) int64 coordinates of x's nonzero elements in row-major order (as_tuple: one
    1-D tensor per dim). Waits for the device once, to learn the count."""
    n, dev = x.numel(), x.device
    if n == 0 or n >= 2 ** 31:
        if n:
            raise ValueError(f"nonzero(): tensors of {n} elements exceed the 2**31 element limit of the kernels")
        out = empty((0, x.ndim), dtype=dtypes.int64, device=dev)
    else:
        chunk = max(64, -(-n // 65536))
        m = -(-n // chunk)
        sh, st = layout.layout_struct(x.shape, [x.strides])
        counts = empty((m,), dtype=dtypes.int32, device=dev)
        defines = dtypes.cl_defines(dev, T=x.dtype)
        launch(dev, "index.cl", "nonzero_count", (m,), n, chunk, sh, st, x, counts, defines=defines)
        host = counts._to_host().astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(host)[:-1]]).astype(np.int32)
        out = empty((int(host.sum()), x.ndim), dtype=dtypes.int64, device=dev)
        if out.numel():
            launch(dev, "index.cl", "nonzero_write", (m,), n, chunk, sh, st, x, tensor(starts, device=dev), out,
                   defines=defines)
    if as_tuple:
        return tuple(out[:, k] for k in range(x.ndim)) if x.ndim else (out.reshape(-1),)
    return out


def argwhere(x):
    return nonzero(x)


def where(cond, a=None, b=None):
    """where(cond, a, b): cond ? a : b; where(cond): nonzero(cond, as_tuple=True)."""
    if a is None and b is None:
        return nonzero(cond, as_tuple=True)
    if a is None or b is None:
        raise TypeError("where() takes a condition alone or a condition and two values")
    return elementwise.where(cond, a, b)


def _check_mask(name, mask):
    if not isinstance(mask, Tensor) or mask.dtype is not dtypes.bool_:
        raise RuntimeError(f"{name}: expected BoolTensor for mask, got "
                           f"{mask.dtype!r}" if isinstance(mask, Tensor) else f"{name}: mask must be a tensor")


def masked_select(x, mask):
    """The 1-D tensor of x's elements where mask (broadcast with x) is True."""
    _check_mask("masked_select", mask)
    b = layout.broadcast_shapes(tuple(x.shape), tuple(mask.shape))
    xb, mb = x.expand(*b), mask.expand(*b)
    if not b:
        return getitem(xb.reshape(1), mb.reshape(1))
    return getitem(xb, mb)


def masked_scatter(x, mask, source):
    """x with the elements where mask (broadcast to x) is True taken from source, in order."""
    _check_mask("masked_scatter", mask)
    if source.dtype is not x.dtype:
        raise RuntimeError(f"masked_scatter: expected self and source to have same dtypes but got {x.dtype!r} and "
                           f"{source.dtype!r}")
    mb = mask.expand(*x.shape) if tuple(mask.shape) != tuple(x.shape) else mask
    if x.ndim == 0:
        return masked_scatter(x.reshape(1), mb.reshape(1), source).reshape(())
    cols = nonzero(mb)
    k = cols.shape[0]
    if k > source.numel():
        raise RuntimeError(f"masked_scatter: expected source (shape {list(source.shape)}) to have at least as many "
                           f"elements as ones in mask ({k})")
    values = source.reshape(-1)[:k]
    return _index_put(x, [cols[:, j] for j in range(x.ndim)], values, False)
