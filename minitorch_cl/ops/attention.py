"""scaled_dot_product_attention: the fused online-softmax kernels of clkernels/attention.cl, with an
unfused path (matmul, softmax, dropout, matmul) for dropout and shapes the kernels do not cover."""
import math

import numpy as np
import pyopencl.cltypes as cltypes

from .. import dtypes, layout
from ..autograd import Function
from ..tensor import Tensor, empty

__all__ = ["scaled_dot_product_attention"]

_HEAD_DIMS = (16, 32, 64, 128, 256)  # register-array sizes: one build variant each
_ROW_LOCAL = 64                       # fixed local size of the per-row delta kernel


def _config(dev, head_dim):
    """-D parameters: CPU work-items own 12 query rows in registers; GPU groups stage tiles in local memory."""
    dmax = next(b for b in _HEAD_DIMS if head_dim <= b)
    if dev.is_cpu:
        return dict(DMAX=dmax, BQ=12, BK=32, WG=1, USE_LOCAL=0)
    return dict(DMAX=dmax, BQ=1, BK=32 if dmax <= 128 else 16, WG=64, USE_LOCAL=1)


def _int4(*values):
    return cltypes.make_int4(*(int(x) for x in values))


def _addressing(t, batch, contiguous_cols=True):
    """(t', int4(offset, batch stride 0, batch stride 1, row stride), column stride) reading
    t (.., R, C) broadcast to batch + (R, C), with the batch index split as (n // batch[-1], n % batch[-1])."""
    for _ in range(2):
        if contiguous_cols and t.shape[-1] > 1 and t.strides[-1] != 1:
            t = t.contiguous()
        bstr = layout.broadcast_strides(t.shape[:-2], t.strides[:-2], batch)
        if not batch:
            return t, _int4(t.offset, 0, 0, t.strides[-2]), t.strides[-1]
        cshape, (cstr,) = layout.coalesce(batch[:-1], [bstr[:-1]])
        if len(cshape) == 1:
            return t, _int4(t.offset, cstr[0], bstr[-1], t.strides[-2]), t.strides[-1]
        t = t.expand(*batch, *t.shape[-2:]).contiguous()  # batch dims no two strides can walk
    raise AssertionError("a contiguous tensor is always addressable")


