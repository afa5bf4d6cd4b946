"""max_pool2d / avg_pool2d against NumPy float64 references, values and gradients."""
import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl.nn import functional as F
from helpers import check, compare


def _windows(H, k, s, p, d):
    OH = (H + 2 * p - d * (k - 1) - 1) // s + 1
    return OH, [[o * s - p + i * d for i in range(k)] for o in range(OH)]


def np_max_pool(x, k, s, p, d, g=None):
    """Forward and (given g) the gradient of sum(y * g): the first maximum in a window takes the gradient."""
    N, C, H, W = x.shape
    OH, rows = _windows(H, k, s, p, d)
    OW, cols = _windows(W, k, s, p, d)
    y = np.zeros((N, C, OH, OW))
    dx = np.zeros_like(x)
    for oh in range(OH):
        for ow in range(OW):
            cells = [(h, w) for h in rows[oh] for w in cols[ow] if 0 <= h < H and 0 <= w < W]
            vals = np.stack([x[:, :, h, w] for h, w in cells], -1)  # (N, C, cells)
            arg = vals.argmax(-1)
            y[:, :, oh, ow] = vals.max(-1)
            for j, (h, w) in enumerate(cells if g is not None else ()):
                dx[:, :, h, w] += np.where(arg == j, g[:, :, oh, ow], 0.0)
    return y, dx


def np_avg_pool(x, k, s, p, include_pad, g=None):
    N, C, H, W = x.shape
    OH, rows = _windows(H, k, s, p, 1)
    OW, cols = _windows(W, k, s, p, 1)
    y = np.zeros((N, C, OH, OW))
    dx = np.zeros_like(x)
    for oh in range(OH):
        for ow in range(OW):
            cells = [(h, w) for h in rows[oh] for w in cols[ow] if 0 <= h < H and 0 <= w < W]
            if include_pad:
                hs = [h for h in rows[oh] if h < H + p]
                ws = [w for w in cols[ow] if w < W + p]
                count = len(hs) * len(ws)
            else:
                count = len(cells)
            y[:, :, oh, ow] = sum(x[:, :, h, w] for h, w in cells) / count
            for h, w in cells if g is not None else ():
                dx[:, :, h, w] += g[:, :, oh, ow] / count
    return y, dx


MAX_CASES = [  # (N, C, H, W), kernel, stride, padding, dilation
    ((2, 3, 7, 9), 2, 2, 0, 1),  # odd sizes: the last row and column belong to no window
    ((2, 3, 8, 8), 2, 2, 0, 1),
    ((1, 2, 7, 9), 3, 2, 1, 1),
    ((3, 1, 11, 6), 3, 1, 1, 2),
    ((2, 5, 33, 17), 2, 3, 1, 1),
    ((1, 2, 5, 71), 2, 2, 0, 1),  # 2x2 on rows of 35 outputs: maxpool_rows_fwd, an odd last column
]


@pytest.mark.parametrize("noncontig", [False, True])
@pytest.mark.parametrize("shape,k,s,p,d", MAX_CASES)
def test_max_pool2d(dev, rng, shape, k, s, p, d, noncontig):
    check(dev, lambda t: F.max_pool2d(t, k, s, p, d), lambda x: np_max_pool(x, k, s, p, d)[0],
          rng.standard_normal(shape), np_grad=lambda inputs, g: [np_max_pool(inputs[0], k, s, p, d, g)[1]],
          noncontig=noncontig, rtol=1e-6, atol=1e-6, grad_rtol=1e-5, grad_atol=1e-5)


def test_max_pool2d_ties_and_indices(dev):
    x = np.zeros((1, 1, 4, 4), np.float32)  # every window is a tie: the first cell wins, as in PyTorch
    t = mt.tensor(x, device=dev, requires_grad=True)
    y, idx = F.max_pool2d(t, 2, return_indices=True)
    compare(idx, np.array([[[[0, 2], [8, 10]]]]))
    y.sum().backward()
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1
    compare(t.grad.numpy()[0, 0], expected, rtol=0, atol=0)


@pytest.mark.parametrize("noncontig", [False, True])
@pytest.mark.parametrize("shape,k,s,p,include_pad", [
    ((2, 3, 8, 8), 2, 2, 0, True),
    ((1, 2, 7, 9), 3, 2, 1, True),
    ((1, 2, 7, 9), 3, 2, 1, False),
    ((2, 4, 13, 5), 3, 1, 1, True),
])
def test_avg_pool2d(dev, rng, shape, k, s, p, include_pad, noncontig):
    check(dev, lambda t: F.avg_pool2d(t, k, s, p, count_include_pad=include_pad),
          lambda x: np_avg_pool(x, k, s, p, include_pad)[0], rng.standard_normal(shape),
          np_grad=lambda inputs, g: [np_avg_pool(inputs[0], k, s, p, include_pad, g)[1]],
          noncontig=noncontig, rtol=1e-5, atol=1e-5, grad_rtol=1e-5, grad_atol=1e-5)


def test_pool_strided_input_and_grad(dev, rng):
    """A permuted (channel-major) input, like a conv's output, is read in place; so is the upstream gradient."""
    x = rng.standard_normal((3, 2, 6, 6))  # stored (C, N, H, W), fed as the (N, C, H, W) view
    g = rng.standard_normal((3, 2, 3, 3))
    gt = mt.tensor(g, dtype=mt.float32, device=dev).permute(1, 0, 2, 3)  # a non-contiguous upstream gradient
    ref = lambda x, g=None: np_max_pool(x.transpose(1, 0, 2, 3), 2, 2, 0, 1, g)
    check(dev, lambda t: F.max_pool2d(t.permute(1, 0, 2, 3), 2), lambda x: ref(x)[0], x, weights=gt,
          np_grad=lambda inputs, g: [ref(inputs[0], g)[1].transpose(1, 0, 2, 3)], rtol=1e-6, atol=0,
          grad_rtol=1e-5, grad_atol=1e-6)


def test_pool_modules_and_unbatched(dev, rng):
    x = rng.standard_normal((3, 6, 6)).astype(np.float32)
    t = mt.tensor(x, device=dev)
    y = mt.nn.MaxPool2d(2)(t)
    assert y.shape == (3, 3, 3)
    compare(y, x.reshape(3, 3, 2, 3, 2).max((2, 4)), rtol=1e-7, atol=0)
    a = mt.nn.AvgPool2d(3, stride=3)(t)
    compare(a, x.reshape(3, 2, 3, 2, 3).mean((2, 4)), rtol=1e-6, atol=0)
    assert "kernel_size=2" in repr(mt.nn.MaxPool2d(2))


def test_pool_errors(dev):
    t = mt.zeros(1, 1, 4, 4, device=dev)
    with pytest.raises(ValueError, match="padding"):
        F.max_pool2d(t, 2, padding=2)
    with pytest.raises(ValueError, match=r"\(1, 4\)"):
        F.max_pool2d(mt.zeros(1, 4, device=dev), 2)
    with pytest.raises(ValueError, match="too small"):
        F.avg_pool2d(mt.zeros(1, 1, 2, 2, device=dev), 3)
