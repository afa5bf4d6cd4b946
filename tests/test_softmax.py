"""softmax / log_softmax / cross_entropy / nll_loss / mse_loss against NumPy float64 references."""
import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn
from minitorch_cl.nn import functional as F


def _t(dev, a, grad=False):
    return mt.tensor(np.asarray(a), dtype=mt.float32, device=dev, requires_grad=grad)


def np_log_softmax(x, dim):
    m = x.max(dim, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(dim, keepdims=True))


@pytest.mark.parametrize("shape,dim", [((7,), 0), ((5, 33), 1), ((4, 65, 3), 1), ((3, 2, 7), 0), ((2, 3, 1), -1)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax(dev, rng, shape, dim, log):
    x = rng.standard_normal(shape) * 3
    g = rng.standard_normal(shape)
    t = _t(dev, x, grad=True)
    y = (F.log_softmax if log else F.softmax)(t, dim)
    x64 = x.astype(np.float32).astype(np.float64)
    ls = np_log_softmax(x64, dim)
    ref = ls if log else np.exp(ls)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-5, atol=1e-6)
    y.backward(_t(dev, g))
    if log:  # d/dx sum(g * log_softmax) = g - softmax * sum(g)
        dref = g - np.exp(ls) * g.sum(dim, keepdims=True)
    else:
        p = np.exp(ls)
        dref = p * (g - (g * p).sum(dim, keepdims=True))
    np.testing.assert_allclose(t.grad.numpy(), dref, rtol=1e-5, atol=1e-5)


def test_softmax_huge_logits(dev):
    x = np.array([[1e4, -1e4, 0.0, 1e4 - 1], [-1e4, -1e4 + 2, -1e4, -1e4]], np.float32)
    ref = np_log_softmax(x.astype(np.float64), 1)
    np.testing.assert_allclose(F.log_softmax(_t(dev, x), 1).numpy(), ref, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(F.softmax(_t(dev, x), -1).numpy(), np.exp(ref), rtol=1e-6, atol=1e-7)
    assert np.isfinite(nn.Softmax(dim=1)(_t(dev, x)).numpy()).all()


def np_cross_entropy(x, y, eps=0.0, ignore=-100, reduction="mean", logp=False):
    """Loss and its gradient w.r.t. x (for an upstream gradient of 1, or of g per row for 'none')."""
    B, C = x.shape
    ls = x if logp else np_log_softmax(x, 1)
    keep = y != ignore
    yy = np.where(keep, y, 0)
    rows = -(1 - eps) * ls[np.arange(B), yy] - eps * ls.mean(1)
    rows = np.where(keep, rows, 0.0)
    onehot = np.eye(C)[yy]
    drow = (0.0 if logp else np.exp(ls)) - (1 - eps) * onehot - eps / C
    drow = np.where(keep[:, None], drow, 0.0)
    if reduction == "none":
        return rows, drow
    if reduction == "sum":
        return rows.sum(), drow
    return rows.sum() / keep.sum(), drow / keep.sum()


@pytest.mark.parametrize("B,C", [(1, 7), (33, 10), (65, 3)])
@pytest.mark.parametrize("kw", [{}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.1},
                                {"ignore_index": 2, "label_smoothing": 0.25}])
def test_cross_entropy(dev, rng, B, C, kw):
    x = rng.standard_normal((B, C)) * 4
    y = rng.integers(0, C, B)
    t = _t(dev, x, grad=True)
    loss = F.cross_entropy(t, mt.tensor(y, device=dev), **kw)
    ref, dref = np_cross_entropy(x.astype(np.float32).astype(np.float64), y,
                                 kw.get("label_smoothing", 0.0), kw.get("ignore_index", -100),
                                 kw.get("reduction", "mean"))
    if kw.get("ignore_index") is not None and not (y != kw["ignore_index"]).any():
        return  # every row ignored: the mean is nan, as in PyTorch (covered below)
    np.testing.assert_allclose(loss.detach().numpy(), ref, rtol=1e-5, atol=1e-5)
    if kw.get("reduction") == "none":
        g = rng.standard_normal(B)
        loss.backward(_t(dev, g))
        dref = dref * g[:, None]
    else:
        loss.backward()
    np.testing.assert_allclose(t.grad.numpy(), dref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_huge_logits(dev, rng, smoothing):
    x = rng.choice([-1e4, 1e4, 0.0], size=(9, 5)) + rng.standard_normal((9, 5))
    y = rng.integers(0, 5, 9)
    t = _t(dev, x, grad=True)
    loss = nn.CrossEntropyLoss(label_smoothing=smoothing)(t, mt.tensor(y, device=dev))
    ref, dref = np_cross_entropy(x.astype(np.float32).astype(np.float64), y, smoothing)
    np.testing.assert_allclose(loss.item(), ref, rtol=1e-5)
    loss.backward()
    g = t.grad.numpy()
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, dref, rtol=1e-5, atol=1e-6)


def test_cross_entropy_spatial_and_all_ignored(dev, rng):
    x = rng.standard_normal((2, 4, 3))  # (N, C, d)
    y = rng.integers(0, 4, (2, 3))
    t = _t(dev, x, grad=True)
    loss = F.cross_entropy(t, mt.tensor(y, device=dev), reduction="none")
    assert loss.shape == (2, 3)
    flat = x.transpose(0, 2, 1).reshape(-1, 4)
    ref, _ = np_cross_entropy(flat, y.reshape(-1), reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), ref.reshape(2, 3), rtol=1e-5)
    empty = F.cross_entropy(_t(dev, x[:, :, 0]), mt.tensor([-100, -100], device=dev))
    assert np.isnan(empty.item())


def test_nll_loss(dev, rng):
    x = np_log_softmax(rng.standard_normal((13, 6)), 1)
    y = rng.integers(0, 6, 13)
    y[3] = -100
    t = _t(dev, x, grad=True)
    loss = nn.NLLLoss()(t, mt.tensor(y, device=dev))
    ref, dref = np_cross_entropy(x.astype(np.float32).astype(np.float64), y, logp=True)
    np.testing.assert_allclose(loss.item(), ref, rtol=1e-5)
    loss.backward()
    np.testing.assert_allclose(t.grad.numpy(), dref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(dev, rng, reduction):
    a, b = (rng.standard_normal((7, 5)).astype(np.float32).astype(np.float64) for _ in range(2))
    ta, tb = _t(dev, a, True), _t(dev, b, True)
    loss = nn.MSELoss(reduction=reduction)(ta, tb)
    sq = (a - b) ** 2
    ref = {"mean": sq.mean(), "sum": sq.sum(), "none": sq}[reduction]
    np.testing.assert_allclose(loss.detach().numpy(), ref, rtol=1e-5)
    loss.sum().backward()
    scale = 1 / a.size if reduction == "mean" else 1.0
    np.testing.assert_allclose(ta.grad.numpy(), 2 * (a - b) * scale, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tb.grad.numpy(), -2 * (a - b) * scale, rtol=1e-5, atol=1e-6)


def test_loss_errors(dev):
    x = mt.zeros(4, 3, device=dev)
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4,\).*\(5,\)"):
        F.cross_entropy(x, mt.zeros(5, dtype=mt.int64, device=dev))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, mt.zeros(4, dtype=mt.int64, device=dev), reduction="avg")
    with pytest.raises(RuntimeError, match=r"\(4, 3\).*\(4, 2\)"):  # class probabilities need the input's shape
        F.cross_entropy(x, mt.zeros(4, 2, device=dev))
