import math

from .. import dtypes
from ..ops.lstm import lstm, lstm_cell
from ..tensor import empty, zeros
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["LSTM", "LSTMCell"]


class LSTM(Module):
    """Multi-layer LSTM with torch.nn.LSTM's arguments, parameter names, gate order (i, f, g, o),
    initialisation U(-1/sqrt(hidden), 1/sqrt(hidden)) and return value output, (h_n, c_n)."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        if proj_size:
            raise NotImplementedError("LSTM with proj_size > 0 is not supported")
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(f"LSTM needs hidden_size >= 1 and num_layers >= 1, got {hidden_size} and {num_layers}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout has to be between 0 and 1, got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        D = 2 if bidirectional else 1
        self._weight_names = []
        for layer in range(num_layers):
            for suffix in ("", "_reverse")[:D]:
                in_size = input_size if layer == 0 else hidden_size * D
                shapes = {"weight_ih": (4 * hidden_size, in_size), "weight_hh": (4 * hidden_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(4 * hidden_size,), bias_hh=(4 * hidden_size,))
                names = []
                for kind, shape in shapes.items():
                    name = f"{kind}_l{layer}{suffix}"
                    setattr(self, name, Parameter(empty(*shape, device=device)))
                    names.append(name)
                self._weight_names.append(names)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def flatten_parameters(self):
        """A no-op kept for PyTorch code that calls it (weights are always used in place)."""

    def _weights(self):
        """(w_ih, w_hh, b_ih, b_hh) per layer and direction."""
        out = []
        for names in self._weight_names:
            ws = [getattr(self, n) for n in names]
            out.append(tuple(ws) if self.bias else (ws[0], ws[1], None, None))
        return out

    def forward(self, input, hx=None):
        """input (T, B, I) ((B, T, I) if batch_first, or unbatched (T, I)); hx = (h0, c0), each (L*D, B, H)."""
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            raise ValueError(f"LSTM expected input of shape (T, B, {self.input_size}) or (T, {self.input_size}), "
                             f"got {input.shape}")
        if input.dtype is not dtypes.float32:
            raise TypeError(f"LSTM expects a float32 input, got {input.dtype!r}")
        batched = input.ndim == 3
        x = input if batched else input.unsqueeze(1)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        T, B = x.shape[:2]
        if T == 0:
            raise ValueError(f"LSTM got an empty sequence (input of shape {input.shape})")
        D = 2 if self.bidirectional else 1
        state = (self.num_layers * D, B, self.hidden_size)
        if hx is None:
            h0 = c0 = zeros(*state, device=x.device)
        else:
            h0, c0 = hx
            if not batched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
            for name, t in (("h0", h0), ("c0", c0)):
                if tuple(t.shape) != state:
                    raise ValueError(f"LSTM expected {name} of shape {state}, got {t.shape}")
        out, h_n, c_n = lstm(x, h0, c0, self._weights(), self.num_layers, self.bidirectional, self.dropout,
                             self.training)
        if self.batch_first and batched:
            out = out.transpose(0, 1)
        if not batched:
            out, h_n, c_n = out.squeeze(1), h_n.squeeze(1), c_n.squeeze(1)
        return out, (h_n, c_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class LSTMCell(Module):
    """One LSTM step with torch.nn.LSTMCell's parameters: (x, (h, c)) -> (h', c')."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(empty(4 * hidden_size, input_size, device=device))
        self.weight_hh = Parameter(empty(4 * hidden_size, hidden_size, device=device))
        if bias:
            self.bias_ih = Parameter(empty(4 * hidden_size, device=device))
            self.bias_hh = Parameter(empty(4 * hidden_size, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def forward(self, input, hx=None):
        """input (B, I) or (I,); hx = (h, c), each (B, H) or (H,)."""
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"LSTMCell expected input of shape (B, {self.input_size}), got {input.shape}")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        if hx is None:
            h = c = zeros(x.shape[0], self.hidden_size, device=x.device)
        else:
            h, c = hx if batched else (hx[0].unsqueeze(0), hx[1].unsqueeze(0))
            for name, t in (("h", h), ("c", c)):
                if tuple(t.shape) != (x.shape[0], self.hidden_size):
                    raise ValueError(f"LSTMCell expected {name} of shape {(x.shape[0], self.hidden_size)}, "
                                     f"got {t.shape}")
        h, c = lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")
