"""Fused scaled_dot_product_attention against a NumPy float64 reference: values and q/k/v gradients."""
import math

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl.nn.functional import scaled_dot_product_attention as sdpa
from minitorch_cl.tuner import profile_entries
from helpers import check, compare, f32


@pytest.fixture(autouse=True, params=["auto", "other-lanes"])
def lanes(request, dev):
    """auto: the vector width the device takes (16 floats on AVX-512 CPUs, else 8); other-lanes: the
    one it does not, so that every machine runs both (sizes here straddle 8, 16 and the blocks)."""
    width = dev.default_profile().attention_lanes
    if request.param == "other-lanes":
        width = 24 - width
    with profile_entries(dev, attention_lanes=width):
        yield width


@pytest.fixture
def gpu_layout(dev):
    """The GPU parameterisation (work-groups of 64 staging tiles in local memory) on this device."""
    with profile_entries(dev, attention_local=True, attention_bq=1):
        yield


def ref_attention(q, k, v, mask=None, causal=False, scale=None, keep=None):
    """(out, backward) in float64; mask is bool (True = attend) or additive float; keep holds the
    dropout factors (0 or 1 / (1 - p)) applied to the probabilities after normalisation."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    L, S = s.shape[-2:]
    if causal:
        s = s + np.where(np.tril(np.ones((L, S), dtype=bool)), 0.0, -np.inf)
    if mask is not None:
        s = s + (np.where(mask, 0.0, -np.inf) if mask.dtype == bool else mask)
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    keep = 1.0 if keep is None else keep
    out = (p * keep) @ v

    def backward(g):
        dv = np.swapaxes(p * keep, -1, -2) @ g
        dp = (g @ np.swapaxes(v, -1, -2)) * keep
        ds = p * (dp - (dp * p).sum(-1, keepdims=True))
        dq = ds @ k * scale
        dk = np.swapaxes(ds, -1, -2) @ q * scale
        return dq, dk, dv

    return out, backward


def attention_grad(mask=None, causal=False, scale=None, keep=None):
    """np_grad for helpers.check: the reference's q/k/v gradients (the helper sums broadcast dims)."""
    return lambda inputs, g: ref_attention(*inputs, mask, causal, scale, keep)[1](g)


def run_case(dev, rng, qshape, kshape, vshape, mask=None, causal=False, magnitude=1.0, scale=None, permute=False,
             noncontig=False):
    q = rng.standard_normal(qshape) * magnitude
    k = rng.standard_normal(kshape) * magnitude
    v = rng.standard_normal(vshape)
    tmask = mt.tensor(mask, device=dev) if mask is not None else None
    mask = f32(mask) if mask is not None and mask.dtype.kind == "f" else mask
    perm = tuple(range(q.ndim))
    if permute:  # feed q as a strided view: stored (L, ..., D), viewed (..., L, D)
        perm = (*range(1, q.ndim - 1), 0, q.ndim - 1)
        q = np.transpose(q, np.argsort(perm)).copy()
    ref_grad = attention_grad(mask, causal, scale)

    def np_grad(inputs, g):
        dq, dk, dv = ref_grad([inputs[0].transpose(perm), *inputs[1:]], g)
        return dq.transpose(np.argsort(perm)), dk, dv

    view = (lambda q: q.permute(*perm)) if permute else (lambda q: q)
    check(dev, lambda q, k, v: sdpa(view(q), k, v, attn_mask=tmask, is_causal=causal, scale=scale),
          lambda q, k, v: ref_attention(q.transpose(perm), k, v, mask, causal, scale)[0], q, k, v,
          np_grad=np_grad, noncontig=noncontig, rtol=1e-4, atol=1e-5, grad_rtol=1e-4, grad_atol=1e-4)


@pytest.mark.parametrize("batch,L,S,D,causal", [
    ((2, 3), 7, 33, 7, False),    # L != S, head dim not a multiple of 8
    ((2,), 33, 7, 65, True),      # causal with L > S, head dim past a bucket edge
    ((1, 2), 65, 65, 33, True),   # causal square, tails in every block
    ((), 1, 1, 1, False),         # no batch dims, single element
    ((3,), 1, 65, 16, False),     # one query row
    ((2,), 37, 50, 40, False),    # head dim 2.5 vectors of 16, lengths past 32 but not 64
    ((3,), 45, 45, 72, True),     # head dim 4.5 vectors of 16, causal with a partial last block
])
def test_values_and_gradients(dev, rng, batch, L, S, D, causal):
    run_case(dev, rng, batch + (L, D), batch + (S, D), batch + (S, D), causal=causal)


