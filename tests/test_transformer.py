"""MultiheadAttention, encoder/decoder layers and a small Transformer against a NumPy float64 reference
that reads the same weights by PyTorch's names (eval mode): outputs, and gradients of inputs and a
few parameters by central differences through the reference."""
import math

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn


# ---- the NumPy float64 reference, seq-first (L, B, E) ---------------------------------------
def np_linear(x, sd, name):
    return x @ sd[name + ".weight"].T + sd[name + ".bias"]


def np_layer_norm(x, sd, name, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(-1, keepdims=True) + eps) * sd[name + ".weight"] + sd[name + ".bias"]


def np_mha(sd, p, q_in, k_in, v_in, H, attn_mask=None, key_padding_mask=None, causal=False):
    """Returns (output (L, B, E), weights averaged over heads (B, L, S))."""
    E = q_in.shape[-1]
    W, b = sd[p + "in_proj_weight"], sd[p + "in_proj_bias"]
    q, k, v = (x @ W[i * E:(i + 1) * E].T + b[i * E:(i + 1) * E] for i, x in enumerate((q_in, k_in, v_in)))
    L, B, S, Dh = q.shape[0], q.shape[1], k.shape[0], E // H
    heads = lambda t: t.reshape(t.shape[0], B, H, Dh).transpose(1, 2, 0, 3)  # (B, H, len, Dh)
    s = heads(q) @ heads(k).transpose(0, 1, 3, 2) / math.sqrt(Dh)
    if causal:
        s = s + np.triu(np.full((L, S), -np.inf), 1)
    if attn_mask is not None:
        s = s + (np.where(attn_mask, -np.inf, 0.0) if attn_mask.dtype == bool else attn_mask)
    if key_padding_mask is not None:
        s = s + np.where(key_padding_mask, -np.inf, 0.0)[:, None, None, :]
    s = s - s.max(-1, keepdims=True)
    attn = np.exp(s)
    attn /= attn.sum(-1, keepdims=True)
    out = (attn @ heads(v)).transpose(2, 0, 1, 3).reshape(L, B, E)
    return np_linear(out, sd, p + "out_proj"), attn.mean(1)


def np_ff(x, sd, prefix, act):
    h = np_linear(x, sd, prefix + "linear1")
    h = np.maximum(h, 0) if act == "relu" else 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
    return np_linear(h, sd, prefix + "linear2")


def np_encoder_layer(sd, p, x, H, act="relu", norm_first=False, mask=None, kpm=None, causal=False):
    sa = lambda y: np_mha(sd, p + "self_attn.", y, y, y, H, mask, kpm, causal)[0]
    if norm_first:
        x = x + sa(np_layer_norm(x, sd, p + "norm1"))
        return x + np_ff(np_layer_norm(x, sd, p + "norm2"), sd, p, act)
    x = np_layer_norm(x + sa(x), sd, p + "norm1")
    return np_layer_norm(x + np_ff(x, sd, p, act), sd, p + "norm2")


def np_decoder_layer(sd, p, x, mem, H, act="relu", norm_first=False, tgt_mask=None, mem_kpm=None, causal=False):
    sa = lambda y: np_mha(sd, p + "self_attn.", y, y, y, H, tgt_mask, None, causal)[0]
    ca = lambda y: np_mha(sd, p + "multihead_attn.", y, mem, mem, H, None, mem_kpm)[0]
    if norm_first:
        x = x + sa(np_layer_norm(x, sd, p + "norm1"))
        x = x + ca(np_layer_norm(x, sd, p + "norm2"))
        return x + np_ff(np_layer_norm(x, sd, p + "norm3"), sd, p, act)
    x = np_layer_norm(x + sa(x), sd, p + "norm1")
    x = np_layer_norm(x + ca(x), sd, p + "norm2")
    return np_layer_norm(x + np_ff(x, sd, p, act), sd, p + "norm3")


