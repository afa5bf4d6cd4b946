"""ceil_mode, divisor_override, 1-D pooling, adaptive avg/max pooling, max_unpool and the nn modules,
against NumPy float64 references (values and gradients) and PyTorch."""
import math

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn
from minitorch_cl.nn import functional as F
from minitorch_cl.ops.pool import pool_output_size
from helpers import check


def _bounds(o, n_in, n_out):
    return (o * n_in) // n_out, math.ceil((o + 1) * n_in / n_out)


def np_adaptive(x, OH, OW, op):
    H, W = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (OH, OW))
    for oh in range(OH):
        hs, he = _bounds(oh, H, OH)
        for ow in range(OW):
            ws, we = _bounds(ow, W, OW)
            out[..., oh, ow] = op(x[..., hs:he, ws:we], axis=(-2, -1))
    return out


@pytest.mark.parametrize("shape,out", [((2, 3, 7, 9), (3, 4)), ((1, 2, 5, 5), (5, 5)), ((2, 1, 4, 6), (7, 3)),
                                       ((1, 2, 9, 7), (1, 1)), ((3, 300, 7, 5), (1, 1))])  # (1, 1): a broadcast map back
def test_adaptive_avg_pool2d(dev, rng, shape, out):
    x = rng.standard_normal(shape).astype(np.float32)
    check(dev, lambda x: F.adaptive_avg_pool2d(x, out), lambda x: np_adaptive(x, *out, np.mean), x, noncontig=True)


@pytest.mark.parametrize("shape,out", [((2, 3, 7, 9), (3, 4)), ((2, 1, 4, 6), (7, 3)), ((1, 1, 6, 6), (4, 4))])
def test_adaptive_max_pool2d(dev, rng, shape, out):
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float32) / 10  # distinct values: no ties
    check(dev, lambda x: F.adaptive_max_pool2d(x, out), lambda x: np_adaptive(x, *out, np.max), x, noncontig=True)


def test_adaptive_matches_torch(dev, rng):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    x = rng.standard_normal((2, 3, 11, 13)).astype(np.float32)
    x[0, 0, 2, 3] = np.nan
    for out in ((4, 5), (None, 6), 3):
        yt, it = TF.adaptive_max_pool2d(torch.tensor(x), out, return_indices=True)
        ym, im = F.adaptive_max_pool2d(mt.tensor(x, device=dev), out, return_indices=True)
        np.testing.assert_array_equal(ym.numpy(), yt.numpy())
        np.testing.assert_array_equal(im.numpy(), it.numpy())
        assert im.dtype is mt.int64
        np.testing.assert_allclose(F.adaptive_avg_pool2d(mt.tensor(x, device=dev), out).numpy(),
                                   TF.adaptive_avg_pool2d(torch.tensor(x), out).numpy(), rtol=1e-5, atol=1e-6)
    x1 = rng.standard_normal((2, 3, 10)).astype(np.float32)
    np.testing.assert_allclose(F.adaptive_avg_pool1d(mt.tensor(x1, device=dev), 4).numpy(),
                               TF.adaptive_avg_pool1d(torch.tensor(x1), 4).numpy(), rtol=1e-5, atol=1e-6)
    ym, im = F.adaptive_max_pool1d(mt.tensor(x1, device=dev), 3, return_indices=True)
    yt, it = TF.adaptive_max_pool1d(torch.tensor(x1), 3, return_indices=True)
    np.testing.assert_array_equal(ym.numpy(), yt.numpy())
    np.testing.assert_array_equal(im.numpy(), it.numpy())
    y3 = F.adaptive_avg_pool2d(mt.tensor(x[0], device=dev), 2)  # unbatched
    assert y3.shape == (3, 2, 2)


def _torch_pool(torch, fm, ft, x, rng, **kw):
    tx = torch.tensor(x, requires_grad=True)
    mx = mt.tensor(x, requires_grad=True)
    yt, ym = ft(tx, **kw), fm(mx, **kw)
    assert tuple(ym.shape) == tuple(yt.shape), (ym.shape, yt.shape, kw)
    np.testing.assert_allclose(ym.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=str(kw))
    g = rng.standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.tensor(g))
    ym.backward(mt.tensor(g))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=str(kw))


CEIL_CASES = [  # H, W, kernel, stride, padding
    (7, 7, 2, 2, 0), (8, 7, 3, 2, 1), (5, 6, 3, 3, 1), (6, 6, 3, 2, 1), (9, 5, (3, 2), (2, 2), (1, 1)),
    (4, 4, 2, 3, 1),  # the window that would start in the right padding is dropped
]


@pytest.mark.parametrize("H,W,k,s,p", CEIL_CASES)
def test_ceil_mode_matches_torch(dev, rng, H, W, k, s, p):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    x = rng.standard_normal((2, 3, H, W)).astype(np.float32)
    for ceil in (False, True):
        _torch_pool(torch, F.max_pool2d, TF.max_pool2d, x, rng, kernel_size=k, stride=s, padding=p, ceil_mode=ceil)
        for cip in (True, False):
            _torch_pool(torch, F.avg_pool2d, TF.avg_pool2d, x, rng, kernel_size=k, stride=s, padding=p,
                        ceil_mode=ceil, count_include_pad=cip)
        _torch_pool(torch, F.avg_pool2d, TF.avg_pool2d, x, rng, kernel_size=k, stride=s, padding=p, ceil_mode=ceil,
                    divisor_override=5)


