"""torch.nn.functional's activations: element-wise rows of ops/elementwise.py with their
parameters, and the few that combine ops (softmin, glu, prelu, tanhshrink)."""

from .. import backend
from ..grad_mode import is_grad_enabled
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


_MACROS = {op.name: op.macro for op in ew.UNARY + ew.ACTIVATIONS}


def _row(x, name, inplace, *numbers):
    """The activation row `name` of x (its numbers are the kernel's alpha, beta); inplace=True with no graph
    to record runs one kernel straight into x's memory (eval passes: no copy back), else _maybe_inplace."""
    if inplace and x.dtype.is_floating and not (is_grad_enabled() and x.requires_grad) and \
            not any(st == 0 and n > 1 for st, n in zip(x.strides, x.shape)):
        alpha, beta = (tuple(float(v) for v in numbers) + (0.0, 0.0))[:2]
        backend.map1(_MACROS[name], x, alpha=alpha, beta=beta, out=x)
        x._bump_version()
        return x
    if inplace and x.dtype.is_floating and name in ("relu", "hardtanh") and is_grad_enabled() and x.requires_grad:
        return x.copy_(ew.activation(name + "_out", x, *numbers))  # its backward reads the output, not x
    return _maybe_inplace(x, lambda t: ew.relu(t) if name == "relu" else ew.activation(name, t, *numbers), inplace)


def silu(input, inplace=False):
    return _row(input, "silu", inplace)


def mish(input, inplace=False):
    return _row(input, "mish", inplace)


def softplus(input, beta=1.0, threshold=20.0):
    return ew.activation("softplus", input, beta, threshold)


def elu(input, alpha=1.0, inplace=False):
    return _row(input, "elu", inplace, alpha, 1.0)


def selu(input, inplace=False):
    return _row(input, "elu", inplace, _SELU_ALPHA, _SELU_SCALE)


def celu(input, alpha=1.0, inplace=False):
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError")
    return _row(input, "celu", inplace, alpha)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _row(input, "leaky_relu", inplace, negative_slope)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    return _row(input, "hardtanh", inplace, min_val, max_val)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def hardswish(input, inplace=False):
    return _row(input, "hardswish", inplace)


def hardsigmoid(input, inplace=False):
    return _row(input, "hardsigmoid", inplace)


def softsign(input):
    return ew.activation("softsign", input)


def logsigmoid(input):
    return ew.activation("logsigmoid", input)


def tanhshrink(input):
    return input - ew.tanh(input)


def threshold(input, threshold, value, inplace=False):
    return _row(input, "threshold", inplace, threshold, value)


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
    return _row(input, "relu", inplace)


__all__ = ["silu", "mish", "softplus", "elu", "selu", "celu", "leaky_relu", "hardtanh", "relu6", "hardswish",
           "hardsigmoid", "softsign", "logsigmoid", "tanhshrink", "threshold", "softmin", "glu", "prelu", "gelu",
           "relu"]