def test_bool_mask_broadcast(dev, rng):
    B, H, L, S, D = 2, 3, 33, 65, 16
    mask = rng.random((B, 1, L, S)) < 0.7
    mask[..., 0] = True  # every row attends to something
    run_case(dev, rng, (B, H, L, D), (B, H, S, D), (B, H, S, D), mask=mask)


def test_float_mask_per_key_and_full(dev, rng):
    B, H, L, S, D = 2, 2, 7, 33, 16
    run_case(dev, rng, (B, H, L, D), (B, H, S, D), (B, H, S, D), mask=rng.standard_normal(S) * 3)
    run_case(dev, rng, (B, H, L, D), (B, H, S, D), (B, H, S, D), mask=rng.standard_normal((B, H, L, S)))


def test_large_scores_are_stable(dev, rng):
    # scores of order 1e3: exp would overflow without the running max
    run_case(dev, rng, (2, 33, 16), (2, 65, 16), (2, 65, 16), magnitude=12.0, scale=1.0)


def test_strided_query_and_broadcast_key(dev, rng):
    # q arrives as a permuted view; k and v broadcast over the first batch dim
    run_case(dev, rng, (2, 3, 33, 16), (1, 3, 7, 16), (1, 3, 7, 16), permute=True)


def test_every_input_strided(dev, rng):
    # q, k and v each every other element of a larger buffer (a stride of 2 along the head dim)
    run_case(dev, rng, (2, 33, 16), (2, 65, 16), (2, 65, 16), causal=True, noncontig=True)


def test_fully_masked_row_gives_zero(dev, rng):
    q, k, v = (rng.standard_normal((1, 4, 8)) for _ in range(3))
    mask = np.ones((4, 4), dtype=bool)
    mask[2] = False
    tq, tk, tv = (mt.tensor(a, device=dev, requires_grad=True) for a in (q, k, v))
    out = sdpa(tq, tk, tv, attn_mask=mt.tensor(mask, device=dev))
    got = out.detach().numpy()
    assert np.all(got[0, 2] == 0)
    compare(got[0, [0, 1, 3]], ref_attention(*(f32(a) for a in (q[:, [0, 1, 3]], k, v)))[0][0], rtol=1e-4, atol=1e-5)
    out.sum().backward()
    assert np.all(np.isfinite(tq.grad.numpy())) and np.all(tq.grad.numpy()[0, 2] == 0)


def test_unfused_fallbacks(dev, rng):
    # value head dim != query head dim goes through matmul + softmax; dropout_p=1 drops everything
    q, k = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 7, 8))
    v = rng.standard_normal((2, 7, 3))
    check(dev, lambda q, k, v: sdpa(q, k, v, is_causal=True), lambda q, k, v: ref_attention(q, k, v, causal=True)[0],
          q, k, v, np_grad=attention_grad(causal=True), rtol=1e-4, atol=1e-5, grad_rtol=1e-4, grad_atol=1e-4)
    zero = sdpa(mt.tensor(q, device=dev), mt.tensor(k, device=dev), mt.tensor(v, device=dev), dropout_p=1.0)
    assert np.all(zero.numpy() == 0)


def test_bad_inputs(dev):
    q = mt.zeros(2, 4, 8, device=dev)
    with pytest.raises(ValueError, match=r"\(2, 4, 8\).*\(2, 4, 5\)"):
        sdpa(q, mt.zeros(2, 4, 5, device=dev), mt.zeros(2, 4, 5, device=dev))
    with pytest.raises(ValueError, match="attn_mask"):
        sdpa(q, q, q, attn_mask=mt.zeros(3, 3, device=dev))
    with pytest.raises(TypeError, match="float32"):
        sdpa(q, q, q.long())


def test_against_torch(dev, rng):
    torch = pytest.importorskip("torch")
    q, k, v = (rng.standard_normal((2, 3, 33, 16)) for _ in range(3))
    mask = rng.random((33, 33)) < 0.8
    mask[:, 0] = True
    tmask = mt.tensor(mask, device=dev)
    check(dev, lambda q, k, v: sdpa(q, k, v, attn_mask=tmask), lambda q, k, v: ref_attention(q, k, v, mask)[0],
          q, k, v, np_grad=attention_grad(mask), rtol=1e-4, atol=1e-5, grad_rtol=1e-4, grad_atol=1e-4,
          torch_fn=lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v,
                                                                                    attn_mask=torch.tensor(mask)))


