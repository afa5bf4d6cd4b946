"""MultiheadAttention and the Transformer family, with PyTorch's submodule and parameter names so a
torch.nn.Transformer state_dict loads by name."""
import math

import numpy as np

from ..ops.attention import attention
from ..ops.dropout import dropout as _dropout
from ..ops.elementwise import gelu, relu, where
from ..ops.matmul import linear
from ..ops.softmax import softmax
from ..tensor import empty, tensor
from .. import dtypes
from . import init
from .container import ModuleList
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm
from .parameter import Parameter

__all__ = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
           "TransformerDecoder", "Transformer"]


def _additive(mask, name):
    """A bool mask (True = masked out, PyTorch's nn convention) as a float additive mask."""
    if mask is None or mask.dtype is not dtypes.bool_:
        if mask is not None and not mask.dtype.is_floating:
            raise TypeError(f"{name} must be bool or floating, got {mask.dtype!r}")
        return mask
    return where(mask, -math.inf, 0.0)


class MultiheadAttention(Module):
    """Multi-head attention: packed input projection, fused attention per head, output projection."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        if add_bias_kv or add_zero_attn or (kdim not in (None, embed_dim)) or (vdim not in (None, embed_dim)):
            raise NotImplementedError("add_bias_kv, add_zero_attn and kdim/vdim != embed_dim are not supported")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.batch_first = batch_first
        self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, device=device))
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, device=device))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device)
        self._reset_parameters()

    def _reset_parameters(self):
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _project(self, query, key, value):
        """q, k, v projections: one GEMM for self-attention, three otherwise."""
        w, b, E = self.in_proj_weight, self.in_proj_bias, self.embed_dim
        if query is key and key is value:
            return linear(query, w, b).split(E, dim=-1)  # (.., 3E) -> three views
        # split: views whose gradients land in one buffer (slicing would zero-fill one per slice)
        if key is value:
            (wq, wkv), (bq, bkv) = w.split([E, 2 * E]), (None, None) if b is None else b.split([E, 2 * E])
            k, v = linear(key, wkv, bkv).split(E, dim=-1)
            return linear(query, wq, bq), k, v
        ws, bs = w.split(E), (None,) * 3 if b is None else b.split(E)
        return tuple(linear(x, wi, bi) for x, wi, bi in zip((query, key, value), ws, bs))

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        """Returns (output, attention weights averaged over heads, or None when need_weights is False)."""
        unbatched = query.ndim == 2
        if unbatched:  # (L, E): add a batch dim of 1, keeping `query is key` for the packed projection
            bdim = 0 if self.batch_first else 1
            same_kv, self_attn = key is value, query is key and key is value
            query = query.unsqueeze(bdim)
            key = query if self_attn else key.unsqueeze(bdim)
            value = key if same_kv else value.unsqueeze(bdim)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        if query.ndim != 3 or query.shape[-1] != self.embed_dim:
            raise ValueError(f"MultiheadAttention expects inputs (L, N, {self.embed_dim}) "
                             f"(or (N, L, E) with batch_first), got query {query.shape}")
        if self.batch_first:
            B, L, _ = query.shape
            S = key.shape[1]
        else:
            L, B, _ = query.shape
            S = key.shape[0]
        H, Dh = self.num_heads, self.head_dim
        q, k, v = self._project(query, key, value)
        # (.., H, Dh) views -> (B, H, len, Dh) without copies
        order = (0, 2, 1, 3) if self.batch_first else (1, 2, 0, 3)
        q = q.reshape(*q.shape[:2], H, Dh).permute(*order)
        k = k.reshape(*k.shape[:2], H, Dh).permute(*order)
        v = v.reshape(*v.shape[:2], H, Dh).permute(*order)
        mask = self._merge_masks(attn_mask, key_padding_mask, B, L, S)
        causal = bool(is_causal)
        if causal and attn_mask is not None:
            mask = _additive(key_padding_mask, "key_padding_mask")  # the kernel applies causality itself
            mask = mask.reshape(B, 1, 1, S) if mask is not None else None
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q @ k.mT) * (1.0 / math.sqrt(Dh))
            if causal:
                scores = scores + _causal_mask(L, S, q.device)
            if mask is not None:
                scores = scores + mask
            weights = softmax(scores, -1)
            out = _dropout(weights, p) @ v if p > 0 else weights @ v
            weights = weights.mean(dim=1) if average_attn_weights else weights
        else:
            out = attention(q, k, v, mask, p, causal)  # (B, H, L, Dh)
        out = out.permute(0, 2, 1, 3) if self.batch_first else out.permute(2, 0, 1, 3)
        out = self.out_proj(out.reshape(out.shape[0], out.shape[1], self.embed_dim))
        if unbatched:
            out = out.squeeze(0 if self.batch_first else 1)
            weights = weights.squeeze(0) if weights is not None else None
        return out, weights

    def _merge_masks(self, attn_mask, key_padding_mask, B, L, S):
        """attn_mask (L, S) or (B*H, L, S) and key_padding_mask (B, S) as one additive mask
        broadcasting to (B, H, L, S)."""
        mask = _additive(attn_mask, "attn_mask")
        if mask is not None:
            if mask.ndim == 3:
                if tuple(mask.shape) != (B * self.num_heads, L, S):
                    raise ValueError(f"3-D attn_mask must be {(B * self.num_heads, L, S)}, got {mask.shape}")
                mask = mask.reshape(B, self.num_heads, L, S)
            elif tuple(mask.shape) != (L, S):
                raise ValueError(f"2-D attn_mask must be {(L, S)}, got {mask.shape}")
        kpm = _additive(key_padding_mask, "key_padding_mask")
        if kpm is not None:
            if tuple(kpm.shape) != (B, S):
                raise ValueError(f"key_padding_mask must be {(B, S)}, got {kpm.shape}")
            kpm = kpm.reshape(B, 1, 1, S)
            mask = kpm if mask is None else mask + kpm
        return mask

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"


def _causal_mask(L, S, device):
    """(L, S) float mask, -inf where key j > query i (top-left aligned, as PyTorch's is_causal)."""
    return tensor(np.where(np.tril(np.ones((L, S), dtype=bool)), 0.0, -np.inf).astype(np.float32), device=device)


def _detect_is_causal_mask(mask, is_causal):
    """PyTorch's rule: with no hint, a float mask equal to the square subsequent mask is causal,
    so the fused kernel can skip reading it (one small comparison that waits for the device)."""
    if is_causal is not None or mask is None:
        return bool(is_causal)
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1] or not mask.dtype.is_floating:
        return False
    causal = Transformer.generate_square_subsequent_mask(mask.shape[0], device=mask.device)
    return bool((mask == causal).all().item())


