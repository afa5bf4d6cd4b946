"""nn.LSTM / nn.LSTMCell against a NumPy float64 LSTM with back-propagation through time written by hand."""
import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn
from helpers import check, compare, numeric_grad
from kernel_workload import forced_profile


# ---- the NumPy float64 reference ---------------------------------------------------------------
def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def ref_layer_forward(x, h0, c0, w_ih, w_hh, b, reverse):
    """x (T, B, I) -> out (T, B, H), h_n, c_n and the per-step cache for backward."""
    T, H = x.shape[0], w_hh.shape[1]
    out = np.zeros((T, x.shape[1], H))
    h, c, cache = h0, c0, {}
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        z = x[t] @ w_ih.T + h @ w_hh.T + b
        i, f, g, o = _sig(z[:, :H]), _sig(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), _sig(z[:, 3 * H:])
        c_new = f * c + i * g
        cache[t] = (h, c, i, f, g, o, c_new)
        h, c = o * np.tanh(c_new), c_new
        out[t] = h
    return out, h, c, cache


def ref_layer_backward(x, w_ih, w_hh, cache, d_out, d_hn, d_cn, reverse):
    """BPTT: grads of x, w_ih, w_hh, b (shared by both biases), h0, c0."""
    T = x.shape[0]
    dx, dw_ih, dw_hh = np.zeros_like(x), np.zeros_like(w_ih), np.zeros_like(w_hh)
    db = np.zeros(w_ih.shape[0])
    dh, dc = d_hn.copy(), d_cn.copy()
    for t in (range(T) if reverse else range(T - 1, -1, -1)):
        h_prev, c_prev, i, f, g, o, c_new = cache[t]
        dh_t = d_out[t] + dh
        tc = np.tanh(c_new)
        dc_t = dc + dh_t * o * (1 - tc ** 2)
        dz = np.concatenate([dc_t * g * i * (1 - i), dc_t * c_prev * f * (1 - f), dc_t * i * (1 - g ** 2),
                             dh_t * tc * o * (1 - o)], axis=1)
        dc = dc_t * f
        dx[t] = dz @ w_ih
        dw_ih += dz.T @ x[t]
        dw_hh += dz.T @ h_prev
        db += dz.sum(0)
        dh = dz @ w_hh
    return dx, dw_ih, dw_hh, db, dh, dc


def ref_lstm(x, h0, c0, params, L, D, bias):
    """Forward of a stacked (bi)LSTM; returns out, h_n, c_n and a backward(d_out, d_hn, d_cn) -> grads dict."""
    inputs, caches, hs, cs = [], [], [], []
    for layer in range(L):
        outs = []
        for d in range(D):
            k, sfx = layer * D + d, f"_l{layer}" + ("_reverse" if d else "")
            b = params["bias_ih" + sfx] + params["bias_hh" + sfx] if bias else 0.0
            out, h, c, cache = ref_layer_forward(x, h0[k], c0[k], params["weight_ih" + sfx],
                                                 params["weight_hh" + sfx], b, d == 1)
            outs.append(out)
            caches.append(cache)
            hs.append(h)
            cs.append(c)
        inputs.append(x)
        x = np.concatenate(outs, axis=2)

    def backward(d_out, d_hn, d_cn):
        grads = {"h0": np.zeros_like(h0), "c0": np.zeros_like(c0)}
        H = h0.shape[-1]
        for layer in reversed(range(L)):
            d_in = np.zeros_like(inputs[layer])
            for d in range(D):
                k, sfx = layer * D + d, f"_l{layer}" + ("_reverse" if d else "")
                dx, dwi, dwh, db, dh0, dc0 = ref_layer_backward(
                    inputs[layer], params["weight_ih" + sfx], params["weight_hh" + sfx], caches[k],
                    d_out[:, :, d * H:(d + 1) * H], d_hn[k], d_cn[k], d == 1)
                d_in += dx
                grads["weight_ih" + sfx], grads["weight_hh" + sfx] = dwi, dwh
                if bias:
                    grads["bias_ih" + sfx] = grads["bias_hh" + sfx] = db
                grads["h0"][k], grads["c0"][k] = dh0, dc0
            d_out = d_in
        grads["x"] = d_out
        return grads

    return x, np.stack(hs), np.stack(cs), backward


