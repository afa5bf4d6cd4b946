"""Losses and distance functionals against NumPy float64 (values + central-difference gradients) and
against PyTorch: BCE (weight), BCE with logits (pos_weight, weight), weighted / soft-target
cross-entropy and NLL, L1, smooth L1, Huber, KL divergence, margin losses, cosine similarity,
pairwise distance, normalize, one_hot, embedding's max_norm, and the nn modules."""
import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn
from minitorch_cl.nn import functional as F
from helpers import check


def _red(x, reduction):
    return x if reduction == "none" else x.sum() if reduction == "sum" else x.mean()


@pytest.fixture
def data(rng):
    x = rng.standard_normal((7, 5)).astype(np.float32)
    t = rng.random((7, 5)).astype(np.float32)
    return x, t


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce(dev, data, rng, reduction):
    x, t = data
    p = (1 / (1 + np.exp(-x))).astype(np.float32)
    w = rng.random(5).astype(np.float32)
    check(dev, lambda p, t, w: F.binary_cross_entropy(p, t, w, reduction=reduction),
          lambda p, t, w: _red(-w * (t * np.log(p) + (1 - t) * np.log(1 - p)), reduction), p, t, w,
          noncontig=True)


def test_bce_clamps_log(dev):
    """log(0) is clamped at -100, as in PyTorch: a certain wrong prediction costs 100, not inf."""
    p, t = mt.tensor([0.0, 1.0, 0.5], device=dev), mt.tensor([1.0, 0.0, 1.0], device=dev)
    np.testing.assert_allclose(F.binary_cross_entropy(p, t, reduction="none").numpy(), [100, 100, np.log(2)],
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        F.binary_cross_entropy(p, t[:2])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits(dev, data, rng, reduction):
    x, t = data
    w, pw = rng.random((7, 1)).astype(np.float32), (rng.random(5) * 3).astype(np.float32)

    def ref(x, t, w, pw):
        sp = np.logaddexp(0, -x)  # log(1 + exp(-x))
        return _red(w * ((1 - t) * x + (1 + (pw - 1) * t) * sp), reduction)
    check(dev, lambda x, t, w, pw: F.binary_cross_entropy_with_logits(x, t, w, reduction=reduction, pos_weight=pw),
          ref, x * 4, t, w, pw, noncontig=True)


def test_bce_with_logits_is_stable(dev):
    x = mt.tensor([-200.0, -30.0, 0.0, 30.0, 200.0], device=dev, requires_grad=True)
    t = mt.tensor([1.0, 0.0, 0.5, 1.0, 0.0], device=dev)
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [200, 9.4e-14, np.log(2), 9.4e-14, 200], rtol=1e-5, atol=1e-6)
    loss.sum().backward()  # d/dx = sigmoid(x) - t, also at x == 0
    np.testing.assert_allclose(x.grad.numpy(), [-1, 0, 0, 0, 1], atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses(dev, data, reduction):
    x, t = data
    check(dev, lambda x, t: F.l1_loss(x, t, reduction=reduction), lambda x, t: _red(np.abs(x - t), reduction), x, t)
    for beta in (0.5, 1.0):
        def smooth(x, t, beta=beta):
            d = np.abs(x - t)
            return _red(np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction)
        check(dev, lambda x, t, beta=beta: F.smooth_l1_loss(x, t, reduction=reduction, beta=beta), smooth, x, t,
              noncontig=True)

    def huber(x, t, delta=0.7):
        d = np.abs(x - t)
        return _red(np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)), reduction)
    check(dev, lambda x, t: F.huber_loss(x, t, reduction=reduction, delta=0.7), huber, x, t)


def test_smooth_l1_beta_zero_is_l1(dev, data):
    x, t = (mt.tensor(a, device=dev) for a in data)
    np.testing.assert_allclose(F.smooth_l1_loss(x, t, beta=0.0).item(), F.l1_loss(x, t).item(), rtol=1e-6)
    with pytest.raises(RuntimeError, match="negative"):
        F.smooth_l1_loss(x, t, beta=-1.0)


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "mean", "none"])
def test_kl_div(dev, data, reduction):
    x, t = data
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    q = t / t.sum(1, keepdims=True)

    def red(v):
        return v.sum() / v.shape[0] if reduction == "batchmean" else _red(v, reduction)
    check(dev, lambda a, b: F.kl_div(a, b, reduction=reduction), lambda a, b: red(b * (np.log(b) - a)),
          logp.astype(np.float32), q.astype(np.float32))
    check(dev, lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=True),
          lambda a, b: red(np.exp(b) * (b - a)), logp.astype(np.float32), np.log(q).astype(np.float32))