def np_transformer(sd, src, tgt, H, n_enc, n_dec, tgt_mask=None, src_kpm=None):
    mem = src
    for i in range(n_enc):
        mem = np_encoder_layer(sd, f"encoder.layers.{i}.", mem, H, kpm=src_kpm)
    mem = np_layer_norm(mem, sd, "encoder.norm")
    x = tgt
    for i in range(n_dec):
        x = np_decoder_layer(sd, f"decoder.layers.{i}.", x, mem, H, tgt_mask=tgt_mask, mem_kpm=src_kpm)
    return np_layer_norm(x, sd, "decoder.norm")


# ---- helpers -------------------------------------------------------------------------------------
def randomize(module, rng):
    """Random weights (biases and norms included) loaded by name; returns the float64 state dict."""
    sd = {k: rng.standard_normal(v.shape) * (0.5 if v.ndim > 1 else 0.2)
          + (1.0 if "norm" in k and k.endswith("weight") else 0.0)  # LayerNorm scales near 1
          for k, v in module.state_dict().items()}
    sd = {k: v.astype(np.float32).astype(np.float64) for k, v in sd.items()}
    module.load_state_dict(sd)
    return sd


def f32(x):
    return x.astype(np.float32).astype(np.float64)


def check_grads(module, sd, ref_fn, inputs, tensors, out, rng, params, n_entries=3, rtol=2e-3):
    """Gradient of sum(out * w) for inputs and a few entries of named params vs central differences."""
    w = rng.standard_normal(out.shape)
    (out * mt.tensor(w, device=tensors[0].device)).sum().backward()
    loss = lambda: float(np.sum(ref_fn(sd, *inputs) * w))
    h = 1e-6
    named = dict(module.named_parameters())
    targets = [(name, sd[name], named[name].grad.numpy()) for name in params]
    targets += [(f"input {i}", x, t.grad.numpy()) for i, (x, t) in enumerate(zip(inputs, tensors))]
    for name, array, got in targets:
        flat = array.reshape(-1)
        for idx in rng.choice(flat.size, size=min(n_entries, flat.size), replace=False):
            old = flat[idx]
            flat[idx] = old + h
            up = loss()
            flat[idx] = old - h
            down = loss()
            flat[idx] = old
            want = (up - down) / (2 * h)
            assert abs(got.reshape(-1)[idx] - want) <= rtol * abs(want) + 1e-3, \
                f"d loss / d {name}[{idx}]: got {got.reshape(-1)[idx]}, want {want}"


# ---- tests ------------------------------------------------------------------------------------
def test_mha_parameter_names(dev):
    mha = nn.MultiheadAttention(8, 2, device=dev)
    assert [n for n, _ in mha.named_parameters()] == ["in_proj_weight", "in_proj_bias", "out_proj.weight",
                                                      "out_proj.bias"]
    assert mha.in_proj_weight.shape == (24, 8)


@pytest.mark.parametrize("self_attn", [True, False])
def test_mha_values_weights_and_grads(dev, rng, self_attn):
    E, H, L, S, B = 8, 2, 5, 7, 3
    mha = nn.MultiheadAttention(E, H, device=dev).eval()
    sd = randomize(mha, rng)
    x = f32(rng.standard_normal((L, B, E)))
    mem = x if self_attn else f32(rng.standard_normal((S, B, E)))
    S = mem.shape[0]
    attn_mask = f32(rng.standard_normal((L, S)))
    kpm = np.zeros((B, S), dtype=bool)
    kpm[1, -2:] = True
    tx = mt.tensor(x, device=dev, requires_grad=True)
    tm = tx if self_attn else mt.tensor(mem, device=dev, requires_grad=True)
    out, weights = mha(tx, tm, tm, key_padding_mask=mt.tensor(kpm, device=dev),
                       attn_mask=mt.tensor(attn_mask, device=dev))
    ref, ref_w = np_mha(sd, "", x, mem, mem, H, attn_mask, kpm)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(weights.detach().numpy(), ref_w, rtol=1e-4, atol=1e-5)
    fused, none = mha(tx, tm, tm, key_padding_mask=mt.tensor(kpm, device=dev),
                      attn_mask=mt.tensor(attn_mask, device=dev), need_weights=False)
    assert none is None
    np.testing.assert_allclose(fused.detach().numpy(), ref, rtol=1e-4, atol=1e-4)
    inputs, tensors = ([x], [tx]) if self_attn else ([x, mem], [tx, tm])
    ref_fn = (lambda sd_, x_: np_mha(sd_, "", x_, x_, x_, H, attn_mask, kpm)[0]) if self_attn else \
        (lambda sd_, x_, m_: np_mha(sd_, "", x_, m_, m_, H, attn_mask, kpm)[0])
    check_grads(mha, sd, ref_fn, inputs, tensors, fused, rng, ["in_proj_weight", "in_proj_bias", "out_proj.weight"])