def test_reference_backward_matches_finite_differences(rng):
    """The hand-written BPTT oracle itself, checked by central differences (pure NumPy)."""
    T, B, I, H = 3, 2, 2, 3
    x, h0, c0 = rng.standard_normal((T, B, I)), rng.standard_normal((2, B, H)), rng.standard_normal((2, B, H))
    params = {}
    for sfx in ("_l0", "_l0_reverse"):
        params.update({"weight_ih" + sfx: rng.standard_normal((4 * H, I)),
                       "weight_hh" + sfx: rng.standard_normal((4 * H, H)),
                       "bias_ih" + sfx: rng.standard_normal(4 * H), "bias_hh" + sfx: rng.standard_normal(4 * H)})
    w_out, w_h, w_c = rng.standard_normal((T, B, 2 * H)), rng.standard_normal((2, B, H)), rng.standard_normal((2, B, H))

    def loss():
        out, hn, cn, _ = ref_lstm(x, h0, c0, params, 1, 2, True)
        return np.sum(out * w_out) + np.sum(hn * w_h) + np.sum(cn * w_c)

    grads = ref_lstm(x, h0, c0, params, 1, 2, True)[3](w_out, w_h, w_c)
    for name, arr in [("x", x), ("h0", h0), ("c0", c0), ("weight_hh_l0_reverse", params["weight_hh_l0_reverse"]),
                      ("bias_ih_l0", params["bias_ih_l0"])]:
        compare(grads[name], numeric_grad(loss, arr), rtol=1e-5, atol=1e-7, what=name)


# ---- nn.LSTM against the reference ---------------------------------------------------------------
CASES = [
    # T, B, I, H, layers, bidirectional, batch_first, with (h0, c0), bias
    (6, 3, 5, 7, 1, False, False, False, True),
    (5, 4, 7, 33, 2, False, True, True, True),
    (4, 2, 3, 1, 1, True, False, True, True),
    (3, 1, 33, 7, 2, True, True, False, True),
    (1, 5, 4, 16, 1, False, False, True, False),
    # B and H straddle the fused steps' blocks: 13 rows over MR 3 and 6, 37 units over 8- and
    # 16-lane panels (lstm_step_fwd) and 16- and 32-unit ones (lstm_step_bwd)
    (4, 13, 5, 37, 1, True, False, True, True),
]


@pytest.mark.parametrize("noncontig", [False, True])
@pytest.mark.parametrize("T,B,I,H,L,bidir,batch_first,with_state,bias", CASES)
def test_lstm_matches_reference(dev, rng, T, B, I, H, L, bidir, batch_first, with_state, bias, noncontig):
    _check_lstm(dev, rng, T, B, I, H, L, bidir, batch_first, with_state, bias, noncontig)


@pytest.mark.parametrize("profile,limits", [("CPU", {}), ("CPU", {"native_vector_width_float": 8}), ("GPU", {})])
def test_both_recurrence_paths_match_reference(dev, rng, profile, limits):
    """The CPU profile's fused steps (lstm_step_fwd / _bwd), in 8 lanes (AVX2) and in the device's own
    width (16 on AVX-512), and the GPU profile's recurrent GEMM and cell kernels, whichever the
    device under test takes itself."""
    with forced_profile(dev, profile, **limits):
        _check_lstm(dev, rng, *CASES[-1], noncontig=False)
        _check_lstm(dev, rng, 3, 7, 4, 9, 2, False, True, False, True, noncontig=True)


def _check_lstm(dev, rng, T, B, I, H, L, bidir, batch_first, with_state, bias, noncontig):
    mt.manual_seed(0)
    D = 2 if bidir else 1
    model = nn.LSTM(I, H, num_layers=L, bias=bias, batch_first=batch_first, bidirectional=bidir).to(dev)
    params = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}
    bound = 1 / np.sqrt(H)
    assert all(np.abs(p).max() <= bound for p in params.values())
    seq = (lambda a: a.transpose(1, 0, 2)) if batch_first else (lambda a: a)  # as fed <-> (T, B, .)
    zeros = np.zeros((L * D, B, H))
    inputs = [seq(rng.standard_normal((T, B, I)))]
    if with_state:
        inputs += [rng.standard_normal((L * D, B, H)), rng.standard_normal((L * D, B, H))]
    ref = lambda x, h0=zeros, c0=zeros: ref_lstm(seq(x), h0, c0, params, L, D, bias)

    def mt_fn(x, *state):
        out, (hn, cn) = model(x, tuple(state) or None)
        return out, hn, cn

    def np_fn(*inputs):
        out, hn, cn, _ = ref(*inputs)
        return seq(out), hn, cn

    def np_grad(inputs, weights):
        w_out, w_h, w_c = weights
        grads = ref(*inputs)[3](seq(w_out), w_h, w_c)
        return [seq(grads["x"])] + [grads["h0"], grads["c0"]][:len(inputs) - 1] + [grads[n] for n in named]

    named = dict(model.named_parameters())
    check(dev, mt_fn, np_fn, *inputs, np_grad=np_grad, params={n: (p, params[n]) for n, p in named.items()},
          noncontig=noncontig, rtol=1e-4, atol=1e-5, grad_rtol=1e-3, grad_atol=1e-4)


