import math

from .. import dtypes
from ..ops.lstm import lstm, lstm_cell
from ..ops.rnn import gru, gru_cell, rnn, rnn_cell
from ..tensor import empty, zeros
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["RNN", "GRU", "LSTM", "RNNCell", "GRUCell", "LSTMCell"]


def _init_uniform(module):
    """torch's recurrent initialisation: every parameter U(-1/sqrt(hidden), 1/sqrt(hidden))."""
    bound = 1.0 / math.sqrt(module.hidden_size)
    for p in module.parameters():
        init.uniform_(p, -bound, bound)


class _RNNBase(Module):
    """What RNN, GRU and LSTM share: torch.nn's arguments, the parameter names weight_ih_l{k}[_reverse],
    weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k} with `_gates` blocks of hidden_size rows, the input
    layouts (batch_first, unbatched) and torch's initialisation."""
    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if hidden_size < 1 or num_layers < 1:
            raise ValueError(f"{name} needs hidden_size >= 1 and num_layers >= 1, got {hidden_size} and {num_layers}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout has to be between 0 and 1, got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        D = 2 if bidirectional else 1
        G = self._gates * hidden_size
        self._weight_names = []
        for layer in range(num_layers):
            for suffix in ("", "_reverse")[:D]:
                in_size = input_size if layer == 0 else hidden_size * D
                shapes = {"weight_ih": (G, in_size), "weight_hh": (G, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(G,), bias_hh=(G,))
                names = []
                for kind, shape in shapes.items():
                    name = f"{kind}_l{layer}{suffix}"
                    setattr(self, name, Parameter(empty(*shape, device=device)))
                    names.append(name)
                self._weight_names.append(names)
        self.reset_parameters()

    def reset_parameters(self):
        _init_uniform(self)

    def flatten_parameters(self):
        """A no-op kept for PyTorch code that calls it (weights are always used in place)."""

    def _weights(self):
        """(w_ih, w_hh, b_ih, b_hh) per layer and direction."""
        out = []
        for names in self._weight_names:
            ws = [getattr(self, n) for n in names]
            out.append(tuple(ws) if self.bias else (ws[0], ws[1], None, None))
        return out

    def _sequence(self, input):
        """input as (T, B, I), and whether it had a batch dim."""
        name = type(self).__name__
        if input.ndim not in (2, 3) or input.shape[-1] != self.input_size:
            raise ValueError(f"{name} expected input of shape (T, B, {self.input_size}) or (T, {self.input_size}), "
                             f"got {input.shape}")
        if not input.dtype.is_floating:
            raise TypeError(f"{name} expects a floating point input, got {input.dtype!r}")
        batched = input.ndim == 3
        x = input if batched else input.unsqueeze(1)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        if x.shape[0] == 0:
            raise ValueError(f"{name} got an empty sequence (input of shape {input.shape})")
        return x, batched

    def _state(self, t, name, x, batched):
        """An initial state (L*D, B, H): zeros when t is None, else t checked (unbatched gets a batch dim)."""
        state = (self.num_layers * (2 if self.bidirectional else 1), x.shape[1], self.hidden_size)
        if t is None:
            return zeros(*state, device=x.device)
        if not batched:
            t = t.unsqueeze(1)
        if tuple(t.shape) != state:
            raise ValueError(f"{type(self).__name__} expected {name} of shape {state}, got {t.shape}")
        return t

    def _output(self, out, batched):
        if self.batch_first and batched:
            out = out.transpose(0, 1)
        return out if batched else out.squeeze(1)

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


class RNN(_RNNBase):
    """Multi-layer Elman RNN, h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act = tanh or relu;
    torch.nn.RNN's arguments, parameter names and return value output, h_n."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"unknown nonlinearity {nonlinearity!r}, expected 'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        """input (T, B, I) ((B, T, I) if batch_first, or unbatched (T, I)); hx (L*D, B, H)."""
        x, batched = self._sequence(input)
        out, h_n = rnn(x, self._state(hx, "hx", x, batched), self._weights(), self.num_layers, self.nonlinearity,
                       self.bidirectional, self.dropout, self.training)
        return self._output(out, batched), h_n if batched else h_n.squeeze(1)

    def extra_repr(self):
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + ", nonlinearity='relu'"


class GRU(_RNNBase):
    """Multi-layer GRU with torch.nn.GRU's arguments, parameter names, gate order (r, z, n),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), and return value output, h_n."""
    _gates = 3

    def forward(self, input, hx=None):
        """input (T, B, I) ((B, T, I) if batch_first, or unbatched (T, I)); hx (L*D, B, H)."""
        x, batched = self._sequence(input)
        out, h_n = gru(x, self._state(hx, "hx", x, batched), self._weights(), self.num_layers, self.bidirectional,
                       self.dropout, self.training)
        return self._output(out, batched), h_n if batched else h_n.squeeze(1)


class LSTM(_RNNBase):
    """Multi-layer LSTM with torch.nn.LSTM's arguments, parameter names, gate order (i, f, g, o),
    initialisation U(-1/sqrt(hidden), 1/sqrt(hidden)) and return value output, (h_n, c_n)."""
    _gates = 4

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        if proj_size:
            raise NotImplementedError("LSTM with proj_size > 0 is not supported")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device)

    def forward(self, input, hx=None):
        """input (T, B, I) ((B, T, I) if batch_first, or unbatched (T, I)); hx = (h0, c0), each (L*D, B, H)."""
        x, batched = self._sequence(input)
        h0, c0 = (None, None) if hx is None else hx
        h0, c0 = self._state(h0, "h0", x, batched), self._state(c0, "c0", x, batched)
        out, h_n, c_n = lstm(x, h0, c0, self._weights(), self.num_layers, self.bidirectional, self.dropout,
                             self.training)
        if not batched:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return self._output(out, batched), (h_n, c_n)


class _CellBase(Module):
    """RNNCell, GRUCell, LSTMCell: weight_ih (G, I), weight_hh (G, H), bias_ih, bias_hh (G = `_gates`
    blocks of hidden_size rows); forward (x, h) -> h' through `_step`."""
    _gates = 1

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        G = self._gates * hidden_size
        self.weight_ih = Parameter(empty(G, input_size, device=device))
        self.weight_hh = Parameter(empty(G, hidden_size, device=device))
        if bias:
            self.bias_ih = Parameter(empty(G, device=device))
            self.bias_hh = Parameter(empty(G, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        _init_uniform(self)

    def forward(self, input, hx=None):
        """input (B, I) or (I,); hx (B, H) or (H,)."""
        name = type(self).__name__
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{name} expected input of shape (B, {self.input_size}), got {input.shape}")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        state = (x.shape[0], self.hidden_size)
        h = zeros(*state, device=x.device) if hx is None else hx if batched else hx.unsqueeze(0)
        if tuple(h.shape) != state:
            raise ValueError(f"{name} expected hx of shape {state}, got {h.shape}")
        h = self._step(x, h)
        return h if batched else h.squeeze(0)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_CellBase):
    """One Elman RNN step with torch.nn.RNNCell's parameters; nonlinearity 'tanh' or 'relu'."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"unknown nonlinearity {nonlinearity!r}, expected 'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, bias, device)
        self.nonlinearity = nonlinearity

    def _step(self, x, h):
        return rnn_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity)


class GRUCell(_CellBase):
    """One GRU step with torch.nn.GRUCell's parameters (gate order r, z, n)."""
    _gates = 3

    def _step(self, x, h):
        return gru_cell(x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class LSTMCell(_CellBase):
    """One LSTM step with torch.nn.LSTMCell's parameters: (x, (h, c)) -> (h', c')."""
    _gates = 4

    def forward(self, input, hx=None):
        """input (B, I) or (I,); hx = (h, c), each (B, H) or (H,)."""
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"LSTMCell expected input of shape (B, {self.input_size}), got {input.shape}")
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        state = (x.shape[0], self.hidden_size)
        if hx is None:
            h = c = zeros(*state, device=x.device)
        else:
            h, c = hx if batched else (hx[0].unsqueeze(0), hx[1].unsqueeze(0))
            for name, t in (("h", h), ("c", c)):
                if tuple(t.shape) != state:
                    raise ValueError(f"LSTMCell expected {name} of shape {state}, got {t.shape}")
        h, c = lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))
