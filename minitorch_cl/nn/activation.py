from ..ops import elementwise
from ..ops.softmax import log_softmax, softmax
from .module import Module

__all__ = ["ReLU", "GELU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"]


class ReLU(Module):
    def __init__(self, inplace=False):
        super().__init__()

    def forward(self, x):
        return elementwise.relu(x)


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        if approximate != "none":
            raise NotImplementedError("only the exact (erf) GELU is implemented")

    def forward(self, x):
        return elementwise.gelu(x)


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
