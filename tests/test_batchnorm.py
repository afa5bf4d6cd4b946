"""batch_norm / nn.BatchNorm{1,2,3}d and group_norm / nn.GroupNorm against NumPy float64 references
(values, gradients by central differences, running statistics) and against PyTorch."""
import numpy as np
import pytest

import minitorch_cl as mt
import minitorch_cl.nn.functional as F
from minitorch_cl import nn

from helpers import check


@pytest.fixture(params=[1, 64], ids=["wg1", "wg64"])
def wg(request, dev):
    """Run both kernel variants on the device under test: a work-item per channel (the CPU one)
    and a 64-wide group with a tree sum (the GPU one)."""
    old = dev.profile.batchnorm_wg
    dev.profile.update(batchnorm_wg=request.param)
    yield request.param
    dev.profile.update(batchnorm_wg=old)


def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def ref_batch_norm(x, w, b, eps, mean=None, var=None):
    """Batch statistics unless mean/var are given; float64."""
    axes = _axes(x)
    if mean is None:
        mean, var = x.mean(axes), x.var(axes)
    y = (x - _per_channel(mean, x.ndim)) / np.sqrt(_per_channel(var, x.ndim) + eps)
    if w is not None:
        y = y * _per_channel(w, x.ndim) + _per_channel(b, x.ndim)
    return y


def ref_group_norm(x, G, w, b, eps):
    N, C = x.shape[:2]
    xg = x.reshape(N, G, -1)
    y = ((xg - xg.mean(2, keepdims=True)) / np.sqrt(xg.var(2, keepdims=True) + eps)).reshape(x.shape)
    return y * _per_channel(w, x.ndim) + _per_channel(b, x.ndim)


# sizes that are not multiples of 64 (the wg64 variant): N*S = 33, 7*3 = 21, 2*65 = 130
SHAPES = [(33, 5), (7, 4, 3), (2, 3, 5, 13), (2, 2, 3, 1, 5), (3, 4, 9, 7)]  # S = 63: 8-lane sums and a tail


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("noncontig", [False, True])
def test_training_values_and_gradients(dev, rng, wg, shape, noncontig):
    C = shape[1]
    x = rng.standard_normal(shape) * 2 + 0.5
    w, b = rng.standard_normal(C), rng.standard_normal(C)
    check(dev, lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
          lambda x, w, b: ref_batch_norm(x, w, b, 1e-5), x, w, b, rtol=1e-4, atol=1e-4, noncontig=noncontig)


@pytest.mark.parametrize("shape", [(7, 4, 3), (2, 3, 5, 13), (3, 4, 9, 7)])
def test_eval_values_and_gradients(dev, rng, wg, shape):
    C = shape[1]
    x = rng.standard_normal(shape)
    mean, var = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
    rm, rv = mt.tensor(mean, device=dev), mt.tensor(var, device=dev)
    check(dev, lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-3),
          lambda x, w, b: ref_batch_norm(x, w, b, 1e-3, mean.astype(np.float32), var.astype(np.float32)),
          x, rng.standard_normal(C), rng.standard_normal(C), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(rm.numpy(), mean.astype(np.float32))  # eval leaves them alone


def test_no_affine_channels_last_view(dev, rng, wg):
    x = rng.standard_normal((3, 6, 5, 4))  # (N, H, W, C) in memory, a permuted (N, C, H, W) view
    base = mt.tensor(x, device=dev, requires_grad=True)
    view = base.permute(0, 3, 1, 2)
    y = F.batch_norm(view, None, None, training=True)
    ref = ref_batch_norm(x.transpose(0, 3, 1, 2), None, None, 1e-5)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-4, atol=1e-5)
    g = rng.standard_normal(ref.shape)
    (y * mt.tensor(g, device=dev)).sum().backward()
    # dx of batch norm without affine: (g - mean(g) - xhat * mean(g * xhat)) / std
    axes = _axes(ref)
    std = np.sqrt(x.transpose(0, 3, 1, 2).var(axes, keepdims=True) + 1e-5)
    dx = (g - g.mean(axes, keepdims=True) - ref * (g * ref).mean(axes, keepdims=True)) / std
    np.testing.assert_allclose(base.grad.numpy(), dx.transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_running_statistics(dev, rng, wg, momentum):
    C = 3
    bn = nn.BatchNorm1d(C, momentum=momentum).to(dev)
    mean, var = np.zeros(C), np.ones(C)
    for step in range(1, 5):
        x = rng.standard_normal((9, C, 7)) * step + step
        bn(mt.tensor(x, device=dev))
        f = 1.0 / step if momentum is None else momentum
        n = x.size // C
        mean = (1 - f) * mean + f * x.mean((0, 2))
        var = (1 - f) * var + f * x.var((0, 2)) * n / (n - 1)
    np.testing.assert_allclose(bn.running_mean.numpy(), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), var, rtol=1e-5, atol=1e-5)
    assert bn.num_batches_tracked.item() == 4
    bn.eval()
    x = rng.standard_normal((2, C, 5))
    np.testing.assert_allclose(bn(mt.tensor(x, device=dev)).detach().numpy(),
                               ref_batch_norm(x, np.ones(C), np.zeros(C), 1e-5, mean, var), rtol=1e-4, atol=1e-5)
    assert bn.num_batches_tracked.item() == 4