def test_mha_batch_first_causal_and_bool_mask(dev, rng):
    E, H, L, B = 8, 4, 6, 2
    mha = nn.MultiheadAttention(E, H, batch_first=True, device=dev).eval()
    sd = randomize(mha, rng)
    x = f32(rng.standard_normal((B, L, E)))
    tx = mt.tensor(x, device=dev)
    seq = np.swapaxes(x, 0, 1)
    causal_mask = nn.Transformer.generate_square_subsequent_mask(L, device=dev)
    out, _ = mha(tx, tx, tx, attn_mask=causal_mask, need_weights=False, is_causal=True)
    ref = np.swapaxes(np_mha(sd, "", seq, seq, seq, H, causal=True)[0], 0, 1)
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=1e-4, atol=1e-4)
    bool_mask = rng.random((L, L)) < 0.3  # True = not allowed (nn convention)
    np.fill_diagonal(bool_mask, False)
    out, w = mha(tx, tx, tx, attn_mask=mt.tensor(bool_mask, device=dev), average_attn_weights=False)
    ref, _ = np_mha(sd, "", seq, seq, seq, H, attn_mask=bool_mask)
    np.testing.assert_allclose(out.detach().numpy(), np.swapaxes(ref, 0, 1), rtol=1e-4, atol=1e-4)
    assert w.shape == (B, H, L, L)


@pytest.mark.parametrize("act,norm_first", [("relu", False), ("gelu", True)])
def test_encoder_layer(dev, rng, act, norm_first):
    E, H, L, B = 8, 2, 5, 2
    layer = nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.1, activation=act,
                                       norm_first=norm_first, device=dev).eval()
    assert [n for n, _ in layer.named_children()] == ["self_attn", "linear1", "dropout", "linear2", "norm1",
                                                      "norm2", "dropout1", "dropout2"]
    sd = randomize(layer, rng)
    x = f32(rng.standard_normal((L, B, E)))
    kpm = np.zeros((B, L), dtype=bool)
    kpm[0, -1] = True
    tx = mt.tensor(x, device=dev, requires_grad=True)
    mask = nn.Transformer.generate_square_subsequent_mask(L, device=dev)
    out = layer(tx, src_mask=mask, src_key_padding_mask=mt.tensor(kpm, device=dev), is_causal=True)
    ref_fn = lambda sd_, x_: np_encoder_layer(sd_, "", x_, H, act, norm_first, kpm=kpm, causal=True)
    np.testing.assert_allclose(out.detach().numpy(), ref_fn(sd, x), rtol=1e-4, atol=1e-4)
    check_grads(layer, sd, ref_fn, [x], [tx], out, rng, ["self_attn.in_proj_weight", "linear1.weight", "norm1.weight",
                                                        "norm2.bias"])


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer(dev, rng, norm_first):
    E, H, L, S, B = 8, 2, 4, 7, 2
    layer = nn.TransformerDecoderLayer(E, H, dim_feedforward=16, norm_first=norm_first, device=dev).eval()
    assert "multihead_attn.in_proj_weight" in layer.state_dict() and "norm3.weight" in layer.state_dict()
    sd = randomize(layer, rng)
    x, mem = f32(rng.standard_normal((L, B, E))), f32(rng.standard_normal((S, B, E)))
    tx, tm = mt.tensor(x, device=dev, requires_grad=True), mt.tensor(mem, device=dev, requires_grad=True)
    tgt_mask = f32(rng.standard_normal((L, L)))
    out = layer(tx, tm, tgt_mask=mt.tensor(tgt_mask, device=dev))
    ref_fn = lambda sd_, x_, m_: np_decoder_layer(sd_, "", x_, m_, H, norm_first=norm_first, tgt_mask=tgt_mask)
    np.testing.assert_allclose(out.detach().numpy(), ref_fn(sd, x, mem), rtol=1e-4, atol=1e-4)
    check_grads(layer, sd, ref_fn, [x, mem], [tx, tm], out, rng, ["multihead_attn.in_proj_weight", "linear2.bias",
                                                                  "norm3.weight"])


