"""F.interpolate (nearest, nearest-exact, linear, bilinear, bicubic, area; align_corners both ways;
size or scale_factor), its gradient (the scatter-add adjoint), nn.Upsample and pixel_shuffle /
pixel_unshuffle, against NumPy float64 resampling matrices and PyTorch."""
import math

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn
from minitorch_cl.nn import functional as F
from helpers import check


def _cubic(t, A=-0.75):
    t = abs(t)
    if t <= 1:
        return ((A + 2) * t - (A + 3)) * t * t + 1
    if t < 2:
        return ((A * t - 5 * A) * t + 8 * A) * t - 4 * A
    return 0.0


def np_matrix(n_in, n_out, mode, align, factor=None):
    """The (n_out, n_in) resampling matrix of one axis, from PyTorch's documented index rules."""
    if align:
        scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        scale = 1 / factor if factor else n_in / n_out
    M = np.zeros((n_out, n_in))
    for o in range(n_out):
        if mode == "nearest":
            M[o, min(math.floor(o * scale), n_in - 1)] = 1
        elif mode == "nearest-exact":
            M[o, min(math.floor((o + 0.5) * scale), n_in - 1)] = 1
        elif mode == "linear":
            src = o * scale if align else max((o + 0.5) * scale - 0.5, 0)
            i0 = min(int(src), n_in - 1)
            lam = src - i0
            M[o, i0] += 1 - lam
            M[o, min(i0 + 1, n_in - 1)] += lam
        else:
            src = o * scale if align else (o + 0.5) * scale - 0.5
            i = math.floor(src)
            for k in range(-1, 3):
                M[o, min(max(i + k, 0), n_in - 1)] += _cubic(src - (i + k))
    return M


CASES = [  # mode, align_corners, size or scale_factor
    ("nearest", None, {"size": (9, 4)}), ("nearest", None, {"scale_factor": 2}),
    ("nearest", None, {"scale_factor": (1.7, 0.6)}), ("nearest-exact", None, {"size": (3, 11)}),
    ("bilinear", False, {"size": (9, 4)}), ("bilinear", True, {"size": (9, 4)}),
    ("bilinear", False, {"scale_factor": (2.5, 0.5)}), ("bilinear", True, {"size": (1, 6)}),
    ("bicubic", False, {"size": (8, 9)}), ("bicubic", True, {"scale_factor": 1.5}),
]


@pytest.mark.parametrize("mode,align,kw", CASES)
def test_interpolate2d_numpy(dev, rng, mode, align, kw):
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    if "size" in kw:
        size, factors = kw["size"], (None, None)
    else:
        f = kw["scale_factor"]
        factors = (f, f) if not isinstance(f, tuple) else f
        size = tuple(math.floor(n * s) for n, s in zip((5, 6), factors))
    axis_mode = "linear" if mode == "bilinear" else "cubic" if mode == "bicubic" else mode
    Mh = np_matrix(5, size[0], axis_mode, align, factors[0])
    Mw = np_matrix(6, size[1], axis_mode, align, factors[1])
    check(dev, lambda x: F.interpolate(x, mode=mode, align_corners=align, **kw),
          lambda x: np.einsum("oh,nchw,pw->ncop", Mh, x, Mw), x, noncontig=True,
          np_grad=lambda ins, w: [np.einsum("oh,ncop,pw->nchw", Mh, w, Mw)])


@pytest.mark.parametrize("mode,align", [("linear", False), ("linear", True), ("nearest", None),
                                        ("nearest-exact", None)])