def test_module_names_and_errors(dev):
    bn = nn.BatchNorm2d(4)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert list(nn.BatchNorm2d(4, affine=False, track_running_stats=False).state_dict()) == []
    assert repr(bn) == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    with pytest.raises(ValueError, match="4-D"):
        bn.to(dev)(mt.zeros(2, 4, 3, device=dev))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(4).to(dev)(mt.zeros(1, 4, device=dev))


@pytest.mark.parametrize("cls,shape,kwargs", [
    ("BatchNorm2d", (4, 6, 5, 7), dict(momentum=0.1)),
    ("BatchNorm1d", (9, 5), dict(momentum=None)),
    ("BatchNorm1d", (3, 5, 11), dict(affine=False)),
    ("BatchNorm3d", (2, 3, 3, 4, 5), dict(eps=1e-3)),
    ("BatchNorm2d", (3, 4, 5, 5), dict(track_running_stats=False)),
])
def test_against_torch(dev, rng, cls, shape, kwargs):
    torch = pytest.importorskip("torch")
    ref = getattr(torch.nn, cls)(shape[1], **kwargs)
    if ref.affine:
        with torch.no_grad():
            ref.weight.normal_()
            ref.bias.normal_()
    model = getattr(nn, cls)(shape[1], **kwargs).to(dev)
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    for step in range(3):  # training: outputs, gradients and running statistics after each step
        for m in (ref, model):
            m.zero_grad()
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        xt = torch.tensor(x, requires_grad=True)
        yt = ref(xt)
        (yt * torch.tensor(g)).sum().backward()
        xm = mt.tensor(x, device=dev, requires_grad=True)
        y = model(xm)
        (y * mt.tensor(g, device=dev)).sum().backward()
        np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
        if ref.affine:
            np.testing.assert_allclose(model.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(model.bias.grad.numpy(), ref.bias.grad.numpy(), rtol=1e-4, atol=1e-4)
        for k, v in ref.state_dict().items():
            np.testing.assert_allclose(model.state_dict()[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    ref.eval()
    model.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    ref(xt).sum().backward()
    xm = mt.tensor(x, device=dev, requires_grad=True)
    y = model(xm)
    y.sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), ref(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape,G", [((3, 6, 5), 3), ((2, 4, 3, 3), 1), ((2, 6, 2, 3), 6)])
def test_group_norm_values_and_gradients(dev, rng, wg, shape, G):
    C = shape[1]
    check(dev, lambda x, w, b: F.group_norm(x, G, w, b), lambda x, w, b: ref_group_norm(x, G, w, b, 1e-5),
          rng.standard_normal(shape) * 3, rng.standard_normal(C), rng.standard_normal(C), rtol=1e-4, atol=1e-4,
          noncontig=True)


def test_group_norm_against_torch(dev, rng):
    torch = pytest.importorskip("torch")
    ref = torch.nn.GroupNorm(3, 6, eps=1e-4)
    with torch.no_grad():
        ref.weight.normal_()
        ref.bias.normal_()
    model = nn.GroupNorm(3, 6, eps=1e-4).to(dev)
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = rng.standard_normal((4, 6, 7, 5)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    xm = mt.tensor(x, device=dev, requires_grad=True)
    yt, y = ref(xt), model(xm)
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    (yt ** 2).sum().backward()
    (y * y).sum().backward()
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(4, 6)


def test_convnet_training_steps_against_torch(dev, rng):
    """Conv -> BatchNorm2d -> ReLU -> Linear, three SGD steps with torch's weights: the batch norm
    inside a graph (gradients arriving from a GEMM, flowing into a convolution), then eval."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)

    def build(lib):
        return lib.nn.Sequential(lib.nn.Conv2d(3, 6, 3, padding=1), lib.nn.BatchNorm2d(6), lib.nn.ReLU(),
                                 lib.nn.Flatten(), lib.nn.Linear(6 * 5 * 5, 4))

    ref, model = build(torch), build(mt).to(dev)
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    opt = mt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(3):
        x = rng.standard_normal((7, 3, 5, 5)).astype(np.float32)
        y = rng.integers(0, 4, 7)
        opt_ref.zero_grad()
        loss_ref = torch.nn.functional.cross_entropy(ref(torch.tensor(x)), torch.tensor(y))
        loss_ref.backward()
        opt_ref.step()
        opt.zero_grad()
        loss = F.cross_entropy(model(mt.tensor(x, device=dev)), mt.tensor(y, device=dev))
        loss.backward()
        opt.step()
        np.testing.assert_allclose(loss.item(), loss_ref.item(), rtol=1e-4)
    for k, v in ref.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k].numpy(), v.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
    ref.eval()
    model.eval()
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(model(mt.tensor(x, device=dev)).detach().numpy(),
                               ref(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
