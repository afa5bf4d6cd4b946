"""torch.nn.functional's activations: element-wise rows of ops/elementwise.py with their
parameters, and the few that combine ops (softmin, glu, prelu, tanhshrink)."""

from . import elementwise as ew
from .shape import chunk
from .softmax import softmax

_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _maybe_inplace(x, compute, inplace):
    """compute(x), or with inplace=True written into x (computed from a copy when x is in a graph, so
    the saved input is not the overwritten one)."""
    if not inplace:
        return compute(x)
    return x.copy_(compute(x.clone() if x.requires_grad else x))


def silu(input, inplace=False):
    return _maybe_inplace(input, lambda t: ew.activation("silu", t), inplace)


def mish(input, inplace=False):
    return _maybe_inplace(input, lambda t: ew.activation("mish", t), inplace)


def softplus(input, beta=1.0, threshold=20.0):
    return ew.activation("softplus", input, beta, threshold)


def elu(input, alpha=1.0, inplace=False):
    return _maybe_inplace(input, lambda t: ew.activation("elu", t, alpha, 1.0), inplace)


def selu(input, inplace=False):
    return _maybe_inplace(input, lambda t: ew.activation("elu", t, _SELU_ALPHA, _SELU_SCALE), inplace)


def celu(input, alpha=1.0, inplace=False):
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError")
    return _maybe_inplace(input, lambda t: ew.activation("celu", t, alpha), inplace)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _maybe_inplace(input, lambda t: ew.activation("leaky_relu", t, negative_slope), inplace)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _maybe_inplace(input, lambda t: ew.activation("hardtanh", t, min_val, max_val), inplace)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def hardswish(input, inplace=False):
    return _maybe_inplace(input, lambda t: ew.activation("hardswish", t), inplace)


def hardsigmoid(input, inplace=False):
    return _maybe_inplace(input, lambda t: ew.activation("hardsigmoid", t), inplace)


def softsign(input):
    return ew.activation("softsign", input)


def logsigmoid(input):
    return ew.activation("logsigmoid", input)


def tanhshrink(input):
    return input - ew.tanh(input)


def threshold(input, threshold, value, inplace=False):
    return _maybe_inplace(input, lambda t: ew.activation("threshold", t, threshold, value), inplace)


def softmin(input, dim=None, dtype=None):
    x = -input if dtype is None else -input.to(dtype=dtype)
    return softmax(x, dim)


def glu(input, dim=-1):
    """a * sigmoid(b), where a and b are the two halves of `input` along dim."""
    n = input.shape[dim]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim % input.ndim} is size {n}")
    a, b = chunk(input, 2, dim)
    return a * ew.sigmoid(b)


def prelu(input, weight):
    """max(0, x) + weight * min(0, x), weight per channel (dim 1) or one for all."""
    if weight.numel() != 1:
        if input.ndim < 2 or input.shape[1] != weight.numel():
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                               f"{weight.numel()} and channel size = {input.shape[1] if input.ndim > 1 else 1}.")
        weight = weight.reshape((weight.numel(),) + (1,) * (input.ndim - 2))
    return ew.where(ew.gt(input, 0), input, weight * input)


def gelu(input, approximate="none"):
    if approximate == "tanh":
        return ew.activation("gelu_tanh", input)
    if approximate != "none":
        raise RuntimeError(f"approximate argument must be either none or tanh, got {approximate!r}")
    return ew.gelu(input)


def relu(input, inplace=False):
    return _maybe_inplace(input, lambda t: ew.relu(t), inplace)


__all__ = ["silu", "mish", "softplus", "elu", "selu", "celu", "leaky_relu", "hardtanh", "relu6", "hardswish",
           "hardsigmoid", "softsign", "logsigmoid", "tanhshrink", "threshold", "softmin", "glu", "prelu", "gelu",
           "relu"]