def test_interpolate1d_numpy(dev, rng, mode, align):
    x = rng.standard_normal((2, 3, 7)).astype(np.float32)
    M = np_matrix(7, 33, mode, align)
    check(dev, lambda x: F.interpolate(x, size=33, mode=mode, align_corners=align),
          lambda x: np.einsum("ol,ncl->nco", M, x), x, noncontig=True,
          np_grad=lambda ins, w: [np.einsum("ol,nco->ncl", M, w)])


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic", "area"])
def test_interpolate_matches_torch(dev, rng, mode):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 7, 5)).astype(np.float32)
    aligns = (False, True) if mode in ("bilinear", "bicubic") else (None,)
    for align in aligns:
        for kw in ({"size": (13, 3)}, {"scale_factor": (1.3, 2.7)}, {"scale_factor": 0.5},
                   {"scale_factor": 1.6, "recompute_scale_factor": True}):
            tx, mx = torch.tensor(x, requires_grad=True), mt.tensor(x, device=dev, requires_grad=True)
            yt = torch.nn.functional.interpolate(tx, mode=mode, align_corners=align, **kw)
            ym = F.interpolate(mx, mode=mode, align_corners=align, **kw)
            assert ym.shape == yt.shape
            np.testing.assert_allclose(ym.detach().numpy(), yt.detach().numpy(), rtol=1e-5, atol=2e-6)
            g = rng.standard_normal(yt.shape).astype(np.float32)
            yt.backward(torch.tensor(g))
            ym.backward(mt.tensor(g, device=dev))
            np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_interpolate_errors(dev):
    x = mt.zeros(1, 2, 4, 4, device=dev)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="either size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(NotImplementedError, match="4D input, but linear"):
        F.interpolate(x, scale_factor=2, mode="linear")
    with pytest.raises(ValueError, match=r"\[4, 4\].*\[3\]"):
        F.interpolate(x, size=(3,), mode="bilinear")


def test_upsample_modules(dev, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((1, 2, 4, 5)).astype(np.float32)
    for make in (lambda m: m.Upsample(scale_factor=2, mode="bilinear"), lambda m: m.Upsample(size=(7, 3)),
                 lambda m: m.UpsamplingBilinear2d(scale_factor=3), lambda m: m.UpsamplingNearest2d(size=6)):
        tm, mm = make(torch.nn), make(nn)
        assert repr(mm) == repr(tm)
        np.testing.assert_allclose(mm(mt.tensor(x, device=dev)).numpy(), tm(torch.tensor(x)).numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_pixel_shuffle(dev, rng):
    x = rng.standard_normal((2, 12, 3, 5)).astype(np.float32)

    def np_shuffle(x, r=2):
        N, C, H, W = x.shape
        return x.reshape(N, C // 4, r, r, H, W).transpose(0, 1, 4, 2, 5, 3).reshape(N, C // 4, H * r, W * r)
    y = check(dev, lambda x: F.pixel_shuffle(x, 2), np_shuffle, x, noncontig=True,
              np_grad=lambda ins, w: [w.reshape(2, 3, 3, 2, 5, 2).transpose(0, 1, 3, 5, 2, 4).reshape(x.shape)])
    assert y.shape == (2, 3, 6, 10)
    back = F.pixel_unshuffle(y, 2)
    np.testing.assert_array_equal(back.detach().numpy(), x)
    torch = pytest.importorskip("torch")
    x5 = rng.standard_normal((2, 1, 18, 6, 4)).astype(np.float32)
    np.testing.assert_array_equal(nn.PixelShuffle(3)(mt.tensor(x5, device=dev)).numpy(),
                                  torch.nn.PixelShuffle(3)(torch.tensor(x5)).numpy())
    np.testing.assert_array_equal(nn.PixelUnshuffle(2)(mt.tensor(x5, device=dev)).numpy(),
                                  torch.nn.PixelUnshuffle(2)(torch.tensor(x5)).numpy())
    with pytest.raises(RuntimeError, match=r"\(2, 12, 3, 5\).*upscale_factor is 5"):
        F.pixel_shuffle(mt.tensor(x, device=dev), 5)
    with pytest.raises(RuntimeError, match="divisible"):
        F.pixel_unshuffle(mt.tensor(x, device=dev), 2)
