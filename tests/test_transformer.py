"""MultiheadAttention, encoder/decoder layers and a small Transformer against a NumPy float64 reference
that reads the same weights by PyTorch's names (eval mode): outputs, and gradients of inputs and a
few parameters by central differences through the reference (helpers.check)."""
import math

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn
from helpers import check, compare, f32


# ---- the NumPy float64 reference, seq-first (L, B, E) ---------------------------------------
def np_linear(x, sd, name):
    return x @ sd[name + ".weight"].T + sd[name + ".bias"]


def np_layer_norm(x, sd, name, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(-1, keepdims=True) + eps) * sd[name + ".weight"] + sd[name + ".bias"]


def np_mha(sd, p, q_in, k_in, v_in, H, attn_mask=None, key_padding_mask=None, causal=False, average=True):
    """Returns (output (L, B, E), weights (B, L, S) averaged over heads, or (B, H, L, S))."""
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
    return np_linear(out, sd, p + "out_proj"), attn.mean(1) if average else attn


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


def param_refs(module, sd, names):
    """helpers.check params: each named parameter with the float64 array the reference reads."""
    named = dict(module.named_parameters())
    return {name: (named[name], sd[name]) for name in names}


# tolerances: outputs, and gradients by central differences on a few entries through the float64 reference
TOL = dict(rtol=1e-4, atol=1e-4, grad_rtol=2e-3, grad_atol=1e-3)


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
    masks = dict(key_padding_mask=mt.tensor(kpm, device=dev), attn_mask=mt.tensor(attn_mask, device=dev))
    inputs = [x] if self_attn else [x, mem]
    mt_fn = lambda x, m=None, **kw: mha(x, x if m is None else m, x if m is None else m, **masks, **kw)
    np_fn = lambda x, m=None: np_mha(sd, "", x, x if m is None else m, x if m is None else m, H, attn_mask, kpm)
    params = param_refs(mha, sd, ["in_proj_weight", "in_proj_bias", "out_proj.weight"])
    # output and head-averaged weights (the unfused path), then the fused path (no weights)
    check(dev, mt_fn, np_fn, *inputs, params=params, entries=3, **dict(TOL, atol=(1e-4, 1e-5)))
    for t, _ in params.values():
        t.grad = None
    out, none = mt_fn(*(mt.tensor(a, device=dev) for a in inputs), need_weights=False)
    assert none is None
    check(dev, lambda *a: mt_fn(*a, need_weights=False)[0], lambda *a: np_fn(*a)[0], *inputs, params=params,
          entries=3, **TOL)


def test_mha_batch_first_causal_and_bool_mask(dev, rng):
    E, H, L, B = 8, 4, 6, 2
    mha = nn.MultiheadAttention(E, H, batch_first=True, device=dev).eval()
    sd = randomize(mha, rng)
    x = rng.standard_normal((B, L, E))
    seq = lambda x: np.swapaxes(x, 0, 1)
    causal_mask = nn.Transformer.generate_square_subsequent_mask(L, device=dev)
    check(dev, lambda x: mha(x, x, x, attn_mask=causal_mask, need_weights=False, is_causal=True)[0],
          lambda x: seq(np_mha(sd, "", seq(x), seq(x), seq(x), H, causal=True)[0]), x, grad=False, rtol=1e-4,
          atol=1e-4)
    bool_mask = rng.random((L, L)) < 0.3  # True = not allowed (nn convention)
    np.fill_diagonal(bool_mask, False)
    tmask = mt.tensor(bool_mask, device=dev)
    _, w = check(dev, lambda x: mha(x, x, x, attn_mask=tmask, average_attn_weights=False),
                 lambda x: (lambda o, w: (seq(o), w))(*np_mha(sd, "", seq(x), seq(x), seq(x), H, attn_mask=bool_mask,
                                                               average=False)),
                 x, grad=False, rtol=1e-4, atol=(1e-4, 1e-5))
    assert w.shape == (B, H, L, L)


