"""Kernel launchers on raw tensors, no autograd: maps, where, copies, reductions, random fills.
Every launcher allocates its output from the device pool and enqueues exactly one kernel."""
import numpy as np

from . import dtypes, layout

MAP_LOCAL = 256  # one fixed local size per kernel keeps PoCL from recompiling per launch


def _type_defines(dev, **types):
    defines = {k: v.cl for k, v in types.items()}
    if any(v is dtypes.float16 for v in types.values()):
        if not dev.has_fp16:
            raise TypeError(f"device {dev.spec} ({dev.name}) has no cl_khr_fp16: float16 is not available")
        defines["HAS_FP16"] = 1
    return defines


def _compute_dtype(dt):
    """float16 computes in float32; everything else in its own type."""
    return dtypes.float32 if dt is dtypes.float16 else dt


def _scalar(dt, value):
    return np.array(value, dtype=dt.np)[()]


def _operands(out, *inputs):
    """Coalesced iteration shape and (offset, strides) structs for out and each broadcast input."""
    shape = out.shape
    strides = [layout.broadcast_strides(t.shape, t.strides, shape) for t in inputs] + [out.strides]
    cshape, cstrides = layout.coalesce(shape, strides)
    offsets = [t.offset for t in inputs] + [out.offset]
    return layout.layout_struct(cshape, cstrides, offsets)


def _check_size(n):
    if n >= 2 ** 31:
        raise ValueError(f"tensors of {n} elements exceed the 2**31 element limit of the kernels")


def map1(op, a, out_dtype=None, alpha=0, beta=0, out=None):
    """out = F(a) elementwise; out may be a preallocated (possibly strided) view."""
    from .tensor import empty
    out_dtype = out.dtype if out is not None else (out_dtype or a.dtype)
    if out is None:
        out = empty(a.shape, dtype=out_dtype, device=a.device)
    n = out.numel()
    _check_size(n)
    if n == 0:
        return out
    ct = _compute_dtype(out_dtype if op == "OP_FILL" else a.dtype)
    dev = a.device
    k = dev.kernel("elementwise.cl", "map1", dict(OP=op, **_type_defines(dev, T=ct, TA=a.dtype, TO=out_dtype)))
    shape, sa, so = _operands(out, a)
    dev.launch(k, (n,), (MAP_LOCAL,), np.int32(n), shape, sa, so, _scalar(ct, alpha), _scalar(ct, beta),
               a.buffer, out.buffer)
    return out


def map2(op, a, b, out_dtype=None, compute_dtype=None, alpha=0, out=None):
    """out = F(a, b) elementwise with broadcasting."""
    from .tensor import empty
    _same_device(a, b)
    ct = _compute_dtype(compute_dtype or dtypes.promote(a.dtype, b.dtype))
    if out is None:
        out = empty(layout.broadcast_shapes(a.shape, b.shape), dtype=out_dtype or ct, device=a.device)
    n = out.numel()
    _check_size(n)
    if n == 0:
        return out
    dev = a.device
    k = dev.kernel("elementwise.cl", "map2",
                   dict(OP=op, **_type_defines(dev, T=ct, TA=a.dtype, TB=b.dtype, TO=out.dtype)))
    shape, sa, sb, so = _operands(out, a, b)
    dev.launch(k, (n,), (MAP_LOCAL,), np.int32(n), shape, sa, sb, so, _scalar(ct, alpha),
               a.buffer, b.buffer, out.buffer)
    return out


def where3(cond, a, b):
    from .tensor import empty
    _same_device(cond, a, b)
    ot = dtypes.promote(a.dtype, b.dtype)
    out = empty(layout.broadcast_shapes(cond.shape, a.shape, b.shape), dtype=ot, device=a.device)
    n = out.numel()
    _check_size(n)
    if n == 0:
        return out
    if cond.dtype is not dtypes.bool_:
        cond = map1("OP_NE_S", cond, dtypes.bool_, 0)
    dev = a.device
    k = dev.kernel("elementwise.cl", "where3", _type_defines(dev, T=_compute_dtype(ot), TA=a.dtype, TB=b.dtype, TO=ot))
    shape, sc, sa, sb, so = _operands(out, cond, a, b)
    dev.launch(k, (n,), (MAP_LOCAL,), np.int32(n), shape, sc, sa, sb, so,
               cond.buffer, a.buffer, b.buffer, out.buffer)
    return out