def test_pool1d_matches_torch(dev, rng):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    x = rng.standard_normal((2, 3, 33)).astype(np.float32)
    for kw in ({"kernel_size": 3}, {"kernel_size": 4, "stride": 3, "padding": 2, "ceil_mode": True},
               {"kernel_size": 3, "stride": 1, "padding": 1, "dilation": 2}):
        _torch_pool(torch, F.max_pool1d, TF.max_pool1d, x, rng, **kw)
        if "dilation" not in kw:
            _torch_pool(torch, F.avg_pool1d, TF.avg_pool1d, x, rng, count_include_pad=False, **kw)
    ym, im = F.max_pool1d(mt.tensor(x), 3, return_indices=True)
    yt, it = TF.max_pool1d(torch.tensor(x), 3, return_indices=True)
    np.testing.assert_array_equal(im.numpy(), it.numpy())


def test_ceil_mode_values_numpy(dev, rng):
    """ceil_mode's extra partial window, by hand: 5 cells, k=2, s=2 -> windows [0,1], [2,3], [4]."""
    x = rng.standard_normal((1, 1, 1, 5)).astype(np.float32)
    check(dev, lambda x: F.max_pool2d(x, (1, 2), ceil_mode=True),
          lambda x: np.stack([x[..., 0:2].max(-1), x[..., 2:4].max(-1), x[..., 4]], -1), x, noncontig=True)
    check(dev, lambda x: F.avg_pool2d(x, (1, 2), ceil_mode=True),
          lambda x: np.stack([x[..., 0:2].mean(-1), x[..., 2:4].mean(-1), x[..., 4]], -1), x)
    check(dev, lambda x: F.avg_pool2d(x, (1, 2), ceil_mode=True, divisor_override=3),
          lambda x: np.stack([x[..., 0:2].sum(-1), x[..., 2:4].sum(-1), x[..., 4]], -1) / 3, x)


def test_max_unpool(dev, rng):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    x = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
    yt, it = TF.max_pool2d(torch.tensor(x), 2, return_indices=True)
    ym, im = F.max_pool2d(mt.tensor(x, device=dev), 2, return_indices=True)
    for size in (None, (7, 8)):
        ut = TF.max_unpool2d(yt.clone().requires_grad_(), it, 2, output_size=size)
        ymg = ym.detach().requires_grad_()
        um = F.max_unpool2d(ymg, im, 2, output_size=size)
        assert um.shape == ut.shape
        np.testing.assert_array_equal(um.detach().numpy(), ut.detach().numpy())
    g = rng.standard_normal(um.shape).astype(np.float32)
    um.backward(mt.tensor(g, device=dev))
    np.testing.assert_array_equal(ymg.grad.numpy(), np.take_along_axis(g.reshape(2, 3, -1),
                                                                        im.numpy().reshape(2, 3, -1), 2).reshape(ym.shape))
    x1 = rng.standard_normal((1, 2, 9)).astype(np.float32)
    yt, it = TF.max_pool1d(torch.tensor(x1), 3, return_indices=True)
    ym, im = F.max_pool1d(mt.tensor(x1, device=dev), 3, return_indices=True)
    np.testing.assert_array_equal(F.max_unpool1d(ym, im, 3).numpy(), TF.max_unpool1d(yt, it, 3).numpy())
    with pytest.raises(ValueError, match="output_size"):
        F.max_unpool2d(ym.unsqueeze(0), im.unsqueeze(0), 3, output_size=(1, 20))
    with pytest.raises(IndexError, match="20 is out of bounds"):  # found on the device, raised at the next read
        F.max_unpool2d(mt.ones(1, 1, 2, 2, device=dev), mt.tensor([[[[0, 3], [20, 1]]]], device=dev), 2).numpy()


