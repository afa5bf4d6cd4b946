"""Weight initialisation in place, with torch.nn.init's names and formulas."""
import math
import numbers

import numpy as np

from ..autograd import no_grad
from ..ops.manip import eye
from ..random import normal, randn
from ..tensor import tensor


def _calculate_fan_in_and_fan_out(t):
    """torch's rule: fan_in = size(1) * receptive field, fan_out = size(0) * receptive field."""
    if t.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = 1
    for n in t.shape[2:]:
        receptive *= n
    return t.shape[1] * receptive, t.shape[0] * receptive


_fan = _calculate_fan_in_and_fan_out


def _calculate_correct_fan(t, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _fan(t)
    return fan_in if mode == "fan_in" else fan_out


def calculate_gain(nonlinearity, param=None):
    """torch.nn.init.calculate_gain."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "sigmoid"):
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, numbers.Number):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def uniform_(t, a=0.0, b=1.0):
    with no_grad():
        return t.uniform_(a, b)


def normal_(t, mean=0.0, std=1.0):
    with no_grad():
        return t.normal_(mean, std)


def constant_(t, value):
    with no_grad():
        return t.fill_(value)


def zeros_(t):
    return constant_(t, 0.0)


def ones_(t):
    return constant_(t, 1.0)


def kaiming_uniform_(t, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    if 0 in t.shape:
        return t
    fan = _calculate_correct_fan(t, mode)
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(t, -bound, bound)


def kaiming_normal_(t, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    if 0 in t.shape:
        return t
    fan = _calculate_correct_fan(t, mode)
    return normal_(t, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))


def xavier_uniform_(t, gain=1.0):
    fan_in, fan_out = _fan(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound)


def xavier_normal_(t, gain=1.0):
    fan_in, fan_out = _fan(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """Normal(mean, std) restricted to [a, b]: out-of-range draws are redrawn on the device (a one-bool
    check per round), then clamped, so the values always lie in [a, b]."""
    with no_grad():
        x = normal(mean, std, tuple(t.shape), device=t.device)
        for _ in range(64):
            bad = (x < a) | (x > b)
            if not bool(bad.any()):
                break
            x = bad.to(dtype=x.dtype) * (normal(mean, std, tuple(t.shape), device=t.device) - x) + x
        return t.copy_(x.clamp(a, b))


def eye_(t):
    if t.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    with no_grad():
        return t.copy_(eye(*t.shape, dtype=t.dtype, device=t.device))


def orthogonal_(t, gain=1):
    """A (semi-)orthogonal matrix from the QR decomposition of a normal draw, as torch (QR on the host)."""
    if t.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if t.numel() == 0:
        return t
    rows = t.shape[0]
    cols = t.numel() // rows
    flat = randn(rows, cols, device=t.device)._to_host().astype(np.float64)
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    with no_grad():
        return t.copy_(tensor((q * gain).reshape(t.shape), dtype=t.dtype, device=t.device))
