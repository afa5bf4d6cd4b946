"""softmax / log_softmax / cross_entropy / nll_loss / mse_loss against NumPy float64 references."""
import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn
from minitorch_cl.nn import functional as F
from helpers import check, compare


def _t(dev, a, grad=False):
    return mt.tensor(np.asarray(a), dtype=mt.float32, device=dev, requires_grad=grad)


def np_log_softmax(x, dim):
    m = x.max(dim, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(dim, keepdims=True))


def np_softmax_grad(dim, log):
    """np_grad for helpers.check: d sum(g * (log_)softmax(x)) / dx."""
    def grad(inputs, g):
        ls = np_log_softmax(inputs[0], dim)
        if log:  # g - softmax * sum(g)
            return [g - np.exp(ls) * g.sum(dim, keepdims=True)]
        p = np.exp(ls)
        return [p * (g - (g * p).sum(dim, keepdims=True))]
    return grad


@pytest.mark.parametrize("shape,dim", [((7,), 0), ((5, 33), 1), ((4, 65, 3), 1), ((3, 2, 7), 0), ((2, 3, 1), -1)])
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("noncontig", [False, True])
def test_softmax(dev, rng, shape, dim, log, noncontig):
    ref = (lambda x: np_log_softmax(x, dim)) if log else (lambda x: np.exp(np_log_softmax(x, dim)))
    check(dev, lambda t: (F.log_softmax if log else F.softmax)(t, dim), ref, rng.standard_normal(shape) * 3,
          np_grad=np_softmax_grad(dim, log), noncontig=noncontig, rtol=1e-5, atol=1e-6, grad_rtol=1e-5,
          grad_atol=1e-5)


def test_softmax_huge_logits(dev):
    x = np.array([[1e4, -1e4, 0.0, 1e4 - 1], [-1e4, -1e4 + 2, -1e4, -1e4]], np.float32)
    ref = np_log_softmax(x.astype(np.float64), 1)
    compare(F.log_softmax(_t(dev, x), 1), ref, rtol=1e-6, atol=1e-5)
    compare(F.softmax(_t(dev, x), -1), np.exp(ref), rtol=1e-6, atol=1e-7)
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


def ce_reference(**kw):
    """np_fn and np_grad for helpers.check on inputs (x, labels); the gradient scales by the upstream w."""
    ref = lambda x, y: np_cross_entropy(x, y, **kw)
    return (lambda x, y: ref(x, y)[0]), (lambda inputs, w: [np.reshape(w, (-1, 1)) * ref(*inputs)[1]])


@pytest.mark.parametrize("B,C", [(1, 7), (33, 10), (65, 3)])
@pytest.mark.parametrize("kw", [{}, {"reduction": "sum"}, {"reduction": "none"}, {"label_smoothing": 0.1},
                                {"ignore_index": 2, "label_smoothing": 0.25}])
def test_cross_entropy(dev, rng, B, C, kw):
    x = rng.standard_normal((B, C)) * 4
    y = rng.integers(0, C, B)
    if kw.get("ignore_index") is not None and not (y != kw["ignore_index"]).any():
        return  # every row ignored: the mean is nan, as in PyTorch (covered below)
    np_fn, np_grad = ce_reference(eps=kw.get("label_smoothing", 0.0), ignore=kw.get("ignore_index", -100),
                                  reduction=kw.get("reduction", "mean"))
    check(dev, lambda t, y: F.cross_entropy(t, y, **kw), np_fn, x, y, np_grad=np_grad, rtol=1e-5, atol=1e-5,
          grad_rtol=1e-5, grad_atol=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_huge_logits(dev, rng, smoothing):
    x = rng.choice([-1e4, 1e4, 0.0], size=(9, 5)) + rng.standard_normal((9, 5))
    y = rng.integers(0, 5, 9)
    np_fn, np_grad = ce_reference(eps=smoothing)
    check(dev, lambda t, y: nn.CrossEntropyLoss(label_smoothing=smoothing)(t, y), np_fn, x, y, np_grad=np_grad,
          rtol=1e-5, atol=0, grad_rtol=1e-5, grad_atol=1e-6)


def test_cross_entropy_spatial_and_all_ignored(dev, rng):
    x = rng.standard_normal((2, 4, 3))  # (N, C, d)
    y = rng.integers(0, 4, (2, 3))
    rows = lambda x: x.transpose(0, 2, 1).reshape(-1, 4)  # (N * d, C)
    ref = lambda x, y: np_cross_entropy(rows(x), y.reshape(-1), reduction="none")

    def np_grad(inputs, w):
        return [(ref(*inputs)[1] * w.reshape(-1, 1)).reshape(2, 3, 4).transpose(0, 2, 1)]

    check(dev, lambda t, y: F.cross_entropy(t, y, reduction="none"), lambda x, y: ref(x, y)[0].reshape(2, 3), x, y,
          np_grad=np_grad, rtol=1e-5, atol=0, grad_rtol=1e-5, grad_atol=1e-6)
    empty = F.cross_entropy(_t(dev, x[:, :, 0]), mt.tensor([-100, -100], device=dev))
    assert np.isnan(empty.item())


def test_nll_loss(dev, rng):
    x = np_log_softmax(rng.standard_normal((13, 6)), 1)
    y = rng.integers(0, 6, 13)
    y[3] = -100
    np_fn, np_grad = ce_reference(logp=True)
    check(dev, lambda t, y: nn.NLLLoss()(t, y), np_fn, x, y, np_grad=np_grad, rtol=1e-5, atol=0, grad_rtol=1e-5,
          grad_atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(dev, rng, reduction):
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((7, 5))
    reduce = {"mean": np.mean, "sum": np.sum, "none": lambda sq: sq}[reduction]
    scale = 1 / a.size if reduction == "mean" else 1.0

    def np_grad(inputs, w):
        d = 2 * (inputs[0] - inputs[1]) * scale * w
        return d, -d

    check(dev, lambda a, b: nn.MSELoss(reduction=reduction)(a, b), lambda a, b: reduce((a - b) ** 2), a, b,
          np_grad=np_grad, rtol=1e-5, atol=0, grad_rtol=1e-5, grad_atol=1e-6)


def test_loss_errors(dev):
    x = mt.zeros(4, 3, device=dev)
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4,\).*\(5,\)"):
        F.cross_entropy(x, mt.zeros(5, dtype=mt.int64, device=dev))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, mt.zeros(4, dtype=mt.int64, device=dev), reduction="avg")
    with pytest.raises(RuntimeError, match=r"\(4, 3\).*\(4, 2\)"):  # class probabilities need the input's shape
        F.cross_entropy(x, mt.zeros(4, 2, device=dev))
