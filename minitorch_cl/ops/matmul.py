"""matmul (1-D, 2-D, batched, broadcast batch dims) and linear, all through the GEMM kernel;
transposed operands are passed to it as strides, never copied."""
from .. import dtypes, layout
from ..autograd import Function
from ..gemm import PackedB, gemm, pack_b as _pack_b
from ..shared_constants import BIAS_NONE, BIAS_PER_COLUMN, BIAS_PER_ROW
from ..tensor import Tensor, empty
from .precision import LOWER, float32_kernels


def _operand(x, batch_shape):
    """(x', trans, ld, batch_stride) describing x's matrices for GEMM; x' is x or a contiguous copy."""
    R, C = x.shape[-2:]
    for attempt in range(2):
        sr, sc = x.strides[-2:]
        trans = None
        if sc == 1 or C == 1:
            trans, ld = False, sr if R > 1 else C
        if trans is None and (sr == 1 or R == 1):
            trans, ld = True, sc if C > 1 else R
        bstrides = layout.broadcast_strides(x.shape[:-2], x.strides[:-2], batch_shape)
        cshape, (cstr,) = layout.coalesce(batch_shape, [bstrides])
        if trans is not None and len(cshape) == 1 and ld >= 1:
            return x, trans, max(ld, 1), cstr[0]
        x = x.expand(*batch_shape, R, C).contiguous()  # a layout GEMM cannot read: copy once
    raise AssertionError("a contiguous operand is always readable")


def _check(a, b):
    if a.device != b.device:
        raise RuntimeError(f"matmul: tensors on different devices ({a.device.spec} and {b.device.spec})")
    if a.dtype is not dtypes.float32 or b.dtype is not dtypes.float32:
        raise TypeError(f"matmul supports float32, got {a.dtype!r} and {b.dtype!r}")


def pack_b(b):
    """A constant 2-D right operand (K, N) laid out once, for many gemm_into(out, a, packed) calls."""
    if b.ndim != 2 or b.dtype is not dtypes.float32:
        raise ValueError(f"pack_b needs a 2-D float32 tensor, got shape {b.shape} and {b.dtype!r}")
    b, tb, ldb, _ = _operand(b, ())
    return _pack_b(b.device, b.shape[0], b.shape[1], b.buffer, trans_b=tb, ldb=ldb, off_b=b.offset)