def copy_(dst, src):
    """dst[...] = src (broadcast, cast), in place; dst may be any view."""
    _same_device(dst, src)
    layout.broadcast_shapes(dst.shape, src.shape)
    if layout.broadcast_shapes(dst.shape, src.shape) != tuple(dst.shape):
        raise ValueError(f"cannot copy a tensor of shape {src.shape} into one of shape {dst.shape}")
    return map1("OP_COPY", src, out=dst)


def fill_(dst, value):
    return map1("OP_FILL", dst, alpha=value, out=dst)


def random_fill(out, mode, seed, lo, hi):
    """Fill a contiguous float32 tensor: mode 0 uniform[lo,hi), 1 normal(lo,hi), 2 dropout mask."""
    n = out.numel()
    if n == 0:
        return out
    dev = out.device
    k = dev.kernel("elementwise.cl", "random_fill")
    dev.launch(k, (n,), (MAP_LOCAL,), np.int32(n), np.int32(mode), np.uint32(seed & 0xFFFFFFFF),
               np.float32(lo), np.float32(hi), out.buffer)
    return out


def reduce(op, x, dims, keepdim=False, scale=1.0, out_dtype=None):
    """Reduce x over dims (a sorted tuple). op: RED_SUM, RED_MAX, RED_MIN, RED_ARGMAX, RED_ARGMIN.
    Arg-reductions return int64 indices into the flattened reduced dims."""
    from .tensor import empty
    nd = x.ndim
    kept = [d for d in range(nd) if d not in dims]
    out_shape = tuple(1 if d in dims else x.shape[d] for d in range(nd)) if keepdim \
        else tuple(x.shape[d] for d in kept)
    if not dims:  # reducing over no dims: treat as a leading dim of size 1
        x, dims = x.reshape((1,) + tuple(x.shape)), (0,)
        nd += 1
        kept = list(range(1, nd))
    R = layout.numel([x.shape[d] for d in dims])
    is_arg = op in ("RED_ARGMAX", "RED_ARGMIN")
    if R == 0 and op != "RED_SUM":
        raise RuntimeError(f"cannot take {op[4:].lower()} over an empty dimension of a tensor of shape {x.shape}")
    # Bring the tensor into (outer, R, inner) contiguous form; reduced dims must form one block.
    lo_dims = [d for d in kept if d < min(dims, default=0)]
    contiguous_block = dims and list(dims) == list(range(dims[0], dims[-1] + 1))
    if not (contiguous_block and x.is_contiguous()):
        perm = kept + list(dims)
        x = x.permute(*perm).contiguous() if perm != list(range(nd)) else x.contiguous()
        lo_dims = kept
    outer = layout.numel([x.shape[d] for d in range(len(lo_dims))])
    inner = layout.numel(x.shape) // max(outer * R, 1) if R else layout.numel(out_shape) // max(outer, 1)
    acc = _compute_dtype(x.dtype)
    if acc is dtypes.bool_:
        acc = dtypes.int64
    odt = dtypes.int64 if is_arg else (out_dtype or (dtypes.int64 if x.dtype is dtypes.bool_ else x.dtype))
    out = empty(out_shape, dtype=odt, device=x.device)
    n_out = outer * inner
    if n_out == 0:
        return out
    if R == 0:
        return fill_(out, 0)
    dev = x.device
    wg = 64 if dev.is_cpu else 256
    defines = dict(OP=op, WG=wg, **_type_defines(dev, T=x.dtype, ACC=acc, TO=odt))
    serial = n_out >= 4 * wg or R <= 64
    k = dev.kernel("reduce.cl", "reduce_serial" if serial else "reduce_group", defines)
    args = (np.int32(outer), np.int32(R), np.int32(inner), _scalar(acc, scale), x.buffer, np.int32(x.offset),
            out.buffer, out.buffer)
    if serial:
        dev.launch(k, (n_out,), (MAP_LOCAL,), *args)
    else:
        dev.launch(k, (n_out * wg,), (wg,), *args)
    return out


def _same_device(*tensors):
    devs = {t.device for t in tensors}
    if len(devs) > 1:
        raise RuntimeError("expected all tensors on one device, got " +
                           ", ".join(f"{tuple(t.shape)} on {t.device.spec}" for t in tensors))
