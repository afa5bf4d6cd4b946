"""conv with groups (depthwise included), 'same'/'valid' padding, conv1d, conv_transpose1d/2d and their
nn modules: values and gradients against NumPy float64 references and against PyTorch."""
import numpy as np
import pyopencl as cl
import pytest

import minitorch_cl as mt
from minitorch_cl import nn
from minitorch_cl.nn import functional as F
from helpers import check, compare, count_launches


def np_conv2d(x, w, b, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    """Grouped conv of x (N, C, H, W) padded by (top, bottom, left, right), tap by tap."""
    (sh, sw), (dh, dw) = stride, dilation
    x = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]))
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    OH, OW = (H - dh * (KH - 1) - 1) // sh + 1, (W - dw * (KW - 1) - 1) // sw + 1
    out = np.zeros((N, O, OH, OW))
    Og = O // groups
    for g in range(groups):
        xg, wg = x[:, g * Cg:(g + 1) * Cg], w[g * Og:(g + 1) * Og]
        for kh in range(KH):
            for kw in range(KW):
                patch = xg[:, :, kh * dh:kh * dh + sh * (OH - 1) + 1:sh, kw * dw:kw * dw + sw * (OW - 1) + 1:sw]
                out[:, g * Og:(g + 1) * Og] += np.einsum("nchw,oc->nohw", patch, wg[:, :, kh, kw])
    return out if b is None else out + b[None, :, None, None]


def np_conv_transpose2d(x, w, b, stride, padding, output_padding, dilation, groups):
    """Each input cell scatters x * w into the output at h*s - p + kh*d."""
    N, C, H, W = x.shape
    _, Og, KH, KW = w.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    OH = (H - 1) * sh - 2 * ph + dh * (KH - 1) + oph + 1
    OW = (W - 1) * sw - 2 * pw + dw * (KW - 1) + opw + 1
    full = np.zeros((N, Og * groups, OH + 2 * ph + sh + dh * KH, OW + 2 * pw + sw + dw * KW))
    Cg = C // groups
    for g in range(groups):
        xg, wg = x[:, g * Cg:(g + 1) * Cg], w[g * Cg:(g + 1) * Cg]
        for kh in range(KH):
            for kw in range(KW):
                contrib = np.einsum("nchw,co->nohw", xg, wg[:, :, kh, kw])
                full[:, g * Og:(g + 1) * Og, kh * dh:kh * dh + sh * (H - 1) + 1:sh,
                     kw * dw:kw * dw + sw * (W - 1) + 1:sw] += contrib
    out = full[:, :, ph:ph + OH, pw:pw + OW]
    return out if b is None else out + b[None, :, None, None]


def _arrays(rng, *shapes):
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


GROUP_CASES = [  # x shape, weight shape, groups, stride, padding, dilation
    ((2, 4, 7, 6), (6, 2, 3, 3), 2, 1, 1, 1),
    ((1, 3, 7, 9), (3, 1, 3, 3), 3, 2, 1, 1),       # depthwise
    ((3, 4, 6, 5), (8, 1, 2, 3), 4, (2, 1), (1, 0), (1, 2)),  # depthwise, multiplier 2, N > groups
    ((2, 6, 5, 5), (3, 2, 1, 1), 3, 1, 0, 1),
    ((5, 4, 6, 7), (6, 2, 3, 2), 2, (1, 2), (1, 1), 1),  # more images than groups: one GEMM per group
    # depthwise rows wide enough for the float8 columns (and their scalar ends): MobileNetV3's 5x5,
    # stride 2 with a multiplier, dilation
    ((2, 3, 5, 37), (3, 1, 5, 5), 3, 1, 2, 1),
    ((2, 3, 6, 37), (6, 1, 3, 3), 3, 2, 1, 1),
    ((1, 2, 4, 40), (2, 1, 3, 3), 2, 1, 1, (1, 2)),
    # depthwise on small planes (depthwise_fwd_band, whole planes): 5x5 on 7x7 with a multiplier, reach and
    # dilation on 14 rows, and 33 rows of 2 planes (bands of one row, to keep 64 work-items)
    ((2, 3, 7, 7), (6, 1, 5, 5), 3, 1, 2, 1),
    ((1, 2, 14, 11), (2, 1, 3, 5), 2, 1, (1, 3), (2, 1)),
    ((1, 2, 33, 9), (2, 1, 3, 3), 2, 1, 1, 1),
    # depthwise_fwd_band's bands of rows (the last one short), stride 2 on 8 columns and stride 3
    # (its taps gathered lane by lane)
    ((1, 3, 70, 20), (3, 1, 3, 3), 3, 1, 1, 1),
    ((2, 4, 30, 15), (4, 1, 5, 5), 4, 2, 2, 1),
    ((1, 2, 11, 11), (2, 1, 3, 3), 2, 3, 1, 1),
]