def gemm_into(out, a, b, bias=None, bias_mode=BIAS_NONE, relu=False, accumulate=False, sum_batch=False):
    """out (contiguous, batch+(M,N)) = a @ b (+ bias) (relu) with a (..,M,K), b (..,K,N) or pack_b(b);
    sum_batch: out (M, N) = the sum over a and b's broadcast batch of a @ b."""
    packed = b if isinstance(b, PackedB) else None
    if sum_batch and packed is not None:
        raise ValueError("gemm_into: sum_batch needs b as a tensor, not packed")
    batch_shape = layout.broadcast_shapes(a.shape[:-2], b.shape[:-2]) if sum_batch else out.shape[:-2]
    M, N = out.shape[-2:]
    K = a.shape[-1]
    a, ta, lda, sa = _operand(a, batch_shape)
    if packed is None:
        b, tb, ldb, sb = _operand(b, batch_shape)
        b_buf, b_off = b.buffer, b.offset
    else:
        tb, ldb, sb, b_buf, b_off = False, None, 0, None, 0
    if bias is not None:
        bias = bias.reshape(-1).contiguous()  # the epilogue reads bias[n] (or bias[m]) densely
    bias_buf, bias_off = (bias.buffer, bias.offset) if bias is not None else (out.buffer, 0)
    gemm(out.device, M, N, K, a.buffer, b_buf, out.buffer, trans_a=ta, trans_b=tb, lda=lda, ldb=ldb, ldc=max(N, 1),
         off_a=a.offset, off_b=b_off, off_c=out.offset, batch=layout.numel(batch_shape),
         batch_a=sa, batch_b=sb, batch_c=M * N, bias=bias_buf, off_bias=bias_off, bias_mode=bias_mode,
         relu=relu, accumulate=accumulate, b_packed=packed, sum_batch=sum_batch)
    return out


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        batch_shape = layout.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        out = empty(batch_shape + (a.shape[-2], b.shape[-1]), device=a.device)
        return gemm_into(out, a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga = g @ b.mT if ctx.needs_input_grad[0] else None
        gb = a.mT @ g if ctx.needs_input_grad[1] else None
        return ga, gb


@float32_kernels(LOWER)
def matmul(a, b):
    """NumPy's matmul semantics: 1-D operands get a dim added and removed; batch dims broadcast."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError("matmul needs two tensors")
    _check(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs tensors of at least 1 dim, got shapes {a.shape} and {b.shape}")
    a2 = a.unsqueeze(0) if a.ndim == 1 else a
    b2 = b.unsqueeze(-1) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied "
                         f"({a2.shape[-1]} != {b2.shape[-2]})")
    try:
        layout.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dims of shapes {a.shape} and {b.shape} cannot be broadcast") from None
    out = MatMul.apply(a2, b2)
    if a.ndim == 1:
        out = out.squeeze(-2)
    if b.ndim == 1:
        out = out.squeeze(-1)
    return out


@float32_kernels(LOWER)
def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"mm needs 2-D tensors, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


@float32_kernels(LOWER)
def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm needs 3-D tensors with equal batch, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


def dot(a, b):
    return matmul(a, b)


# On the packed (CPU) path, x @ W^T packs all of W^T into panels on every call; with few rows of x
# (at most this many) against a large weight (at least SWAP_MIN_WEIGHT elements), y^T = W @ x^T
# reads W in place as the row-major A instead and packs only x (AlexNet's classifier at batch 16:
# 96 -> 29 ms; the ConvNet's fc1 at batch 64: 4.1 -> 2.0 ms; even at 256 rows, slower at 512)
SWAP_MAX_ROWS = 128
SWAP_MIN_WEIGHT = 1 << 18


class Linear(Function):
    """y = x @ W^T + b, optionally ReLU'd, in one GEMM with a fused epilogue."""

    @staticmethod
    def forward(ctx, x, weight, bias, relu):
        out = empty(x.shape[:-1] + (weight.shape[0],), device=x.device)
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        out2 = out.reshape(-1, weight.shape[0])
        if x.device.profile.gemm_packed and x2.shape[0] <= SWAP_MAX_ROWS and weight.numel() >= SWAP_MIN_WEIGHT:
            out_t = empty(weight.shape[0], x2.shape[0], device=x.device)
            gemm_into(out_t, weight, x2.T, bias=bias, bias_mode=BIAS_PER_ROW if bias is not None else BIAS_NONE,
                      relu=relu)
            out2.copy_(out_t.T)
        else:
            gemm_into(out2, x2, weight.T, bias=bias,
                      bias_mode=BIAS_PER_COLUMN if bias is not None else BIAS_NONE, relu=relu)
        ctx.save_for_backward(x, weight, out if relu else None)
        ctx.relu = relu
        return out

    @staticmethod
    def backward(ctx, g):
        x, weight, out = ctx.saved_tensors
        if ctx.relu:
            g = g.relu_backward(out)
        g2 = g.reshape(-1, g.shape[-1])
        gx = (g @ weight) if ctx.needs_input_grad[0] else None
        gw = g2.T @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None
        gb = g2.sum(0) if ctx.needs_input_grad[2] else None
        return gx, gw, gb, None


@float32_kernels(LOWER)
def linear(x, weight, bias=None, relu=False):
    if x.shape[-1] != weight.shape[-1]:
        raise ValueError(f"linear: input of shape {x.shape} does not match weight of shape {weight.shape}")
    if x.ndim == 0:
        raise ValueError("linear needs an input of at least 1 dim")
    if x.ndim == 1:
        return Linear.apply(x.unsqueeze(0), weight, bias, relu).squeeze(0)
    return Linear.apply(x, weight, bias, relu)
