"""max/avg pooling (2-D, and 1-D as 2-D over (N, C, 1, L)), ceil_mode, adaptive avg/max pooling and
max_unpool2d: one kernel each way (clkernels/pool.cl). Inputs may have any strides (a conv's
channel-major output is read in place); outputs are contiguous."""
from .. import backend, dtypes, layout
from ..autograd import Function
from ..launch import At, launch
from ..tensor import Tensor, empty, zeros
from .conv import _pair
from .precision import SAME, float32_kernels

__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
           "adaptive_max_pool1d", "adaptive_max_pool2d", "max_unpool1d", "max_unpool2d"]


def pool_output_size(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling size: floor (or ceil) of (size + 2p - d(k-1) - 1) / s, + 1; with ceil_mode the
    last window must start inside the input or the left padding."""
    num = size + 2 * p - d * (k - 1) - 1
    out = (num + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _geometry(x, kernel_size, stride, padding, dilation, name, ceil_mode=False):
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
    OH, OW = (pool_output_size(H, k[0], s[0], p[0], d[0], ceil_mode),
              pool_output_size(W, k[1], s[1], p[1], d[1], ceil_mode))
    if OH < 1 or OW < 1:
        raise ValueError(f"{name}: input of shape {x.shape} is too small for kernel_size {k}, padding {p}")
    return k, s, p, d, OH, OW


def _window(shape, geom):
    k, s, p, d, OH, OW = geom
    return layout.window_struct(shape, (OH, OW), k, s, p, d)


class MaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, k, s, p, d, OH, OW, indices_out):
        N, C, H, W = x.shape
        dev = x.device
        y = empty(N, C, OH, OW, device=dev)
        idx = empty(N, C, OH, OW, dtype=dtypes.int32, device=dev)
        if y.numel() and tuple(d) == (1, 1):
            launch(dev, "pool.cl", "maxpool_rows_fwd", (N * C * OH,), _window(x.shape, (k, s, p, d, OH, OW)),
                   layout.strides4_struct(x.strides), x, y, idx,
                   defines={"POOL_KH": k[0], "POOL_KW": k[1], "POOL_SH": s[0], "POOL_SW": s[1]})
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
        # a scatter in `passes` launches of rows oh = phase (mod passes), whose windows are disjoint
        # (for 2x2 windows too: zeroing dx and one scatter cost a third of a per-cell gather kernel)
        passes = -(-((k[0] - 1) * d[0] + 1) // s[0])
        dx.zero_()
        for phase in range(min(passes, OH)):
            rows = shape[0] * shape[1] * -(-(OH - phase) // passes)
            launch(dev, "pool.cl", "maxpool_scatter_bwd", (rows,), win, phase, passes, gs, g, idx, dx)
        return dx, None, None, None, None, None, None, None


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, k, s, p, include_pad, divisor, OH, OW):
        N, C, H, W = x.shape
        dev = x.device
        y = empty(N, C, OH, OW, device=dev)
        if y.numel():
            launch(dev, "pool.cl", "avgpool_fwd", (y.numel(),), _window(x.shape, (k, s, p, (1, 1), OH, OW)),
                   include_pad, divisor, layout.strides4_struct(x.strides), x, y)
        ctx.geom = (x.shape, k, s, p, include_pad, divisor, OH, OW)
        return y

    @staticmethod
    def backward(ctx, g):
        shape, k, s, p, include_pad, divisor, OH, OW = ctx.geom
        dev = g.device
        dx = empty(*shape, device=dev)
        if dx.numel():
            launch(dev, "pool.cl", "avgpool_bwd", (dx.numel(),), _window(shape, (k, s, p, (1, 1), OH, OW)),
                   include_pad, divisor, layout.strides4_struct(g.strides), g, dx)
        return dx, None, None, None, None, None, None, None


def _batched(x):
    return (x, True) if x.ndim == 4 else (x.unsqueeze(0), False)


@float32_kernels(SAME)
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """torch.nn.functional.max_pool2d; indices (with return_indices) are h * W + w per plane, as in PyTorch."""
    k, s, p, d, OH, OW = _geometry(input, kernel_size, stride, padding, dilation, "max_pool2d", ceil_mode)
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
    if divisor_override is not None and (not isinstance(divisor_override, int) or divisor_override <= 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive integer, got {divisor_override!r}")
    k, s, p, _, OH, OW = _geometry(input, kernel_size, stride, padding, 1, "avg_pool2d", ceil_mode)
    x, batched = _batched(input)
    y = AvgPool2d.apply(x, k, s, p, int(bool(count_include_pad)), divisor_override or 0, OH, OW)
    return y if batched else y.squeeze(0)


def _one(v, name, default=None):
    if v is None or v == ():
        return default
    if isinstance(v, int):
        return v
    v = tuple(v)
    if len(v) != 1:
        raise ValueError(f"{name} must be an int or a 1-tuple, got {v}")
    return v[0]


def _as2d(input, name):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name} needs a tensor")
    if input.ndim not in (2, 3):
        raise ValueError(f"{name}: input must be (N, C, L) or (C, L), got shape {input.shape}")
    return input.unsqueeze(-2)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """torch.nn.functional.max_pool1d, as max_pool2d over (N, C, 1, L); indices are positions in L."""
    k = _one(kernel_size, "max_pool1d: kernel_size")
    out = max_pool2d(_as2d(input, "max_pool1d"), (1, k), (1, _one(stride, "max_pool1d: stride", k)),
                     (0, _one(padding, "max_pool1d: padding")), (1, _one(dilation, "max_pool1d: dilation")),
                     ceil_mode, return_indices)
    return (out[0].squeeze(-2), out[1].squeeze(-2)) if return_indices else out.squeeze(-2)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """torch.nn.functional.avg_pool1d, as avg_pool2d over (N, C, 1, L)."""
    k = _one(kernel_size, "avg_pool1d: kernel_size")
    return avg_pool2d(_as2d(input, "avg_pool1d"), (1, k), (1, _one(stride, "avg_pool1d: stride", k)),
                      (0, _one(padding, "avg_pool1d: padding")), ceil_mode, count_include_pad).squeeze(-2)


def _adaptive_size(x, output_size, name):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} needs a tensor")
    if x.ndim not in (3, 4):
        raise ValueError(f"{name}: input must be (N, C, H, W) or (C, H, W), got shape {x.shape}")
    if x.dtype is not dtypes.float32:
        raise TypeError(f"{name} supports float32, got {x.dtype!r}")
    size = (output_size, output_size) if isinstance(output_size, int) or output_size is None else tuple(output_size)
    if len(size) != 2:
        raise ValueError(f"{name}: output_size must be an int or a pair, got {output_size!r}")
    size = tuple(x.shape[-2 + i] if v is None else v for i, v in enumerate(size))  # None keeps the input's size
    if min(size) < 0 or (min(x.shape[-2:]) == 0 and min(size) > 0):
        raise ValueError(f"{name}: cannot pool input of shape {x.shape} to output size {size}")
    return size


class AdaptiveAvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, OH, OW):
        N, C = x.shape[:2]
        y = empty(N, C, OH, OW, device=x.device)
        if y.numel():
            launch(x.device, "pool.cl", "adaptive_avgpool_fwd", (y.numel(),),
                   layout.window_struct(x.shape, (OH, OW), (1, 1)), layout.strides4_struct(x.strides), x, y)
        ctx.geom = (x.shape, OH, OW)
        return y

    @staticmethod
    def backward(ctx, g):
        shape, OH, OW = ctx.geom
        if OH == OW == 1 and layout.numel(shape):  # global pooling: g / (H*W) broadcast, a division-free map
            return backend.map1("OP_MUL_S", g.expand(shape), alpha=1.0 / (shape[2] * shape[3])), None, None
        dx = empty(*shape, device=g.device)
        if dx.numel():
            launch(g.device, "pool.cl", "adaptive_avgpool_bwd", (dx.numel(),),
                   layout.window_struct(shape, (OH, OW), (1, 1)), layout.strides4_struct(g.strides), g, dx)
        return dx, None, None


class AdaptiveMaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, OH, OW, indices_out):
        N, C = x.shape[:2]
        y = empty(N, C, OH, OW, device=x.device)
        idx = empty(N, C, OH, OW, dtype=dtypes.int32, device=x.device)
        if y.numel():
            launch(x.device, "pool.cl", "adaptive_maxpool_fwd", (y.numel(),),
                   layout.window_struct(x.shape, (OH, OW), (1, 1)), layout.strides4_struct(x.strides), x, y, idx)
        ctx.save_for_backward(idx)
        ctx.geom = (x.shape, OH, OW)
        indices_out.append(idx)
        return y

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        shape, OH, OW = ctx.geom
        dx = empty(*shape, device=g.device)
        if dx.numel():
            launch(g.device, "pool.cl", "adaptive_maxpool_bwd", (dx.numel(),),
                   layout.window_struct(shape, (OH, OW), (1, 1)), layout.strides4_struct(g.strides), g, idx, dx)
        return dx, None, None, None


@float32_kernels(SAME)
def adaptive_avg_pool2d(input, output_size):
    """torch.nn.functional.adaptive_avg_pool2d: cell o averages [floor(o*H/OH), ceil((o+1)*H/OH))."""
    OH, OW = _adaptive_size(input, output_size, "adaptive_avg_pool2d")
    x, batched = _batched(input)
    y = AdaptiveAvgPool2d.apply(x, OH, OW)
    return y if batched else y.squeeze(0)


@float32_kernels(SAME)
def adaptive_max_pool2d(input, output_size, return_indices=False):
    """torch.nn.functional.adaptive_max_pool2d (indices h * W + w per plane)."""
    OH, OW = _adaptive_size(input, output_size, "adaptive_max_pool2d")
    x, batched = _batched(input)
    holder = []
    y = AdaptiveMaxPool2d.apply(x, OH, OW, holder)
    idx = holder[0]
    if not batched:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx.long()) if return_indices else y


def adaptive_avg_pool1d(input, output_size):
    return adaptive_avg_pool2d(_as2d(input, "adaptive_avg_pool1d"),
                               (1, _one(output_size, "adaptive_avg_pool1d: output_size"))).squeeze(-2)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    out = adaptive_max_pool2d(_as2d(input, "adaptive_max_pool1d"),
                              (1, _one(output_size, "adaptive_max_pool1d: output_size")), return_indices)
    return (out[0].squeeze(-2), out[1].squeeze(-2)) if return_indices else out.squeeze(-2)


class MaxUnpool2d(Function):
    @staticmethod
    def forward(ctx, x, idx, OH, OW):
        N, C = x.shape[:2]
        y = zeros(N, C, OH, OW, device=x.device)
        win = layout.window_struct(x.shape, (OH, OW), (1, 1))
        if x.numel():
            launch(x.device, "pool.cl", "maxunpool_fwd", (x.numel(),), win, layout.strides4_struct(x.strides), x,
                   idx, y, At(x.device.error_buffer, 0))
        ctx.save_for_backward(idx)
        ctx.win = win
        return y

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        dx = empty(*idx.shape, device=g.device)
        if dx.numel():
            launch(g.device, "pool.cl", "maxunpool_bwd", (dx.numel(),), ctx.win, layout.strides4_struct(g.strides), g,
                   idx, dx)
        return dx, None, None, None


@float32_kernels(SAME)
def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """torch.nn.functional.max_unpool2d: zeros of (H-1)*s - 2p + k (or output_size) with input at indices."""
    if not isinstance(input, Tensor) or not isinstance(indices, Tensor):
        raise TypeError("max_unpool2d needs tensors for input and indices")
    if tuple(indices.shape) != tuple(input.shape):
        raise ValueError(f"max_unpool2d: indices of shape {indices.shape} must match input of shape {input.shape}")
    if indices.dtype.is_floating:
        raise TypeError(f"max_unpool2d: indices must be int64, got {indices.dtype!r}")
    k = _pair(kernel_size, "kernel_size")
    s = _pair(stride if stride not in (None, ()) else kernel_size, "stride")
    p = _pair(padding, "padding")
    x, batched = _batched(input)
    H, W = x.shape[2:]
    default = ((H - 1) * s[0] - 2 * p[0] + k[0], (W - 1) * s[1] - 2 * p[1] + k[1])
    if output_size is None:
        size = default
    else:
        size = tuple(output_size)[-2:]
        for i in range(2):
            if not default[i] - s[i] < size[i] < default[i] + s[i]:
                raise ValueError(f"max_unpool2d: output_size {tuple(output_size)} is not within a stride of "
                                 f"the default size {default}")
    idx = indices.reshape(x.shape).long().contiguous()
    y = MaxUnpool2d.apply(x, idx, *size)
    return y if batched else y.squeeze(0)


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    k = _one(kernel_size, "max_unpool1d: kernel_size")
    size = None if output_size is None else (1, tuple(output_size)[-1])
    return max_unpool2d(_as2d(input, "max_unpool1d"), indices.unsqueeze(-2), (1, k),
                        (1, _one(stride, "max_unpool1d: stride", k)), (0, _one(padding, "max_unpool1d: padding")),
                        size).squeeze(-2)
