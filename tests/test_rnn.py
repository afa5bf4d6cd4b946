"""nn.GRU / nn.RNN / nn.GRUCell / nn.RNNCell against a NumPy float64 forward (gradients by central
differences of it) and against PyTorch with the same weights."""
import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn


# ---- the NumPy float64 reference ---------------------------------------------------------------
def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def ref_cell(kind, x, h, w_ih, w_hh, b_ih, b_hh):
    """One step of PyTorch's GRU (gates r, z, n) or RNN ('tanh' / 'relu')."""
    gx, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if kind == "gru":
        H = h.shape[1]
        r = _sig(gx[:, :H] + gh[:, :H])
        z = _sig(gx[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        return (1 - z) * n + z * h
    return np.tanh(gx + gh) if kind == "tanh" else np.maximum(gx + gh, 0)


def ref_rnn(kind, x, h0, params, L, D, bias):
    """x (T, B, I), h0 (L*D, B, H) -> output (T, B, D*H), h_n (L*D, B, H)."""
    hs = []
    for layer in range(L):
        outs = []
        for d in range(D):
            k, sfx = layer * D + d, f"_l{layer}" + ("_reverse" if d else "")
            b_ih, b_hh = (params["bias_ih" + sfx], params["bias_hh" + sfx]) if bias else (0.0, 0.0)
            h, out = h0[k], np.zeros(x.shape[:2] + (h0.shape[-1],))
            for t in (range(x.shape[0] - 1, -1, -1) if d else range(x.shape[0])):
                h = out[t] = ref_cell(kind, x[t], h, params["weight_ih" + sfx], params["weight_hh" + sfx], b_ih, b_hh)
            outs.append(out)
            hs.append(h)
        x = np.concatenate(outs, axis=2)
    return x, np.stack(hs)


def central_difference(loss, arr, h=1e-6):
    g = np.zeros_like(arr)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + h
        up = loss()
        arr[idx] = old - h
        g[idx] = (up - loss()) / (2 * h)
        arr[idx] = old
    return g


def _module(kind, *args, **kwargs):
    if kind == "gru":
        return nn.GRU(*args, **kwargs)
    return nn.RNN(*args, nonlinearity=kind, **kwargs)


CASES = [
    # kind, T, B, I, H, layers, bidirectional, batch_first, with h0, bias  (H straddles the float8 blocks)
    ("gru", 5, 3, 4, 9, 1, False, False, True, True),
    ("gru", 3, 2, 3, 8, 2, True, True, False, True),
    ("gru", 2, 1, 2, 1, 1, True, False, True, False),
    ("tanh", 4, 3, 5, 17, 1, True, False, True, True),
    ("relu", 4, 2, 3, 7, 2, False, True, True, True),
    ("tanh", 1, 2, 3, 5, 1, False, False, False, False),
]


@pytest.mark.parametrize("kind,T,B,I,H,L,bidir,batch_first,with_h0,bias", CASES)
def test_matches_reference(dev, rng, kind, T, B, I, H, L, bidir, batch_first, with_h0, bias):
    mt.manual_seed(0)
    D = 2 if bidir else 1
    model = _module(kind, I, H, num_layers=L, bias=bias, batch_first=batch_first, bidirectional=bidir).to(dev)
    params = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}
    assert all(np.abs(p).max() <= 1 / np.sqrt(H) for p in params.values())
    if kind == "relu":  # keep pre-activations away from the kink, where differences are meaningless
        params = {k: v + (0.3 if k.startswith("bias") else 0.0) for k, v in params.items()}
        model.load_state_dict(params)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L * D, B, H)) if with_h0 else np.zeros((L * D, B, H))
    ref_out, ref_hn = ref_rnn(kind, x, h0, params, L, D, bias)

    xt = mt.tensor(x.transpose(1, 0, 2) if batch_first else x, dtype=mt.float32, device=dev, requires_grad=True)
    h0t = mt.tensor(h0, dtype=mt.float32, device=dev, requires_grad=True) if with_h0 else None
    out, hn = model(xt, h0t)
    got = out.detach().numpy()
    np.testing.assert_allclose(got.transpose(1, 0, 2) if batch_first else got, ref_out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(hn.detach().numpy(), ref_hn, rtol=1e-4, atol=1e-5)

    w_out, w_h = rng.standard_normal(ref_out.shape), rng.standard_normal(ref_hn.shape)
    w_out_t = mt.tensor(w_out.transpose(1, 0, 2) if batch_first else w_out, dtype=mt.float32, device=dev)
    ((out * w_out_t).sum() + (hn * mt.tensor(w_h, dtype=mt.float32, device=dev)).sum()).backward()

    def loss():
        o, h = ref_rnn(kind, x, h0, params, L, D, bias)
        return np.sum(o * w_out) + np.sum(h * w_h)

    def close(got, arr, name):
        want = central_difference(loss, arr)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(want).max()), err_msg=name)

    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}"
        close(p.grad.numpy(), params[name], name)
    gx = xt.grad.numpy()
    close(gx.transpose(1, 0, 2) if batch_first else gx, x, "input")
    if with_h0:
        close(h0t.grad.numpy(), h0, "h0")


