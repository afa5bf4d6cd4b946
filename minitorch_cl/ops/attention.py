"""scaled_dot_product_attention: the fused online-softmax kernels of clkernels/attention.cl (dropout
included: its keep factors are hashed from a seed, recomputed in the backward, never stored), with an
unfused path (matmul, softmax, dropout, matmul) for shapes the kernels do not cover."""
import math

import numpy as np

from .. import dtypes, layout
from ..autograd import Function
from ..launch import launch
from ..tensor import Tensor, empty
from ..random import next_seed
from .dropout import dropout
from .elementwise import where
from .precision import LOWER, float32_kernels

__all__ = ["scaled_dot_product_attention"]

_HEAD_DIMS = (16, 32, 64, 128, 256)  # register-array sizes: one build variant each
_ROW_LOCAL = 64                       # fixed local size of the per-row delta kernel
FUSE_DQ_ITEMS_PER_UNIT = 2            # batch items per compute unit from which the CPU backward fuses dQ


def _config(dev, head_dim):
    """-D parameters: CPU work-items own query rows in registers (12, or 16 at 16 lanes); GPU groups
    stage tiles in local memory.
    AW is the vector width (8 or 16 floats); the register arrays (DMAX) and the blocks walked (BK)
    are multiples of it."""
    prof = dev.profile
    aw = prof.attention_lanes
    dmax = next(b for b in _HEAD_DIMS if head_dim <= b)
    dmax = -(-dmax // aw) * aw
    if not prof.attention_local:
        return dict(DMAX=dmax, BQ=prof.attention_bq, BK=max(32, aw), WG=1, USE_LOCAL=0, AW=aw)
    bk = -(-(32 if dmax <= 128 else 16) // aw) * aw
    return dict(DMAX=dmax, BQ=prof.attention_bq, BK=bk, WG=64, USE_LOCAL=1, AW=aw)


_ROW_STRIDES = np.dtype([("batch0", np.int32), ("batch1", np.int32), ("row", np.int32)])


def _rows(batch0, batch1, row):
    """attention.cl's RowStrides: batch item n's rows start at (n // NB1) * batch0 + (n % NB1) * batch1."""
    st = np.zeros((), _ROW_STRIDES)
    st["batch0"], st["batch1"], st["row"] = batch0, batch1, row
    return st


def _addressing(t, batch, contiguous_cols=True):
    """(t', RowStrides(batch stride 0, batch stride 1, row stride), column stride) reading
    t (.., R, C) broadcast to batch + (R, C), with the batch index split as (n // batch[-1], n % batch[-1])."""
    for _ in range(2):
        if contiguous_cols and t.shape[-1] > 1 and t.strides[-1] != 1:
            t = t.contiguous()
        bstr = layout.broadcast_strides(t.shape[:-2], t.strides[:-2], batch)
        if not batch:
            return t, _rows(0, 0, t.strides[-2]), t.strides[-1]
        cshape, (cstr,) = layout.coalesce(batch[:-1], [bstr[:-1]])
        if len(cshape) == 1:
            return t, _rows(cstr[0], bstr[-1], t.strides[-2]), t.strides[-1]
        t = t.expand(*batch, *t.shape[-2:]).contiguous()  # batch dims no two strides can walk
    raise AssertionError("a contiguous tensor is always addressable")


def _transposed(t, batch, defines):
    """t (.., R, C) broadcast to batch, as a contiguous (N, C, R) copy (one attn_transpose launch)."""
    R, C = t.shape[-2:]
    N, NB1 = layout.numel(batch), (batch[-1] if batch else 1)
    t, ts, _ = _addressing(t, batch)
    out = empty((N, C, R), device=t.device)
    launch(t.device, "attention.cl", "attn_transpose", (-(-R // defines["AW"]), N), N, NB1, R, C, ts, t, out,
           local=(_ROW_LOCAL, 1), defines=defines)
    return out


def _dense_rows(t, batch, defines):
    """(t', RowStrides) with t's rows adjacent in memory: t itself when they are, else a packed
    (N, R, D) copy (one attn_pack launch); the kernels stream these rows block after block."""
    t, ts, _ = _addressing(t, batch)
    R, C = t.shape[-2:]
    if int(ts["row"]) == C or R == 1:
        return t, ts
    N, NB1 = layout.numel(batch), (batch[-1] if batch else 1)
    out = empty((N, R, C), device=t.device)
    launch(t.device, "attention.cl", "attn_pack", (R, N), N, NB1, R, C, ts, t, out, local=(_ROW_LOCAL, 1),
           defines=defines)
    return out, _rows(NB1 * R * C, R * C, C)


def _output_like(q, shape):
    """An output of `shape` laid out in q's dim order (so attention over (L, B, H, D) memory, as
    MultiheadAttention makes it, writes (L, B, H, D) and needs no copy afterwards), with its RowStrides."""
    batch = shape[:-2]
    if tuple(q.shape) == tuple(shape) and q.strides[-1] == 1:
        order = sorted(range(len(shape) - 1), key=lambda d: -q.strides[d]) + [len(shape) - 1]
        physical = empty(tuple(shape[d] for d in order), device=q.device)
        out = physical.permute(*sorted(range(len(shape)), key=order.__getitem__))
        addressed, st, _ = _addressing(out, batch)
        if addressed is out:
            return out, st
    out = empty(shape, device=q.device)
    return out, _addressing(out, batch)[1]


def _mask_args(mask, batch, L, S, fallback):
    if mask is None:
        return 0, fallback, _rows(0, 0, 0), 0
    m, ms, mss = _addressing(mask, batch, contiguous_cols=False)
    row_stride = m.strides[-2] if m.shape[-2] == L else 0  # a broadcast (size-1) dim reads one row/column
    ms = _rows(int(ms["batch0"]), int(ms["batch1"]), row_stride)
    return 1, m, ms, (mss if m.shape[-1] == S else 0)


class _Attention(Function):
    @staticmethod
    def forward(ctx, q, k, v, mask, causal, scale, dropout_p):
        batch = layout.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
        if mask is not None:
            batch = layout.broadcast_shapes(batch, mask.shape[:-2])
        L, S, D = q.shape[-2], k.shape[-2], q.shape[-1]
        N, NB1 = layout.numel(batch), (batch[-1] if batch else 1)
        dev = q.device
        defines = _config(dev, D)
        kt = _transposed(k, batch, defines)  # (N, D, S)
        q, qs, _ = _addressing(q, batch)
        vd, vs = _dense_rows(v, batch, defines)
        has_mask, mbuf, ms, mss = _mask_args(mask, batch, L, S, q)
        out, os = _output_like(q, batch + (L, D))
        lse = empty(batch + (L,), device=dev)
        drop = (dropout_p, 1.0 / (1.0 - dropout_p) if dropout_p < 1.0 else 0.0, next_seed() if dropout_p else 0)
        if N * L * D and S:
            launch(dev, "attention.cl", "attn_fwd", (-(-L // defines["BQ"]), N), N, NB1, L, S, D, scale, causal,
                   has_mask, *drop, qs, vs, ms, mss, os, q, kt, vd, mbuf, out, lse, local=(defines["WG"], 1),
                   defines=defines)
        ctx.save_for_backward(q, k, v, mask, out, lse, kt)
        ctx.args = (batch, causal, scale, defines, drop)
        return out

    @staticmethod
    def backward(ctx, g):
        q, k, v, mask, out, lse, kt = ctx.saved_tensors
        batch, causal, scale, defines, drop = ctx.args
        L, S, D = q.shape[-2], k.shape[-2], q.shape[-1]
        N, NB1 = layout.numel(batch), (batch[-1] if batch else 1)
        dev = q.device
        gd, gs = _dense_rows(g, batch, defines)   # rows the kernels stream
        qd, qs = _dense_rows(q, batch, defines)
        kd, ks = _dense_rows(k, batch, defines)
        v, vs, _ = _addressing(v, batch)           # rows read once, into registers
        has_mask, mbuf, ms, mss = _mask_args(mask, batch, L, S, q)
        sizes = (N, NB1, L, S, D, scale, causal, has_mask, *drop)
        delta = empty(batch + (L,), device=dev)
        # each gradient laid out in its input's dim order: MultiheadAttention's views of (L, B, H, D)
        # memory get gradients that reshape back to (L, B, E) without a copy
        (dq, dqs), (dk, dks), (dv, dvs) = (_output_like(t, batch + t.shape[-2:]) for t in (q, k, v))
        if N * L * D == 0 or S == 0:
            return dq.zero_(), dk.zero_(), dv.zero_(), None, None, None, None
        launch(dev, "attention.cl", "attn_bwd_delta", (L, N), N, NB1, L, D, gs, _addressing(out, batch)[1], gd,
               out, delta, local=(_ROW_LOCAL, 1), defines=defines)
        # On a CPU with batch items enough to fill its cores, one work-item per batch item walks all
        # key blocks and accumulates dQ itself (5 products, not 7); else dQ has a kernel of its own.
        fuse_dq = int(defines["WG"] == 1 and N >= FUSE_DQ_ITEMS_PER_UNIT * dev.cl_device.max_compute_units)
        if not fuse_dq:
            vt = _transposed(v, batch, defines)
            launch(dev, "attention.cl", "attn_bwd_dq", (-(-L // defines["BQ"]), N), *sizes, qs, ks, gs, ms, mss,
                   dqs, qd, kd, kt, vt, gd, mbuf, lse, delta, dq, local=(defines["WG"], 1), defines=defines)
        qt = _transposed(qd.reshape(*batch, L, D), batch, defines)
        gt = _transposed(gd.reshape(*batch, L, D), batch, defines)
        launch(dev, "attention.cl", "attn_bwd_dkdv", (1 if fuse_dq else -(-S // defines["BQ"]), N), *sizes,
               qs, ks, vs, gs, ms, mss, dks, dvs, dqs, fuse_dq, qd, kd, v, gd, qt, gt, mbuf, lse, delta, dk, dv, dq,
               local=(defines["WG"], 1), defines=defines)
        return dq, dk, dv, None, None, None, None


def _float_mask(mask):
    """A bool mask (True = attend) as an additive float mask (0 / -inf)."""
    if mask is None or mask.dtype is not dtypes.bool_:
        return mask
    return where(mask, 0.0, -math.inf)


def _unfused(q, k, v, mask, dropout_p, is_causal, scale):
    scores = (q @ k.mT) * scale
    L, S = q.shape[-2], k.shape[-2]
    if is_causal:
        causal = np.where(np.tril(np.ones((L, S), dtype=bool)), 0.0, -np.inf).astype(np.float32)
        scores = scores + Tensor.from_data(causal, device=q.device)
    if mask is not None:
        scores = scores + mask
    peak = scores.amax(dim=-1, keepdim=True).detach()
    peak = peak.masked_fill(peak == -math.inf, 0.0)
    e = (scores - peak).exp()
    p = e / e.sum(dim=-1, keepdim=True)
    return dropout(p, dropout_p) @ v


@float32_kernels(LOWER)
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """softmax(Q K^T * scale + mask) V over the last two dims, with any leading batch dims (PyTorch's semantics)."""
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor) or t.ndim < 2:
            raise ValueError(f"scaled_dot_product_attention: {name} must be a tensor of at least 2 dims, "
                             f"got {getattr(t, 'shape', type(t).__name__)}")
    q, k, v = query, key, value
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: query {q.shape}, key {k.shape} and value {v.shape} "
                         "need query/key head dims to match and key/value lengths to match")
    if len({t.device for t in (q, k, v)}) > 1:
        raise RuntimeError(f"scaled_dot_product_attention: query, key and value are on different devices "
                           f"({q.device.spec}, {k.device.spec}, {v.device.spec})")
    if any(t.dtype is not dtypes.float32 for t in (q, k, v)):
        raise TypeError(f"scaled_dot_product_attention supports float32, got {q.dtype!r}, {k.dtype!r}, {v.dtype!r}")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal, not both (as PyTorch)")
    L, S = q.shape[-2], k.shape[-2]
    if attn_mask is not None:
        try:
            layout.broadcast_shapes(attn_mask.shape, q.shape[:-2] + (L, S))
        except ValueError:
            raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {attn_mask.shape} does not "
                             f"broadcast to the scores' shape {q.shape[:-2] + (L, S)}") from None
    return attention(q, k, v, attn_mask, dropout_p, is_causal, scale)


@float32_kernels(LOWER)
def attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """scaled_dot_product_attention without argument checks; allows a mask together with is_causal."""
    L, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    mask = _float_mask(attn_mask)
    if mask is not None and mask.dtype is not dtypes.float32:
        mask = mask.float()
    if mask is not None and mask.ndim < 2:
        mask = mask.reshape((1,) * (2 - mask.ndim) + tuple(mask.shape))
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1], got {dropout_p}")
    fused = q.shape[-1] == v.shape[-1] and q.shape[-1] <= _HEAD_DIMS[-1]
    if not fused:
        return _unfused(q, k, v, mask, dropout_p, is_causal, scale)
    n = layout.numel(layout.broadcast_shapes(q.shape[:-2], k.shape[:-2])) * max(L, S) * q.shape[-1]
    if n >= 2 ** 31:
        raise ValueError(f"scaled_dot_product_attention: {q.shape} x {k.shape} exceeds the 2**31 element limit")
    return _Attention.apply(q, k, v, mask.detach() if mask is not None else None, bool(is_causal), scale,
                            float(dropout_p))
