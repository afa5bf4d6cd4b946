"""conv2d as im2col (clkernels/conv.cl) + one batched GEMM over the whole batch, bias and ReLU
fused into the GEMM's epilogue; the GEMM writes (N, C, H, W) directly, so nothing is transposed.
Backward: dX = col2im(W^T @ g), a batched GEMM, and dW^T = sum over images of col @ g^T, one GEMM
summing over the batch; both read transposed views. The backward keeps x, not col (KH*KW times
larger), and rebuilds col for dW after dX's dcol is freed. A pointwise convolution (1x1, stride 1,
no padding) has no col at all: the GEMMs read x (and write dx) as (N, C, H*W).
Groups: the column rows and the weight split into G blocks, so each image is one GEMM batched over
the groups (and dW one batch-summed GEMM per group); depthwise convolution (groups == C) has direct
kernels instead, whose K = KH*KW is too small for a GEMM. conv_transpose is the adjoint: col2im(W^T @ x)
forward, and im2col + GEMM backward. An explicit output size lets 'same' pad more on the
right/bottom, as PyTorch does for even kernels: im2col reads zeros past the input's end.
On the packed CPU path a stride-1 convolution of a large enough plane has no col either: the input is
zero-padded once and the GEMM reads each column row as a shifted run of it (gemm_implicit)."""
from .. import backend, dtypes, layout
from ..autograd import Function
import numpy as np

from ..gemm import PackedB, gemm, gemm_implicit, panel_width
from ..launch import At, launch
from ..shared_constants import (ACT_HARDSIGMOID, ACT_HARDSWISH, ACT_NONE, ACT_RELU, ACT_RELU6, ACT_SILU, BIAS_NONE,
                                BIAS_PER_ROW)
from ..tensor import Tensor, arange, empty, tensor
from . import activation
from .shape import index_select
from .matmul import gemm_into
from .precision import LOWER, float32_kernels

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"]
# Floats of im2col columns made at once (8 MiB): a batch whose columns are larger runs in chunks of
# images, so that a convolution's transient memory stays bounded whatever the batch (the ConvNet's
# conv2 at batch 64 held 18 MiB of columns in backward, the largest single item of its step).
COL_BUDGET = 1 << 21


def _pair(v, name):
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    if len(v) != 2 or not all(isinstance(i, int) for i in v):
        raise ValueError(f"conv2d: {name} must be an int or a pair of ints, got {v}")
    return v


def output_size(size, kernel, stride, padding, dilation):
    """PyTorch's floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _pointwise(KH, KW, stride, padding):
    """A 1x1 convolution with stride 1 and no padding: its col is the input itself."""
    return KH == KW == 1 and tuple(stride) == (1, 1) and tuple(padding) == (0, 0)


def _columns(x, KH, KW, stride, padding, dilation, OH, OW):
    """im2col for the convolutions' own GEMMs: for a pointwise convolution, x itself as (N, C, H*W)."""
    if _pointwise(KH, KW, stride, padding):
        return x.contiguous().reshape(x.shape[0], x.shape[1], -1)
    return im2col(x, KH, KW, stride, padding, dilation, OH, OW)


def _uncolumns(dcol, shape, KH, KW, stride, padding, dilation, OH, OW):
    """col2im of a fresh dcol for the convolutions: for a pointwise convolution, dcol itself."""
    if _pointwise(KH, KW, stride, padding):
        return dcol.reshape(shape)
    return col2im(dcol, shape, KH, KW, stride, padding, dilation, OH, OW)