def test_kl_div_zero_target(dev):
    """A zero target contributes 0 (xlogy), and its input gradient is 0."""
    a = mt.tensor([[-1.0, -2.0]], device=dev, requires_grad=True)
    b = mt.tensor([[0.0, 1.0]], device=dev)
    loss = F.kl_div(a, b, reduction="sum")
    np.testing.assert_allclose(loss.item(), 2.0, rtol=1e-6)
    loss.backward()
    np.testing.assert_allclose(a.grad.numpy(), [[0.0, -1.0]])


def test_distances(dev, data, rng):
    x, t = data
    x2 = rng.standard_normal((1, 5)).astype(np.float32)  # broadcasts
    check(dev, lambda a, b: F.cosine_similarity(a, b, dim=1),
          lambda a, b: (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)), x, x2,
          noncontig=True)
    check(dev, lambda a, b: F.cosine_similarity(a, b, dim=0),
          lambda a, b: (a * b).sum(0) / (np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)), x, t)
    for p in (1, 2, 3):
        check(dev, lambda a, b, p=p: F.pairwise_distance(a, b, p=p),
              lambda a, b, p=p: (np.abs(a - b + 1e-6) ** p).sum(-1) ** (1 / p), x, t)
    check(dev, lambda a: F.normalize(a, dim=0), lambda a: a / np.linalg.norm(a, axis=0, keepdims=True), x,
          noncontig=True)
    check(dev, lambda a: F.normalize(a, p=1, dim=-1), lambda a: a / np.abs(a).sum(-1, keepdims=True), x)


def test_normalize_zero_row(dev):
    z = F.normalize(mt.zeros(2, 3, device=dev), dim=1)
    assert np.all(z.numpy() == 0)  # eps keeps 0 / 0 away


def test_margin_losses(dev, rng):
    a, b = rng.standard_normal((2, 9)).astype(np.float32)
    y = np.where(rng.random(9) < 0.5, -1.0, 1.0).astype(np.float32)
    yt = mt.tensor(y, device=dev)
    check(dev, lambda a, b: F.margin_ranking_loss(a, b, yt, margin=0.3),
          lambda a, b: np.maximum(0, -y * (a - b) + 0.3).mean(), a, b)
    check(dev, lambda a: F.hinge_embedding_loss(a, yt, margin=0.5),
          lambda a: np.where(y == 1, a, np.maximum(0, 0.5 - a)).mean(), a)
    check(dev, lambda a: F.soft_margin_loss(a, yt), lambda a: np.log1p(np.exp(-y * a)).mean(), a)


def test_margin_losses_match_torch(dev, rng):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    a, p, n = (rng.standard_normal((6, 4)).astype(np.float32) for _ in range(3))
    y = np.where(rng.random(6) < 0.5, -1.0, 1.0).astype(np.float32)
    for kw in ({}, {"swap": True, "p": 1.0, "margin": 0.5}):
        ta, tp, tn = (torch.tensor(v, requires_grad=True) for v in (a, p, n))
        ma, mp, mn = (mt.tensor(v, device=dev, requires_grad=True) for v in (a, p, n))
        lt, lm = TF.triplet_margin_loss(ta, tp, tn, **kw), F.triplet_margin_loss(ma, mp, mn, **kw)
        np.testing.assert_allclose(lm.item(), lt.item(), rtol=1e-5)
        lt.backward()
        lm.backward()
        for tv, mv in zip((ta, tp, tn), (ma, mp, mn)):
            np.testing.assert_allclose(mv.grad.numpy(), tv.grad.numpy(), rtol=1e-4, atol=1e-6)
    ta, tp = torch.tensor(a, requires_grad=True), torch.tensor(p, requires_grad=True)
    ma, mp = mt.tensor(a, device=dev, requires_grad=True), mt.tensor(p, device=dev, requires_grad=True)
    lt = TF.cosine_embedding_loss(ta, tp, torch.tensor(y), margin=0.2)
    lm = F.cosine_embedding_loss(ma, mp, mt.tensor(y, device=dev), margin=0.2)
    np.testing.assert_allclose(lm.item(), lt.item(), rtol=1e-5)
    lt.backward()
    lm.backward()
    np.testing.assert_allclose(ma.grad.numpy(), ta.grad.numpy(), rtol=1e-4, atol=1e-6)


def np_weighted_ce(x, labels, w, reduction, eps, ignore_index=-100, logits=True):
    logp = x - np.log(np.exp(x).sum(1, keepdims=True)) if logits else x
    keep = labels != ignore_index
    safe = np.where(keep, labels, 0)
    C = x.shape[1]
    wt = w[safe] * keep
    nll = -np.take_along_axis(logp, safe[:, None], 1)[:, 0] * wt
    smooth = -(logp * w).sum(1) * keep
    loss = (1 - eps) * nll + eps / C * smooth
    return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.sum() / wt.sum()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.25])