@pytest.mark.parametrize("xs, ws, stride", [((2, 2, 3, 2100), (2, 1, 3, 3), 1), ((1, 2, 5, 2111), (4, 1, 5, 3), 2)])
def test_depthwise_rows_past_the_private_band(dev, rng, xs, ws, stride):
    """Rows whose input does not fit depthwise_fwd_band's 8 KiB take depthwise_fwd (float8 middle,
    scalar ends, a multiplier): forward against NumPy in float64, gradients against torch."""
    from minitorch_cl.ops import conv as conv_mod
    OH, OW = (conv_mod.output_size(xs[d + 2], ws[d + 2], stride, 1, 1) for d in (0, 1))
    assert conv_mod._band_rows(xs[0], ws[0], OH, OW, ws[2], ws[3], (stride, stride), (1, 1)) == 0
    x, w, b = _arrays(rng, xs, ws, ws[0])
    xt, wt, bt = (mt.tensor(a, device=dev, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(xt, wt, bt, stride, 1, 1, xs[1])
    np.testing.assert_allclose(y.detach().numpy(), np_conv2d(x.astype(np.float64), w.astype(np.float64), b,
                                                          (stride, stride), (1, 1, 1, 1), (1, 1), xs[1]),
                               rtol=1e-5, atol=1e-5)
    torch = pytest.importorskip("torch")
    tx, tw, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    g = rng.standard_normal(y.shape).astype(np.float32)
    torch.nn.functional.conv2d(tx, tw, tb, stride, 1, 1, xs[1]).backward(torch.from_numpy(g.astype(np.float64)))
    y.backward(mt.tensor(g, device=dev))
    for got, want in ((xt, tx), (wt, tw), (bt, tb)):
        np.testing.assert_allclose(got.grad.numpy(), want.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xs,ws,groups,stride,padding,dilation", GROUP_CASES)
def test_conv2d_groups(dev, rng, xs, ws, groups, stride, padding, dilation):
    x, w, b = _arrays(rng, xs, ws, ws[0])
    p = (padding, padding) if isinstance(padding, int) else padding
    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    check(dev, lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups),
          lambda x, w, b: np_conv2d(x, w, b, pair(stride), (p[0], p[0], p[1], p[1]), pair(dilation), groups),
          x, w, b, rtol=1e-4, atol=1e-4, noncontig=True)


@pytest.mark.parametrize("xs,ws,groups,stride,padding", [
    ((5, 3, 7, 6), (4, 3, 3, 3), 1, 1, 1),        # 2 + 2 + 1 images per chunk
    ((7, 4, 6, 5), (6, 2, 3, 2), 2, (2, 1), (1, 0)),  # grouped: one GEMM per group, per chunk
    ((5, 6, 5, 5), (4, 6, 1, 1), 1, 1, 0),        # pointwise: no columns, the batch whole
])
def test_conv2d_in_image_chunks(dev, rng, monkeypatch, xs, ws, groups, stride, padding):
    """A batch whose im2col columns exceed COL_BUDGET runs chunk by chunk, forward and backward
    (the weight gradient summed over the chunks), from a non-contiguous input."""
    from minitorch_cl.ops import conv as conv_mod
    KH, KW = ws[2:]
    P = conv_mod.output_size(xs[2], KH, _pair(stride)[0], _pair(padding)[0], 1) * \
        conv_mod.output_size(xs[3], KW, _pair(stride)[1], _pair(padding)[1], 1)
    monkeypatch.setattr(conv_mod, "COL_BUDGET", 2 * xs[1] * KH * KW * P + 1)  # two images' columns
    assert len(conv_mod._image_chunks(xs[0], xs[1] * KH * KW, P, KH == KW == 1)) == (1 if KH == 1 else -(-xs[0] // 2))
    x, w, b = _arrays(rng, xs, ws, ws[0])
    p = _pair(padding)
    check(dev, lambda x, w, b: F.conv2d(x, w, b, stride, padding, 1, groups),
          lambda x, w, b: np_conv2d(x, w, b, _pair(stride), (p[0], p[0], p[1], p[1]), (1, 1), groups),
          x, w, b, rtol=1e-4, atol=1e-4, noncontig=True)


def _pair(v):
    return (v, v) if isinstance(v, int) else v


@pytest.mark.parametrize("ws,padding,dilation,flipped", [  # flipped: (gathered panels, implicit GEMM)
    ((3, 3, 3, 3), 1, 1, (True, True)),
    ((2, 3, 3, 2), (0, 1), 2, (True, True)),    # asymmetric kernel, padding and reach
    ((2, 3, 3, 3), (3, 1), 1, (False, False)),  # padding past the kernel's reach: dcol and col2im
    ((5, 3, 3, 3), 1, 1, (False, True)),        # more output channels than input ones: dcol is smaller
])                                              # than the columns, which the implicit GEMM has none of
@pytest.mark.parametrize("implicit", [False, True])
def test_conv2d_input_gradient_as_a_convolution(dev, rng, monkeypatch, ws, padding, dilation, flipped, implicit):
    """A stride-1 convolution with no more output channels than input ones (any, on the implicit GEMM)
    takes its input gradient as g correlated with the flipped, transposed weight (on the packed CPU
    path, no col2im), the flip in the columns' tables, through gathered panels or the implicit GEMM;
    against NumPy, as the col2im path is."""
    from minitorch_cl import gemm as gemm_mod
    from minitorch_cl.ops import conv as conv_mod
    monkeypatch.setattr(conv_mod, "IMPLICIT_MIN_USE", 0 if implicit else 2)
    monkeypatch.setattr(conv_mod, "IMPLICIT_MIN_K", 0)
    x, w, b = _arrays(rng, (3, 3, 8, 7), ws, ws[0])
    p, d = _pair(padding), _pair(dilation)
    check(dev, lambda x, w, b: F.conv2d(x, w, b, 1, padding, dilation),
          lambda x, w, b: np_conv2d(x, w, b, (1, 1), (p[0], p[0], p[1], p[1]), d), x, w, b, rtol=1e-4, atol=1e-4)
    xt = mt.tensor(x, device=dev, requires_grad=True)
    y = F.conv2d(xt, mt.tensor(w, device=dev), None, 1, padding, dilation)
    gathers = count_launches(lambda: y.sum().backward(), lambda key: key[1] == "col2im_gather")
    assert gathers == (0 if flipped[implicit] and gemm_mod.panel_width(dev) else 1)


@pytest.mark.parametrize("xs,ws,padding,dilation", [
    ((2, 3, 5, 7), (5, 3, 3, 3), 1, 1),         # odd channels, a 5x7 plane
    ((1, 5, 9, 6), (4, 5, 3, 3), 0, 1),         # no padding, one image
    ((3, 2, 6, 7), (3, 2, 3, 3), 2, 1),         # padding 2: outputs wider than the input
    ((2, 3, 7, 9), (4, 3, 3, 3), (2, 1), 2),    # dilation
    ((2, 3, 6, 5), (3, 3, 3, 2), (1, 3), 1),    # padding past the kernel's reach: rows wider than W + PW
    ((2, 3, 6, 5), (3, 3, 4, 4), "same", 1),    # even kernel: more padding right and below
])
def test_conv2d_implicit_gemm(dev, rng, monkeypatch, xs, ws, padding, dilation):
    """A stride-1 convolution on the packed CPU path reads its columns from the zero-padded input inside
    the GEMM (conv_pad_planes, gemm_implicit), forward and for the input gradient: values and gradients,
    with bias and ReLU, from strided inputs, against NumPy."""
    from minitorch_cl import gemm as gemm_mod
    from minitorch_cl.ops import conv as conv_mod
    if gemm_mod.panel_width(dev) is None:
        pytest.skip("the device takes the GPU GEMM path, which has no implicit GEMM")
    monkeypatch.setattr(conv_mod, "IMPLICIT_MIN_USE", 0)  # these planes would fill too few of its positions
    monkeypatch.setattr(conv_mod, "IMPLICIT_MIN_K", 0)
    x, w, b = _arrays(rng, xs, ws, ws[0])
    if padding == "same":
        total = [d * (k - 1) for k, d in zip(ws[2:], _pair(dilation))]
        pads = (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
    else:
        p = _pair(padding)
        pads = (p[0], p[0], p[1], p[1])
    check(dev, lambda x, w, b: F.conv2d(x, w, b, 1, padding, dilation, relu=True),
          lambda x, w, b: np.maximum(np_conv2d(x, w, b, (1, 1), pads, _pair(dilation)), 0), x, w, b,
          rtol=1e-4, atol=1e-4, noncontig=True)
    xt = mt.tensor(x, device=dev)
    implicit = count_launches(lambda: F.conv2d(xt, mt.tensor(w, device=dev), None, 1, padding, dilation),
                              lambda key: key[1] == "gemm_implicit")
    assert implicit == 1


def test_conv2d_implicit_gemm_only_where_it_fills_its_panels(dev):
    """gemm_implicit computes OH * Wp positions for OH * OW: a 32x32 plane takes it, a 4x4 one (16 of
    32 positions used) keeps im2col's panels, and so does a K under IMPLICIT_MIN_K (2 channels)."""
    from minitorch_cl import gemm as gemm_mod
    from minitorch_cl.ops import conv as conv_mod
    nr = gemm_mod.panel_width(dev)
    if nr is None:
        pytest.skip("the device takes the GPU GEMM path, which has no implicit GEMM")
    geometry = (3, 3, (1, 1), (1, 1), (1, 1))
    assert conv_mod._implicit_use((2, 8, 32, 32), *geometry, 32, 32, nr)
    assert not conv_mod._implicit_use((2, 8, 4, 4), *geometry, 4, 4, nr)
    assert not conv_mod._implicit_use((2, 2, 32, 32), *geometry, 32, 32, nr)
    assert not conv_mod._implicit_use((2, 8, 32, 32), 3, 3, (2, 2), (1, 1), (1, 1), 16, 16, nr)  # stride 2
    assert not conv_mod._implicit_use((2, 64, 32, 32), 1, 1, (1, 1), (0, 0), (1, 1), 32, 32, nr)  # pointwise


@pytest.mark.parametrize("ws,groups,stride", [((5, 3, 3, 3), 1, 1), ((4, 3, 3, 2), 1, 2), ((6, 1, 3, 3), 3, 1)])
def test_conv2d_on_the_gpu_path(dev, rng, ws, groups, stride):
    """The GPU's path (im2col, gemm_tiled, col2im; no panels), forced on this device: values and gradients."""
    from kernel_workload import forced_profile
    x, w, b = _arrays(rng, (3, 3, 8, 7), ws, ws[0])
    with forced_profile(dev, "GPU"):
        check(dev, lambda x, w, b: F.conv2d(x, w, b, stride, 1, 1, groups),
              lambda x, w, b: np_conv2d(x, w, b, _pair(stride), (1, 1, 1, 1), (1, 1), groups), x, w, b,
              rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("joined", [False, True])
@pytest.mark.parametrize("nr", [8, 24, 32])
def test_im2col_panels_layout(dev, rng, nr, joined):
    """im2col_panels writes image n's columns as (ceil(P/nr), K, nr) panels, zero past P, or joined,
    the images' positions end to end in ceil(N*P/nr) panels, from a strided input: against im2col's
    (N, K, P) columns rearranged by NumPy."""
    from minitorch_cl.ops import conv as conv_mod
    x = mt.tensor(rng.standard_normal((5, 2, 3, 9)).astype(np.float32), device=dev).permute(1, 0, 2, 3)
    geometry = (3, 2, (2, 1), (1, 1), (1, 2))
    OH, OW = conv_mod.output_size(3, 3, 2, 1, 1), conv_mod.output_size(9, 2, 1, 1, 2)
    col = conv_mod.im2col(x, *geometry, OH, OW).numpy()  # (N, K, P)
    packed = conv_mod.im2col_panels(x[0:2], *geometry, OH, OW, nr, joined=joined)
    N, K, P = col.shape
    if joined:
        col, N, P = col.transpose(1, 0, 2).reshape(1, K, N * P), 1, N * P
    panels = -(-P // nr)
    want = np.zeros((N, K, panels * nr), np.float32)
    want[:, :, :P] = col
    want = want.reshape(N, K, panels, nr).transpose(0, 2, 1, 3)
    got = np.empty(N * panels * K * nr, np.float32)
    cl.enqueue_copy(dev.queue, got, packed.buf)
    assert packed.batch_stride == (0 if joined else panels * K * nr) and (packed.K, packed.N) == (K, P)
    compare(got.reshape(want.shape), want, rtol=0, atol=0)


@pytest.mark.parametrize("xs,ws", [((5, 3, 3, 3), (6, 3, 3, 3)), ((3, 4, 7, 7), (5, 4, 3, 2))])
def test_conv2d_small_images_join_their_panels(dev, rng, monkeypatch, xs, ws):
    """Images of 9 or 49 positions (a poor fit for 16- and 32-wide panels alike) go into the GEMM's panels end to end (one GEMM over the chunk,
    then into (n, OC, P)), in chunks: values and gradients against NumPy."""
    from minitorch_cl import gemm as gemm_mod
    from minitorch_cl.ops import conv as conv_mod
    if gemm_mod.panel_width(dev) is None:
        pytest.skip("the device takes the GPU GEMM path, which has no panels")
    P = xs[2] * xs[3]
    assert conv_mod._joined(xs[0], P, gemm_mod.panel_width(dev))
    monkeypatch.setattr(conv_mod, "COL_BUDGET", 2 * xs[1] * ws[2] * ws[3] * P + 1)  # two images a chunk
    x, w, b = _arrays(rng, xs, ws, ws[0])
    check(dev, lambda x, w, b: F.conv2d(x, w, b, 1, 1, relu=True),
          lambda x, w, b: np.maximum(np_conv2d(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), 1), 0), x, w, b,
          rtol=1e-4, atol=1e-4, noncontig=True)


def test_conv2d_with_another_panel_width(dev, rng, monkeypatch):
    """The columns' panels, forward (B) and weight gradient (A), follow the GEMM's block: 5 x 24
    (MR=5, NV=3, LANES=8); a batch of several chunks sums the weight gradient over them."""
    from minitorch_cl import gemm as gemm_mod
    from minitorch_cl.tuner import profile_entries
    if gemm_mod.panel_width(dev) is None:
        pytest.skip("the device takes the GPU GEMM path, which has no panels")
    from minitorch_cl.ops import conv as conv_mod
    monkeypatch.setattr(conv_mod, "COL_BUDGET", 36 * 99 + 1)  # one image's columns: three chunks
    x, w, b = _arrays(rng, (3, 4, 9, 11), (6, 4, 3, 3), 6)
    with profile_entries(dev, gemm_cpu_block=dict(MR=5, NV=3, LANES=8)):
        assert gemm_mod.panel_width(dev) == 24
        check(dev, lambda x, w, b: F.conv2d(x, w, b, 1, 1),
              lambda x, w, b: np_conv2d(x, w, b, (1, 1), (1, 1, 1, 1), (1, 1), 1), x, w, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("groups,mult", [(7, 1), (7, 3), (4, 2)])
def test_depthwise_and_grouped_match_torch(dev, rng, groups, mult):
    """Depthwise (direct kernels) and grouped (GEMM per image) paths on sizes off the tiles, with a fused ReLU."""
    torch = pytest.importorskip("torch")
    C = 7
    if C % groups:
        C = 8
    x, w, b = _arrays(rng, (3, C, 33, 17), (groups * mult, C // groups, 3, 5), groups * mult)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    mx, mw, mb = (mt.tensor(a, device=dev, requires_grad=True) for a in (x, w, b))
    yt = torch.relu(torch.nn.functional.conv2d(tx, tw, tb, (2, 1), (1, 2), (1, 2), groups))
    ym = F.conv2d(mx, mw, mb, (2, 1), (1, 2), (1, 2), groups, relu=True)
    np.testing.assert_allclose(ym.detach().numpy(), yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    g = rng.standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.tensor(g))
    ym.backward(mt.tensor(g, device=dev))
    for a, c in zip((tx, tw, tb), (mx, mw, mb)):
        np.testing.assert_allclose(c.grad.numpy(), a.grad.numpy(), rtol=1e-4, atol=2e-4)


@pytest.mark.parametrize("k,dilation", [((3, 3), (1, 1)), ((2, 4), (1, 1)), ((4, 1), (1, 1)), ((2, 3), (3, 2))])
def test_conv2d_same_padding(dev, rng, k, dilation):
    """'same' pads d*(k-1) in total, the extra cell of an odd total at the right/bottom (PyTorch's rule)."""
    x, w, b = _arrays(rng, (2, 2, 7, 6), (3, 2) + k, 3)
    tot = [d * (kk - 1) for kk, d in zip(k, dilation)]
    pads = (tot[0] // 2, tot[0] - tot[0] // 2, tot[1] // 2, tot[1] - tot[1] // 2)
    out = check(dev, lambda x, w, b: F.conv2d(x, w, b, padding="same", dilation=dilation),
                lambda x, w, b: np_conv2d(x, w, b, (1, 1), pads, dilation), x, w, b, rtol=1e-4, atol=1e-4,
                noncontig=True)
    assert out.shape == (2, 3, 7, 6)


def test_conv2d_valid_and_errors(dev, rng):
    x, w = _arrays(rng, (1, 2, 6, 5), (3, 2, 3, 2))
    tx, tw = mt.tensor(x, device=dev), mt.tensor(w, device=dev)
    np.testing.assert_allclose(F.conv2d(tx, tw, padding="valid").numpy(),
                               np_conv2d(x.astype(np.float64), w, None), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="strided"):
        F.conv2d(tx, tw, padding="same", stride=2)
    with pytest.raises(ValueError, match="'full'"):
        F.conv2d(tx, tw, padding="full")
    with pytest.raises(ValueError, match=r"\(1, 2, 6, 5\).*\(3, 1, 3, 2\).*groups=3"):
        F.conv2d(tx, mt.zeros(3, 1, 3, 2, device=dev), groups=3)
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(tx, mt.zeros(3, 1, 3, 2, device=dev), groups=2)  # 3 out channels, 2 groups
    with pytest.raises(ValueError, match="divisible"):
        nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(4, 4, 3, stride=2, padding="same")


@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", [
    ((2, 3, 9), (4, 3, 3), 1, 1, 1, 1), ((1, 4, 33), (2, 2, 4), 3, 2, 2, 2), ((3, 2, 8), (2, 1, 2), 1, "same", 1, 2),
])
def test_conv1d(dev, rng, xs, ws, stride, padding, dilation, groups):
    x, w, b = _arrays(rng, xs, ws, ws[0])
    if padding == "same":
        tot = dilation * (ws[2] - 1)
        pads = (0, 0, tot // 2, tot - tot // 2)
    else:
        pads = (0, 0, padding, padding)
    check(dev, lambda x, w, b: F.conv1d(x, w, b, stride, padding, dilation, groups),
          lambda x, w, b: np_conv2d(x[:, :, None], w[:, :, None], b, (1, stride), pads, (1, dilation), groups)[:, :, 0],
          x, w, b, rtol=1e-4, atol=1e-4, noncontig=True)


T_CASES = [  # x shape, weight shape, stride, padding, output_padding, dilation, groups
    ((2, 3, 4, 5), (3, 2, 3, 3), (1, 1), (0, 0), (0, 0), (1, 1), 1),
    ((1, 4, 3, 4), (4, 3, 3, 2), (2, 3), (1, 0), (1, 2), (1, 1), 2),
    ((2, 2, 3, 3), (2, 2, 2, 3), (2, 2), (1, 1), (0, 1), (2, 1), 1),
    ((2, 3, 4, 3), (3, 1, 3, 3), (2, 1), (1, 1), (1, 0), (1, 1), 3),  # depthwise
    ((3, 4, 3, 3), (4, 2, 2, 2), (2, 2), (0, 0), (1, 1), (1, 1), 2),  # more images than groups
]


@pytest.mark.parametrize("xs,ws,stride,padding,opad,dilation,groups", T_CASES)
def test_conv_transpose2d(dev, rng, xs, ws, stride, padding, opad, dilation, groups):
    x, w, b = _arrays(rng, xs, ws, ws[1] * groups)
    check(dev, lambda x, w, b: F.conv_transpose2d(x, w, b, stride, padding, opad, groups, dilation),
          lambda x, w, b: np_conv_transpose2d(x, w, b, stride, padding, opad, dilation, groups),
          x, w, b, rtol=1e-4, atol=1e-4, noncontig=True)


def test_conv_transpose1d_and_adjoint(dev, rng):
    """conv_transpose1d against NumPy, and <conv(y), x> == <y, conv_transpose(x)> (it is conv's adjoint)."""
    x, w, b = _arrays(rng, (2, 4, 7), (4, 3, 3), 6)
    check(dev, lambda x, w, b: F.conv_transpose1d(x, w, b, 2, 1, 1, 2),
          lambda x, w, b: np_conv_transpose2d(x[:, :, None], w[:, :, None], b, (1, 2), (0, 1), (0, 1), (1, 1),
                                              2)[:, :, 0], x, w, b, rtol=1e-4, atol=1e-4)
    tx, tw = mt.tensor(x, device=dev), mt.tensor(w, device=dev)
    yt = F.conv_transpose1d(tx, tw, None, 2, 1, 1, 2)
    y = rng.standard_normal(yt.shape).astype(np.float32)
    cy = F.conv1d(mt.tensor(y, device=dev), tw, None, 2, 1, 1, 2)
    assert cy.shape == tx.shape
    np.testing.assert_allclose((cy * tx).sum().item(), (yt * mt.tensor(y, device=dev)).sum().item(), rtol=1e-4)


def test_conv_transpose_errors(dev):
    x = mt.zeros(1, 4, 3, 3, device=dev)
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, mt.zeros(4, 2, 3, 3, device=dev), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"\(1, 4, 3, 3\).*\(3, 2, 3, 3\)"):
        F.conv_transpose2d(x, mt.zeros(3, 2, 3, 3, device=dev))
    with pytest.raises(ValueError, match="dividing"):
        F.conv_transpose2d(x, mt.zeros(4, 2, 3, 3, device=dev), groups=3)


def _torch_pair(torch, tmod, mod, x, rng):
    mod.load_state_dict({k: v.detach().numpy() for k, v in tmod.state_dict().items()})
    tx = torch.tensor(x, requires_grad=True)
    mx = mt.tensor(x, requires_grad=True)
    ty, my = tmod(tx), mod(mx)
    np.testing.assert_allclose(my.detach().numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    g = rng.standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.tensor(g))
    my.backward(mt.tensor(g))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    for (name, tp), p in zip(tmod.named_parameters(), mod.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("make,xs", [
    (lambda m: m.Conv2d(6, 4, 3, padding="same", groups=2), (2, 6, 7, 8)),
    (lambda m: m.Conv2d(5, 10, (3, 2), stride=2, groups=5, bias=False), (3, 5, 9, 7)),
    (lambda m: m.Conv1d(4, 6, 4, padding="same", dilation=2, groups=2), (2, 4, 13)),
    (lambda m: m.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2), (2, 4, 5, 4)),
    (lambda m: m.ConvTranspose1d(3, 2, 5, stride=3, dilation=2), (2, 3, 6)),
])
def test_modules_match_torch(dev, rng, make, xs):
    torch = pytest.importorskip("torch")
    tmod, mod = make(torch.nn), make(nn).to(dev)
    assert tuple(mod.weight.shape) == tuple(tmod.weight.shape)
    assert repr(mod) == repr(tmod)
    _torch_pair(torch, tmod, mod, rng.standard_normal(xs).astype(np.float32), rng)


def test_conv_transpose_output_size(dev, rng):
    torch = pytest.importorskip("torch")
    tmod, mod = torch.nn.ConvTranspose2d(2, 3, 3, stride=3), nn.ConvTranspose2d(2, 3, 3, stride=3)
    mod.load_state_dict({k: v.detach().numpy() for k, v in tmod.state_dict().items()})
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    ty = tmod(torch.tensor(x), output_size=(13, 14))
    my = mod(mt.tensor(x), output_size=(13, 14))
    assert my.shape == ty.shape == (1, 3, 13, 14)
    np.testing.assert_allclose(my.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="output size"):
        mod(mt.tensor(x), output_size=(15, 14))


def test_default_init_bounds():
    """PyTorch's init: bias U(-1/sqrt(fan_in)), fan_in = weight.shape[1] * kernel (out/groups for transposed)."""
    mt.manual_seed(0)
    m = nn.ConvTranspose2d(4, 6, 3, groups=2)
    bound = 1 / np.sqrt(3 * 9)
    assert np.abs(m.bias.detach().numpy()).max() <= bound
    assert np.abs(m.weight.detach().numpy()).max() <= bound


@pytest.mark.parametrize("strided", [False, True])
def test_pointwise_conv_reads_its_input_in_place(dev, rng, strided):
    # 1x1, stride 1, no padding: no im2col/col2im at all, values and gradients as any conv
    x, w, b = _arrays(rng, (3, 5, 7, 9), (6, 5, 1, 1), (6,))
    conv = lambda x, w, b: F.conv2d(x.permute(0, 1, 3, 2) if strided else x, w, b)
    ref = lambda x, w, b: np_conv2d(x.transpose(0, 1, 3, 2) if strided else x, w, b)
    check(dev, conv, ref, x, w, b, rtol=1e-4, atol=1e-5)
    tx, tw = (mt.tensor(a, device=dev, requires_grad=True) for a in (x, w))
    run = lambda: conv(tx, tw, None).sum().backward()
    assert count_launches(run, lambda key: key[1] in ("im2col_fwd", "im2col_bwd")) == 0


def test_conv_backward_keeps_its_input_not_the_columns(dev, rng):
    # 3x3 columns are 9x the input: saved for backward they would dominate a CNN's training memory
    x = mt.tensor(rng.standard_normal((8, 16, 32, 32)), device=dev, dtype=mt.float32)
    conv = nn.Conv2d(16, 16, 3, padding=1).to(dev)
    mt.cuda.reset_peak_memory_stats(dev)
    before = mt.cuda.memory_allocated(dev)
    y = conv(x)
    held = mt.cuda.memory_allocated(dev) - before
    cols = 8 * 16 * 9 * 32 * 32 * 4
    assert held < cols / 2, f"forward holds {held} bytes: the {cols}-byte columns were kept"
    y.sum().backward()
    np.testing.assert_allclose(conv.bias.grad.numpy(), np.full(16, 8 * 32 * 32), rtol=1e-5)