@pytest.mark.parametrize("causal", [False, True])
def test_gpu_layout_runs_here(dev, rng, gpu_layout, causal):
    mask = None if causal else rng.standard_normal((33, 40))
    run_case(dev, rng, (2, 33, 40), (2, 40, 40), (2, 40, 40), mask=mask, causal=causal)


def dropout_factors(dev, batch, L, S, p, seed):
    """The fused kernels' dropout factors for seed, read back through the kernel itself: with q = k = 0
    every row's probabilities are 1/S, and V = I makes output (i, j) the factor of (i, j) over S."""
    mt.manual_seed(seed)
    zeros = mt.zeros(*batch, L, S, device=dev)
    eye = mt.tensor(np.broadcast_to(np.eye(S), batch + (S, S)).copy(), device=dev, dtype=mt.float32)
    out = sdpa(zeros, mt.zeros(*batch, S, S, device=dev), eye, dropout_p=p).numpy()
    kept = np.rint(out * S * (1 - p))
    assert set(np.unique(kept)) <= {0.0, 1.0}, "dropout factors are 0 or 1/(1-p)"
    return kept / (1 - p)


@pytest.mark.parametrize("batch,L,S,D,causal,p", [
    ((2, 3), 37, 45, 24, False, 0.3),   # tails in every block, L != S
    ((2,), 40, 40, 65, True, 0.5),      # causal, head dim past a bucket edge
])
def test_fused_dropout_values_and_gradients(dev, rng, batch, L, S, D, causal, p):
    keep = dropout_factors(dev, batch, L, S, p, seed=11)
    kept = (keep > 0).mean()
    assert abs(kept - (1 - p)) < 4 * math.sqrt(p * (1 - p) / keep.size), f"kept {kept:.3f}, expected {1 - p}"
    mask = rng.standard_normal((L, S))
    tmask = mt.tensor(mask, device=dev, dtype=mt.float32)

    def fused(q, k, v):
        mt.manual_seed(11)  # the same seed gives the same factors, whatever the head dim or the config
        return sdpa(q, k, v, attn_mask=None if causal else tmask, is_causal=causal, dropout_p=p)

    m = None if causal else f32(mask)
    q, k, v = (rng.standard_normal(batch + (n, D)) for n in (L, S, S))
    check(dev, fused, lambda q, k, v: ref_attention(q, k, v, m, causal, keep=keep)[0], q, k, v,
          np_grad=attention_grad(m, causal, keep=keep), rtol=1e-4, atol=1e-5, grad_rtol=1e-4, grad_atol=1e-4)


def test_fused_dropout_gpu_layout_and_fresh_seeds(dev, rng):
    keep = dropout_factors(dev, (2,), 33, 40, 0.2, seed=5)
    assert not np.array_equal(keep, dropout_factors(dev, (2,), 33, 40, 0.2, seed=6)), "another seed, another mask"
    q, k, v = (rng.standard_normal((2, n, 40)) for n in (33, 40, 40))

    def fused(q, k, v):
        mt.manual_seed(5)
        return sdpa(q, k, v, dropout_p=0.2)

    with profile_entries(dev, attention_local=True, attention_bq=1):  # the GPU layout
        check(dev, fused, lambda q, k, v: ref_attention(q, k, v, keep=keep)[0], q, k, v,
              np_grad=attention_grad(keep=keep), rtol=1e-4, atol=1e-5, grad_rtol=1e-4, grad_atol=1e-4)


@pytest.mark.parametrize("fuse", [True, False])
def test_backward_with_and_without_the_fused_dq(dev, rng, monkeypatch, fuse):
    # the CPU backward accumulates dQ inside the dK/dV kernel once there are batch items enough to fill
    # the cores; both ways, whatever this machine's core count
    from minitorch_cl.ops import attention as A
    monkeypatch.setattr(A, "FUSE_DQ_ITEMS_PER_UNIT", 0 if fuse else 10 ** 9)
    mask = rng.standard_normal((33, 40))
    run_case(dev, rng, (3, 33, 65), (3, 40, 65), (3, 40, 65), mask=mask, permute=True)
    run_case(dev, rng, (2, 2, 40, 16), (2, 2, 40, 16), (2, 2, 40, 16), causal=True)


def test_dropout_factors_are_the_same_at_either_width(dev):
    # the keep test is hashed per (row, column), not per vector: 8 and 16 lanes drop the same elements
    factors = []
    for width in (8, 16):
        with profile_entries(dev, attention_lanes=width):
            factors.append(dropout_factors(dev, (2,), 37, 45, 0.3, seed=3))
    assert np.array_equal(*factors)
