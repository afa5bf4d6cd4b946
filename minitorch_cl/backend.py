"""Kernel launchers on raw tensors, no autograd: maps, where, copies, reductions, random fills.
Every launcher allocates its output from the device pool and enqueues exactly one kernel."""
from . import dtypes, layout
from .launch import At, launch
from .tensor import Tensor, empty, fill_  # noqa: F401  (fill_ is one of the launchers)

# random_fill's modes (elementwise.cl): uniform [lo, hi), normal(lo, hi), dropout keep-mask
RANDOM_UNIFORM, RANDOM_NORMAL, RANDOM_KEEP_MASK = 0, 1, 2


def _coalesced(out, *inputs):
    shape = out.shape
    strides = [layout.broadcast_strides(t.shape, t.strides, shape) for t in inputs] + [out.strides]
    return layout.coalesce(shape, strides)


def _operands(out, *inputs):
    """Coalesced iteration shape and strides structs for each broadcast input and out."""
    return layout.layout_struct(*_coalesced(out, *inputs))


def _map_operands(name, out, *inputs):
    """map1/map2's kernel, grid, work-group and structs (layout.map_launch) for these operands."""
    cshape, cstrides = _coalesced(out, *inputs)
    return layout.map_launch(name, cshape, cstrides, out.device.profile.map_local)


def _check_size(n):
    if n >= 2 ** 31:
        raise ValueError(f"tensors of {n} elements exceed the 2**31 element limit of the kernels")


# map1's ops on exp that take elementwise.cl's map1_vec (float16 vectors) on contiguous float32 operands
_VECTOR_MAPS = frozenset({"OP_SIGMOID", "OP_SILU", "OP_SILU_GRAD"})


