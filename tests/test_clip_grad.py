"""nn.utils.clip_grad_norm_ / clip_grad_value_ against torch.nn.utils and NumPy float64."""
import math

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn

torch = pytest.importorskip("torch")

SHAPES = [(1,), (7, 3), (33,), (257,), (5, 5), (1000,), (2, 3, 4), (63,), (65,), (4,), (300, 3)]  # 11: two chunks


def _params(dev, rng, shapes=SHAPES, scale=1.0):
    grads = [(rng.standard_normal(s) * scale).astype(np.float32) for s in shapes]
    ours, theirs = [], []
    for g in grads:
        p = nn.Parameter(mt.zeros(*g.shape, device=dev))
        p.grad = mt.tensor(g, device=dev)
        ours.append(p)
        tp = torch.nn.Parameter(torch.zeros(g.shape))
        tp.grad = torch.tensor(g)
        theirs.append(tp)
    return grads, ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, 3.0, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e4])  # clipped, and left alone (coefficient clamped to 1)
def test_clip_grad_norm_matches_torch(dev, rng, norm_type, max_norm):
    grads, ours, theirs = _params(dev, rng)
    ntype = float(norm_type)
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    want = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=ntype)
    flat = np.concatenate([g.ravel().astype(np.float64) for g in grads])
    ref = np.abs(flat).max() if ntype == math.inf else (np.abs(flat) ** ntype).sum() ** (1 / ntype)
    assert isinstance(total, mt.Tensor) and total.shape == tuple(want.shape) == ()
    np.testing.assert_allclose(total.item(), ref, rtol=2e-5)
    np.testing.assert_allclose(total.item(), want.item(), rtol=2e-5)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=2e-5, atol=1e-7)
    if max_norm == 1e4:
        np.testing.assert_array_equal(ours[3].grad.numpy(), grads[3])


def test_clip_grad_norm_skips_missing_and_reads_views(dev, rng):
    grads, ours, theirs = _params(dev, rng, [(6, 4), (3,)])
    g = rng.standard_normal((4, 6)).astype(np.float32)
    ours[0].grad = mt.tensor(g, device=dev).T  # a transposed (non-contiguous) gradient
    theirs[0].grad = torch.tensor(g).T
    extra, textra = nn.Parameter(mt.zeros(2, device=dev)), torch.nn.Parameter(torch.zeros(2))
    total = nn.utils.clip_grad_norm_(ours + [extra], 0.1)
    want = torch.nn.utils.clip_grad_norm_(theirs + [textra], 0.1)
    np.testing.assert_allclose(total.item(), want.item(), rtol=1e-5)
    np.testing.assert_allclose(ours[0].grad.numpy(), theirs[0].grad.numpy(), rtol=1e-5, atol=1e-7)
    assert extra.grad is None
    assert nn.utils.clip_grad_norm_([extra], 1.0).item() == 0.0
    single = nn.Parameter(mt.zeros(3, device=dev))
    single.grad = mt.tensor([3.0, 4.0, 0.0], device=dev)
    assert nn.utils.clip_grad_norm_(single, 1.0).item() == pytest.approx(5.0)  # a tensor, not a list
    np.testing.assert_allclose(single.grad.numpy(), [0.6, 0.8, 0.0], rtol=1e-5)


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_nonfinite(dev, rng, bad):
    grads, ours, theirs = _params(dev, rng, [(9,), (4,)])
    for p in (ours[1], theirs[1]):
        g = p.grad.numpy().copy()
        g[2] = bad
        p.grad = mt.tensor(g, device=dev) if isinstance(p, mt.Tensor) else torch.tensor(g)
    with pytest.raises(RuntimeError, match=r"total norm of order 2.0 .* is non-finite"):
        nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite"):
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    total = nn.utils.clip_grad_norm_(ours, 1.0)
    want = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    np.testing.assert_array_equal(total.item(), want.item())
    for p, tp in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), tp.grad.numpy())  # NaN where torch has NaN, 0 ...
    inf_total = nn.utils.clip_grad_norm_(ours, 1.0, norm_type="inf")
    assert math.isnan(inf_total.item())  # the grads are NaN now: the max norm keeps NaN, as torch's


def test_clip_grad_value_matches_torch(dev, rng):
    grads, ours, theirs = _params(dev, rng, scale=2.0)
    g = ours[2].grad.numpy().copy()
    g[0] = math.nan
    ours[2].grad, theirs[2].grad = mt.tensor(g, device=dev), torch.tensor(g)
    nn.utils.clip_grad_value_(ours, 0.7)
    torch.nn.utils.clip_grad_value_(theirs, 0.7)
    for p, tp in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), tp.grad.numpy())


def test_get_total_norm_and_clip_with_norm(dev, rng):
    grads, ours, theirs = _params(dev, rng, [(10,), (20,)])
    total = nn.utils.get_total_norm([p.grad for p in ours])
    want = torch.nn.utils.get_total_norm([p.grad for p in theirs])
    np.testing.assert_allclose(total.item(), want.item(), rtol=1e-5)
    nn.utils.clip_grads_with_norm_(ours, 0.3, total)
    torch.nn.utils.clip_grads_with_norm_(theirs, 0.3, want)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="norm_type"):
        nn.utils.clip_grad_norm_(ours, 1.0, norm_type=0)
