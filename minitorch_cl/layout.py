"""Pure shape/stride index math: broadcasting, contiguity, views, dim coalescing."""
import functools

import numpy as np

from .shared_constants import MAXDIM


def contiguous_strides(shape):
    return _contiguous_strides(tuple(shape))


@functools.lru_cache(maxsize=1024)  # every new tensor asks, for a few shapes over and over
def _contiguous_strides(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(strides))


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def is_contiguous(shape, strides):
    return all(n == 1 or st == cs for n, st, cs in zip(shape, strides, contiguous_strides(shape)))


def broadcast_shapes(*shapes):
    """NumPy broadcasting; raises ValueError naming every shape."""
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(ndim):
        sizes = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0} - {1}
        if len(sizes) > 1:
            raise ValueError("shapes " + " and ".join(str(tuple(s)) for s in shapes) + " cannot be broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def broadcast_strides(shape, strides, target):
    """Strides that read a tensor of (shape, strides) as the larger broadcast shape target."""
    lead = len(target) - len(shape)
    out = [0] * lead
    for n, st, t in zip(shape, strides, target[lead:]):
        out.append(st if n == t else 0)
    return tuple(out)


def coalesce(shape, strides_list):
    """Merge adjacent dims that every operand walks contiguously; drop size-1 dims."""
    dims = [(n, [st[i] for st in strides_list]) for i, n in enumerate(shape) if n != 1]
    if not dims:
        return (1,), [(0,) for _ in strides_list]
    merged = [dims[0]]
    for n, sts in dims[1:]:
        pn, psts = merged[-1]
        if all(ps == s * n for ps, s in zip(psts, sts)):
            merged[-1] = (pn * n, sts)
        else:
            merged.append((n, sts))
    new_shape = tuple(n for n, _ in merged)
    new_strides = [tuple(sts[k] for _, sts in merged) for k in range(len(strides_list))]
    return new_shape, new_strides


def _pow2_at_least(n):
    return 1 << max(n - 1, 0).bit_length()


def map_launch(name, shape, strides_list, map_local):
    """How elementwise.cl runs map1/map2 (`name`) over a coalesced iteration: (kernel, grid, local,
    structs). One dim: <name>_flat on a 1-D grid; two or three: <name>_grid on a grid of the shape
    itself (padded to 3 dims), innermost first, its work-group spanning rows when they are short;
    more: <name> with strided_offset's divisions. local None: the device's map_local."""
    if len(shape) <= 1 or len(shape) > 3:
        kernel = name + "_flat" if len(shape) <= 1 else name
        return kernel, (numel(shape),), None, layout_struct(shape, strides_list)
    pad = 3 - len(shape)
    shape = (1,) * pad + tuple(shape)
    strides_list = [(0,) * pad + tuple(st) for st in strides_list]
    # powers of two, so few work-group shapes (PoCL compiles a kernel once per shape) serve all sizes
    inner = min(_pow2_at_least(shape[2]), map_local)
    local = (inner, max(1, min(_pow2_at_least(shape[1]), map_local // inner)), 1)
    return name + "_grid", (shape[2], shape[1], shape[0]), local, layout_struct(shape, strides_list)


def view_strides(shape, strides, new_shape):
    """Strides for viewing (shape, strides) as new_shape without a copy, or None (PyTorch's rule)."""
    if numel(shape) == 0 or is_contiguous(shape, strides):
        return contiguous_strides(new_shape)
    if not shape:
        return tuple(1 for _ in new_shape)
    new_strides = [0] * len(new_shape)
    view_d = len(new_shape) - 1
    chunk_base = strides[-1]
    tensor_numel = view_numel = 1
    for d in range(len(shape) - 1, -1, -1):
        tensor_numel *= shape[d]
        # A chunk ends where the next-outer dim is not laid out right after this one.
        if d == 0 or (shape[d - 1] != 1 and strides[d - 1] != tensor_numel * chunk_base):
            while view_d >= 0 and (view_numel < tensor_numel or new_shape[view_d] == 1):
                new_strides[view_d] = view_numel * chunk_base
                view_numel *= new_shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if d > 0:
                chunk_base = strides[d - 1]
                tensor_numel = view_numel = 1
    return tuple(new_strides) if view_d == -1 else None


def infer_shape(shape, total):
    """Resolve a single -1 in a reshape target."""
    shape = list(shape)
    if shape.count(-1) > 1:
        raise ValueError(f"only one dimension can be -1 in {tuple(shape)}")
    if -1 in shape:
        rest = numel([s for s in shape if s != -1])
        if rest == 0 or total % rest:
            raise ValueError(f"shape {tuple(shape)} is invalid for input of size {total}")
        shape[shape.index(-1)] = total // rest
    if numel(shape) != total:
        raise ValueError(f"shape {tuple(shape)} is invalid for input of size {total}")
    return tuple(shape)


def normalize_dim(dim, ndim):
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"dimension {dim} is out of range for a tensor of {ndim} dims")
    return dim % n


def normalize_dims(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    return tuple(sorted({normalize_dim(d, ndim) for d in dim}))


def layout_struct(shape, strides_list):
    """NumPy structs passed by value to kernels: the iteration shape and each operand's strides."""
    if len(shape) > MAXDIM:
        raise ValueError(f"tensors of more than {MAXDIM} dims are not supported after coalescing, got {shape}")
    sh = np.zeros((), SHAPE_DTYPE)
    sh["ndim"] = len(shape)
    sh["size"][: len(shape)] = shape
    out = [sh]
    for st in strides_list:
        s = np.zeros((), STRIDES_DTYPE)
        s["stride"][: len(st)] = st
        out.append(s)
    return out


def window_struct(input_shape, out_hw, kernel, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    """common.h's Window: a 2-D sliding window's geometry, passed by value."""
    w = np.zeros((), WINDOW_DTYPE)
    for name, v in zip(WINDOW_DTYPE.names, (*input_shape, *out_hw, *kernel, *stride, *padding, *dilation)):
        w[name] = v
    return w


def strides4_struct(strides):
    """common.h's Strides4: an (N, C, H, W) operand's element strides."""
    s = np.zeros((), STRIDES4_DTYPE)
    s["n"], s["c"], s["h"], s["w"] = strides
    return s


SHAPE_DTYPE = np.dtype([("ndim", np.int32), ("size", np.int32, MAXDIM)])
STRIDES_DTYPE = np.dtype([("stride", np.int32, MAXDIM)])
WINDOW_DTYPE = np.dtype([(n, np.int32) for n in ("N", "C", "H", "W", "OH", "OW", "KH", "KW", "SH", "SW", "PH", "PW",
                                                   "DH", "DW")])
STRIDES4_DTYPE = np.dtype([(n, np.int32) for n in "nchw"])
