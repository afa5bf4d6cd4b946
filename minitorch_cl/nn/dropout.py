from ..ops.dropout import dropout, dropout1d, dropout2d, dropout3d
from .module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d"]


class Dropout(Module):
    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
        self.p = p

    def forward(self, x):
        return dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Dropout2d(Dropout):
    """Zeroes whole channels of (N, C, H, W) with probability p, scales the rest by 1/(1-p); a 3-D input
    is read as (N, C, L), as PyTorch 2 does (with its warning)."""
    _fn = staticmethod(dropout2d)

    def forward(self, x):
        return self._fn(x, self.p, self.training)


class Dropout1d(Dropout2d):
    """Channel-wise dropout of (N, C, L) or (C, L)."""
    _fn = staticmethod(dropout1d)


class Dropout3d(Dropout2d):
    """Channel-wise dropout of (N, C, D, H, W) or (C, D, H, W)."""
    _fn = staticmethod(dropout3d)