@pytest.mark.parametrize("kind", ["gru", "tanh", "relu"])
def test_cells_match_reference(dev, rng, kind):
    B, I, H = 3, 5, 11
    cell = (nn.GRUCell(I, H) if kind == "gru" else nn.RNNCell(I, H, nonlinearity=kind)).to(dev)
    p = {k: v.numpy().astype(np.float64) for k, v in cell.state_dict().items()}
    x, h = rng.standard_normal((B, I)), rng.standard_normal((B, H))
    xt, ht = (mt.tensor(a, dtype=mt.float32, device=dev, requires_grad=True) for a in (x, h))
    h1 = cell(xt, ht)
    ref = ref_cell(kind, x, h, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
    np.testing.assert_allclose(h1.detach().numpy(), ref, rtol=1e-4, atol=1e-5)
    w = rng.standard_normal((B, H))
    (h1 * mt.tensor(w, device=dev)).sum().backward()

    def loss():
        return np.sum(ref_cell(kind, x, h, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"]) * w)

    tol = dict(rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(xt.grad.numpy(), central_difference(loss, x), **tol)
    np.testing.assert_allclose(ht.grad.numpy(), central_difference(loss, h), **tol)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        np.testing.assert_allclose(getattr(cell, name).grad.numpy(), central_difference(loss, p[name]), **tol,
                                   err_msg=name)
    unbatched = cell(mt.tensor(x[0], dtype=mt.float32, device=dev))
    assert unbatched.shape == (H,)


@pytest.mark.parametrize("cls,kwargs", [
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("RNN", dict(num_layers=2, bidirectional=True)),
    ("RNN", dict(nonlinearity="relu", batch_first=True)),
    ("GRU", dict(bias=False)),
])
def test_against_torch(dev, rng, cls, kwargs):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = getattr(torch.nn, cls)(5, 13, **kwargs)
    model = getattr(nn, cls)(5, 13, **kwargs).to(dev)
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert repr(model).replace(", nonlinearity='relu'", "") == repr(ref)  # ours also names a relu
    D = 2 if kwargs.get("bidirectional") else 1
    L = kwargs.get("num_layers", 1)
    x = rng.standard_normal((3, 6, 5)).astype(np.float32)
    h0 = rng.standard_normal((L * D, 3 if kwargs.get("batch_first") else 6, 13)).astype(np.float32)
    xt, ht = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    want, want_h = ref(xt, ht)
    xm, hm = mt.tensor(x, device=dev, requires_grad=True), mt.tensor(h0, device=dev, requires_grad=True)
    got, got_h = model(xm, hm)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_h.detach().numpy(), want_h.detach().numpy(), rtol=1e-4, atol=1e-5)
    g = rng.standard_normal(want.shape).astype(np.float32)
    ((want * torch.tensor(g)).sum() + want_h.sum()).backward()
    ((got * mt.tensor(g, device=dev)).sum() + got_h.sum()).backward()
    tol = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), **tol)
    np.testing.assert_allclose(hm.grad.numpy(), ht.grad.numpy(), **tol)
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_cells_against_torch(dev, rng):
    torch = pytest.importorskip("torch")
    for ref, model in ((torch.nn.GRUCell(4, 9), nn.GRUCell(4, 9)),
                       (torch.nn.RNNCell(4, 9, nonlinearity="relu"), nn.RNNCell(4, 9, nonlinearity="relu"))):
        model.to(dev).load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
        x, h = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((3, 9)).astype(np.float32)
        ht, hm = torch.tensor(h), mt.tensor(h, device=dev)
        for step in range(2):  # two steps: the second reads the first's output
            ht, hm = ref(torch.tensor(x[step]), ht), model(mt.tensor(x[step], device=dev), hm)
        np.testing.assert_allclose(hm.detach().numpy(), ht.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_dropout_between_layers_only_in_training(dev, rng):
    mt.manual_seed(1)
    model = nn.GRU(4, 7, num_layers=2, dropout=0.5).to(dev)
    x = mt.tensor(rng.standard_normal((3, 2, 4)), dtype=mt.float32, device=dev)
    params = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}
    ref = ref_rnn("gru", x.numpy().astype(np.float64), np.zeros((2, 2, 7)), params, 2, 1, True)[0]
    model.eval()
    np.testing.assert_allclose(model(x)[0].detach().numpy(), ref, rtol=1e-4, atol=1e-5)
    model.train()
    assert np.abs(model(x)[0].detach().numpy() - ref).max() > 1e-3


def test_bad_arguments(dev):
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    model = nn.GRU(4, 7).to(dev)
    with pytest.raises(ValueError, match=r"\(T, B, 4\)"):
        model(mt.zeros(3, 2, 5, device=dev))
    with pytest.raises(ValueError, match="hx"):
        model(mt.zeros(3, 2, 4, device=dev), mt.zeros(1, 3, 7, device=dev))
    out, hn = model(mt.zeros(3, 4, device=dev))  # unbatched
    assert out.shape == (3, 7) and hn.shape == (1, 7)