def test_weighted_cross_entropy(dev, rng, reduction, eps):
    x = rng.standard_normal((9, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 9)
    labels[[2, 6]] = -100
    w = (rng.random(5) + 0.2).astype(np.float32)
    lt, wt = mt.tensor(labels, device=dev), mt.tensor(w, device=dev)
    check(dev, lambda x: F.cross_entropy(x, lt, weight=wt, reduction=reduction, label_smoothing=eps),
          lambda x: np_weighted_ce(x, labels, w, reduction, eps), x, noncontig=True)
    if eps == 0:
        check(dev, lambda x: F.nll_loss(x, lt, weight=wt, reduction=reduction),
              lambda x: np_weighted_ce(x, labels, w, reduction, 0.0, logits=False), x)


def test_weighted_cross_entropy_spatial_matches_torch(dev, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
    labels = rng.integers(0, 4, (2, 3, 5))
    labels[0, 1, 2] = 1  # make sure the ignored class appears
    w = (rng.random(4) + 0.2).astype(np.float32)
    for kw in ({"weight": w, "ignore_index": 1}, {"weight": w, "label_smoothing": 0.1}, {}):
        tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        mkw = {k: mt.tensor(v, device=dev) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        tx, mx = torch.tensor(x, requires_grad=True), mt.tensor(x, device=dev, requires_grad=True)
        lt = torch.nn.functional.cross_entropy(tx, torch.tensor(labels), **tkw)
        lm = F.cross_entropy(mx, mt.tensor(labels, device=dev), **mkw)
        np.testing.assert_allclose(lm.item(), lt.item(), rtol=1e-5)
        lt.backward()
        lm.backward()
        np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_probability_targets(dev, rng, reduction):
    x = rng.standard_normal((6, 4)).astype(np.float32)
    q = rng.random((6, 4)).astype(np.float32)
    q /= q.sum(1, keepdims=True)
    w = (rng.random(4) + 0.5).astype(np.float32)
    wt = mt.tensor(w, device=dev)

    def ref(x, q, eps=0.2):
        logp = x - np.log(np.exp(x).sum(1, keepdims=True))
        loss = -(logp * (q * (1 - eps) + eps / 4) * w).sum(1)
        return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()
    check(dev, lambda x, q: F.cross_entropy(x, q, weight=wt, reduction=reduction, label_smoothing=0.2), ref, x, q,
          noncontig=True)


def test_weighted_loss_errors(dev):
    x = mt.zeros(3, 4, device=dev)
    y = mt.tensor([0, 1, 2], device=dev)
    with pytest.raises(RuntimeError, match=r"all 4 classes.*\(3,\)"):
        F.cross_entropy(x, y, weight=mt.ones(3, device=dev))
    with pytest.raises(RuntimeError, match="integer target"):
        F.nll_loss(x, mt.zeros(3, 4, device=dev))
    with pytest.raises(IndexError):  # the fused kernel's device-side label check still runs
        F.cross_entropy(x, mt.tensor([0, 1, 4], device=dev), weight=mt.ones(4, device=dev)).item()


def test_one_hot(dev):
    t = mt.tensor([[0, 3], [2, 1]], device=dev)
    np.testing.assert_array_equal(F.one_hot(t).numpy(), np.eye(4, dtype=np.int64)[[[0, 3], [2, 1]]])
    assert F.one_hot(t, 6).shape == (2, 2, 6) and F.one_hot(t).dtype is mt.int64
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        F.one_hot(t, 3)
    with pytest.raises(RuntimeError, match="non-negative"):
        F.one_hot(mt.tensor([-1, 0], device=dev))
    with pytest.raises(RuntimeError, match="LongTensor"):
        F.one_hot(mt.tensor([0.0], device=dev))


def test_embedding_max_norm_matches_torch(dev, rng):
    """max_norm renormalises the looked-up rows in place (only those), then looks them up."""
    torch = pytest.importorskip("torch")
    w = (rng.standard_normal((6, 3)) * 2).astype(np.float32)
    idx = np.array([[0, 2], [2, 5]])
    temb = torch.nn.Embedding(6, 3, max_norm=1.5, norm_type=3.0)
    temb.weight.data = torch.tensor(w)
    memb = nn.Embedding(6, 3, max_norm=1.5, norm_type=3.0).to(dev)
    memb.load_state_dict({"weight": w})
    ot, om = temb(torch.tensor(idx)), memb(mt.tensor(idx, device=dev))
    np.testing.assert_allclose(om.detach().numpy(), ot.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(memb.weight.detach().numpy(), temb.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(ot.shape).astype(np.float32)
    ot.backward(torch.tensor(g))
    om.backward(mt.tensor(g, device=dev))
    np.testing.assert_allclose(memb.weight.grad.numpy(), temb.weight.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert repr(memb) == "Embedding(6, 3, max_norm=1.5)"


MODULES = [
    ("BCELoss", {}, "prob"), ("BCEWithLogitsLoss", {"pos_weight": "pw"}, "x"), ("L1Loss", {}, "x"),
    ("SmoothL1Loss", {"beta": 0.3}, "x"), ("HuberLoss", {"delta": 0.5, "reduction": "sum"}, "x"),
    ("KLDivLoss", {"reduction": "batchmean", "log_target": True}, "x"),
]


@pytest.mark.parametrize("name,kw,kind", MODULES)
def test_loss_modules_match_torch(dev, rng, name, kw, kind):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((5, 3)).astype(np.float32)
    t = rng.random((5, 3)).astype(np.float32)
    if kind == "prob":
        x = 1 / (1 + np.exp(-x))
    pw = (rng.random(3) + 0.5).astype(np.float32)
    tkw = {k: torch.tensor(pw) if v == "pw" else v for k, v in kw.items()}
    mkw = {k: mt.tensor(pw, device=dev) if v == "pw" else v for k, v in kw.items()}
    tx, mx = torch.tensor(x, requires_grad=True), mt.tensor(x, device=dev, requires_grad=True)
    lt = getattr(torch.nn, name)(**tkw)(tx, torch.tensor(t))
    lm = getattr(nn, name)(**mkw)(mx, mt.tensor(t, device=dev))
    np.testing.assert_allclose(lm.item(), lt.item(), rtol=1e-5)
    lt.backward()
    lm.backward()
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_weighted_modules_and_distance_modules(dev, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((5, 3)).astype(np.float32)
    x2 = rng.standard_normal((5, 3)).astype(np.float32)
    y = np.array([0, 2, 1, 2, 0])
    w = np.array([0.2, 1.0, 3.0], np.float32)
    ce_t = torch.nn.CrossEntropyLoss(weight=torch.tensor(w))(torch.tensor(x), torch.tensor(y))
    ce_m = nn.CrossEntropyLoss(weight=mt.tensor(w)).to(dev)(mt.tensor(x, device=dev), mt.tensor(y, device=dev))
    np.testing.assert_allclose(ce_m.item(), ce_t.item(), rtol=1e-5)
    nl_t = torch.nn.NLLLoss(weight=torch.tensor(w), reduction="sum")(torch.tensor(x), torch.tensor(y))
    nl_m = nn.NLLLoss(weight=mt.tensor(w), reduction="sum").to(dev)(mt.tensor(x, device=dev), mt.tensor(y, device=dev))
    np.testing.assert_allclose(nl_m.item(), nl_t.item(), rtol=1e-5)
    cs_t = torch.nn.CosineSimilarity(dim=0)(torch.tensor(x), torch.tensor(x2))
    cs_m = nn.CosineSimilarity(dim=0)(mt.tensor(x, device=dev), mt.tensor(x2, device=dev))
    np.testing.assert_allclose(cs_m.numpy(), cs_t.numpy(), rtol=1e-5, atol=1e-6)
    pd_t = torch.nn.PairwiseDistance(p=1.0, keepdim=True)(torch.tensor(x), torch.tensor(x2))
    pd_m = nn.PairwiseDistance(p=1.0, keepdim=True)(mt.tensor(x, device=dev), mt.tensor(x2, device=dev))
    np.testing.assert_allclose(pd_m.numpy(), pd_t.numpy(), rtol=1e-5)
    assert pd_m.shape == (5, 1)


def test_weighted_unbatched_and_spatial_probabilities_match_torch(dev, rng):
    """An unbatched (C,) input with a 0-d label, and (N, C, d) class probabilities, both with weights."""
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    w = (rng.random(5) + 0.1).astype(np.float32)
    x = rng.standard_normal(5).astype(np.float32)
    for ls in (0.0, 0.3):
        want = TF.cross_entropy(torch.tensor(x), torch.tensor(2), weight=torch.tensor(w), label_smoothing=ls)
        got = F.cross_entropy(mt.tensor(x, device=dev), mt.tensor(2, device=dev), weight=mt.tensor(w, device=dev),
                              label_smoothing=ls)
        assert got.shape == ()
        np.testing.assert_allclose(got.item(), want.item(), rtol=1e-5)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    q = rng.random((2, 5, 3)).astype(np.float32)
    for red in ("mean", "none"):
        tx, mx = torch.tensor(x, requires_grad=True), mt.tensor(x, device=dev, requires_grad=True)
        want = TF.cross_entropy(tx, torch.tensor(q), weight=torch.tensor(w), label_smoothing=0.1, reduction=red)
        got = F.cross_entropy(mx, mt.tensor(q, device=dev), weight=mt.tensor(w, device=dev), label_smoothing=0.1,
                              reduction=red)
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6)
        want.sum().backward()
        got.sum().backward()
        np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