def _transposed(t, batch, defines):
    """t (.., R, C) broadcast to batch, as a contiguous (N, C, R) copy (one attn_transpose launch)."""
    R, C = t.shape[-2:]
    N, NB1 = layout.numel(batch), (batch[-1] if batch else 1)
    t, ts, _ = _addressing(t, batch)
    out = empty((N, C, R), device=t.device)
    dev = t.device
    dev.launch(dev.kernel("attention.cl", "attn_transpose", defines), (-(-R // 8), N), (_ROW_LOCAL, 1),
               np.int32(N), np.int32(NB1), np.int32(R), np.int32(C), ts, t.buffer, out.buffer)
    return out


def _dense_rows(t, batch, defines):
    """(t', int4) with t's rows adjacent in memory: t itself when they are, else a packed
    (N, R, D) copy (one attn_pack launch); the kernels stream these rows block after block."""
    t, ts, _ = _addressing(t, batch)
    R, C = t.shape[-2:]
    if int(ts["s3"]) == C or R == 1:
        return t, ts
    N, NB1 = layout.numel(batch), (batch[-1] if batch else 1)
    out = empty((N, R, C), device=t.device)
    dev = t.device
    dev.launch(dev.kernel("attention.cl", "attn_pack", defines), (R, N), (_ROW_LOCAL, 1),
               np.int32(N), np.int32(NB1), np.int32(R), np.int32(C), ts, t.buffer, out.buffer)
    return out, _int4(0, NB1 * R * C, R * C, C)


def _output_like(q, shape):
    """An output of `shape` laid out in q's dim order (so attention over (L, B, H, D) memory, as
    MultiheadAttention makes it, writes (L, B, H, D) and needs no copy afterwards), with its int4."""
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
        return 0, fallback.buffer, _int4(0, 0, 0, 0), 0
    m, ms, mss = _addressing(mask, batch, contiguous_cols=False)
    row_stride = m.strides[-2] if m.shape[-2] == L else 0  # a broadcast (size-1) dim reads one row/column
    ms = _int4(m.offset, int(ms["s1"]), int(ms["s2"]), row_stride)
    return 1, m.buffer, ms, (mss if m.shape[-1] == S else 0)


class _Attention(Function):
    @staticmethod
    def forward(ctx, q, k, v, mask, causal, scale):
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
        if N * L * D and S:
            kern = dev.kernel("attention.cl", "attn_fwd", defines)
            dev.launch(kern, (-(-L // defines["BQ"]), N), (defines["WG"], 1),
                       np.int32(N), np.int32(NB1), np.int32(L), np.int32(S), np.int32(D), np.float32(scale),
                       np.int32(causal), np.int32(has_mask), qs, vs, ms, np.int32(mss), os,
                       q.buffer, kt.buffer, vd.buffer, mbuf, out.buffer, lse.buffer)
        ctx.save_for_backward(q, k, v, mask, out, lse, kt)
        ctx.args = (batch, causal, scale, defines)
        return out

    @staticmethod
    def backward(ctx, g):
        q, k, v, mask, out, lse, kt = ctx.saved_tensors
        batch, causal, scale, defines = ctx.args
        L, S, D = q.shape[-2], k.shape[-2], q.shape[-1]
        N, NB1 = layout.numel(batch), (batch[-1] if batch else 1)
        dev = q.device
        gd, gs = _dense_rows(g, batch, defines)   # rows the kernels stream
        qd, qs = _dense_rows(q, batch, defines)
        kd, ks = _dense_rows(k, batch, defines)
        v, vs, _ = _addressing(v, batch)           # rows read once, into registers
        has_mask, mbuf, ms, mss = _mask_args(mask, batch, L, S, q)
        sizes = (np.int32(N), np.int32(NB1), np.int32(L), np.int32(S), np.int32(D), np.float32(scale),
                 np.int32(causal), np.int32(has_mask))
        delta = empty(batch + (L,), device=dev)
        dq = empty(batch + (L, D), device=dev)
        dk = empty(batch + (S, D), device=dev)
        dv = empty(batch + (S, D), device=dev)
        if N * L * D == 0 or S == 0:
            return dq.zero_(), dk.zero_(), dv.zero_(), None, None, None
        dev.launch(dev.kernel("attention.cl", "attn_bwd_delta", defines), (L, N), (_ROW_LOCAL, 1),
                   np.int32(N), np.int32(NB1), np.int32(L), np.int32(D), gs, _addressing(out, batch)[1], gd.buffer,
                   out.buffer, delta.buffer)
        vt = _transposed(v, batch, defines)
        dev.launch(dev.kernel("attention.cl", "attn_bwd_dq", defines), (-(-L // defines["BQ"]), N),
                   (defines["WG"], 1), *sizes, qs, ks, gs, ms, np.int32(mss),
                   qd.buffer, kd.buffer, kt.buffer, vt.buffer, gd.buffer, mbuf, lse.buffer, delta.buffer, dq.buffer)
        qt = _transposed(qd.reshape(*batch, L, D), batch, defines)
        gt = _transposed(gd.reshape(*batch, L, D), batch, defines)
        dev.launch(dev.kernel("attention.cl", "attn_bwd_dkdv", defines), (-(-S // defines["BQ"]), N),
                   (defines["WG"], 1), *sizes, qs, ks, vs, gs, ms, np.int32(mss),
                   qd.buffer, kd.buffer, v.buffer, gd.buffer, qt.buffer, gt.buffer, mbuf, lse.buffer,
                   delta.buffer, dk.buffer, dv.buffer)
        return dq, dk, dv, None, None, None


def _float_mask(mask):
    """A bool mask (True = attend) as an additive float mask (0 / -inf)."""
    if mask is None or mask.dtype is not dtypes.bool_:
        return mask
    from .elementwise import where
    return where(mask, 0.0, -math.inf)


def _unfused(q, k, v, mask, dropout_p, is_causal, scale):
    from .dropout import dropout
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


def attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
    """scaled_dot_product_attention without argument checks; allows a mask together with is_causal."""
    L, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    mask = _float_mask(attn_mask)
    if mask is not None and mask.dtype is not dtypes.float32:
        mask = mask.float()
    if mask is not None and mask.ndim < 2:
        mask = mask.reshape((1,) * (2 - mask.ndim) + tuple(mask.shape))
    fused = dropout_p == 0.0 and q.shape[-1] == v.shape[-1] and q.shape[-1] <= _HEAD_DIMS[-1]
    if not fused:
        return _unfused(q, k, v, mask, dropout_p, is_causal, scale)
    n = layout.numel(layout.broadcast_shapes(q.shape[:-2], k.shape[:-2])) * max(L, S) * q.shape[-1]
    if n >= 2 ** 31:
        raise ValueError(f"scaled_dot_product_attention: {q.shape} x {k.shape} exceeds the 2**31 element limit")
    return _Attention.apply(q, k, v, mask.detach() if mask is not None else None, bool(is_causal), scale)
