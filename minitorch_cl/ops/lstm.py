"""LSTM: one Function per layer and direction runs the whole sequence (one big input GEMM, then per
step a recurrent GEMM into the gate slice and one fused cell kernel); backward mirrors it and does
the weight gradients as single big GEMMs after the time loop. Gate order i, f, g, o (PyTorch's)."""
from .. import dtypes
from ..autograd import Function
from ..tensor import Tensor, empty, zeros
from ..launch import At, launch
from ..shared_constants import BIAS_NONE, BIAS_PER_COLUMN, LSTM_VW as VW
from .dropout import dropout
from ..gemm import CPU_GROUP, cpu_block as gemm_cpu_block
from .matmul import gemm_into, linear, pack_b
from .shape import cat, stack
from .precision import LOWER, float32_kernels

__all__ = ["lstm", "lstm_cell"]

# Rows of B per lstm_step_fwd work-item, by vector width: its 4 x MR accumulators, 4 weight vectors
# and a broadcast h fit AVX2's 16 ymm (8 lanes) and AVX-512's 32 zmm (16 lanes) registers.
STEP_FWD_MR = {8: 3, 16: 6}
STEP_GROUP = CPU_GROUP[:2]  # (m-blocks, panels): run in turn, sharing a weight panel through the cache


def _at(t, off):
    """t's buffer at element `off` of t (one time step's block)."""
    return At(t.buffer, t.offset + off)


