"""conv2d (im2col + GEMM) against a NumPy float64 reference: values and all three gradients."""
import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import nn
from minitorch_cl.nn import functional as F
from helpers import check, compare


def np_conv2d(x, w, b, stride, padding, dilation, g=None):
    """Forward, and (given g) the gradients of sum(out * g) w.r.t. x, w and b, tap by tap."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((N, O, OH, OW)) + b[None, :, None, None]
    dxp, dw_ = np.zeros_like(xp), np.zeros_like(w)
    for kh in range(KH):
        for kw in range(KW):
            rows = slice(kh * dh, kh * dh + sh * (OH - 1) + 1, sh)
            cols = slice(kw * dw, kw * dw + sw * (OW - 1) + 1, sw)
            patch = xp[:, :, rows, cols]  # (N, C, OH, OW)
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, kh, kw])
            if g is not None:
                dw_[:, :, kh, kw] = np.einsum("nohw,nchw->oc", g, patch)
                dxp[:, :, rows, cols] += np.einsum("nohw,oc->nchw", g, w[:, :, kh, kw])
    if g is None:
        return out
    return out, dxp[:, :, ph:ph + H, pw:pw + W], dw_, g.sum((0, 2, 3))


CASES = [  # (N, C, H, W), (O, KH, KW), stride, padding, dilation
    ((2, 3, 8, 8), (4, 3, 3), 1, 1, 1),
    ((1, 2, 7, 9), (5, 3, 3), 2, 1, 1),
    ((3, 4, 11, 6), (3, 3, 2), (2, 1), (1, 0), (2, 1)),
    ((2, 1, 5, 5), (7, 1, 1), 1, 0, 1),
    ((1, 5, 13, 13), (2, 5, 5), 3, 2, 2),
    ((64, 3, 9, 7), (6, 3, 3), 1, 1, 1),
]


def _pair(v):
    return (v, v) if isinstance(v, int) else v


@pytest.mark.parametrize("noncontig", [False, True])
@pytest.mark.parametrize("xs,ws,stride,padding,dilation", CASES)
def test_conv2d(dev, rng, xs, ws, stride, padding, dilation, noncontig):
    x = rng.standard_normal(xs)
    w = rng.standard_normal((ws[0], xs[1]) + ws[1:])
    b = rng.standard_normal(ws[0])
    geometry = (_pair(stride), _pair(padding), _pair(dilation))
    check(dev, lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation),
          lambda x, w, b: np_conv2d(x, w, b, *geometry), x, w, b,
          np_grad=lambda inputs, g: np_conv2d(*inputs, *geometry, g)[1:],
          noncontig=(noncontig, noncontig, False),
          rtol=1e-4, atol=1e-4, grad_rtol=1e-4, grad_atol=(1e-4, 1e-3, 1e-3))


def test_conv2d_fused_relu_strided_input_no_bias(dev, rng):
    """relu=True fuses the ReLU; a permuted input view is read in place; bias=None."""
    x = rng.standard_normal((3, 2, 7, 7))  # stored (C, N, H, W)
    w = rng.standard_normal((4, 3, 3, 3))
    ref = lambda x, w, g=None: np_conv2d(x.transpose(1, 0, 2, 3), w, np.zeros(4), (1, 1), (1, 1), (1, 1), g)

    def np_grad(inputs, g):
        _, dx, dw, _ = ref(*inputs, g * (ref(*inputs) > 0))
        return dx.transpose(1, 0, 2, 3), dw

    check(dev, lambda x, w: F.conv2d(x.permute(1, 0, 2, 3), w, None, padding=1, relu=True),
          lambda x, w: np.maximum(ref(x, w), 0), x, w, np_grad=np_grad, rtol=1e-4, atol=1e-4, grad_rtol=1e-4,
          grad_atol=(1e-4, 1e-3))


def test_conv2d_strided_bias(dev, rng):
    geometry = ((1, 1), (1, 1), (1, 1))
    check(dev, lambda x, w, b: F.conv2d(x, w, b, padding=1), lambda x, w, b: np_conv2d(x, w, b, *geometry),
          rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4),
          np_grad=lambda inputs, g: np_conv2d(*inputs, *geometry, g)[1:], noncontig=(False, False, True),
          rtol=1e-4, atol=1e-4, grad_rtol=1e-4, grad_atol=(1e-4, 1e-3, 1e-3))


def test_conv2d_module(dev, rng):
    mt.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1).to(dev)
    assert conv.weight.shape == (5, 3, 3, 3) and conv.bias.shape == (5,)
    bound = 1 / np.sqrt(27)  # PyTorch's default init: kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), ..)
    wv = conv.weight.detach().numpy()
    assert np.abs(wv).max() <= bound and np.abs(wv).max() > 0.8 * bound
    assert repr(conv) == "Conv2d(3, 5, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    x = rng.standard_normal((3, 6, 6)).astype(np.float32)  # unbatched (C, H, W)
    out = conv(mt.tensor(x, device=dev))
    ref = np_conv2d(x[None].astype(np.float64), wv.astype(np.float64), conv.bias.detach().numpy(), (1, 1), (1, 1),
                    (1, 1))
    compare(out, ref[0], rtol=1e-4, atol=1e-5)


def test_conv2d_matches_torch(dev, rng):
    torch = pytest.importorskip("torch")
    tconv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1).to(dev)
    conv.load_state_dict({k: v.detach().numpy() for k, v in tconv.state_dict().items()})
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    compare(conv(mt.tensor(x, device=dev)), tconv(torch.tensor(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_conv2d_errors(dev):
    x = mt.zeros(1, 3, 8, 8, device=dev)
    with pytest.raises(ValueError, match=r"\(1, 3, 8, 8\).*\(4, 2, 3, 3\)"):
        F.conv2d(x, mt.zeros(4, 2, 3, 3, device=dev))
    with pytest.raises(ValueError, match="too small"):
        F.conv2d(x, mt.zeros(4, 3, 9, 9, device=dev))
    with pytest.raises(TypeError, match="int64"):
        F.conv2d(x.long(), mt.zeros(4, 3, 3, 3, device=dev))