def _activation(activation):
    if activation == "relu" or activation is relu:
        return "relu"
    if activation == "gelu" or activation is gelu:
        return "gelu"
    if callable(activation):
        return activation
    raise ValueError(f"activation should be relu/gelu or a callable, not {activation!r}")


class _Layer(Module):
    """What encoder and decoder layers share: the feed-forward block and cloning."""

    def _ff_init(self, d_model, dim_feedforward, dropout, activation, layer_norm_eps, device):
        self.linear1 = Linear(d_model, dim_feedforward, device=device)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, device=device)
        self.activation = _activation(activation)

    def _ff_block(self, x, drop):
        if self.activation == "relu":
            h = linear(x, self.linear1.weight, self.linear1.bias, relu=True)  # ReLU fused in the GEMM
        else:
            h = self.linear1(x)
            h = gelu(h) if self.activation == "gelu" else self.activation(h)
        return drop(self.linear2(self.dropout(h)))

    def clone(self):
        """A new layer with the same arguments and a copy of the weights (PyTorch deep-copies)."""
        twin = type(self)(**self._args)
        twin.load_state_dict(self.state_dict())
        return twin.train(self.training)


class TransformerEncoderLayer(_Layer):
    """Self-attention then a feed-forward block, each with a residual and LayerNorm (post- or pre-norm)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        self._args = dict(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward, dropout=dropout,
                          activation=activation, layer_norm_eps=layer_norm_eps, batch_first=batch_first,
                          norm_first=norm_first, bias=bias, device=device)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            device=device)
        self._ff_init(d_model, dim_feedforward, dropout, activation, layer_norm_eps, device)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x), self.dropout2)
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x, self.dropout2))
        return x

    def _sa_block(self, x, mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)


class TransformerDecoderLayer(_Layer):
    """Self-attention, cross-attention over memory, then a feed-forward block, each with a residual and LayerNorm."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        self._args = dict(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward, dropout=dropout,
                          activation=activation, layer_norm_eps=layer_norm_eps, batch_first=batch_first,
                          norm_first=norm_first, bias=bias, device=device)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            device=device)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, device=device)
        self._ff_init(d_model, dim_feedforward, dropout, activation, layer_norm_eps, device)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x), self.dropout3)
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x, self.dropout3))
        return x

    def _sa_block(self, x, mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, mem, mem, attn_mask=mask, key_padding_mask=key_padding_mask,
                                need_weights=False, is_causal=is_causal)[0]
        return self.dropout2(x)


class TransformerEncoder(Module):
    """num_layers copies of encoder_layer (layers.0, layers.1, ...) and an optional final norm."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        self.layers = ModuleList([encoder_layer.clone() for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=_detect_is_causal_mask(mask, is_causal))
        return self.norm(x) if self.norm is not None else x


class TransformerDecoder(Module):
    """num_layers copies of decoder_layer (layers.0, layers.1, ...) and an optional final norm."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = ModuleList([decoder_layer.clone() for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=_detect_is_causal_mask(tgt_mask, tgt_is_causal),
                      memory_is_causal=memory_is_causal)
        return self.norm(x) if self.norm is not None else x


class Transformer(Module):
    """The encoder-decoder Transformer of "Attention Is All You Need", PyTorch's layout and defaults."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation="relu", custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        args = dict(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward, dropout=dropout,
                    activation=activation, layer_norm_eps=layer_norm_eps, batch_first=batch_first,
                    norm_first=norm_first, bias=bias, device=device)
        self.encoder = custom_encoder or TransformerEncoder(
            TransformerEncoderLayer(**args), num_encoder_layers,
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device))
        self.decoder = custom_decoder or TransformerDecoder(
            TransformerDecoderLayer(**args), num_decoder_layers,
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        b = 0 if self.batch_first else 1
        if src.ndim == 3 and tgt.ndim == 3 and src.shape[b] != tgt.shape[b]:
            raise RuntimeError(f"the batch number of src {src.shape} and tgt {tgt.shape} must be equal")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise RuntimeError(f"the feature number of src {src.shape} and tgt {tgt.shape} "
                               f"must be d_model={self.d_model}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz, device=None, dtype=None):
        """A float (sz, sz) mask: 0 on and below the diagonal, -inf above."""
        mask = np.triu(np.full((sz, sz), -np.inf, dtype=np.float32), k=1)
        return tensor(mask, dtype=dtype or dtypes.float32, device=device)
