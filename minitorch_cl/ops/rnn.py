"""GRU and Elman RNN (tanh / relu), built like ops/lstm.py: one Function per layer and direction runs
the whole sequence -- one GEMM for every step's input projection, then per step one GEMM against the
pre-packed W_hh and one fused cell kernel (clkernels/rnn.cl). Backward runs one cell kernel and one
GEMM per step and the weight gradients as single GEMMs after the loop. Gate order r, z, n (PyTorch's).
The one-step cells (gru_cell, rnn_cell) are the same Functions over a sequence of length 1."""
from .. import dtypes
from ..autograd import Function
from ..launch import launch
from ..tensor import empty, zeros
from .dropout import dropout
from .lstm import _cells, _column_sums, _steps
from .matmul import gemm_into, pack_b
from .shape import cat, stack
from .precision import LOWER, float32_kernels

__all__ = ["gru", "gru_cell", "rnn", "rnn_cell"]

VW = 8  # elements per work item in rnn.cl
_ACT = {"tanh": "ACT_TANH", "relu": "ACT_RELU"}


def _order(T, reverse):
    """The forward time steps, and the step that read h0."""
    steps = range(T - 1, -1, -1) if reverse else range(T)
    return steps, steps[0]


def _input_and_weight_grads(need, x2, h0, out, w_ih, dg_x, dg_h, reverse):
    """After the time loop: dx = dg_x @ W_ih, dW_ih = dg_x^T x, dW_hh = sum_t dg_h[t]^T h_{t-1}.
    dg_x, dg_h: (T, B, G) pre-activation grads of the input and the recurrent projections."""
    T, B, G = dg_x.shape
    H = h0.shape[1]
    dev = x2.device
    dgx2 = dg_x.reshape(T * B, G)
    dx = gemm_into(empty(T * B, x2.shape[1], device=dev), dgx2, w_ih).reshape(T, B, -1) if need[0] else None
    dw_ih = gemm_into(empty(G, x2.shape[1], device=dev), dgx2.T, x2) if need[2] else None
    dw_hh = None
    if need[3]:
        dw_hh = empty(G, H, device=dev)
        first = _order(T, reverse)[1]
        if T > 1:  # every step but the first read h from the output of its previous step
            dg_rest, h_rest = (dg_h[:-1], out[1:]) if reverse else (dg_h[1:], out[:-1])
            gemm_into(dw_hh, dg_rest.reshape(-1, G).T, h_rest.reshape(-1, H))
        gemm_into(dw_hh, dg_h[first].T, h0, accumulate=T > 1)
    return dx, dw_ih, dw_hh