def _image_chunks(N, K, P, pointwise):
    """(start, stop) ranges of images whose columns, K x P floats each, fit COL_BUDGET (one image at
    least); a pointwise convolution makes no columns and takes the batch whole."""
    step = N if pointwise else max(1, COL_BUDGET // max(K * P, 1))
    return [(n, min(n + step, N)) for n in range(0, N, step)]


def im2col(x, KH, KW, stride, padding, dilation, OH, OW):
    """x (N, C, H, W), any strides -> col (N, C*KH*KW, OH*OW)."""
    N, C, H, W = x.shape
    dev = x.device
    K = C * KH * KW
    col = empty(N, K, OH * OW, device=dev)
    rows = N * K * OH
    if rows and OW:
        win = layout.window_struct(x.shape, (OH, OW), (KH, KW), stride, padding, dilation)
        launch(dev, "conv.cl", "im2col_fwd", (rows,), win, layout.strides4_struct(x.strides), x, col)
    return col


WEIGHT_T_LOCAL = (64, 1)  # conv_weight_t: (oc, tap) by c
GATHER_ROWS = 16  # im2col_gather(_t)'s work-group: a panel's NR lanes by this many rows (of K, or positions)
_QOFF = {}  # (device, N, C, OH, OW, SH, SW, Hp, Wp, nr, joined) -> im2col_gather's int32 qoff table


def _gather_plane(H, W, OH, OW, KH, KW, stride, padding, dilation):
    """(Hp, Wp) of the padded input im2col_gather reads: every tap of every output inside it, the
    right padding shared with the next row's left (as _implicit_plane, at any stride)."""
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    return (max(H + PH, (OH - 1) * SH + (KH - 1) * DH + 1),
            max(W + PW, (OW - 1) * SW + (KW - 1) * DW + 1 - PW))


def _qoff(dev, N, C, OH, OW, stride, Hp, Wp, nr, joined):
    """qoff[q]: where position q of the panels reads, past its column row's start, in the padded batch
    (N, C, Hp, Wp); -1 for a panel's pad. joined: q = n*P + p; else image n's positions start at a panel."""
    key = (dev, N, C, OH, OW, *stride, Hp, Wp, nr, joined)
    t = _QOFF.get(key)
    if t is None:
        P = OH * OW
        span = -(-N * P // nr) * nr if joined else -(-P // nr) * nr  # positions per image (or in all)
        q = np.arange(span * (1 if joined else N))
        n, p = (q // P, q % P) if joined else (q // span, q % span)
        offs = n * C * Hp * Wp + (p // OW) * stride[0] * Wp + (p % OW) * stride[1]
        offs[(n >= N) | (p >= P)] = -1
        t = _QOFF[key] = tensor(offs.astype(np.int32), device=dev)
    return t


def _gather(x, KH, KW, stride, padding, dilation, OH, OW, nr, joined, kernel, grid, positions, size, flip=False):
    """conv.cl's im2col_gather or im2col_gather_t over grid and its first `positions` positions into a
    fresh buffer of `size` floats, from x padded (conv_pad_planes) through its offset tables; returns
    the buffer; flip: the taps in reverse order (_koff)."""
    N, C, H, W = x.shape
    dev = x.device
    Hp, Wp = _gather_plane(H, W, OH, OW, KH, KW, stride, padding, dilation)
    xp = _pad_planes(x, Hp, Wp, padding, padding[1])  # (a tap past the last row's end reads a zero there)
    qoff = _qoff(dev, N, C, OH, OW, stride, Hp, Wp, nr, joined)
    buf = dev.alloc(4 * max(size, 1))
    launch(dev, "conv.cl", kernel, grid, C * KH * KW, positions, At(xp, 0), _koff(dev, C, KH, KW, dilation, Hp, Wp, flip),
           qoff, At(buf, 0), local=(nr, GATHER_ROWS, 1), defines={"NR": nr}, nbytes=8 * size)
    return buf


def im2col_panels(x, KH, KW, stride, padding, dilation, OH, OW, nr, joined=False, flip=False):
    """x (N, C, H, W), any strides -> its columns as GEMM B panels (gemm.panel_width nr): a PackedB of
    (K, P) per image, or joined, one (K, N*P) with the images' positions end to end. im2col and the
    GEMM's pack in one pass, at the columns' size (CPU path), gathered from the padded input; flip:
    each channel's taps in reverse order (the columns of a flipped kernel)."""
    N, C = x.shape[:2]
    K, P = C * KH * KW, OH * OW
    per_image = -(-P // nr) * nr  # positions per image's panels, or in all of them joined
    Q = -(-N * P // nr) * nr if joined else per_image * N
    buf = _gather(x, KH, KW, stride, padding, dilation, OH, OW, nr, joined, "im2col_gather", (nr, K, Q // nr), Q,
                  Q * K, flip)
    if joined:
        return PackedB(x.device, K, N * P, buf, 0, False, None, True)
    return PackedB(x.device, K, P, buf, 0, False, None, True, batch_stride=per_image * K)


def _joined(N, P, nr):
    """Whether a batch's columns go into panels end to end: where an image's own last panel would
    leave over an eighth of its positions' width empty (a 4x4 or 7x7 layer on 32-wide panels)."""
    return nr is not None and N > 1 and 8 * (-(-P // nr) * nr - P) > P


def im2col_panels_t(x, KH, KW, stride, padding, dilation, OH, OW, nr):
    """x (N, C, H, W), any strides -> its columns transposed, (N*P, K), as GEMM B panels: the weight
    gradient's right operand, a PackedB with the images end to end along the GEMM's K (CPU path),
    gathered from the padded input."""
    N, C = x.shape[:2]
    K, R = C * KH * KW, N * OH * OW
    KP = -(-K // nr)
    buf = _gather(x, KH, KW, stride, padding, dilation, OH, OW, nr, True, "im2col_gather_t", (nr, R, KP), R,
                  KP * nr * R)
    return PackedB(x.device, R, K, buf, 0, False, None, True)


_TOFF = {}  # (device, H, W, OH, OW, KH, KW, stride, padding, dilation) -> col2im_gather's toff table


def _toff(dev, H, W, OH, OW, KH, KW, stride, padding, dilation):
    """toff[s, t]: where tap t = (kh, kw)'s column row holds the output that read plane position s = (h, w),
    t*P + oh*OW + ow, or -1 where none did."""
    key = (dev, H, W, OH, OW, KH, KW, *stride, *padding, *dilation)
    t = _TOFF.get(key)
    if t is None:
        (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
        h, w, kh, kw = np.meshgrid(np.arange(H), np.arange(W), np.arange(KH), np.arange(KW), indexing="ij")
        th, tw = h + PH - kh * DH, w + PW - kw * DW  # oh * SH and ow * SW where the tap read (h, w)
        oh, ow = th // SH, tw // SW
        ok = (th >= 0) & (th % SH == 0) & (oh < OH) & (tw >= 0) & (tw % SW == 0) & (ow < OW)
        offs = np.where(ok, (kh * KW + kw) * OH * OW + oh * OW + ow, -1)
        t = _TOFF[key] = tensor(offs.reshape(-1).astype(np.int32), device=dev)
    return t


def col2im(dcol, shape, KH, KW, stride, padding, dilation, OH, OW, out=None):
    """The adjoint of im2col: dcol (N, C*KH*KW, OH*OW) contiguous -> dx (N, C, H, W), summing overlaps; into
    out (contiguous, that shape) when given."""
    dev = dcol.device
    dx = empty(*shape, device=dev) if out is None else out
    N, C, H, W = shape
    if dx.numel():
        launch(dev, "conv.cl", "col2im_gather", (N * C * H * W,), N * C, H * W, OH * OW, dcol,
               _toff(dev, H, W, OH, OW, KH, KW, stride, padding, dilation), dx, defines={"TAPS": KH * KW})
    return dx


def _grouped_gemm(out, a, b, G):
    """out[n, g] (M, P) = a[g] (M, K) @ b[n, g] (K, P); out (N, G*M, P) contiguous, a (G, M, K) (any view
    GEMM reads), b (N, G*K, P) contiguous. G == 1 is one batched GEMM. Otherwise, with fewer images than
    groups, one GEMM per image batched over the groups; else one GEMM per group batched over the images
    into a (G, N, M, P) buffer and one copy into place."""
    if G == 1:
        return gemm_into(out, a[0], b)
    N, GM, P = out.shape
    M, K = GM // G, b.shape[1] // G
    if N <= G:
        for n in range(N):
            gemm_into(out[n].reshape(G, M, P), a, b[n].reshape(G, K, P))
        return out
    tmp = empty(G, N, M, P, device=out.device)
    for g in range(G):
        gemm_into(tmp[g], a[g], b[:, g * K:(g + 1) * K])
    backend.copy_(out.reshape(N, G, M, P), tmp.permute(1, 0, 2, 3))
    return out


def _grouped_sum_gemm(out, a, b, G, accumulate=False):
    """out[g] (M, R) (+)= sum over n of a[n, g] (M, P) @ b[n, g]^T (P, R); a (N, G*M, P), b (N, G*R, P)."""
    M, R = out.shape[1:]
    for g in range(G):
        gemm_into(out[g], a[:, g * M:(g + 1) * M], b[:, g * R:(g + 1) * R].mT, sum_batch=True,
                  accumulate=accumulate)
    return out


def _add_bias(out, bias):
    return out if bias is None else out + bias.reshape(1, -1, 1, 1)


# gemm_implicit computes OH * Wp positions in panels of NR to give OH * OW: below this share of
# useful ones (an 8x8 or 4x4 plane) im2col's panels, joined over the batch, measured faster
IMPLICIT_MIN_USE = 0.8
# ... and below this K = C*KH*KW, whose product may not outweigh its epilogue (scalar stores where a
# vector straddles a row's end): at K = 27 (3 input channels) it measured even (ResNet's conv1) or
# faster (the ConvNet's conv1, 4.8 -> 3.9 ms CPU time), smaller K untried
IMPLICIT_MIN_K = 27


def _implicit_plane(H, W, OH, OW, KH, KW, padding, dilation):
    """(Hp, Wp) of conv_pad_planes' padded input for gemm_implicit: rows for every tap of every output
    row, and a row pitch wide enough for the input and the outputs, but whose right padding is the
    next row's left padding (a tap past a row's end reads a zero there)."""
    (PH, PW), (DH, DW) = padding, dilation
    return max(H + PH, OH + (KH - 1) * DH), max(W + PW, OW + (KW - 1) * DW - PW, OW)


def _implicit_use(shape, KH, KW, stride, padding, dilation, OH, OW, nr):
    """Whether a stride-1 convolution takes gemm_implicit (see IMPLICIT_MIN_USE and IMPLICIT_MIN_K)."""
    if nr is None or tuple(stride) != (1, 1) or _pointwise(KH, KW, stride, padding) or \
            shape[1] * KH * KW < IMPLICIT_MIN_K:
        return False
    Wp = _implicit_plane(*shape[2:], OH, OW, KH, KW, padding, dilation)[1]
    return OH * OW >= IMPLICIT_MIN_USE * -(-OH * Wp // nr) * nr


_KOFF = {}  # (device, C, KH, KW, DH, DW, Hp, Wp, flip) -> gemm_implicit's int32 koff table


def _koff(dev, C, KH, KW, dilation, Hp, Wp, flip=False):
    """koff[k] for k = (c, kh, kw): where column row k starts in a padded image, c*Hp*Wp + kh*DH*Wp + kw*DW;
    flip: the taps' order reversed (the row of tap (KH-1-kh, KW-1-kw)), a weight flipped for free."""
    key = (dev, C, KH, KW, *dilation, Hp, Wp, flip)
    t = _KOFF.get(key)
    if t is None:
        c, kh, kw = np.meshgrid(np.arange(C), np.arange(KH), np.arange(KW), indexing="ij")
        if flip:
            kh, kw = KH - 1 - kh, KW - 1 - kw
        offs = c * Hp * Wp + kh * dilation[0] * Wp + kw * dilation[1]
        t = _KOFF[key] = tensor(offs.reshape(-1).astype(np.int32), device=dev)
    return t


def _pad_planes(x, Hp, Wp, padding, tail):
    """conv_pad_planes: x (A, B, H, W), any strides, into a fresh (A, B, Hp, Wp) buffer, shifted down and
    right by padding, zeros around and `tail` zeros after; returns the raw buffer."""
    size = x.shape[0] * x.shape[1] * Hp * Wp + tail
    xp = x.device.alloc(4 * size)
    win = layout.window_struct(x.shape, (0, 0), (1, 1), (1, 1), padding, (1, 1))
    launch(x.device, "conv.cl", "conv_pad_planes", (x.shape[0] * x.shape[1] * Hp,), win,
           layout.strides4_struct(x.strides), Hp, Wp, tail, x, At(xp, 0), nbytes=4 * (size + x.numel()))
    return xp


def _conv_implicit(x, w2, KH, KW, bias, padding, dilation, OH, OW, relu, nr, flip=False):
    """out (N, OC, OH, OW) of a stride-1 convolution with no columns: x zero-padded once (conv_pad_planes),
    then gemm_implicit reads its shifted rows as B; bias contiguous or None; flip: with w2's taps
    flipped."""
    N, C, H, W = x.shape
    OC, K = w2.shape
    dev = x.device
    Hp, Wp = _implicit_plane(H, W, OH, OW, KH, KW, padding, dilation)
    # the last image's last column row reads up to its last panel's end
    tail = max(0, (KH - 1) * dilation[0] * Wp + (KW - 1) * dilation[1] + -(-OH * Wp // nr) * nr - Hp * Wp)
    xp = _pad_planes(x, Hp, Wp, padding, tail)
    out = empty(N, OC, OH, OW, device=dev)
    gemm_implicit(dev, OC, K, w2.buffer, w2.shape[1], w2.offset, At(xp, 0), _koff(dev, C, KH, KW, dilation, Hp, Wp, flip),
                  C * Hp * Wp, OH, OW, Wp, out.buffer, out.offset, N,
                  bias=None if bias is None else bias.buffer, off_bias=0 if bias is None else bias.offset,
                  relu=relu)
    return out


def _weight_grad_implicit(x, g, KH, KW, padding, dilation):
    """dW (OC, C*KH*KW) of a stride-1 convolution with no columns: dW^T (K, OC) = col (K, R) @ g^T (R, OC)
    over R = N*Hp*Wp positions, x padded channel-major, (C, N, Hp, Wp), so that one channel's images run
    end to end: col's row k is the run xp[koff[k]:][:R] (gemm a_rows), and g^T in B panels over the same
    positions, zero at those that are no output (the columns ow >= OW, the rows oh >= OH); g contiguous."""
    N, C, H, W = x.shape
    OC, OH, OW = g.shape[1:]
    dev, K = x.device, C * KH * KW
    Hp, Wp = _implicit_plane(H, W, OH, OW, KH, KW, padding, dilation)
    R = N * Hp * Wp
    # the last channel's rows read up to (KH-1)*DH rows and (KW-1)*DW columns past its images
    xp = _pad_planes(x.permute(1, 0, 2, 3), Hp, Wp, padding, (KH - 1) * dilation[0] * Wp + (KW - 1) * dilation[1])
    # g^T straight into B panels (ceil(OC/NR), R, NR) by im2col_gather_t: "column row" oc at oc*P of g,
    # position r = (n, hp, wp) at n*OC*P + hp*OW + wp, none where hp >= OH or wp >= OW
    nr = panel_width(dev)
    key = (dev, "g", N, OC, OH, OW, Hp, Wp)
    if key not in _QOFF:
        n, hp, wp = np.meshgrid(np.arange(N), np.arange(Hp), np.arange(Wp), indexing="ij")
        rows = np.where((hp < OH) & (wp < OW), n * OC * OH * OW + hp * OW + wp, -1).reshape(-1)
        _QOFF[key] = (tensor(rows.astype(np.int32), device=dev),
                      tensor((np.arange(OC) * OH * OW).astype(np.int32), device=dev))
    rows, chans = _QOFF[key]
    KP = -(-OC // nr)
    gp = dev.alloc(4 * KP * nr * R)
    launch(dev, "conv.cl", "im2col_gather_t", (nr, R, KP), OC, R, g, chans, rows, At(gp, 0),
           local=(nr, GATHER_ROWS, 1), defines={"NR": nr}, nbytes=8 * KP * nr * R)
    gwt = empty(K, OC, device=dev)
    gemm(dev, K, OC, R, xp, None, gwt.buffer, lda=0, ldc=OC, off_c=gwt.offset,
         b_packed=PackedB(dev, R, OC, gp, 0, False, None, True), a_rows=_koff(dev, C, KH, KW, dilation, N * Hp, Wp))
    return gwt.mT.contiguous()


def _conv_forward(x, w2, KH, KW, bias, stride, padding, dilation, G, OH, OW, relu, flip=False):
    """out (N, OC, OH, OW) = conv2d(x, w2 (OC, C/G*KH*KW) contiguous) (+ bias) (ReLU), image chunk by
    chunk (COL_BUDGET); flip (G == 1 on the packed CPU path only): with w2's taps flipped."""
    N, OC = x.shape[0], w2.shape[0]
    bias_c = bias.contiguous() if bias is not None and G == 1 else None  # the epilogue reads it densely
    pointwise = _pointwise(KH, KW, stride, padding)
    nr = panel_width(x.device) if G == 1 and not pointwise else None
    if _implicit_use(x.shape, KH, KW, stride, padding, dilation, OH, OW, nr):
        return _conv_implicit(x, w2, KH, KW, bias_c, padding, dilation, OH, OW, relu, nr, flip)
    out = empty(N, OC, OH, OW, device=x.device)
    for n0, n1 in _image_chunks(N, w2.shape[1] * G, OH * OW, pointwise):
        out_c = out[n0:n1].reshape(n1 - n0, OC, OH * OW)
        if _joined(n1 - n0, OH * OW, nr):
            # one GEMM over the chunk's positions end to end, (OC, n*P), then into (n, OC, P)
            col = im2col_panels(x[n0:n1], KH, KW, stride, padding, dilation, OH, OW, nr, joined=True, flip=flip)
            flat = gemm_into(empty(OC, (n1 - n0) * OH * OW, device=x.device), w2, col, bias=bias_c,
                             bias_mode=BIAS_PER_ROW if bias_c is not None else BIAS_NONE, relu=relu)
            backend.copy_(out_c, flat.reshape(OC, n1 - n0, OH * OW).permute(1, 0, 2))
            del col, flat
            continue
        if nr:  # the columns go straight into the GEMM's panels
            col = im2col_panels(x[n0:n1], KH, KW, stride, padding, dilation, OH, OW, nr, flip=flip)
        else:
            col = _columns(x[n0:n1], KH, KW, stride, padding, dilation, OH, OW)  # (n, K, P)
        if G == 1:
            # one batched GEMM: out[n] (OC, P) = W (OC, K) @ col[n] (K, P), + bias[oc], ReLU
            gemm_into(out_c, w2, col, bias=bias_c, bias_mode=BIAS_PER_ROW if bias_c is not None else BIAS_NONE,
                      relu=relu)
        else:
            _grouped_gemm(out_c, w2.reshape(G, OC // G, -1), col, G)
        del col
    if G > 1:
        out = _add_bias(out, bias)
        out = out.relu() if relu else out
    return out


def _transposed_padding(KH, KW, stride, padding, dilation):
    """The padding of the stride-1 convolution of g with the flipped, transposed weight that gives a
    stride-1 convolution's input gradient (a full correlation), or None where there is none (a stride,
    or a padding past the kernel's reach)."""
    if tuple(stride) != (1, 1):
        return None
    pads = tuple(d * (k - 1) - p for k, p, d in zip((KH, KW), padding, dilation))
    return pads if min(pads) >= 0 else None


class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, OH, OW, relu):
        OC, _, KH, KW = weight.shape
        G = groups
        w2 = weight.contiguous().reshape(OC, -1)  # (OC, K / G)
        out = _conv_forward(x, w2, KH, KW, bias, stride, padding, dilation, G, OH, OW, relu)
        # x, not col: col is KH*KW times larger, and the backward rebuilds it (chunk by chunk) only
        # for the weight gradient, after the chunk's dcol is freed
        ctx.save_for_backward(x, w2, out if relu else None)
        ctx.geom = (x.shape, weight.shape, stride, padding, dilation, G, OH, OW, relu)
        return out

    @staticmethod
    def backward(ctx, g):
        x, w2, out = ctx.saved_tensors
        xshape, wshape, stride, padding, dilation, G, OH, OW, relu = ctx.geom
        N, OC, KH, KW = xshape[0], wshape[0], wshape[2], wshape[3]
        if relu:
            g = g.relu_backward(out)
        g3 = g.contiguous().reshape(N, OC, OH * OW)  # (N, OC, P)
        gx = gw = gb = None
        K, P, pointwise = w2.shape[1] * G, OH * OW, _pointwise(KH, KW, stride, padding)
        nr = panel_width(g.device) if G == 1 and not pointwise else None
        # (only where OC <= C, as its columns are OC*KH*KW rows per position, dcol's C*KH*KW, or where
        # it takes the implicit GEMM, which has no columns)
        flipped = _transposed_padding(KH, KW, stride, padding, dilation) if nr else None
        if flipped and OC > xshape[1] and not _implicit_use(g.shape, KH, KW, (1, 1), flipped, dilation, *xshape[2:],
                                                             nr):
            flipped = None
        if ctx.needs_input_grad[0] and flipped:
            # dX = g correlated with W flipped and transposed (C, OC, KH, KW): a forward convolution,
            # whose columns go straight into panels, with no dcol and no col2im gather
            # (the flip is the columns' koff table's, so the weight is only transposed)
            C, H, W = xshape[1:]
            wt = empty(C, OC * KH * KW, device=g.device)  # (C, OC, KH, KW)
            launch(g.device, "conv.cl", "conv_weight_t", (OC * KH * KW, C), OC, C, w2, wt, local=WEIGHT_T_LOCAL,
                   defines={"TAPS": KH * KW})
            gx = _conv_forward(g, wt, KH, KW, None, (1, 1), flipped, dilation, 1, H, W, False, flip=True)
        elif ctx.needs_input_grad[0]:
            gx = empty(*xshape, device=g.device)
        if ctx.needs_input_grad[1]:  # (OC, K), or per group transposed (G, K/G, OC/G)
            gw = empty(OC, K, device=g.device) if G == 1 else empty(G, K // G, OC // G, device=g.device)
        implicit_dw = ctx.needs_input_grad[1] and _implicit_use(xshape, KH, KW, stride, padding, dilation, OH, OW, nr)
        if implicit_dw:
            gw = _weight_grad_implicit(x, g3.reshape(N, OC, OH, OW), KH, KW, padding, dilation)
        # image chunk by chunk, so that at most one chunk's columns exist at a time
        for i, (n0, n1) in enumerate(_image_chunks(N, K, P, pointwise)):
            g_c = g3[n0:n1]
            if gx is not None and not flipped:
                gx_c = gx[n0:n1]
                # dcol[n, g] (K/G, P) = W[g]^T (K/G, OC/G) @ g[n, g] (OC/G, P); a pointwise one is gx itself
                dcol = gx_c.reshape(n1 - n0, K, P) if pointwise else empty(n1 - n0, K, P, device=g.device)
                _grouped_gemm(dcol, w2.reshape(G, OC // G, -1).mT, g_c, G)
                if not pointwise:
                    col2im(dcol, gx_c.shape, KH, KW, stride, padding, dilation, OH, OW, out=gx_c)
                del dcol
            if ctx.needs_input_grad[1] and not implicit_dw:
                # dW (OC, K) = sum over n of g[n] (OC, P) @ col[n]^T (P, K): one GEMM whose K runs over
                # all the chunk's positions (no per-image products to sum)
                if nr:  # the columns go straight into the GEMM's panels
                    colt = im2col_panels_t(x[n0:n1], KH, KW, stride, padding, dilation, OH, OW, nr)
                    gemm(g.device, OC, K, P, g_c.buffer, None, gw.buffer, lda=P, ldc=K, off_a=g_c.offset,
                         off_c=gw.offset, batch=n1 - n0, batch_a=OC * P, b_packed=colt, sum_batch=True,
                         accumulate=i > 0)
                    del colt
                else:
                    col = _columns(x[n0:n1], KH, KW, stride, padding, dilation, OH, OW)
                    if G == 1:
                        gemm_into(gw, g_c, col.mT, sum_batch=True, accumulate=i > 0)
                    else:  # per group, dW^T (K/G, OC/G) with the wider K as its M
                        _grouped_sum_gemm(gw, col, g_c, G, accumulate=i > 0)
                    del col
        if ctx.needs_input_grad[1]:
            gw = (gw if G == 1 else gw.mT.contiguous()).reshape(wshape)
        if ctx.needs_input_grad[2]:
            gb = g3.sum(2).sum(0)  # two plain reductions beat one over non-adjacent dims
        return gx, gw, gb, None, None, None, None, None, None, None


DW_BUF = 2048  # conv.cl's private band of depthwise_fwd_band, in floats
DW_MIN_ITEMS = 64  # work-items below which depthwise_fwd_band's bands are cut shorter


def _band_fit(OW, KH, KW, stride, dilation):
    """The output rows whose input rows fit conv.cl's private band of DW_BUF floats (below 1: none)."""
    SH, SW = stride
    L = -(-(SW * 8 * -(-OW // 8) + (KW - 1) * dilation[1]) // 8) * 8  # DW_BAND_COLS: whole float8s
    return (DW_BUF // L - (KH - 1) * dilation[0] - 1) // SH + 1


def _band_rows(N, OC, OH, OW, KH, KW, stride, dilation):
    """The output rows per work-item of conv.cl's depthwise_fwd_band (all of them where the plane's
    input rows fit its private band and the grid stays DW_MIN_ITEMS wide), or 0 (depthwise_fwd)
    where one output row's input rows do not fit."""
    fit = _band_fit(OW, KH, KW, stride, dilation)
    if fit < 1:
        return 0
    rows = min(OH, fit)
    while rows > 1 and N * OC * -(-OH // rows) < DW_MIN_ITEMS:
        rows = -(-rows // 2)
    return rows


def _depthwise_defines(wshape, stride):
    """The kernel size and strides as compile-time constants of the depthwise kernels (unrolled taps)."""
    return {"DW_KH": wshape[2], "DW_KW": wshape[3], "DW_SH": stride[0], "DW_SW": stride[1]}


def _depthwise_forward(x, w2, bias, win, wshape, stride, dilation, OH, OW, act, act_in=ACT_NONE):
    """y = act(depthwise conv2d(act_in(x)) + bias) through conv.cl's depthwise_fwd_band or
    depthwise_fwd; w2 = weight (OC, KH*KW) contiguous, act and act_in ACT_* codes (act_in: x is
    the caller's to overwrite, where depthwise_fwd applies it in place first)."""
    N, C = x.shape[:2]
    OC, _, KH, KW = wshape
    out = empty(N, OC, OH, OW, device=x.device)
    if out.numel():
        rb = _band_rows(N, OC, OH, OW, KH, KW, stride, dilation)
        if not rb and act_in != ACT_NONE:
            _ACT_FNS[act_in](x, inplace=True)
        args = (win, OC // C, int(bias is not None), layout.strides4_struct(x.strides), x, w2,
                bias.contiguous() if bias is not None else w2, out)
        defines = dict(_depthwise_defines(wshape, stride), ACT=act)
        if rb:
            launch(x.device, "conv.cl", "depthwise_fwd_band", (N * OC * -(-OH // rb),), *args, rb,
                   defines=dict(defines, ACT_IN=act_in))
        else:
            launch(x.device, "conv.cl", "depthwise_fwd", (N * OC * OH,), *args, defines=defines)
    return out


# the ACT_* codes' activations, for an act_in that depthwise_fwd cannot fuse (in place)
_ACT_FNS = {ACT_RELU: activation.relu, ACT_HARDSWISH: activation.hardswish, ACT_SILU: activation.silu,
            ACT_RELU6: activation.relu6}


def depthwise_conv2d_act(input, weight, bias, stride, padding, dilation, act, act_in=ACT_NONE):
    """act(conv2d(act_in(input), weight, bias, groups=C)) for a depthwise weight (C*M, 1, KH, KW), the
    activations (ACT_* codes) fused into the kernel's loads and stores; float32 (N, C, H, W), outside
    autograd (eval passes: vision.ops' Conv2dNormActivation with its BatchNorm folded). With act_in,
    input is the caller's to overwrite."""
    stride, padding, dilation = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    N, C, H, W = input.shape
    OC, one, KH, KW = weight.shape
    if (one != 1 or OC % C or input.dtype is not dtypes.float32 or not ACT_NONE <= act <= ACT_HARDSIGMOID
            or (act_in != ACT_NONE and act_in not in _ACT_FNS)):
        raise ValueError(f"depthwise_conv2d_act: input {input.shape} ({input.dtype}), weight {weight.shape}, "
                         f"act {act!r}: a float32 depthwise convolution and an ACT_* activation code")
    OH = output_size(H, KH, stride[0], padding[0], dilation[0])
    OW = output_size(W, KW, stride[1], padding[1], dilation[1])
    win = layout.window_struct(input.shape, (OH, OW), (KH, KW), stride, padding, dilation)
    return _depthwise_forward(input, weight.contiguous().reshape(OC, KH * KW), bias, win, weight.shape, stride,
                              dilation, OH, OW, act, act_in)


class DepthwiseConv2d(Function):
    """groups == C with one input channel per group: direct kernels (conv.cl depthwise_*), no im2col."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, OH, OW, relu):
        win = layout.window_struct(x.shape, (OH, OW), tuple(weight.shape[2:]), stride, padding, dilation)
        w2 = weight.contiguous().reshape(weight.shape[0], -1)
        out = _depthwise_forward(x, w2, bias, win, weight.shape, stride, dilation, OH, OW,
                                 ACT_RELU if relu else ACT_NONE)
        ctx.save_for_backward(x, w2, out if relu else None)
        ctx.geom = (win, weight.shape[0] // x.shape[1], weight.shape, stride, padding, dilation, relu)
        return out

    @staticmethod
    def backward(ctx, g):
        x, w2, out = ctx.saved_tensors
        win, M, wshape, stride, padding, dilation, relu = ctx.geom
        if relu:
            g = g.relu_backward(out)
        gx = gw = gb = None
        gs = layout.strides4_struct(g.strides)
        if ctx.needs_input_grad[0]:
            N, C, H, W = x.shape
            pads = _transposed_padding(*wshape[2:], stride, padding, dilation) if M == 1 else None
            if pads is not None and x.numel():
                # stride 1, one output channel per input one: dx is g correlated with the flipped kernel,
                # a depthwise forward (depthwise_fwd_band; depthwise_bwd_input's 7- and 14-column rows
                # were scalar at 5x5)
                gwin = layout.window_struct(g.shape, (H, W), tuple(wshape[2:]), (1, 1), pads, dilation)
                taps = w2.shape[1]
                flipped = index_select(w2, 1, arange(taps - 1, -1, -1, device=g.device))
                gx = _depthwise_forward(g, flipped, None, gwin, wshape, (1, 1), dilation, H, W, ACT_NONE)
            else:
                gx = empty(*x.shape, device=g.device)
                if gx.numel():
                    launch(g.device, "conv.cl", "depthwise_bwd_input", (N * C * H,), win, M, gs, g, w2, gx,
                           defines=_depthwise_defines(wshape, stride))
        if ctx.needs_input_grad[1]:
            gw = empty(*wshape, device=g.device)
            fit = _band_fit(win["OW"], *wshape[2:], stride, dilation)
            xs = layout.strides4_struct(x.strides)
            if fit >= 1:  # a work-item per output channel over private bands, every tap in float8 lanes
                launch(g.device, "conv.cl", "depthwise_bwd_weight_band", (wshape[0],), win, M, xs, gs, x, g, gw,
                       min(fit, int(win["OH"])), defines=_depthwise_defines(wshape, stride))
            else:
                launch(g.device, "conv.cl", "depthwise_bwd_weight", (gw.numel(),), win, M, xs, gs, x, g, gw,
                       defines=_depthwise_defines(wshape, stride))
        if ctx.needs_input_grad[2]:
            gb = g.sum((2, 3)).sum(0)
        return gx, gw, gb, None, None, None, None, None, None


class ConvTranspose2d(Function):
    """y = col2im(W^T @ x): the gradient of a conv2d of y with this weight, taken with respect to y."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups, OH, OW):
        N, C, H, W = x.shape
        _, OCg, KH, KW = weight.shape
        G = groups
        x3 = x.contiguous().reshape(N, C, H * W)
        w2 = weight.contiguous().reshape(C, -1)  # (C, OC/G * KH * KW)
        dcol = empty(N, G * w2.shape[1], H * W, device=x.device)
        # dcol[n, g] (OC/G*KH*KW, HW) = W[g]^T @ x[n, g] (C/G, HW)
        _grouped_gemm(dcol, w2.reshape(G, C // G, -1).mT, x3, G)
        out = _uncolumns(dcol, (N, G * OCg, OH, OW), KH, KW, stride, padding, dilation, H, W)
        ctx.save_for_backward(x3, w2)
        ctx.geom = (x.shape, weight.shape, stride, padding, dilation, G)
        return _add_bias(out, bias)

    @staticmethod
    def backward(ctx, g):
        x3, w2 = ctx.saved_tensors
        xshape, wshape, stride, padding, dilation, G = ctx.geom
        N, C, H, W = xshape
        KH, KW = wshape[2:]
        col = _columns(g, KH, KW, stride, padding, dilation, H, W)  # (N, OC*KH*KW, HW)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = empty(N, C, H * W, device=g.device)
            _grouped_gemm(gx, w2.reshape(G, C // G, -1), col, G)  # W[g] (C/G, K/G) @ col[n, g]
            gx = gx.reshape(xshape)
        if ctx.needs_input_grad[1]:
            gw = empty(G, C // G, w2.shape[1], device=g.device)
            _grouped_sum_gemm(gw, x3, col, G)  # sum over n of x[n, g] @ col[n, g]^T
            gw = gw.reshape(wshape)
        if ctx.needs_input_grad[2]:
            gb = g.sum((2, 3)).sum(0)
        return gx, gw, gb, None, None, None, None, None, None


def _check_tensors(input, weight, bias, name):
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{name} needs tensors for input and weight")
    tensors = [input, weight] + ([bias] if bias is not None else [])
    if len({t.device for t in tensors}) > 1:
        raise RuntimeError(f"{name}: tensors on different devices: " +
                           ", ".join(f"{tuple(t.shape)} on {t.device.spec}" for t in tensors))
    if any(t.dtype is not dtypes.float32 for t in tensors):
        raise TypeError(f"{name} supports float32, got " + ", ".join(repr(t.dtype) for t in tensors))


def _same_padding(padding, kernel, stride, dilation, name):
    """(padding pair, explicit output size or None) for int, pair, 'same' or 'valid' padding."""
    if not isinstance(padding, str):
        return _pair(padding, "padding"), False
    if padding == "valid":
        return (0, 0), False
    if padding != "same":
        raise ValueError(f"{name}: invalid padding string {padding!r}, should be 'same' or 'valid'")
    if stride != (1, 1):
        raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
    # total d(k-1) per dim; the left/top gets the floor, the right/bottom the rest (via the output size)
    return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation)), True


@float32_kernels(LOWER)
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, relu=False):
    """torch.nn.functional.conv2d (groups, 'same'/'valid'); relu=True fuses a ReLU into the GEMM epilogue."""
    _check_tensors(input, weight, bias, "conv2d")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be (out_channels, in_channels, kH, kW), got shape {weight.shape}")
    padding, same = _same_padding(padding, weight.shape[2:], stride, dilation, "conv2d")
    batched = input.ndim == 4
    if input.ndim == 3:
        input = input.unsqueeze(0)
    if input.ndim != 4:
        raise ValueError(f"conv2d: input must be (N, C, H, W) or (C, H, W), got shape {input.shape}")
    if not isinstance(groups, int) or groups < 1 or weight.shape[0] % groups:
        raise ValueError(f"conv2d: groups {groups!r} must be a positive integer dividing out_channels of weight "
                         f"of shape {weight.shape}")
    if input.shape[1] != weight.shape[1] * groups:
        raise ValueError(f"conv2d: input of shape {input.shape} has {input.shape[1]} channels but weight of "
                         f"shape {weight.shape} with groups={groups} expects {weight.shape[1] * groups}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"conv2d: bias of shape {bias.shape} does not match weight of shape {weight.shape}")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d: invalid stride {stride}, padding {padding} or dilation {dilation}")
    H, W = input.shape[2:]
    if same:
        OH, OW = H, W
    else:
        OH = output_size(H, weight.shape[2], stride[0], padding[0], dilation[0])
        OW = output_size(W, weight.shape[3], stride[1], padding[1], dilation[1])
    if OH < 1 or OW < 1:
        raise ValueError(f"conv2d: input of shape {input.shape} is too small for a kernel of shape "
                         f"{weight.shape} with padding {padding} and dilation {dilation}")
    if groups > 1 and groups == input.shape[1]:  # depthwise: direct kernels
        out = DepthwiseConv2d.apply(input, weight, bias, stride, padding, dilation, OH, OW, relu)
    else:
        out = Conv2d.apply(input, weight, bias, stride, padding, dilation, groups, OH, OW, relu)
    return out if batched else out.squeeze(0)


def _single(v, name):
    if isinstance(v, int):
        return v
    v = tuple(v)
    if len(v) != 1 or not isinstance(v[0], int):
        raise ValueError(f"conv1d: {name} must be an int or a 1-tuple, got {v}")
    return v[0]


def _batched1d(input, weight, name):
    if weight.ndim != 3:
        raise ValueError(f"{name}: weight must be 3-D (out, in, k), got shape {weight.shape}")
    if input.ndim not in (2, 3):
        raise ValueError(f"{name}: input must be (N, C, L) or (C, L), got shape {input.shape}")
    return input.unsqueeze(-2), weight.unsqueeze(-2)  # (N, C, 1, L), (O, I, 1, K)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv1d as a conv2d over (N, C, 1, L)."""
    _check_tensors(input, weight, bias, "conv1d")
    x, w = _batched1d(input, weight, "conv1d")
    padding = padding if isinstance(padding, str) else (0, _single(padding, "padding"))
    out = conv2d(x, w, bias, (1, _single(stride, "stride")), padding, (1, _single(dilation, "dilation")), groups)
    return out.squeeze(-2)


@float32_kernels(LOWER)
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose2d: weight (in_channels, out_channels / groups, kH, kW)."""
    _check_tensors(input, weight, bias, "conv_transpose2d")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    padding, opad = _pair(padding, "padding"), _pair(output_padding, "output_padding")
    if weight.ndim != 4:
        raise ValueError(f"conv_transpose2d: weight must be (in_channels, out_channels/groups, kH, kW), "
                         f"got shape {weight.shape}")
    batched = input.ndim == 4
    if input.ndim == 3:
        input = input.unsqueeze(0)
    if input.ndim != 4:
        raise ValueError(f"conv_transpose2d: input must be (N, C, H, W) or (C, H, W), got shape {input.shape}")
    if not isinstance(groups, int) or groups < 1 or weight.shape[0] % groups:
        raise ValueError(f"conv_transpose2d: groups {groups!r} must be a positive integer dividing in_channels "
                         f"of weight of shape {weight.shape}")
    if input.shape[1] != weight.shape[0]:
        raise ValueError(f"conv_transpose2d: input of shape {input.shape} has {input.shape[1]} channels but "
                         f"weight of shape {weight.shape} expects {weight.shape[0]}")
    out_channels = weight.shape[1] * groups
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(f"conv_transpose2d: bias of shape {bias.shape} does not match weight of shape "
                         f"{weight.shape} with groups={groups}")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or min(opad) < 0:
        raise ValueError(f"conv_transpose2d: invalid stride {stride}, padding {padding}, output_padding {opad} "
                         f"or dilation {dilation}")
    if any(opad[i] >= stride[i] and opad[i] >= dilation[i] for i in range(2)):
        raise ValueError(f"conv_transpose2d: output_padding {opad} must be smaller than either stride {stride} "
                         f"or dilation {dilation}")
    H, W = input.shape[2:]
    size = [((H, W)[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (weight.shape[2 + i] - 1) + opad[i] + 1
            for i in range(2)]
    if min(size) < 1:
        raise ValueError(f"conv_transpose2d: input of shape {input.shape} with weight of shape {weight.shape} "
                         f"and padding {padding} gives an empty output of size {tuple(size)}")
    out = ConvTranspose2d.apply(input, weight, bias, stride, padding, dilation, groups, *size)
    return out if batched else out.squeeze(0)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose1d as a conv_transpose2d over (N, C, 1, L)."""
    _check_tensors(input, weight, bias, "conv_transpose1d")
    x, w = _batched1d(input, weight, "conv_transpose1d")
    out = conv_transpose2d(x, w, bias, (1, _single(stride, "stride")), (0, _single(padding, "padding")),
                           (0, _single(output_padding, "output_padding")), groups,
                           (1, _single(dilation, "dilation")))
    return out.squeeze(-2)