def test_lstm_unbatched_input_and_repr(dev, rng):
    model = nn.LSTM(3, 7).to(dev)
    params = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}
    x = rng.standard_normal((5, 3))
    out, (hn, cn) = model(mt.tensor(x, dtype=mt.float32, device=dev))
    zeros = np.zeros((1, 1, 7))
    ref_out, ref_hn, ref_cn, _ = ref_lstm(x[:, None], zeros, zeros, params, 1, 1, True)
    assert out.shape == (5, 7) and hn.shape == (1, 7) and cn.shape == (1, 7)
    compare(out, ref_out[:, 0], rtol=1e-4, atol=1e-5)
    compare(hn, ref_hn[:, 0], rtol=1e-4, atol=1e-5)
    compare(cn, ref_cn[:, 0], rtol=1e-4, atol=1e-5)
    assert repr(model) == "LSTM(3, 7)"
    assert [n for n, _ in nn.LSTM(2, 3, num_layers=2, bidirectional=True).named_parameters()][:8] == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
        "weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse"]


def test_lstm_dropout_only_in_training(dev, rng):
    mt.manual_seed(1)
    model = nn.LSTM(4, 7, num_layers=2, dropout=0.5).to(dev)
    x = mt.tensor(rng.standard_normal((3, 2, 4)), dtype=mt.float32, device=dev)
    model.eval()
    params = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}
    zeros = np.zeros((2, 2, 7))
    ref_out = ref_lstm(x.numpy().astype(np.float64), zeros, zeros, params, 2, 1, True)[0]
    compare(model(x)[0], ref_out, rtol=1e-4, atol=1e-5)
    model.train()
    assert np.abs(model(x)[0].detach().numpy() - ref_out).max() > 1e-3


def test_lstm_bad_input(dev):
    model = nn.LSTM(4, 7).to(dev)
    with pytest.raises(ValueError, match=r"\(T, B, 4\)"):
        model(mt.zeros(3, 2, 5, device=dev))
    with pytest.raises(ValueError, match="h0"):
        model(mt.zeros(3, 2, 4, device=dev), (mt.zeros(1, 3, 7, device=dev), mt.zeros(1, 3, 7, device=dev)))


def test_lstm_cell_matches_reference(dev, rng):
    B, I, H = 3, 5, 33
    cell = nn.LSTMCell(I, H).to(dev)
    p = {k: v.numpy().astype(np.float64) for k, v in cell.state_dict().items()}
    params = {name + "_l0": p[name] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    ref = lambda x, h, c: ref_lstm(x[None], h[None], c[None], params, 1, 1, True)

    def np_grad(inputs, weights):
        w_h, w_c = weights
        grads = ref(*inputs)[3](np.zeros((1, B, H)), w_h[None], w_c[None])
        return [grads["x"][0], grads["h0"][0], grads["c0"][0]] + [grads[n + "_l0"] for n, _ in cell.named_parameters()]

    check(dev, lambda x, h, c: cell(x, (h, c)), lambda x, h, c: tuple(a[0] for a in ref(x, h, c)[1:3]),
          rng.standard_normal((B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H)), np_grad=np_grad,
          params={n: (t, p[n]) for n, t in cell.named_parameters()}, rtol=1e-4, atol=1e-5, grad_rtol=1e-3,
          grad_atol=1e-4)


def test_torch_state_dict_gives_same_outputs(dev, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True)
    model = nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True).to(dev)
    model.load_state_dict(ref.state_dict())
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    h0, c0 = rng.standard_normal((2, 4, 3, 7)).astype(np.float32)
    want, (want_h, want_c) = ref(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    got, (got_h, got_c) = model(mt.tensor(x, device=dev), (mt.tensor(h0, device=dev), mt.tensor(c0, device=dev)))
    for g, w in ((got, want), (got_h, want_h), (got_c, want_c)):
        compare(g, w.detach().numpy(), rtol=1e-4, atol=1e-5)
