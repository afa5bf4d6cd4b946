"""max_pool2d and avg_pool2d: one kernel each way (clkernels/pool.cl). Inputs may have any
strides (a conv's channel-major output is read in place); outputs are contiguous."""
from .. import dtypes, layout
from ..autograd import Function
from ..launch import launch
from ..tensor import Tensor, empty
from .conv import _pair, output_size
from .precision import SAME, float32_kernels

__all__ = ["max_pool2d", "avg_pool2d"]


def _geometry(x, kernel_size, stride, padding, dilation, name):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} needs a tensor")
    if x.ndim not in (3, 4):
        raise ValueError(f"{name}: input must be (N, C, H, W) or (C, H, W), got shape {x.shape}")
    if x.dtype is not dtypes.float32:
        raise TypeError(f"{name} supports float32, got {x.dtype!r}")
    k = _pair(kernel_size, "kernel_size")
    s = _pair(stride if stride not in (None, ()) else kernel_size, "stride")
    p, d = _pair(padding, "padding"), _pair(dilation, "dilation")
    if min(k) < 1 or min(s) < 1 or min(d) < 1:
        raise ValueError(f"{name}: kernel_size {k}, stride {s} and dilation {d} must be positive")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2 or min(p) < 0:
        raise ValueError(f"{name}: padding {p} must be between 0 and half the kernel size {k}")
    H, W = x.shape[-2:]
    OH, OW = output_size(H, k[0], s[0], p[0], d[0]), output_size(W, k[1], s[1], p[1], d[1])
    if OH < 1 or OW < 1:
        raise ValueError(f"{name}: input of shape {x.shape} is too small for kernel_size {k}, padding {p}")
    return k, s, p, d, OH, OW


GRID_LOCAL = (16, 4, 1)  # the 2x2 kernels' (ow, oh, n*c) work-group


def _window(shape, geom):
    k, s, p, d, OH, OW = geom
    return layout.window_struct(shape, (OH, OW), k, s, p, d)


def _is_2x2(k, s, p, d):
    """The ConvNet's pooling (2x2 windows, stride 2, no padding or dilation) has its own kernels."""
    return tuple(k) == (2, 2) and tuple(s) == (2, 2) and tuple(p) == (0, 0) and tuple(d) == (1, 1)


class MaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, k, s, p, d, OH, OW, indices_out):
        N, C, H, W = x.shape
        dev = x.device
        y = empty(N, C, OH, OW, device=dev)
        idx = empty(N, C, OH, OW, dtype=dtypes.int32, device=dev)
        if y.numel() and _is_2x2(k, s, p, d):
            launch(dev, "pool.cl", "maxpool2x2_fwd", (OW, OH, N * C), _window(x.shape, (k, s, p, d, OH, OW)),
                   layout.strides4_struct(x.strides), x, y, idx, local=GRID_LOCAL)
        elif y.numel():
            launch(dev, "pool.cl", "maxpool_fwd", (N * C * OH,), _window(x.shape, (k, s, p, d, OH, OW)),
                   layout.strides4_struct(x.strides), x, y, idx)
        ctx.save_for_backward(idx)
        ctx.geom = (x.shape, k, s, p, d, OH, OW)
        indices_out.append(idx)  # a side channel, so autograd never makes a zero gradient for idx
        return y

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        shape, k, s, p, d, OH, OW = ctx.geom
        dev = g.device
        dx = empty(*shape, device=dev)
        if not dx.numel():
            return dx, None, None, None, None, None, None, None
        win, gs = _window(shape, (k, s, p, d, OH, OW)), layout.strides4_struct(g.strides)
        span = [(k[i] - 1) * d[i] + 1 for i in range(2)]  # the dilated window
        if s[0] >= span[0] and s[1] >= span[1]:  # disjoint windows: scatter, no search
            covers = all((OH, OW)[i] * s[i] - p[i] >= shape[2 + i] and p[i] == 0 and s[i] == span[i]
                         for i in range(2))
            if not covers:
                dx.zero_()
            if _is_2x2(k, s, p, d):
                launch(dev, "pool.cl", "maxpool2x2_bwd", (OW, OH, shape[0] * shape[1]), win, gs, g, idx, dx,
                       local=GRID_LOCAL)
                return dx, None, None, None, None, None, None, None
            launch(dev, "pool.cl", "maxpool_bwd_disjoint", (y_numel(shape, OH, OW),), win, gs, g, idx, dx)
        else:
            launch(dev, "pool.cl", "maxpool_bwd", (dx.numel(),), win, gs, g, idx, dx)
        return dx, None, None, None, None, None, None, None


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, k, s, p, include_pad, OH, OW):
        N, C, H, W = x.shape
        dev = x.device
        y = empty(N, C, OH, OW, device=dev)
        if y.numel():
            launch(dev, "pool.cl", "avgpool_fwd", (y.numel(),), _window(x.shape, (k, s, p, (1, 1), OH, OW)),
                   include_pad, layout.strides4_struct(x.strides), x, y)
        ctx.geom = (x.shape, k, s, p, include_pad, OH, OW)
        return y

    @staticmethod
    def backward(ctx, g):
        shape, k, s, p, include_pad, OH, OW = ctx.geom
        dev = g.device
        dx = empty(*shape, device=dev)
        if dx.numel():
            launch(dev, "pool.cl", "avgpool_bwd", (dx.numel(),), _window(shape, (k, s, p, (1, 1), OH, OW)),
                   include_pad, layout.strides4_struct(g.strides), g, dx)
        return dx, None, None, None, None, None, None


def y_numel(shape, OH, OW):
    return shape[0] * shape[1] * OH * OW


def _batched(x):
    return (x, True) if x.ndim == 4 else (x.unsqueeze(0), False)


@float32_kernels(SAME)
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """torch.nn.functional.max_pool2d; indices (with return_indices) are h * W + w per plane, as in PyTorch."""
    if ceil_mode:
        raise NotImplementedError("max_pool2d: ceil_mode=True is not implemented")
    k, s, p, d, OH, OW = _geometry(input, kernel_size, stride, padding, dilation, "max_pool2d")
    x, batched = _batched(input)
    holder = []
    y = MaxPool2d.apply(x, k, s, p, d, OH, OW, holder)
    idx = holder[0]
    if not batched:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx.long()) if return_indices else y


@float32_kernels(SAME)
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """torch.nn.functional.avg_pool2d."""
    if ceil_mode or divisor_override is not None:
        raise NotImplementedError("avg_pool2d: ceil_mode and divisor_override are not implemented")
    k, s, p, _, OH, OW = _geometry(input, kernel_size, stride, padding, 1, "avg_pool2d")
    x, batched = _batched(input)
    y = AvgPool2d.apply(x, k, s, p, int(bool(count_include_pad)), OH, OW)
    return y if batched else y.squeeze(0)