def _cells(B, H):
    """Global size of a cell kernel: one work item per VW-column block of each of the B rows."""
    return (B * -(-H // VW),)


def _steps(x):
    """x[t] for every t as plain views, built directly: getitem's generality costs ~70 us a call."""
    n, shape, strides = x.strides[0], x.shape[1:], x.strides[1:]
    return [Tensor(x.buffer, shape, strides, x.offset + t * n, x.dtype, x.device) for t in range(x.shape[0])]


def _column_sums(x, chunk=16):
    """x (R, N) contiguous -> (N,): per-chunk partial sums, then the sum of the chunks."""
    R, N = x.shape
    dev = x.device
    n_chunks = -(-R // chunk)
    part = empty(n_chunks, N, device=dev)
    out = empty(N, device=dev)
    blocks = -(-N // VW)
    launch(dev, "lstm.cl", "lstm_bias_bwd", (n_chunks * blocks,), R, N, chunk, x, part)
    launch(dev, "lstm.cl", "lstm_bias_bwd", (blocks,), n_chunks, N, n_chunks, part, out)
    return out


class LSTMLayer(Function):
    """x (T, B, I), h0 and c0 (B, H) -> output (T, B, H), h_n (B, H), c_n (B, H)."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, reverse):
        T, B, I = x.shape
        H = w_hh.shape[1]
        dev = x.device
        x2 = x.contiguous().reshape(T * B, I)
        h0, c0 = h0.contiguous(), c0.contiguous()
        gates = empty(T, B, 4 * H, device=dev)  # pre-activations, then activations (kept for backward)
        bias = b_ih + b_hh if b_ih is not None else None
        gemm_into(gates.reshape(T * B, 4 * H), x2, w_ih.T, bias=bias,
                  bias_mode=BIAS_NONE if bias is None else BIAS_PER_COLUMN)
        out = empty(T, B, H, device=dev)
        cs = empty(T, B, H, device=dev)
        steps = range(T - 1, -1, -1) if reverse else range(T)
        _forward_steps(steps, gates, cs, out, h0, c0, w_hh)
        last = steps[-1]
        ctx.save_for_backward(x2, h0, c0, w_ih, w_hh, gates, cs, out)
        ctx.meta = (T, B, I, H, reverse, b_ih is not None)
        return out, out[last], cs[last]

    @staticmethod
    def backward(ctx, d_out, d_hn, d_cn):
        x2, h0, c0, w_ih, w_hh, gates, cs, out = ctx.saved_tensors
        T, B, I, H, reverse, has_bias = ctx.meta
        need = ctx.needs_input_grad
        dev = x2.device
        dc = d_cn.contiguous().clone()  # grad of c_t, updated in place by the cell kernels
        dgates = empty(T, B, 4 * H, device=dev)
        first = T - 1 if reverse else 0  # the step that read h0 and c0
        w_hh_p = pack_b(w_hh)  # (4H, H), laid out once for the T steps
        _backward_steps(reverse, gates, cs, c0, d_out.contiguous(), d_hn.contiguous(), dc, dgates, w_hh_p)
        dh = gemm_into(empty(B, H, device=dev), dgates[first], w_hh_p) if need[1] else None  # grad of h0
        dg2 = dgates.reshape(T * B, 4 * H)
        dx = gemm_into(empty(T * B, I, device=dev), dg2, w_ih).reshape(T, B, I) if need[0] else None
        dw_ih = gemm_into(empty(4 * H, I, device=dev), dg2.T, x2) if need[3] else None
        dw_hh = None
        if need[4]:
            dw_hh = empty(4 * H, H, device=dev)
            if T > 1:  # every step but the first read h from the output of its previous step
                dg_rest, h_rest = (dgates[:-1], out[1:]) if reverse else (dgates[1:], out[:-1])
                gemm_into(dw_hh, dg_rest.reshape(-1, 4 * H).T, h_rest.reshape(-1, H))
            gemm_into(dw_hh, dgates[first].T, h0, accumulate=T > 1)
        db = _column_sums(dg2) if has_bias and (need[5] or need[6]) else None
        return dx, dh, dc if need[2] else None, dw_ih, dw_hh, db, db, None


def _forward_steps(steps, gates, cs, out, h0, c0, w_hh):
    """The recurrence in step order: gates (T, B, 4H) come holding the input projection and leave
    holding the activated gates; cs and out receive c_t and h_t. On the CPU path one fused launch a
    step (lstm_step_fwd), else a recurrent GEMM into the step's gates and the cell kernel."""
    T, B, G = gates.shape
    H, dev = G // 4, gates.device
    BH, BG = B * H, B * G
    h_prev, c_prev = h0, c0
    block = gemm_cpu_block(dev)
    if block:
        lanes = block["LANES"]
        defines = {**block, "NV": 4, "MR": STEP_FWD_MR[lanes]}
        wp = _gate_panels(w_hh, defines)
        grid = (-(-B // defines["MR"]), -(-H // lanes))
        for t in steps:
            c_t, h_t = _at(cs, t * BH), _at(out, t * BH)
            launch(dev, "lstm.cl", "lstm_step_fwd", grid, B, H, h_prev, wp, c_prev, _at(gates, t * BG), c_t, h_t,
                   local=STEP_GROUP, defines=defines, flops=2 * B * G * H)
            h_prev, c_prev = h_t, c_t
        return
    w_hh_t = pack_b(w_hh.T)  # (H, 4H), laid out once for the T steps
    gates_t, out_t, size = _steps(gates), _steps(out), _cells(B, H)
    for t in steps:
        gemm_into(gates_t[t], h_prev, w_hh_t, accumulate=True)  # (B, H) @ (H, 4H) added to x-projection
        c_t = _at(cs, t * BH)
        launch(dev, "lstm.cl", "lstm_cell_fwd", size, B, H, c_prev, _at(gates, t * BG), c_t, _at(out, t * BH))
        h_prev, c_prev = out_t[t], c_t


def _backward_steps(reverse, gates, cs, c0, d_out, d_hn, dc, dgates, w_hh_p):
    """The recurrence backward, in the reverse of the forward's step order: fills dgates (T, B, 4H)
    and leaves dc holding the grad of c0. The step the forward ended on takes d_hn as its recurrent
    grad; every other step's is dgates of the step after it times W_hh (w_hh_p, pack_b(W_hh)): on
    the CPU path fused with the cell (lstm_step_bwd), else a GEMM into dh and the cell kernel."""
    T, B, G = gates.shape
    H, dev = G // 4, gates.device
    BH, BG = B * H, B * G
    step = -1 if reverse else 1  # forward order: h and c of step t came from step t - step
    first = T - 1 if reverse else 0  # the step that read h0 and c0
    block = gemm_cpu_block(dev)
    dh = d_hn.clone() if not block else None  # the GEMM path's recurrent grad, overwritten each step
    dgates_t, size = _steps(dgates), _cells(B, H)
    grid = (-(-B // block["MR"]), -(-H // (block["LANES"] * block["NV"]))) if block else None
    after = None  # the step processed before this one (the forward's next)
    for t in (range(T) if reverse else range(T - 1, -1, -1)):
        c_prev = c0 if t == first else _at(cs, (t - step) * BH)
        if after is None:
            launch(dev, "lstm.cl", "lstm_cell_bwd", size, B, H, _at(gates, t * BG), _at(cs, t * BH), c_prev,
                   _at(d_out, t * BH), d_hn, dc, _at(dgates, t * BG))
        elif block:
            launch(dev, "lstm.cl", "lstm_step_bwd", grid, B, H, _at(dgates, after * BG), At(w_hh_p.buf, 0),
                   _at(gates, t * BG), _at(cs, t * BH), c_prev, _at(d_out, t * BH), dc, _at(dgates, t * BG),
                   local=STEP_GROUP, defines=block, flops=2 * B * G * H)
        else:
            gemm_into(dh, dgates_t[after], w_hh_p)  # (B, 4H) @ (4H, H): grad of h_t
            launch(dev, "lstm.cl", "lstm_cell_bwd", size, B, H, _at(gates, t * BG), _at(cs, t * BH), c_prev,
                   _at(d_out, t * BH), dh, dc, _at(dgates, t * BG))
        after = t


def _gate_panels(w_hh, defines):
    """W_hh (4H, H) as lstm_step_fwd's panels (P, H, 4, LANES), P = ceil(H / LANES): panel p's row k
    holds the i, f, g, o weights from h[k] of units p*LANES .., zero for units past H."""
    H, lanes = w_hh.shape[1], defines["LANES"]
    P = -(-H // lanes)
    w = w_hh.contiguous()
    wp = empty(P, H, 4, lanes, device=w.device)
    launch(w.device, "lstm.cl", "lstm_gate_panels", (H, P), H, w, wp, local=(16, 1), defines=defines)
    return wp


class LSTMCellFn(Function):
    """Gate pre-activations (B, 4H) and c (B, H) -> h', c'."""

    @staticmethod
    def forward(ctx, gates_pre, c_prev):
        B, H = c_prev.shape
        dev = c_prev.device
        gates = gates_pre.clone()
        c_prev = c_prev.contiguous()
        h, c = empty(B, H, device=dev), empty(B, H, device=dev)
        launch(dev, "lstm.cl", "lstm_cell_fwd", _cells(B, H), B, H, c_prev, gates, c, h)
        ctx.save_for_backward(gates, c, c_prev)
        return h, c

    @staticmethod
    def backward(ctx, dh, dc):
        gates, c, c_prev = ctx.saved_tensors
        B, H = c.shape
        dev = c.device
        dh = dh.contiguous()
        dc = dc.contiguous().clone()
        no_rec = zeros(B, H, device=dev)
        dgates = empty(B, 4 * H, device=dev)
        launch(dev, "lstm.cl", "lstm_cell_bwd", _cells(B, H), B, H, gates, c, c_prev, dh, no_rec, dc, dgates)
        return dgates, dc


def _check(x, *tensors):
    for t in tensors:
        if t is None:
            continue
        if t.device != x.device:
            raise RuntimeError(f"lstm: input on {x.device.spec} but a tensor of shape {t.shape} on {t.device.spec}")
        if t.dtype is not dtypes.float32:
            raise TypeError(f"lstm supports float32, got {t.dtype!r} for a tensor of shape {t.shape}")


@float32_kernels(LOWER)
def lstm(x, h0, c0, weights, num_layers, bidirectional=False, dropout_p=0.0, training=False):
    """Multi-layer LSTM over x (T, B, I) with h0, c0 (L*D, B, H); weights is a list of
    (w_ih, w_hh, b_ih, b_hh) per layer and direction. Returns output (T, B, D*H), h_n, c_n."""
    _check(x, h0, c0, *[w for ws in weights for w in ws])
    D = 2 if bidirectional else 1
    hs, cs = [], []
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            k = layer * D + d
            out, h_n, c_n = LSTMLayer.apply(x, h0[k], c0[k], *weights[k], d == 1)
            outs.append(out)
            hs.append(h_n)
            cs.append(c_n)
        x = outs[0] if D == 1 else cat(outs, 2)
        if dropout_p > 0 and training and layer < num_layers - 1:
            x = dropout(x, dropout_p, True)
    return x, stack(hs, 0), stack(cs, 0)


@float32_kernels(LOWER)
def lstm_cell(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
    """One LSTM step: x (B, I), h and c (B, H) -> (h', c')."""
    _check(x, h, c, w_ih, w_hh, b_ih, b_hh)
    gates = linear(x, w_ih, b_ih) + linear(h, w_hh, b_hh)  # (B, 4H)
    return LSTMCellFn.apply(gates, c)