@pytest.mark.parametrize("act,norm_first", [("relu", False), ("gelu", True)])
def test_encoder_layer(dev, rng, act, norm_first):
    E, H, L, B = 8, 2, 5, 2
    layer = nn.TransformerEncoderLayer(E, H, dim_feedforward=16, dropout=0.1, activation=act,
                                       norm_first=norm_first, device=dev).eval()
    assert [n for n, _ in layer.named_children()] == ["self_attn", "linear1", "dropout", "linear2", "norm1",
                                                      "norm2", "dropout1", "dropout2"]
    sd = randomize(layer, rng)
    x = rng.standard_normal((L, B, E))
    kpm = np.zeros((B, L), dtype=bool)
    kpm[0, -1] = True
    tkpm = mt.tensor(kpm, device=dev)
    mask = nn.Transformer.generate_square_subsequent_mask(L, device=dev)
    check(dev, lambda x: layer(x, src_mask=mask, src_key_padding_mask=tkpm, is_causal=True),
          lambda x: np_encoder_layer(sd, "", x, H, act, norm_first, kpm=kpm, causal=True), x,
          params=param_refs(layer, sd, ["self_attn.in_proj_weight", "linear1.weight", "norm1.weight", "norm2.bias"]),
          entries=3, **TOL)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer(dev, rng, norm_first):
    E, H, L, S, B = 8, 2, 4, 7, 2
    layer = nn.TransformerDecoderLayer(E, H, dim_feedforward=16, norm_first=norm_first, device=dev).eval()
    assert "multihead_attn.in_proj_weight" in layer.state_dict() and "norm3.weight" in layer.state_dict()
    sd = randomize(layer, rng)
    x, mem = rng.standard_normal((L, B, E)), rng.standard_normal((S, B, E))
    tgt_mask = f32(rng.standard_normal((L, L)))
    tmask = mt.tensor(tgt_mask, device=dev)
    check(dev, lambda x, m: layer(x, m, tgt_mask=tmask),
          lambda x, m: np_decoder_layer(sd, "", x, m, H, norm_first=norm_first, tgt_mask=tgt_mask), x, mem,
          params=param_refs(layer, sd, ["multihead_attn.in_proj_weight", "linear2.bias", "norm3.weight"]),
          entries=3, **TOL)


def test_small_transformer(dev, rng):
    E, H, S, L, B = 8, 2, 6, 5, 2
    model = nn.Transformer(d_model=E, nhead=H, num_encoder_layers=2, num_decoder_layers=1, dim_feedforward=16,
                           device=dev).eval()
    names = list(model.state_dict())
    assert "encoder.layers.1.self_attn.in_proj_weight" in names and "encoder.norm.weight" in names
    assert "decoder.layers.0.multihead_attn.out_proj.bias" in names and "decoder.norm.bias" in names
    sd = randomize(model, rng)
    src, tgt = rng.standard_normal((S, B, E)), rng.standard_normal((L, B, E))
    kpm = np.zeros((B, S), dtype=bool)
    kpm[1, -2:] = True
    tkpm = mt.tensor(kpm, device=dev)
    mask = nn.Transformer.generate_square_subsequent_mask(L, device=dev)
    causal = np.triu(np.full((L, L), -np.inf), 1)
    check(dev, lambda s, t: model(s, t, tgt_mask=mask, src_key_padding_mask=tkpm, memory_key_padding_mask=tkpm),
          lambda s, t: np_transformer(sd, s, t, H, 2, 1, tgt_mask=causal, src_kpm=kpm), src, tgt,
          params=param_refs(model, sd, ["encoder.layers.0.linear1.weight", "encoder.norm.weight",
                                        "decoder.layers.0.self_attn.in_proj_bias"]), entries=2, **TOL)


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
    compare(got, want, rtol=1e-4, atol=1e-4)