def test_small_transformer(dev, rng):
    E, H, S, L, B = 8, 2, 6, 5, 2
    model = nn.Transformer(d_model=E, nhead=H, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=16,
                           device=dev).eval()
    names = list(model.state_dict())
    assert "encoder.layers.1.self_attn.in_proj_weight" in names and "encoder.norm.weight" in names
    assert "decoder.layers.0.multihead_attn.out_proj.bias" in names and "decoder.norm.bias" in names
    sd = randomize(model, rng)
    src, tgt = f32(rng.standard_normal((S, B, E))), f32(rng.standard_normal((L, B, E)))
    kpm = np.zeros((B, S), dtype=bool)
    kpm[1, -2:] = True
    mask = nn.Transformer.generate_square_subsequent_mask(L, device=dev)
    ts, tt = mt.tensor(src, device=dev, requires_grad=True), mt.tensor(tgt, device=dev, requires_grad=True)
    out = model(ts, tt, tgt_mask=mask, src_key_padding_mask=mt.tensor(kpm, device=dev),
                memory_key_padding_mask=mt.tensor(kpm, device=dev))
    causal = np.triu(np.full((L, L), -np.inf), 1)
    ref_fn = lambda sd_, s_, t_: np_transformer(sd_, s_, t_, H, 2, 1, tgt_mask=causal, src_kpm=kpm)
    np.testing.assert_allclose(out.detach().numpy(), ref_fn(sd, src, tgt), rtol=1e-4, atol=1e-4)
    check_grads(model, sd, ref_fn, [src, tgt], [ts, tt], out, rng,
                ["encoder.layers.0.linear1.weight", "encoder.norm.weight", "decoder.layers.0.self_attn.in_proj_bias"],
                n_entries=2)


def test_square_subsequent_mask(dev):
    m = nn.Transformer.generate_square_subsequent_mask(4, device=dev).numpy()
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m, np.triu(np.full((4, 4), -np.inf, dtype=np.float32), 1))


def test_bad_inputs(dev):
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(10, 3)
    mha = nn.MultiheadAttention(8, 2, device=dev)
    x = mt.zeros(5, 2, 8, device=dev)
    with pytest.raises(ValueError, match="attn_mask"):
        mha(x, x, x, attn_mask=mt.zeros(4, 4, device=dev))
    with pytest.raises(ValueError, match="key_padding_mask"):
        mha(x, x, x, key_padding_mask=mt.zeros(3, 5, dtype=mt.bool, device=dev))


def test_loads_torch_state_dict(dev, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.Transformer(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=32,
                               activation="gelu", norm_first=True).eval()
    model = nn.Transformer(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=32,
                           activation="gelu", norm_first=True, device=dev).eval()
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    src = rng.standard_normal((7, 3, 16)).astype(np.float32)
    tgt = rng.standard_normal((5, 3, 16)).astype(np.float32)
    kpm = np.zeros((3, 7), dtype=bool)
    kpm[2, -3:] = True
    with torch.no_grad():
        want = ref(torch.tensor(src), torch.tensor(tgt), tgt_mask=ref.generate_square_subsequent_mask(5),
                   src_key_padding_mask=torch.tensor(kpm), memory_key_padding_mask=torch.tensor(kpm)).numpy()
    with mt.no_grad():
        got = model(mt.tensor(src, device=dev), mt.tensor(tgt, device=dev),
                    tgt_mask=nn.Transformer.generate_square_subsequent_mask(5, device=dev),
                    src_key_padding_mask=mt.tensor(kpm, device=dev),
                    memory_key_padding_mask=mt.tensor(kpm, device=dev))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)
