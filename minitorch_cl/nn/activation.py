from ..ops import activation as A, elementwise
from ..tensor import full
from .parameter import Parameter
from ..ops.softmax import log_softmax, softmax
from .module import Module

__all__ = ["ReLU", "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "SiLU", "Mish", "Softplus", "ELU", "SELU",
           "CELU", "LeakyReLU", "ReLU6", "Hardtanh", "Hardswish", "Hardsigmoid", "Softsign", "LogSigmoid", "Softmin",
           "Tanhshrink", "Threshold", "GLU", "PReLU"]


class ReLU(Module):
    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return A.relu(x, self.inplace)


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise RuntimeError(f"approximate argument must be either none or tanh, got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return A.gelu(x, self.approximate)


class Sigmoid(Module):
    def forward(self, x):
        return elementwise.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return elementwise.tanh(x)


class Softmax(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return softmax(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return log_softmax(x, self.dim)


# ---- the activations of issue 10 --------------------------------------------------------------
def _simple(name, fn, inplace_arg):
    """A parameterless activation module (inplace accepted where torch has it)."""
    def __init__(self, inplace=False):
        Module.__init__(self)
        self.inplace = inplace

    def forward(self, x):
        return fn(x, self.inplace) if inplace_arg else fn(x)
    methods = {"__init__": __init__ if inplace_arg else Module.__init__, "forward": forward,
               "__doc__": f"torch.nn.{name}."}
    return type(name, (Module,), methods)


SiLU = _simple("SiLU", A.silu, True)
Mish = _simple("Mish", A.mish, True)
Hardswish = _simple("Hardswish", A.hardswish, True)
Hardsigmoid = _simple("Hardsigmoid", A.hardsigmoid, True)
SELU = _simple("SELU", A.selu, True)
ReLU6 = _simple("ReLU6", A.relu6, True)
Softsign = _simple("Softsign", A.softsign, False)
LogSigmoid = _simple("LogSigmoid", A.logsigmoid, False)
Tanhshrink = _simple("Tanhshrink", A.tanhshrink, False)


class Softplus(Module):
    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return A.softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class ELU(Module):
    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x):
        return A.elu(x, self.alpha, self.inplace)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class CELU(ELU):
    def forward(self, x):
        return A.celu(x, self.alpha, self.inplace)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        return A.leaky_relu(x, self.negative_slope, self.inplace)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Hardtanh(Module):
    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        if min_val > max_val:
            raise ValueError("min_val cannot be greater than max_val")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, x):
        return A.hardtanh(x, self.min_val, self.max_val, self.inplace)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}"


class Threshold(Module):
    def __init__(self, threshold, value, inplace=False):
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace

    def forward(self, x):
        return A.threshold(x, self.threshold, self.value, self.inplace)

    def extra_repr(self):
        return f"threshold={self.threshold}, value={self.value}"


class Softmin(Softmax):
    def forward(self, x):
        return A.softmin(x, self.dim)


class GLU(Module):
    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return A.glu(x, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class PReLU(Module):
    """max(0, x) + weight * min(0, x), with `num_parameters` weights (1, or the channel count) set to `init`."""

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.weight = Parameter(full((num_parameters,), float(init), dtype=dtype, device=device))

    def forward(self, x):
        return A.prelu(x, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"
