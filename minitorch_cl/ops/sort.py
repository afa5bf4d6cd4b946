"""Sorting and selection (sort, argsort, topk, kthvalue, median, msort) on sort.cl, and unique
(on the host: its output size depends on the values)."""
from collections import namedtuple

import numpy as np

from .. import dtypes, layout
from ..autograd import Function
from ..launch import launch
from ..tensor import empty, full, tensor, zeros

SortResult = namedtuple("SortResult", ["values", "indices"])  # torch.return_types.sort / topk / ...


def _sorted_rows(x2, descending):
    """Raw (keys, idx) scratch (rows, P) of a contiguous (rows, L) tensor, sorted per row."""
    rows, L = x2.shape
    P = 1 << max(L - 1, 0).bit_length()
    dev = x2.device
    kt = dtypes.compute_dtype(x2.dtype)  # the scratch keys: float for half
    keys = empty((rows, P), dtype=kt, device=dev)
    idx = empty((rows, P), dtype=dtypes.int64, device=dev)
    SB = dev.profile.sort_block
    defines = dict(DESCENDING=int(bool(descending)), SB=SB, **dtypes.cl_defines(dev, T=x2.dtype, KT=kt))
    launch(dev, "sort.cl", "sort_init", (rows * P,), rows, L, P, x2, keys, idx, defines=defines)
    if dev.profile.sort_serial:  # CPUs: a work-item merge-sorts a row
        keys2, idx2 = empty((rows, P), dtype=kt, device=dev), empty((rows, P), dtype=dtypes.int64, device=dev)
        launch(dev, "sort.cl", "sort_rows_serial", (rows,), rows, L, P, keys, idx, keys2, idx2, defines=defines)
        return keys, idx, P, defines
    blocks = -(-rows * P // SB)  # blocks of SB scratch positions: several short rows, or part of a long one

    def block(k_lo, k_hi):
        launch(dev, "sort.cl", "sort_block", (blocks * SB // 2,), rows, L, P, k_lo, k_hi, keys, idx,
               local=(SB // 2,), defines=defines)

    block(2, min(P, SB))  # every stage up to k = SB in local memory
    k = 2 * SB
    while k <= P:  # longer rows: the stages j >= SB in global memory, the rest in local memory
        j = k // 2
        while j >= SB:
            launch(dev, "sort.cl", "sort_step", (rows * (P // 2),), rows, L, P, j, k, keys, idx, defines=defines)
            j //= 2
        block(k, k)
        k *= 2
    return keys, idx, P, defines


class SortSelect(Function):
    """Values and indices of the sorted rows along dim d: the K positions from `start`, or the
    position pos[r] of each row (pos given). The gradient goes back to the picked elements."""

    @staticmethod
    def forward(ctx, x, d, descending, start, K, pos):
        moved = x.movedim(d, -1) if x.ndim else x.reshape(1)
        lead = moved.shape[:-1]
        L = moved.shape[-1]
        x2 = moved.contiguous().reshape(layout.numel(lead), L)
        rows = x2.shape[0]
        values = empty((rows, K), dtype=x.dtype, device=x.device)
        indices = empty((rows, K), dtype=dtypes.int64, device=x.device)
        if rows * K:
            keys, idx, P, defines = _sorted_rows(x2, descending)
            if pos is not None:
                defines = dict(defines, PICK=1)
            launch(x.device, "sort.cl", "sort_out", (rows * K,), rows, P, K, start, keys, idx,
                   pos if pos is not None else idx, values, indices, defines=defines)
        ctx.save_for_backward(indices)
        ctx.meta = (x.shape, d, lead, L)
        shape = lead + (K,)
        if x.ndim == 0:
            return values.reshape(()), indices.reshape(())
        return values.reshape(shape).movedim(-1, d), indices.reshape(shape).movedim(-1, d)

    @staticmethod
    def backward(ctx, g, _gi):
        (indices,) = ctx.saved_tensors
        shape, d, lead, L = ctx.meta
        rows, K = indices.shape
        g2 = (g.movedim(d, -1) if g.ndim else g.reshape(1)).contiguous()
        gx = zeros((rows, L), dtype=g.dtype, device=g.device)
        if rows * K:
            launch(g.device, "sort.cl", "sort_scatter_bwd", (rows * K,), rows, K, L, g2, indices, gx,
                   defines=dtypes.cl_defines(g.device, T=g.dtype, KT=dtypes.compute_dtype(g.dtype)))
        gx = gx.reshape(lead + (L,))
        return (gx.movedim(-1, d) if len(shape) else gx.reshape(())), None, None, None, None, None


def _dim(x, dim):
    return layout.normalize_dim(dim, max(x.ndim, 1))


def sort(x, dim=-1, descending=False, stable=False):
    """Always stable (ties keep their input order), which is also torch's index choice."""
    d = _dim(x, dim)
    n = x.shape[d] if x.ndim else 1
    return SortResult(*SortSelect.apply(x, d, descending, 0, n, None))


def argsort(x, dim=-1, descending=False, stable=False):
    return sort(x, dim, descending, stable).indices


def msort(x):
    return sort(x, 0).values


def _no_bool(x, name, error=NotImplementedError):
    if x.dtype is dtypes.bool_:
        raise error(f"{name}() is not implemented for {x.dtype!r}, as in torch")


def topk(x, k, dim=-1, largest=True, sorted=True):
    _no_bool(x, "topk", RuntimeError)
    d = _dim(x, dim)
    n = x.shape[d] if x.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"selected index k out of range: k={k} for dimension {d} of size {n}")
    return SortResult(*SortSelect.apply(x, d, largest, 0, k, None))


def _keep(result, d, keepdim, ndim):
    values, indices = result
    if not keepdim and ndim:
        values, indices = values.squeeze(d), indices.squeeze(d)
    return SortResult(values, indices)


def kthvalue(x, k, dim=-1, keepdim=False):
    _no_bool(x, "kthvalue")
    d = _dim(x, dim)
    n = x.shape[d] if x.ndim else 1
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): selected number k={k} out of range for dimension {d} of size {n}")
    return _keep(SortSelect.apply(x, d, False, k - 1, 1, None), d, keepdim, x.ndim)


def median(x, dim=None, keepdim=False):
    """The lower median; NaN (at the first NaN's index) where a row holds one, as torch."""
    _no_bool(x, "median")
    if dim is None:
        if x.numel() == 0:
            return full((), float("nan"), dtype=x.dtype, device=x.device)
        return median(x.reshape(-1), 0).values
    d = _dim(x, dim)
    n = x.shape[d] if x.ndim else 1
    if n == 0:
        raise IndexError(f"median(): expected a non-empty dimension {d} of a tensor of shape {tuple(x.shape)}")
    if x.dtype.is_floating:
        nans = (x != x).sum(dim=d) if x.ndim else (x != x).to(dtype=dtypes.int64)
        pos = (nans > 0).to(dtype=dtypes.int64) * (n - nans - (n - 1) // 2) + (n - 1) // 2
    else:
        pos = full((layout.numel(x.shape) // n,), (n - 1) // 2, dtype=dtypes.int64, device=x.device)
    pos = pos.to(dtype=dtypes.int64).contiguous().reshape(-1)
    return _keep(SortSelect.apply(x, d, False, 0, 1, pos), d, keepdim, x.ndim)


def unique(x, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """Host-side (np.unique): the output's size depends on the values, so they are read anyway.
    Sorted always (torch's CPU result for sorted=False too); every NaN is its own value, as torch."""
    host = x._to_host()
    if dim is None:
        values, inverse, counts = np.unique(host.reshape(-1), return_inverse=True, return_counts=True,
                                            equal_nan=False)
        inverse = inverse.reshape(x.shape)
    else:
        d = layout.normalize_dim(dim, x.ndim)
        values, inverse, counts = np.unique(host, return_inverse=True, return_counts=True, axis=d)
        inverse = inverse.reshape(-1)
    out = [tensor(values, dtype=x.dtype, device=x.device)]
    if return_inverse:
        out.append(tensor(inverse.astype(np.int64), device=x.device))
    if return_counts:
        out.append(tensor(counts.astype(np.int64), device=x.device))
    return out[0] if len(out) == 1 else tuple(out)


def mode(x, dim=-1, keepdim=False):
    """Host-side, like unique: the smallest most frequent value of each row and its last index."""
    d = _dim(x, dim)
    if x.ndim and x.shape[d] == 0:
        raise IndexError(f"mode(): expected a non-empty dimension {d} of a tensor of shape {tuple(x.shape)}")
    a = np.moveaxis(x._to_host().reshape(x.shape or (1,)), d, -1)
    rows = a.reshape(-1, a.shape[-1])
    values = np.empty(rows.shape[0], dtype=rows.dtype)
    indices = np.empty(rows.shape[0], dtype=np.int64)
    for r, row in enumerate(rows):
        uniq, counts = np.unique(row, return_counts=True)
        values[r] = uniq[np.argmax(counts)]
        indices[r] = np.nonzero(row == values[r])[0][-1]
    shape = a.shape[:-1]
    v = tensor(values.reshape(shape), dtype=x.dtype, device=x.device)
    i = tensor(indices.reshape(shape), device=x.device)
    if keepdim and x.ndim:
        v, i = v.unsqueeze(d), i.unsqueeze(d)
    return SortResult(v, i)