def map1(op, a, out_dtype=None, alpha=0, beta=0, out=None):
    """out = F(a) elementwise; out may be a preallocated (possibly strided) view."""
    out_dtype = out.dtype if out is not None else (out_dtype or a.dtype)
    if out is None:
        out = empty(a.shape, dtype=out_dtype, device=a.device)
    if op == "OP_COPY" and out_dtype is dtypes.bool_ and a.dtype is not dtypes.bool_:
        op = "OP_TO_BOOL"  # nonzero (NaN included) is True, as in PyTorch
    n = out.numel()
    _check_size(n)
    ct = dtypes.compute_dtype(out_dtype if op == "OP_FILL" else a.dtype)
    defines = dict(OP=op, **dtypes.cl_defines(a.device, T=ct, TA=a.dtype, TO=out_dtype))
    kernel, grid, local, (shape, sa, so) = _map_operands("map1", out, a)
    if op in _VECTOR_MAPS and a.dtype is out.dtype is dtypes.float32 and a.is_contiguous() and out.is_contiguous():
        kernel, grid, local = "map1_vec", (-(-n // 16),), None
    launch(a.device, "elementwise.cl", kernel, grid, n, shape, sa, so, alpha, beta, a, out, defines=defines,
           local=local, nbytes=n * (a.dtype.itemsize + out.dtype.itemsize))
    return out


def map2(op, a, b, out_dtype=None, compute_dtype=None, alpha=0, out=None):
    """out = F(a, b) elementwise with broadcasting."""
    _same_device(a, b)
    result = compute_dtype or dtypes.promote(a.dtype, b.dtype)  # float16 stays float16, computed in float32
    ct = dtypes.compute_dtype(result)
    if out is None:
        out = empty(layout.broadcast_shapes(a.shape, b.shape), dtype=out_dtype or result, device=a.device)
    n = out.numel()
    _check_size(n)
    defines = dict(OP=op, **dtypes.cl_defines(a.device, T=ct, TA=a.dtype, TB=b.dtype, TO=out.dtype))
    kernel, grid, local, (shape, sa, sb, so) = _map_operands("map2", out, a, b)
    launch(a.device, "elementwise.cl", kernel, grid, n, shape, sa, sb, so, alpha, a, b, out, defines=defines,
           local=local, nbytes=n * (a.dtype.itemsize + b.dtype.itemsize + out.dtype.itemsize))
    return out


def where3(cond, a, b):
    _same_device(cond, a, b)
    ot = dtypes.promote(a.dtype, b.dtype)
    out = empty(layout.broadcast_shapes(cond.shape, a.shape, b.shape), dtype=ot, device=a.device)
    n = out.numel()
    _check_size(n)
    if n == 0:
        return out
    if cond.dtype is not dtypes.bool_:
        cond = map1("OP_NE_S", cond, dtypes.bool_, 0)
    defines = dtypes.cl_defines(a.device, T=dtypes.compute_dtype(ot), TA=a.dtype, TB=b.dtype, TO=ot)
    shape, sc, sa, sb, so = _operands(out, cond, a, b)
    launch(a.device, "elementwise.cl", "where3", (n,), n, shape, sc, sa, sb, so, cond, a, b, out, defines=defines,
           nbytes=n * (1 + a.dtype.itemsize + b.dtype.itemsize + out.dtype.itemsize))
    return out


def copy_(dst, src):
    """dst[...] = src (broadcast, cast), in place; dst may be any view."""
    _same_device(dst, src)
    if layout.broadcast_shapes(dst.shape, src.shape) != tuple(dst.shape):
        raise ValueError(f"cannot copy a tensor of shape {src.shape} into one of shape {dst.shape}")
    return map1("OP_COPY", src, out=dst)


def random_fill(out, mode, seed, lo, hi):
    """Fill a contiguous float32 tensor: RANDOM_UNIFORM [lo, hi), RANDOM_NORMAL (mean lo, std hi),
    or RANDOM_KEEP_MASK (hi with probability lo, else 0: dropout masks)."""
    n = out.numel()
    launch(out.device, "elementwise.cl", "random_fill", (n,), n, seed & 0xFFFFFFFF, lo, hi, out, nbytes=4 * n,
           defines=dict(RANDOM_MODE=mode))
    return out


def dropout_apply(a, keep, scale, seed):
    """a * (scale with probability keep, else 0): the factors random_fill(RANDOM_KEEP_MASK, seed, keep,
    scale) would draw, applied without storing them (dropout's forward and backward)."""
    out = empty(a.shape, dtype=a.dtype, device=a.device)
    n = out.numel()
    _check_size(n)
    if n == 0:
        return out
    cshape, cstrides = _coalesced(out, a)  # no grid variant: the random counter is the flat index
    kernel = "dropout_apply_flat" if len(cshape) <= 1 else "dropout_apply"
    shape, sa, so = layout.layout_struct(cshape, cstrides)
    defines = dtypes.cl_defines(a.device, T=dtypes.compute_dtype(a.dtype), TA=a.dtype, TO=a.dtype)
    launch(a.device, "elementwise.cl", kernel, (n,), n, shape, sa, so, keep, scale, seed & 0xFFFFFFFF,
           a, out, defines=defines, nbytes=2 * n * a.dtype.itemsize)
    return out


# A float32 reduction of a long run to one value goes in two passes: SPLIT_PARTS equal runs reduced
# a work-item each (across the cores), then one work-group over those partials and the < SPLIT_PARTS
# elements left over. One work-group alone summed 1.6M floats at 2.4 GB/s, on one core.
SPLIT_MIN = 1 << 16
SPLIT_PARTS = 512
COLS8_GROUP = 16  # reduce_cols8's work-group: 128 outputs per group, so a 512-wide sum spans both cores


def _reduce_in_two_passes(op, x, scale, out):
    """out (one element) = the reduction of x, contiguous float32 of R >= SPLIT_MIN elements."""
    R, dev = x.numel(), x.device
    C = R // SPLIT_PARTS
    left = R - SPLIT_PARTS * C
    parts = empty(SPLIT_PARTS + left, device=dev)
    runs = Tensor(x.buffer, (SPLIT_PARTS, C), (C, 1), x.offset, x.dtype, dev)
    reduce(op, runs, (1,), out=Tensor(parts.buffer, (SPLIT_PARTS,), (1,), parts.offset, parts.dtype, dev))
    if left:
        map1("OP_COPY", Tensor(x.buffer, (left,), (1,), x.offset + SPLIT_PARTS * C, x.dtype, dev),
             out=Tensor(parts.buffer, (left,), (1,), parts.offset + SPLIT_PARTS, parts.dtype, dev))
    reduce(op, parts, (0,), scale=scale, out=out.reshape(1))
    return out


def reduce(op, x, dims, keepdim=False, scale=1.0, out_dtype=None, out=None):
    """Reduce x over dims (a sorted tuple). op: RED_SUM, RED_PROD, RED_MAX, RED_MIN, RED_ARGMAX,
    RED_ARGMIN.
    Arg-reductions return int64 indices into the flattened reduced dims. out: a preallocated result
    of the right shape and dtype (contiguous)."""
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
    if R == 0 and op not in ("RED_SUM", "RED_PROD"):
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
    acc = dtypes.compute_dtype(x.dtype)
    int_sum = op == "RED_SUM" and not x.dtype.is_floating  # PyTorch sums bool and integers into int64
    if acc is dtypes.bool_ or int_sum:
        acc = dtypes.int64
    odt = dtypes.int64 if is_arg else (out_dtype or (dtypes.int64 if int_sum or x.dtype is dtypes.bool_ else x.dtype))
    out = empty(out_shape, dtype=odt, device=x.device) if out is None else out
    n_out = outer * inner
    if n_out == 0:
        return out
    if R == 0:
        return fill_(out, 1 if op == "RED_PROD" else 0)
    if n_out == 1 and R >= SPLIT_MIN and not is_arg and x.dtype is acc is odt is dtypes.float32:
        return _reduce_in_two_passes(op, x, scale, out)
    dev = x.device
    wg = dev.profile.reduce_wg
    defines = dict(OP=op, WG=wg, **dtypes.cl_defines(dev, T=x.dtype, ACC=acc, TO=odt))
    if op == "RED_SUM" and x.dtype is dtypes.float32 and acc is dtypes.float32:
        defines["LANE_SUM"] = 1
    # an arg-reduction writes int64 indices into `index` and nothing into `out`; the others the reverse
    values, index = (At(out.buffer, out.offset), out) if is_arg else (out, At(out.buffer, out.offset))
    args = (outer, R, inner, scale, x, values, index)
    if "LANE_SUM" in defines and inner % 8 == 0 and dev.profile.reduce_cols8:  # columns, eight at a time
        launch(dev, "reduce.cl", "reduce_cols8", (n_out // 8,), outer, R, inner, scale, x, out,
               local=(COLS8_GROUP,), defines=defines)
    elif n_out >= 4 * wg or R <= 64:  # many outputs, or short ones: a work-item per output
        launch(dev, "reduce.cl", "reduce_serial", (n_out,), *args, defines=defines)
    else:  # few long outputs: a work-group per output
        launch(dev, "reduce.cl", "reduce_group", (n_out * wg,), *args, local=(wg,), defines=defines)
    return out


def _same_device(*tensors):
    devs = {t.device for t in tensors}
    if len(devs) > 1:
        raise RuntimeError("expected all tensors on one device, got " +
                           ", ".join(f"{tuple(t.shape)} on {t.device.spec}" for t in tensors))