def test_pool_modules(dev, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
    x1 = rng.standard_normal((2, 3, 10)).astype(np.float32)
    for name, args, kw, inp in [("AdaptiveAvgPool2d", ((3, 4),), {}, x), ("AdaptiveMaxPool2d", (5,), {}, x),
                                ("AdaptiveAvgPool1d", (4,), {}, x1), ("AdaptiveMaxPool1d", (3,), {}, x1),
                                ("MaxPool1d", (3, 2), {"ceil_mode": True}, x1), ("AvgPool1d", (3,), {}, x1),
                                ("AvgPool2d", (3, 2, 1), {"ceil_mode": True, "divisor_override": 4}, x),
                                ("MaxPool2d", (3, 2, 1), {"ceil_mode": True}, x)]:
        tm, mm = getattr(torch.nn, name)(*args, **kw), getattr(nn, name)(*args, **kw)
        np.testing.assert_allclose(mm(mt.tensor(inp, device=dev)).numpy(), tm(torch.tensor(inp)).numpy(),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    y, i = pool(mt.tensor(x, device=dev))
    assert unpool(y, i, output_size=x.shape).shape == x.shape


def test_pool_errors(dev):
    x = mt.zeros(1, 2, 5, 5, device=dev)
    with pytest.raises(ValueError, match=r"\(1, 2, 5, 5, 1\)"):
        F.adaptive_avg_pool2d(x.reshape(1, 2, 5, 5, 1), (6, 6))
    with pytest.raises(ValueError, match=r"\(1, 2, 0, 5\).*\(2, 2\)"):
        F.adaptive_max_pool2d(mt.zeros(1, 2, 0, 5, device=dev), 2)
    with pytest.raises(ValueError, match="divisor_override"):
        F.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(ValueError, match=r"\(2, 5, 5, 1\)"):
        F.max_pool1d(mt.zeros(1, 2, 5, 5, device=dev).reshape(2, 5, 5, 1), 2)


def test_pool_output_size_rule_matches_torch():
    """The ceil_mode size rule over a grid of sizes, kernels, strides, paddings and dilations."""
    torch = pytest.importorskip("torch")
    for H in range(1, 10):
        for k in range(1, 5):
            for s in range(1, 4):
                for p in range(0, k // 2 + 1):
                    for d in (1, 2):
                        if (H + 2 * p - d * (k - 1) - 1) < 0:
                            continue
                        for ceil in (False, True):
                            want = torch.nn.functional.max_pool1d(torch.zeros(1, 1, H), k, s, p, d, ceil).shape[-1]
                            assert pool_output_size(H, k, s, p, d, ceil) == want, (H, k, s, p, d, ceil)


@pytest.mark.parametrize("shape", [(1, 1, 2, 2), (2, 3, 14, 66), (1, 2, 35, 33), (2, 1, 9, 130)])
def test_max_pool2x2_kernels_edges_nan_and_ties(dev, rng, shape):
    """2x2/stride-2 pooling (maxpool_rows_fwd's paired 16-float loads, 8 windows at a time, and its
    scalar columns at the row ends): a NaN in each of the four window cells, all-tie windows, a
    strided view, and the gradient of the arg-max against PyTorch's (which shares the
    first-maximum, first-NaN rule)."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape).astype(np.float32)
    x[..., :2, 2:4] = 1.5  # a window of ties
    for j, (h, w) in enumerate([(0, 4), (1, 7), (2, 8), (3, 13)]):  # NaN in cell j of its window
        if h < shape[2] and w < shape[3]:
            x[0, 0, h, w] = np.nan
    xt = torch.tensor(x, requires_grad=True)
    yt, it = torch.nn.functional.max_pool2d(xt, 2, 2, return_indices=True)
    g = rng.standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.tensor(g))
    for view in (lambda a: a, lambda a: a.transpose(2, 3).contiguous().transpose(2, 3)):  # strided
        xm = view(mt.tensor(x, device=dev)).requires_grad_(True)
        ym, im = F.max_pool2d(xm, 2, 2, return_indices=True)
        np.testing.assert_array_equal(ym.detach().numpy(), yt.detach().numpy())
        np.testing.assert_array_equal(im.numpy(), it.numpy())
        ym.backward(mt.tensor(g, device=dev))
        np.testing.assert_array_equal(xm.grad.numpy(), xt.grad.numpy())


@pytest.mark.parametrize("k,s,p,ceil", [(3, 2, 0, True), (3, 2, 1, False), (3, 1, 1, False), ((2, 3), (1, 2), (1, 0), True),
                                        (5, 3, 2, True), (2, 2, 0, True)])
@pytest.mark.parametrize("shape", [(1, 1, 3, 3), (2, 3, 19, 70), (1, 2, 37, 33)])
def test_max_pool_overlapping_edges_nan_and_ties(dev, rng, shape, k, s, p, ceil):
    """Overlapping and partial (ceil_mode, padded) windows, squeezenet's 3x3 stride 2 with ceil_mode
    among them: NaNs, all-tie windows and a strided view, against PyTorch (which shares the
    first-maximum rule); the gradient sums over overlapping windows in another order, hence allclose."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal(shape).astype(np.float32)
    x[..., :3, 3:6] = 1.5  # a block of ties
    for h, w in [(0, 6), (1, 12), (2, 20), (5, 28)]:  # one NaN per window (PyTorch's CPU kernel keeps the last)
        if h < shape[2] and w < shape[3]:
            x[0, 0, h, w] = np.nan
    xt = torch.tensor(x, requires_grad=True)
    yt, it = torch.nn.functional.max_pool2d(xt, k, s, p, ceil_mode=ceil, return_indices=True)
    g = rng.standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.tensor(g))
    for view in (lambda a: a, lambda a: a.transpose(2, 3).contiguous().transpose(2, 3)):  # strided
        xm = view(mt.tensor(x, device=dev)).requires_grad_(True)
        ym, im = F.max_pool2d(xm, k, s, p, ceil_mode=ceil, return_indices=True)
        np.testing.assert_array_equal(ym.detach().numpy(), yt.detach().numpy())
        np.testing.assert_array_equal(im.numpy(), it.numpy())
        ym.backward(mt.tensor(g, device=dev))
        np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-6)
