"""conv2d as im2col (clkernels/conv.cl) + one batched GEMM over the whole batch, bias and ReLU
fused into the GEMM's epilogue; the GEMM writes (N, C, H, W) directly, so nothing is transposed.
Backward: dX = col2im(W^T @ g), a batched GEMM, and dW^T = sum over images of col @ g^T, one GEMM
summing over the batch; both read transposed views."""
from .. import dtypes, layout
from ..autograd import Function
from ..launch import launch
from ..shared_constants import BIAS_NONE, BIAS_PER_ROW
from ..tensor import Tensor, empty
from .matmul import gemm_into
from .precision import LOWER, float32_kernels

__all__ = ["conv2d"]


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


def col2im(dcol, shape, KH, KW, stride, padding, dilation, OH, OW):
    """The adjoint of im2col: dcol (N, C*KH*KW, OH*OW) -> dx (N, C, H, W), summing overlaps."""
    dev = dcol.device
    dx = empty(*shape, device=dev)
    rows = shape[0] * shape[1] * shape[2]
    if rows and shape[3]:
        win = layout.window_struct(shape, (OH, OW), (KH, KW), stride, padding, dilation)
        launch(dev, "conv.cl", "im2col_bwd", (rows,), win, dcol, dx)
    return dx


class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, relu):
        N, C, H, W = x.shape
        OC, _, KH, KW = weight.shape
        OH = output_size(H, KH, stride[0], padding[0], dilation[0])
        OW = output_size(W, KW, stride[1], padding[1], dilation[1])
        col = im2col(x, KH, KW, stride, padding, dilation, OH, OW)  # (N, K, P)
        w2 = weight.contiguous().reshape(OC, -1)  # (OC, K)
        out = empty(N, OC, OH, OW, device=x.device)
        # one batched GEMM: out[n] (OC, P) = W (OC, K) @ col[n] (K, P), + bias[oc], ReLU
        gemm_into(out.reshape(N, OC, OH * OW), w2, col, bias=bias,
                  bias_mode=BIAS_PER_ROW if bias is not None else BIAS_NONE, relu=relu)
        ctx.save_for_backward(col, w2, out if relu else None)
        ctx.geom = (x.shape, weight.shape, stride, padding, dilation, OH, OW, relu)
        return out

    @staticmethod
    def backward(ctx, g):
        col, w2, out = ctx.saved_tensors
        xshape, wshape, stride, padding, dilation, OH, OW, relu = ctx.geom
        N, OC = xshape[0], wshape[0]
        if relu:
            g = g.relu_backward(out)
        g3 = g.contiguous().reshape(N, OC, OH * OW)  # (N, OC, P)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            dcol = empty(*col.shape, device=g.device)
            gemm_into(dcol, w2.T, g3)  # dcol[n] (K, P) = W^T (K, OC) @ g[n] (OC, P)
            gx = col2im(dcol, xshape, wshape[2], wshape[3], stride, padding, dilation, OH, OW)
        if ctx.needs_input_grad[1]:
            # dW^T (K, OC) = sum over n of col[n] (K, P) @ g[n]^T (P, OC): one GEMM whose K runs over
            # all N*P positions (no per-image products to sum), with the wider K*KH*KW as its M
            gw_t = empty(col.shape[1], OC, device=g.device)
            gemm_into(gw_t, col, g3.mT, sum_batch=True)
            gw = gw_t.T.contiguous().reshape(wshape)
        if ctx.needs_input_grad[2]:
            gb = g3.sum(2).sum(0)  # two plain reductions beat one over non-adjacent dims
        return gx, gw, gb, None, None, None, None


@float32_kernels(LOWER)
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, relu=False):
    """torch.nn.functional.conv2d for groups=1; relu=True fuses a ReLU into the GEMM epilogue."""
    if groups != 1:
        raise NotImplementedError("conv2d: only groups=1 is implemented")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if isinstance(padding, str):
        raise NotImplementedError("conv2d: string padding ('same', 'valid') is not implemented; pass ints")
    padding = _pair(padding, "padding")
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError("conv2d needs tensors for input and weight")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be (out_channels, in_channels, kH, kW), got shape {weight.shape}")
    batched = input.ndim == 4
    if input.ndim == 3:
        input = input.unsqueeze(0)
    if input.ndim != 4:
        raise ValueError(f"conv2d: input must be (N, C, H, W) or (C, H, W), got shape {input.shape}")
    if input.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d: input of shape {input.shape} has {input.shape[1]} channels but weight of "
                         f"shape {weight.shape} expects {weight.shape[1]}")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"conv2d: bias of shape {bias.shape} does not match weight of shape {weight.shape}")
    tensors = [input, weight] + ([bias] if bias is not None else [])
    if len({t.device for t in tensors}) > 1:
        raise RuntimeError("conv2d: tensors on different devices: " +
                           ", ".join(f"{tuple(t.shape)} on {t.device.spec}" for t in tensors))
    if any(t.dtype is not dtypes.float32 for t in tensors):
        raise TypeError("conv2d supports float32, got " + ", ".join(repr(t.dtype) for t in tensors))
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d: invalid stride {stride}, padding {padding} or dilation {dilation}")
    H, W = input.shape[2:]
    OH = output_size(H, weight.shape[2], stride[0], padding[0], dilation[0])
    OW = output_size(W, weight.shape[3], stride[1], padding[1], dilation[1])
    if OH < 1 or OW < 1:
        raise ValueError(f"conv2d: input of shape {input.shape} is too small for a kernel of shape "
                         f"{weight.shape} with padding {padding} and dilation {dilation}")
    out = Conv2d.apply(input, weight, bias, stride, padding, dilation, relu)
    return out if batched else out.squeeze(0)