class GRULayer(Function):
    """x (T, B, I), h0 (B, H) -> output (T, B, H), h_n (B, H)."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, reverse):
        T, B, I = x.shape
        H = w_hh.shape[1]
        dev = x.device
        x2 = x.contiguous().reshape(T * B, I)
        h0 = h0.contiguous()
        gx = empty(T, B, 3 * H, device=dev)  # x W_ih^T + b_ih, then the activations r, z, n
        gemm_into(gx.reshape(T * B, 3 * H), x2, w_ih.T, bias=b_ih, bias_mode=0 if b_ih is None else 1)
        gh = empty(T, B, 3 * H, device=dev)  # h W_hh^T per step (b_hh is added in the cell)
        b_hh = zeros(3 * H, device=dev) if b_hh is None else b_hh.contiguous()
        out = empty(T, B, H, device=dev)
        w_hh_t = pack_b(w_hh.T)  # (H, 3H), laid out once for the T steps
        gx_t, gh_t, out_t, size = _steps(gx), _steps(gh), _steps(out), _cells(B, H)
        steps, _ = _order(T, reverse)
        h_prev = h0
        for t in steps:
            gemm_into(gh_t[t], h_prev, w_hh_t)  # (B, H) @ (H, 3H)
            launch(dev, "rnn.cl", "gru_cell_fwd", size, B, H, h_prev, b_hh, gx_t[t], gh_t[t], out_t[t])
            h_prev = out_t[t]
        ctx.save_for_backward(x2, h0, w_ih, w_hh, gx, gh, out)
        ctx.reverse = reverse
        return out, out[steps[-1]]

    @staticmethod
    def backward(ctx, d_out, d_hn):
        x2, h0, w_ih, w_hh, gx, gh, out = ctx.saved_tensors
        reverse, need = ctx.reverse, ctx.needs_input_grad
        T, B, G = gx.shape
        dev = x2.device
        d_out = d_out.contiguous()
        dh = d_hn.contiguous().clone()  # grad reaching h_t from step t+1, updated in place per step
        dg_x, dg_h = empty(T, B, G, device=dev), empty(T, B, G, device=dev)
        w_hh_p = pack_b(w_hh)  # (3H, H), laid out once for the T steps
        acts, ghs, outs, d_outs = _steps(gx), _steps(gh), _steps(out), _steps(d_out)
        dgx_t, dgh_t, size = _steps(dg_x), _steps(dg_h), _cells(B, G // 3)
        steps, first = _order(T, reverse)
        for t in reversed(steps):
            h_prev = h0 if t == first else outs[t + 1 if reverse else t - 1]
            launch(dev, "rnn.cl", "gru_cell_bwd", size, B, G // 3, acts[t], ghs[t], h_prev, d_outs[t], dh,
                   dgx_t[t], dgh_t[t])
            if t != first or need[1]:
                gemm_into(dh, dgh_t[t], w_hh_p, accumulate=True)  # (B, 3H) @ (3H, H) into dh_t * z
        dx, dw_ih, dw_hh = _input_and_weight_grads(need, x2, h0, out, w_ih, dg_x, dg_h, reverse)
        db_ih = _column_sums(dg_x.reshape(T * B, G)) if need[4] else None
        db_hh = _column_sums(dg_h.reshape(T * B, G)) if need[5] else None
        return dx, dh if need[1] else None, dw_ih, dw_hh, db_ih, db_hh, None


class RNNLayer(Function):
    """x (T, B, I), h0 (B, H) -> output (T, B, H), h_n (B, H); nonlinearity 'tanh' or 'relu'."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, reverse, nonlinearity):
        T, B, I = x.shape
        H = w_hh.shape[1]
        dev = x.device
        x2 = x.contiguous().reshape(T * B, I)
        h0 = h0.contiguous()
        pre = empty(T, B, H, device=dev)
        bias = b_ih + b_hh if b_ih is not None else None
        gemm_into(pre.reshape(T * B, H), x2, w_ih.T, bias=bias, bias_mode=0 if bias is None else 1)
        out = empty(T, B, H, device=dev)
        w_hh_t = pack_b(w_hh.T)
        pre_t, out_t, n = _steps(pre), _steps(out), B * H
        defines = {"ACT": _ACT[nonlinearity]}
        steps, _ = _order(T, reverse)
        h_prev = h0
        for t in steps:
            gemm_into(pre_t[t], h_prev, w_hh_t, accumulate=True)  # (B, H) @ (H, H) added to x-projection
            launch(dev, "rnn.cl", "rnn_cell_fwd", (-(-n // VW),), n, pre_t[t], out_t[t], defines=defines)
            h_prev = out_t[t]
        ctx.save_for_backward(x2, h0, w_ih, w_hh, out)
        ctx.meta = (reverse, defines)
        return out, out[steps[-1]]

    @staticmethod
    def backward(ctx, d_out, d_hn):
        x2, h0, w_ih, w_hh, out = ctx.saved_tensors
        reverse, defines = ctx.meta
        need = ctx.needs_input_grad
        T, B, H = out.shape
        dev = x2.device
        d_out = d_out.contiguous()
        dh = d_hn.contiguous().clone()  # grad reaching h_t from step t+1; each step's GEMM overwrites it
        dpre = empty(T, B, H, device=dev)
        w_hh_p = pack_b(w_hh)
        outs, d_outs, dpre_t, n = _steps(out), _steps(d_out), _steps(dpre), B * H
        steps, first = _order(T, reverse)
        for t in reversed(steps):
            launch(dev, "rnn.cl", "rnn_cell_bwd", (-(-n // VW),), n, outs[t], d_outs[t], dh, dpre_t[t],
                   defines=defines)
            if t != first or need[1]:
                gemm_into(dh, dpre_t[t], w_hh_p)  # (B, H) @ (H, H): grad of h_{t-1}
        dx, dw_ih, dw_hh = _input_and_weight_grads(need, x2, h0, out, w_ih, dpre, dpre, reverse)
        db = _column_sums(dpre.reshape(T * B, H)) if need[4] or need[5] else None
        return dx, dh if need[1] else None, dw_ih, dw_hh, db, db, None, None


def _check(name, x, *tensors):
    for t in tensors:
        if t is None:
            continue
        if t.device != x.device:
            raise RuntimeError(f"{name}: input on {x.device.spec} but a tensor of shape {t.shape} on {t.device.spec}")
        if t.dtype is not dtypes.float32:
            raise TypeError(f"{name} supports float32, got {t.dtype!r} for a tensor of shape {t.shape}")


def _stack(layer, x, h0, weights, num_layers, bidirectional, dropout_p, training, *extra):
    """Layers and directions of `layer` (a Function: x, h0, w_ih, w_hh, b_ih, b_hh, reverse, *extra)."""
    D = 2 if bidirectional else 1
    hs = []
    for i in range(num_layers):
        outs = []
        for d in range(D):
            k = i * D + d
            out, h_n = layer.apply(x, h0[k], *weights[k], d == 1, *extra)
            outs.append(out)
            hs.append(h_n)
        x = outs[0] if D == 1 else cat(outs, 2)
        if dropout_p > 0 and training and i < num_layers - 1:
            x = dropout(x, dropout_p, True)
    return x, stack(hs, 0)


@float32_kernels(LOWER)
def gru(x, h0, weights, num_layers, bidirectional=False, dropout_p=0.0, training=False):
    """Multi-layer GRU over x (T, B, I) with h0 (L*D, B, H); weights is a list of
    (w_ih, w_hh, b_ih, b_hh) per layer and direction. Returns output (T, B, D*H), h_n."""
    _check("gru", x, h0, *[w for ws in weights for w in ws])
    return _stack(GRULayer, x, h0, weights, num_layers, bidirectional, dropout_p, training)


@float32_kernels(LOWER)
def rnn(x, h0, weights, num_layers, nonlinearity="tanh", bidirectional=False, dropout_p=0.0, training=False):
    """Multi-layer Elman RNN (tanh or relu) over x (T, B, I); arguments as gru()."""
    if nonlinearity not in _ACT:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}, expected 'tanh' or 'relu'")
    _check("rnn", x, h0, *[w for ws in weights for w in ws])
    return _stack(RNNLayer, x, h0, weights, num_layers, bidirectional, dropout_p, training, nonlinearity)


@float32_kernels(LOWER)
def gru_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step: x (B, I), h (B, H) -> h'."""
    _check("gru_cell", x, h, w_ih, w_hh, b_ih, b_hh)
    return GRULayer.apply(x.unsqueeze(0), h, w_ih, w_hh, b_ih, b_hh, False)[1]


@float32_kernels(LOWER)
def rnn_cell(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """One RNN step: x (B, I), h (B, H) -> h'."""
    if nonlinearity not in _ACT:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}, expected 'tanh' or 'relu'")
    _check("rnn_cell", x, h, w_ih, w_hh, b_ih, b_hh)
    return RNNLayer.apply(x.unsqueeze(0), h, w_ih, w_hh, b_ih, b_hh, False, nonlinearity)[1]
