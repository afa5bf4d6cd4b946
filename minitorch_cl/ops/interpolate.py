"""F.interpolate (nearest, nearest-exact, linear, bilinear, bicubic, area) on clkernels/interpolate.cl:
a gather forward and its adjoint, a scatter-add, backward. pixel_shuffle / pixel_unshuffle are
reshape + permute (one copy, at the final reshape)."""
import math

from .. import dtypes, layout
from ..autograd import Function
from ..launch import launch
from ..tensor import Tensor, empty, zeros
from .pool import adaptive_avg_pool1d, adaptive_avg_pool2d
from .precision import SAME, float32_kernels

__all__ = ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "pixel_shuffle", "pixel_unshuffle"]

_MODES = {"nearest": "MODE_NEAREST", "nearest-exact": "MODE_NEAREST_EXACT", "linear": "MODE_LINEAR",
          "bilinear": "MODE_LINEAR", "bicubic": "MODE_CUBIC"}
_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2}


class Interpolate(Function):
    """x (N, C, H, W) -> (N, C, OH, OW); the 1-D modes run with H = OH = 1."""

    @staticmethod
    def forward(ctx, x, OH, OW, scales, align, mode):
        N, C, H, W = x.shape
        y = empty(N, C, OH, OW, device=x.device)
        ctx.args = (x.shape, OH, OW, scales, align, mode)
        if y.numel():
            launch(x.device, "interpolate.cl", "interp_fwd", (y.numel(),), N * C, C, H, W, OH, OW, *scales, align,
                   layout.strides4_struct(x.strides), x, y, defines={"MODE": _MODES[mode]})
        return y

    @staticmethod
    def backward(ctx, g):
        shape, OH, OW, scales, align, mode = ctx.args
        N, C, H, W = shape
        dx = zeros(*shape, device=g.device)
        if g.numel():
            launch(g.device, "interpolate.cl", "interp_bwd", (g.numel(),), N * C, C, H, W, OH, OW, *scales, align,
                   layout.strides4_struct(g.strides), g, dx, defines={"MODE": _MODES[mode]})
        return dx, None, None, None, None, None


def _scale(n_in, n_out, align, factor):
    """PyTorch's area_pixel_compute_scale."""
    if align:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / factor if factor is not None else n_in / n_out


@float32_kernels(SAME)
def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """torch.nn.functional.interpolate for 3-D (N, C, L) and 4-D (N, C, H, W) inputs."""
    if not isinstance(input, Tensor):
        raise TypeError("interpolate needs a tensor")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not implemented")
    if mode not in tuple(_MODES) + ("area",):
        raise NotImplementedError(f"interpolate: mode {mode!r} is not implemented (nearest, nearest-exact, "
                                  f"linear, bilinear, bicubic, area)")
    if input.dtype is not dtypes.float32:
        raise TypeError(f"interpolate supports float32, got {input.dtype!r}")
    d = input.ndim - 2
    if d not in (1, 2):
        raise NotImplementedError(f"interpolate: input of shape {input.shape} is not 3-D or 4-D")
    if mode in _DIMS and _DIMS[mode] != d:
        raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs {_DIMS[mode] + 2}D input")
    if align_corners is not None and mode not in _DIMS:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    align = bool(align_corners)
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined" if size is not None else
                         "either size or scale_factor should be defined")
    spatial = tuple(input.shape[2:])
    if size is not None:
        size = (size,) * d if isinstance(size, int) else tuple(size)
        if len(size) != d:
            raise ValueError(f"Input and output must have the same number of spatial dimensions, but got input "
                             f"with spatial dimensions of {list(spatial)} and output size of {list(size)}")
        factors = (None,) * d
    else:
        factors = (scale_factor,) * d if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        if len(factors) != d:
            raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but got "
                             f"input with spatial dimensions of {list(spatial)} and scale_factor of {factors}")
        size = tuple(int(math.floor(n * float(f))) for n, f in zip(spatial, factors))
        if recompute_scale_factor:
            factors = (None,) * d
    if min(size) < 1 or min(spatial) < 1:
        raise ValueError(f"interpolate: input of shape {input.shape} and output size {size} must be non-empty")
    if mode == "area":
        return adaptive_avg_pool1d(input, size) if d == 1 else adaptive_avg_pool2d(input, size)
    x = input.unsqueeze(2) if d == 1 else input
    sizes = (1,) + size if d == 1 else size
    scales = (1.0,) if d == 1 else ()
    scales += tuple(_scale(n, o, align, f) for n, o, f in zip(spatial, size, factors))
    y = Interpolate.apply(x, sizes[0], sizes[1], scales, int(align), mode)
    return y.squeeze(2) if d == 1 else y


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, "nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, "bilinear", align_corners=True)


def pixel_shuffle(input, upscale_factor):
    """(*, C r^2, H, W) -> (*, C, H r, W r)."""
    r = upscale_factor
    if input.ndim < 3:
        raise RuntimeError(f"pixel_shuffle expects input to have at least 3 dimensions, got shape {input.shape}")
    *batch, C, H, W = input.shape
    if r < 1 or C % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square "
                           f"of upscale_factor, but input of shape {input.shape} has {C} channels and "
                           f"upscale_factor is {r}")
    b = len(batch)
    x = input.reshape(*batch, C // (r * r), r, r, H, W)
    x = x.permute(*range(b), b, b + 3, b + 1, b + 4, b + 2)  # (*, C, H, r, W, r)
    return x.reshape(*batch, C // (r * r), H * r, W * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H r, W r) -> (*, C r^2, H, W)."""
    r = downscale_factor
    if input.ndim < 3:
        raise RuntimeError(f"pixel_unshuffle expects input to have at least 3 dimensions, got shape {input.shape}")
    *batch, C, H, W = input.shape
    if r < 1 or H % r or W % r:
        raise RuntimeError(f"pixel_unshuffle expects height and width of input of shape {input.shape} to be "
                           f"divisible by downscale_factor {r}")
    b = len(batch)
    x = input.reshape(*batch, C, H // r, r, W // r, r)
    x = x.permute(*range(b), b, b + 2, b + 4, b + 1, b + 3)  # (*, C, r, r, H/r, W/r)
    return x.reshape(*batch, C * r * r, H // r, W // r)
